"""Export: personas, templates and persona sets as files to use or share elsewhere.

- A persona or template as Markdown (`md`): by default the instruction alone, its body byte
  for byte, ready to drop into another tool as GEMINI.md, CLAUDE.md or AGENTS.md; with
  `resolved`, the effective instruction after inheritance (`inherit.resolve`); with
  `frontmatter`, a shareable persona file (display_name, description, tags, ... plus `name`
  and `owner`, without `id`, so `maestro import` in another repository makes it a new persona
  under the same key; `extends` is left out when the body is resolved).
- A persona or template as JSON (`json`): the record (`Persona` / `Template`), plus
  `resolved_body` and `chain` when resolved.
- A persona set as JSON: the file's bytes exactly, the persona-set service's shape, so the
  old service can load it (`default_personas/<set>.json`).
- `export_all` writes every valid persona, template and set under a folder, in the
  repository's own layout (`personas/<owner>/<name>.md` with frontmatter,
  `templates/<name>.md`, each set at its own path: `persona_sets/<set>/set.json` with every
  file under its folder, such as its images, or `persona_sets/<set>.json`), a bundle
  `maestro import` reads back.

Everything is read from the working tree, or from any commit (`rev`). An entity with an error
at that point is refused (`ValidationFailed`) rather than exported half-broken; `export_all`
skips such files and lists them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from maestro_git.atomic import write_atomic
from maestro_git.core import inherit
from maestro_git.core.models import Persona, PersonaSet, Severity, Template
from maestro_git.core.snapshot import Snapshot, build_snapshot
from maestro_git.core.writeback import render_document
from maestro_git.errors import NotFoundError, UsageError, ValidationFailed
from maestro_git.git.worktree import read_worktree
from maestro_git.output import to_jsonable
from maestro_git.settings import Settings

__all__ = ["ExportAllResult", "ExportFormat", "export_all", "export_entity", "find_entity",
           "load_snapshot"]

ExportFormat = Literal["md", "json"]
Entity = Persona | Template | PersonaSet
# Fields a shared persona file carries (no `id`: the importing repository assigns one).
_SHARED_FIELDS = ("name", "owner", "display_name", "description", "version", "extends",
                  "category", "tags", "active", "metadata")


@dataclass(frozen=True)
class ExportAllResult:
    """What `export_all` wrote (repository-relative paths under the folder) and skipped."""

    written: tuple[str, ...]
    skipped: tuple[str, ...]  # paths invalid at the source, not exported
    commit: str | None


def load_snapshot(settings: Settings, rev: str | None = None) -> Snapshot:
    """The working tree's snapshot, or the commit `rev`'s (read from git, no checkout)."""
    if rev is None:
        return build_snapshot(read_worktree(settings.repo_path), settings)
    from maestro_git.repo.repository import Repository

    return Repository(settings).snapshot(rev)


def find_entity(snap: Snapshot, key: str) -> Entity:
    """The persona (`owner/name`), template or set (`name`) named `key`.

    `template:NAME` and `set:NAME` choose when a template and a set share a name. Raises
    `NotFoundError` for an unknown key and `UsageError` for an ambiguous one.
    """
    prefix, _, rest = key.partition(":")
    if rest and prefix in ("template", "set"):
        record: Entity | None = (snap.templates if prefix == "template" else snap.sets).get(rest)
        if record is None:
            raise NotFoundError(f"no {prefix} '{rest}'", hint="see 'maestro list'")
        return record
    if "/" in key:
        persona = snap.personas.get(key)
        if persona is None:
            raise NotFoundError(f"no persona '{key}'", hint="see 'maestro list'")
        return persona
    template, pset = snap.templates.get(key), snap.sets.get(key)
    if template is not None and pset is not None:
        raise UsageError(f"'{key}' is both a template and a persona set",
                         hint=f"write template:{key} or set:{key}")
    found = template or pset
    if found is None:
        raise NotFoundError(f"no persona, template or persona set '{key}'",
                            hint="persona keys are <owner>/<name>; see 'maestro list'")
    return found


def _require_valid(snap: Snapshot, record: Entity) -> None:
    errors = [p for p in snap.problems_for(record.path) if p.severity is Severity.ERROR]
    if errors:
        first = errors[0]
        raise ValidationFailed(
            f"{record.key} does not validate ({first.location()}: {first.rule}: "
            f"{first.message}); not exported", errors, hint=first.fix or "run 'maestro check'")


def _body(snap: Snapshot, record: Persona | Template, resolved: bool, settings: Settings
          ) -> tuple[str, tuple[str, ...]]:
    if not resolved or not isinstance(record, Persona):
        return record.body, (record.key,)
    found = inherit.resolve(record.key, snap.personas, settings.limits.max_inheritance_depth)
    return found.body, found.chain


def _shared_fields(record: Persona | Template, resolved: bool) -> dict[str, Any]:
    values = record.model_dump()
    fields = {k: values.get(k) for k in _SHARED_FIELDS if k in values}
    fields["tags"] = list(record.tags) or None
    fields["metadata"] = dict(record.metadata) or None
    if resolved or not record.extends:
        fields.pop("extends", None)
    if record.active:
        fields.pop("active", None)
    return fields


def _file_reader(snap: Snapshot, settings: Settings) -> Callable[[str], bytes]:
    """Reads a file's bytes where `snap` was taken: the working tree, or its commit."""
    commit = snap.commit
    if commit is None:
        return lambda path: (settings.repo_path / path).read_bytes()
    from maestro_git.repo.repository import Repository

    git = Repository(settings).git

    def read(path: str) -> bytes:
        data = git.read_file(commit, path)
        if data is None:  # pragma: no cover - the snapshot came from this commit
            raise NotFoundError(f"{path} is not in {commit[:7]}")
        return data

    return read


def export_entity(settings: Settings, key: str, *, fmt: ExportFormat | None = None,
                  resolved: bool = False, frontmatter: bool = False,
                  rev: str | None = None, snap: Snapshot | None = None) -> bytes:
    """The bytes of one exported entity (module docstring). `fmt` defaults to `md` for
    personas and templates and `json` for persona sets."""
    snap = snap if snap is not None else load_snapshot(settings, rev)
    record = find_entity(snap, key)
    _require_valid(snap, record)
    if isinstance(record, PersonaSet):
        if fmt == "md":
            raise UsageError(f"{record.key} is a persona set: it exports as JSON",
                             hint="use --format json (the default for sets)")
        if resolved or frontmatter:
            raise UsageError("--resolved and --frontmatter apply to personas, not sets")
        return _file_reader(snap, settings)(record.path)
    body, chain = _body(snap, record, resolved, settings)
    if (fmt or "md") == "md":
        if frontmatter:
            return render_document(_shared_fields(record, resolved), body)
        return body.encode("utf-8")
    doc: dict[str, Any] = to_jsonable(record)
    for internal in ("body_line", "content_hash", "size_bytes"):
        doc.pop(internal, None)
    doc["kind"] = record.kind
    doc["key"] = record.key
    if resolved:
        doc["resolved_body"] = body
        doc["chain"] = list(chain)
    return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _set_assets(snap: Snapshot, record: PersonaSet) -> list[str]:
    """The files under a set's own folder (its images); a set stored as
    `persona_sets/<set>.json` has no folder of its own."""
    if not record.path.endswith("/set.json"):
        return []
    folder = record.path[: -len("set.json")]
    return sorted(p for p in snap.asset_paths if p.startswith(folder))


def export_all(settings: Settings, dest: Path, *, resolved: bool = False,
               rev: str | None = None) -> ExportAllResult:
    """Write every valid persona, template and set under `dest` (the repository layout).

    Personas and templates are shareable files with frontmatter (`frontmatter=True` above);
    sets are their JSON bytes, with the files under a set's folder. Existing files under
    `dest` are replaced.
    """
    snap = load_snapshot(settings, rev)
    read = _file_reader(snap, settings)
    written: list[str] = []
    skipped: list[str] = []
    records: list[Entity] = [*snap.personas.values(), *snap.templates.values(),
                             *snap.sets.values()]
    for record in sorted(records, key=lambda r: r.path):
        if not snap.is_valid(record.path):
            skipped.append(record.path)
            continue
        if isinstance(record, PersonaSet):
            for asset in _set_assets(snap, record):
                if snap.is_valid(asset):  # e.g. not a link out of the repository
                    write_atomic(dest / asset, read(asset))
                    written.append(asset)
                else:
                    skipped.append(asset)
            data = read(record.path)
        else:
            data = export_entity(settings, _qualified(record), fmt="md", frontmatter=True,
                                 resolved=resolved, snap=snap)
        write_atomic(dest / record.path, data)
        written.append(record.path)
    return ExportAllResult(tuple(written), tuple(skipped), snap.commit)


def _qualified(record: Persona | Template) -> str:
    return record.key if isinstance(record, Persona) else f"template:{record.key}"
