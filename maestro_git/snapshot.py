"""Every record and problem of a repository at one point (a commit or a working tree).

Pure: a snapshot is built from `SourceFile`s, whoever read them (`worktree.read_worktree` for
a folder, `git.GitRepo.files_at` for a commit). `update_snapshot` re-parses only the files a
commit touched, then re-runs the cross-file rules, so mirroring a long history does not parse
every file at every commit. `diff_snapshots` lists what changed between two snapshots.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from maestro_git import validate
from maestro_git.formats import ParsedFile, classify, parse_file
from maestro_git.models import (
    Change,
    ChangeAction,
    EntityKind,
    Persona,
    PersonaSet,
    Problem,
    Severity,
    SourceFile,
    Template,
)
from maestro_git.settings import Settings

__all__ = ["Snapshot", "build_snapshot", "diff_snapshots", "update_snapshot"]

Record = Persona | Template | PersonaSet


@dataclass(frozen=True)
class Snapshot:
    """Records and problems of a repository at `commit` (None for a working tree)."""

    commit: str | None
    files: Mapping[str, ParsedFile]  # every path maestro reads -> its parse result
    personas: Mapping[str, Persona]  # key -> persona (every file that parsed, valid or not)
    templates: Mapping[str, Template]
    sets: Mapping[str, PersonaSet]
    problems: tuple[Problem, ...]  # file and cross-file problems, severities as configured
    invalid_paths: frozenset[str] = field(default_factory=frozenset)  # paths with an error

    def record(self, kind: EntityKind, key: str) -> Record | None:
        table: Mapping[str, Record] = {
            "persona": self.personas, "template": self.templates, "persona_set": self.sets,
        }[kind]
        return table.get(key)

    def is_valid(self, path: str) -> bool:
        return path not in self.invalid_paths

    def problems_for(self, path: str) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.path == path)

    @property
    def ok(self) -> bool:
        """True when no problem is an error."""
        return not self.invalid_paths and not any(
            p.severity is Severity.ERROR for p in self.problems)


def _assemble(files: Mapping[str, ParsedFile], sources: Mapping[str, SourceFile],
              commit: str | None, settings: Settings) -> Snapshot:
    personas: dict[str, Persona] = {}
    templates: dict[str, Template] = {}
    sets: dict[str, PersonaSet] = {}
    for parsed in files.values():
        rec = parsed.record
        if isinstance(rec, Persona):
            personas[rec.key] = rec
        elif isinstance(rec, Template):
            templates[rec.key] = rec
        elif isinstance(rec, PersonaSet):
            sets[rec.key] = rec
    draft = Snapshot(commit, MappingProxyType(dict(files)), MappingProxyType(personas),
                     MappingProxyType(templates), MappingProxyType(sets), ())
    raw: list[Problem] = [p for parsed in files.values() for p in parsed.problems]
    raw.extend(validate.validate_snapshot(draft, sources, settings))
    problems = validate.apply_severities(raw, settings)
    problems.sort(key=lambda p: (p.path, p.line or 0, p.column or 0, p.rule))
    invalid = frozenset(p.path for p in problems if p.severity is Severity.ERROR)
    return Snapshot(commit, draft.files, draft.personas, draft.templates, draft.sets,
                    tuple(problems), invalid)


def _parse_all(sources: Iterable[SourceFile], settings: Settings
               ) -> tuple[dict[str, ParsedFile], dict[str, SourceFile]]:
    files: dict[str, ParsedFile] = {}
    kept: dict[str, SourceFile] = {}
    for src in sources:
        if classify(src.path) is None:
            continue
        parsed = parse_file(src, settings.limits)
        extra = validate.validate_file(parsed, src, settings)
        if extra:
            parsed = ParsedFile(parsed.path, parsed.kind, parsed.record,
                                parsed.problems + tuple(extra), parsed.content_hash)
        files[src.path] = parsed
        kept[src.path] = src
    return files, kept


def build_snapshot(sources: Iterable[SourceFile], settings: Settings,
                   commit: str | None = None) -> Snapshot:
    """Parse and validate every file maestro reads among `sources`."""
    files, kept = _parse_all(sources, settings)
    return _assemble(files, kept, commit, settings)


def update_snapshot(old: Snapshot, changed: Iterable[SourceFile], removed: Iterable[str],
                    settings: Settings, commit: str | None = None) -> Snapshot:
    """`old` with `changed` files re-parsed and `removed` paths dropped; cross-file rules rerun.

    Cross-file rules see only parse results (and the changed files' bytes), never the bytes of
    files that did not change, so callers need not read them.
    """
    files = dict(old.files)
    for path in removed:
        files.pop(path, None)
    new_files, kept = _parse_all(changed, settings)
    files.update(new_files)
    return _assemble(files, kept, commit, settings)


def _entities(snap: Snapshot) -> dict[tuple[EntityKind, str], Record]:
    out: dict[tuple[EntityKind, str], Record] = {}
    for table in (snap.personas, snap.templates, snap.sets):
        for key, rec in table.items():
            out[(rec.kind, key)] = rec
    return out


def diff_snapshots(old: Snapshot, new: Snapshot,
                   renames: Mapping[str, str] | None = None) -> list[Change]:
    """What changed from `old` to `new`, by entity.

    A rename is recognised when a removed and an added persona/template share a frontmatter
    `id`, or when `renames` (old path -> new path, from git's rename detection) pairs them.
    """
    before = _entities(old)
    after = _entities(new)
    removed = {k: before[k] for k in before.keys() - after.keys()}
    added = {k: after[k] for k in after.keys() - before.keys()}
    changes: list[Change] = []

    by_id = {(rec.kind, rec.id): k for k, rec in removed.items()
             if not isinstance(rec, PersonaSet) and rec.id}
    by_path = {rec.path: k for k, rec in removed.items()}
    for key in sorted(added):
        rec = added[key]
        old_key = None
        if not isinstance(rec, PersonaSet) and rec.id:
            old_key = by_id.get((rec.kind, rec.id))
        if old_key is None and renames:
            for old_path, new_path in renames.items():
                if new_path == rec.path and old_path in by_path:
                    candidate = by_path[old_path]
                    if candidate[0] == rec.kind:
                        old_key = candidate
                    break
        if old_key is not None and old_key in removed:
            old_rec = removed.pop(old_key)
            changes.append(Change(action=ChangeAction.RENAMED, kind=rec.kind, key=key[1],
                                  old_key=old_key[1], path=rec.path, old_path=old_rec.path))
        else:
            changes.append(Change(action=ChangeAction.ADDED, kind=rec.kind, key=key[1],
                                  path=rec.path))
    for key in sorted(removed):
        rec = removed[key]
        changes.append(Change(action=ChangeAction.REMOVED, kind=rec.kind, key=key[1],
                              old_path=rec.path))
    for key in sorted(before.keys() & after.keys()):
        if before[key].content_hash != after[key].content_hash:
            rec = after[key]
            changes.append(Change(action=ChangeAction.MODIFIED, kind=rec.kind, key=key[1],
                                  path=rec.path, old_path=before[key].path))
    return changes
