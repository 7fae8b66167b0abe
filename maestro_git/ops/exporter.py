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

- `export_target` renders personas into a consuming repository in an agent tool's layout
  (`.claude/agents/<name>.md`, `.github/agents/<name>.agent.md`, `.cursor/rules/<name>.mdc`,
  `AGENTS.md`, ...; `core/tools`): the resolved body, the persona's typed `model`/`tools`
  and its `metadata.<tool>` keys, and a generated-by line naming the persona key and the
  commit. Inactive and invalid personas are not exported; a rendered file the tool would
  drop (a trap of `core/tools`) is not written and its problem is returned.

Everything is read from the working tree, or from any commit (`rev`). An entity with an error
at that point is refused (`ValidationFailed`) rather than exported half-broken; `export_all`
skips such files and lists them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from maestro_git.atomic import write_atomic
from maestro_git.core import inherit, tools
from maestro_git.core.models import Persona, PersonaSet, Problem, Severity, Template
from maestro_git.core.snapshot import Snapshot
from maestro_git.core.writeback import render_document
from maestro_git.errors import ConflictError, NotFoundError, UsageError, ValidationFailed
from maestro_git.output import to_jsonable
from maestro_git.settings import Settings

__all__ = ["ExportAllResult", "ExportFormat", "TargetResult", "export_all", "export_entity",
           "export_target", "find_entity", "load_snapshot", "render_target"]

ExportFormat = Literal["md", "json"]
Entity = Persona | Template | PersonaSet
PROGRESS_EVERY = 200  # records between progress reports of `export_all`

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
    from maestro_git.repo.snapshots import WORKTREE, snapshot_of

    return snapshot_of(settings, WORKTREE if rev is None else rev)


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
               rev: str | None = None,
               progress: Callable[[int, int], None] | None = None) -> ExportAllResult:
    """Write every valid persona, template and set under `dest` (the repository layout).

    Personas and templates are shareable files with frontmatter (`frontmatter=True` above);
    sets are their JSON bytes, with the files under a set's folder. Existing files under
    `dest` are replaced. `progress(done, total)` is called in records (personas, templates
    and sets) every `PROGRESS_EVERY` of them and at the end.
    """
    snap = load_snapshot(settings, rev)
    read = _file_reader(snap, settings)
    written: list[str] = []
    skipped: list[str] = []
    records: list[Entity] = [*snap.personas.values(), *snap.templates.values(),
                             *snap.sets.values()]
    ordered = sorted(records, key=lambda r: r.path)
    for n, record in enumerate(ordered):
        if progress is not None and n % PROGRESS_EVERY == 0:
            progress(n, len(ordered))
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
    if progress is not None:
        progress(len(ordered), len(ordered))
    return ExportAllResult(tuple(written), tuple(skipped), snap.commit)


def _qualified(record: Persona | Template) -> str:
    return record.key if isinstance(record, Persona) else f"template:{record.key}"


# -- agent-tool targets ------------------------------------------------------------------------
@dataclass(frozen=True)
class TargetResult:
    """What `export_target` wrote (or, with `check`, found stale) in a consuming repository.

    Paths are relative to the target folder. `stale` lists every path that differs from what
    the personas render to (missing, changed, or a generated file whose persona is gone)."""

    target: str
    written: tuple[str, ...]
    unchanged: tuple[str, ...]
    removed: tuple[str, ...]
    stale: tuple[str, ...]
    problems: tuple[Problem, ...]
    commit: str | None


def _selected(snap: Snapshot, keys: Sequence[str], owner: str | None) -> list[Persona]:
    for key in keys:
        if key not in snap.personas:
            raise NotFoundError(f"no persona '{key}'", hint="see 'maestro list'")
    chosen = [p for k, p in sorted(snap.personas.items())
              if (not keys or k in keys) and (owner is None or p.owner == owner)]
    return [p for p in chosen if snap.is_valid(p.path) and p.active]


def render_target(settings: Settings, target: str, *, keys: Sequence[str] = (),
                  owner: str | None = None, rev: str | None = None,
                  snap: Snapshot | None = None
                  ) -> tuple[dict[str, bytes], list[Problem], str | None]:
    """The files `target` gets (path -> bytes), the problems of those the tool would drop
    (not included), and the commit rendered: `rev`, by default the branch head (committed
    content, so the generated-by line names a commit), the working tree before a first
    commit."""
    try:
        fmt = tools.target(target)
    except KeyError:
        raise UsageError(f"unknown target '{target}'",
                         hint="one of: " + ", ".join(sorted(tools.TARGETS))) from None
    if snap is None:
        snap = load_snapshot(settings, rev if rev is not None else _branch_head(settings))
    personas = _selected(snap, keys, owner)
    if fmt.single is not None and len(personas) != 1:
        raise UsageError(f"{fmt.single} holds one persona; {len(personas)} are selected",
                         hint="name it: --only OWNER/NAME")
    files: dict[str, bytes] = {}
    problems: list[Problem] = []
    for persona in personas:
        body, _ = _body(snap, persona, True, settings)
        path = fmt.path_for(persona.name)
        if path in files:
            raise UsageError(f"two personas would both be written to {path}",
                             hint="export one owner at a time: --owner OWNER")
        data = fmt.render(tools.doc_for_persona(fmt, persona, body), key=persona.key,
                          commit=snap.commit)
        found = [p.model_copy(update={"message": f"{persona.key}: {p.message}"})
                 for p in fmt.parse(path, data).problems]
        problems += found
        if not any(p.severity is Severity.ERROR for p in found):
            files[path] = data
    return files, problems, snap.commit


def _branch_head(settings: Settings) -> str | None:
    """The branch's head commit (what a target is rendered from by default), or None before
    the first commit (then the working tree)."""
    from maestro_git.repo.repository import Repository

    return Repository(settings).head()


def _generated_files(dest: Path, fmt: tools.ToolFormat) -> dict[str, bytes]:
    """The files under `dest` in `fmt`'s place that carry maestro's generated-by line."""
    if fmt.single is not None:
        candidates = [dest / fmt.single]
    else:
        assert fmt.folder is not None
        candidates = sorted((dest / fmt.folder).glob(f"*{fmt.suffix}"))
    found: dict[str, bytes] = {}
    for file in candidates:
        if file.is_file():
            data = file.read_bytes()
            if tools.GENERATED_RE.search(data.decode("utf-8", "replace")):
                found[file.relative_to(dest).as_posix()] = data
    return found


def _same(old: bytes, new: bytes) -> bool:
    """Equal apart from the commit named in the generated-by line."""
    a, key_a = tools.strip_generated(old.decode("utf-8", "replace"))
    b, key_b = tools.strip_generated(new.decode("utf-8", "replace"))
    return key_a == key_b and a == b


_CHAIN_TOOLS = {"claude-md": "Claude Code", "gemini-md": "Gemini CLI"}


def _chain_problems(fmt: tools.ToolFormat, files: dict[str, bytes], dest: Path
                    ) -> list[Problem]:
    """The rendered CLAUDE.md / GEMINI.md's `@path` chains, followed through the consuming
    repository `dest` (where the files they import live): loops, chains past five hops,
    imports of files that are not there."""
    from maestro_git.core.tools.imports import chain_problems

    tool = _CHAIN_TOOLS.get(fmt.id)
    if tool is None:
        return []
    found: list[Problem] = []
    for path, data in files.items():
        base = (dest / path).parent

        def read(rel: str, base: Path = base) -> str | None:
            file = base / rel
            try:
                return file.read_text(encoding="utf-8", errors="replace") \
                    if file.is_file() else None
            except OSError:
                return None

        found += chain_problems(path, data.decode("utf-8", "replace"), read, tool=tool)
    return found


def export_target(settings: Settings, target: str, dest: Path, *, keys: Sequence[str] = (),
                  owner: str | None = None, check: bool = False,
                  rev: str | None = None) -> TargetResult:
    """Render personas (resolved) into `dest`, a consuming repository, in `target`'s layout.

    Idempotent: a file whose content is unchanged (whatever commit its generated-by line
    names) is not rewritten; a generated file whose persona is no longer exported is
    removed; files without the generated-by line are never touched, and one standing where a
    persona would go is refused. With `check`, nothing is written: `stale` lists what an
    export would change (the CLI exits 1 then)."""
    fmt = tools.target(target) if target in tools.TARGETS else None
    files, problems, commit = render_target(settings, target, keys=keys, owner=owner, rev=rev)
    assert fmt is not None
    existing = _generated_files(dest, fmt)
    written, unchanged, stale = [], [], []
    for path, data in files.items():
        full = dest / path
        old = full.read_bytes() if full.is_file() else None
        if old is not None and _same(old, data):
            unchanged.append(path)
            continue
        if old is not None and path not in existing and not check:
            raise ConflictError(f"{path} exists and was not generated by maestro",
                                hint="move it away (or import it first: maestro import)")
        stale.append(path)
        if not check:
            write_atomic(full, data)
            written.append(path)
    problems += _chain_problems(fmt, files, dest)
    removed = [p for p in sorted(existing) if p not in files]
    stale += removed
    if not check:
        for path in removed:
            (dest / path).unlink()
    return TargetResult(fmt.id, tuple(written), tuple(unchanged),
                        tuple(removed) if not check else (), tuple(stale), tuple(problems),
                        commit)
