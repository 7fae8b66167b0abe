"""Migration tools: existing system instructions and persona-set JSON into the repository.

What is imported (`import_sources`, the `maestro import` command):
- an instruction file (GEMINI.md, CLAUDE.md, AGENTS.md, `.cursorrules`,
  `.github/copilot-instructions.md`, or any Markdown/text file), with or without YAML
  frontmatter, becomes `personas/<owner>/<name>.md` (or `templates/<name>.md` when imported as
  a template). The body is kept byte for byte (a UTF-8 byte-order mark is dropped). The
  frontmatter's fields are kept (display_name, description, tags, extends, metadata, ...;
  other keys stay where they are and the normal rules read them into `metadata`), except:
  a fresh UUID `id` and `version: "1.0.0"` are always written (an import is a new persona
  here), and `name`/`owner` are not written (the path holds them).
- persona-set JSON in the persona-set service's shapes becomes `persona_sets/<set>/set.json`
  (the object with a `personas` array kept byte for byte; a bare array of members is wrapped
  as `{"name", "personas", "metadata": {"status": "generated"}}`).
- a `set.json` found in a folder being imported is a set in the repository's layout (what
  `maestro export --all` writes): every other file under its folder (its images) is imported
  with it, under `persona_sets/<set>/` at the same relative path, so relative `image_url`s
  keep working; those files are not imported on their own.

Names and owners:
- the name is `--name` > the frontmatter `name` > the file name, lowercased, with every run
  of characters outside `[a-z0-9_-]` made one `_` and leading dots dropped (`GEMINI.md` ->
  `gemini`, `.cursorrules` -> `cursorrules`, `copilot-instructions.md` ->
  `copilot-instructions`). A generic file name that says nothing about the persona
  (`README`, `index`, `instructions`, `prompt`, `system`, `system_prompt`, `persona`) takes
  its folder's name instead (`billing-bot/README.md` -> `billing-bot`).
- the owner is `--owner` > the frontmatter `owner`; a persona without either is refused.
- a file is imported as a template when a template category is given, or when its
  frontmatter has a `category` and no `owner` and no owner is given (the shape
  `maestro export --all` writes for templates).
- set names follow the service's file patterns: `default_personas.json` -> `default`,
  `default_personas_<name>.json` -> `<name>`, `default_personas/<name>.json` -> `<name>`,
  the repository's `<name>/set.json` -> `<name>`; any other `<file>.json` -> `<file>`.

Safety: the new files are validated with the repository (`snapshot.build_snapshot`) before
anything is written; any error on an imported file refuses the whole import
(`ValidationFailed`, listing the problems), and an existing key or file is never overwritten
(`ConflictError`). Files are written into the working tree (the user reviews and commits), or
with `commit=True` as one validated compare-and-swap commit of every imported file
(`writes.Writer`, the write path of `Repository.create`).
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from maestro_git.atomic import write_atomic
from maestro_git.core.formats import NAME_RE, classify, split_frontmatter
from maestro_git.core.models import EntityKind, Problem, Severity, SourceFile
from maestro_git.core.safe_yaml import load_frontmatter
from maestro_git.core.snapshot import Snapshot, build_snapshot, update_snapshot
from maestro_git.core.writeback import render_document
from maestro_git.errors import ConflictError, UsageError, ValidationFailed
from maestro_git.git.repo import Identity
from maestro_git.git.worktree import read_worktree
from maestro_git.settings import Limits, Settings

__all__ = [
    "GENERIC_NAMES",
    "ImportItem",
    "ImportResult",
    "Source",
    "convert_instruction",
    "convert_set",
    "describe",
    "import_paths",
    "import_sources",
    "normalise_name",
    "read_sources",
    "set_name_for",
]

# File stems that name a role, not a persona: such a file takes its folder's name.
GENERIC_NAMES = frozenset({"readme", "index", "instructions", "prompt", "system",
                           "system_prompt", "system-prompt", "persona"})
_INSTRUCTION_SUFFIXES = (".md", ".markdown", ".mdc", ".txt")
_DROPPED_KEYS = ("id", "version", "name", "owner")


@dataclass(frozen=True)
class Source:
    """One file to import: its path as given (for messages and naming) and its bytes.

    `assets` (a set's images) are the files that travel with it, by path relative to its
    folder."""

    path: str
    data: bytes
    assets: Mapping[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class ImportItem:
    """One imported entity: where it came from and the file it becomes."""

    source: str
    kind: EntityKind
    key: str
    path: str  # repository path written
    data: bytes
    assets: Mapping[str, bytes] = field(default_factory=dict)  # repository path -> bytes


@dataclass(frozen=True)
class ImportResult:
    """What an import did (or, with `dry_run`, would do)."""

    items: tuple[ImportItem, ...]
    problems: tuple[Problem, ...]  # warnings and notes on the imported files
    written: bool
    commit: str | None = None


def normalise_name(raw: str) -> str:
    """A file stem as a persona name: lowercase, `[a-z0-9_-]` (other runs become `_`)."""
    name = re.sub(r"[^a-z0-9_-]+", "_", raw.lower().lstrip(".")).strip("_")
    return name[:100].rstrip("_")


def _name_from_path(path: str) -> str:
    pure = PurePosixPath(path.replace("\\", "/"))
    stem = pure.name
    for suffix in _INSTRUCTION_SUFFIXES:
        if stem.lower().endswith(suffix) and len(stem) > len(suffix):
            stem = stem[: -len(suffix)]
            break
    name = normalise_name(stem)
    if name in GENERIC_NAMES and pure.parent.name not in ("", ".", ".."):
        folder = pure.parent
        if folder.name == ".github" and folder.parent.name not in ("", ".", ".."):
            folder = folder.parent
        name = normalise_name(folder.name) or name
    return name


def set_name_for(path: str) -> str:
    """The set name a persona-set file stands for, by the persona-set service's patterns."""
    pure = PurePosixPath(path.replace("\\", "/"))
    stem = pure.name[:-5] if pure.name.lower().endswith(".json") else pure.name
    if stem == "set" and pure.parent.name not in ("", ".", ".."):
        return normalise_name(pure.parent.name)
    if stem == "default_personas":
        return "default"
    if stem.startswith("default_personas_"):
        return normalise_name(stem[len("default_personas_"):])
    return normalise_name(stem)


def _refuse(source: str, message: str, fix: str, rule: str = "import") -> ValidationFailed:
    problem = Problem(rule=rule, severity=Severity.ERROR, path=source, message=message, fix=fix)
    return ValidationFailed(f"{source}: {message}", [problem], hint=fix)


def convert_instruction(source: Source, *, owner: str | None = None, name: str | None = None,
                        template_category: str | None = None,
                        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
                        max_frontmatter_bytes: int = 16_384) -> ImportItem:
    """One instruction file as a persona (or template) file. Pure: bytes in, an item out.

    Raises `ValidationFailed` for a file that is not UTF-8 or whose frontmatter is not a YAML
    mapping, and `UsageError` when the name or the owner cannot be decided.
    """
    try:
        text = source.data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _refuse(source.path, f"byte 0x{source.data[exc.start]:02x} at offset "
                      f"{exc.start} is not valid UTF-8", "re-save the file as UTF-8",
                      "invalid-utf8") from None
    yaml_text, body, _ = split_frontmatter(text)
    if body.startswith("\ufeff"):
        body = body[1:]
    fm: dict[str, Any] = {}
    if yaml_text is not None:
        limits = Limits(max_frontmatter_bytes=max_frontmatter_bytes)
        value, problems, _ = load_frontmatter(yaml_text, source.path, limits)
        if problems:
            first = problems[0]
            raise ValidationFailed(f"{source.path}: {first.rule}: {first.message}", problems,
                                   hint=first.fix or None)
        if value is not None and not isinstance(value, dict):
            raise _refuse(source.path, "frontmatter must be a mapping of key: value",
                          "write the frontmatter as 'key: value' lines", "frontmatter-type")
        fm = {str(k): v for k, v in (value or {}).items()}
    fm_owner = fm.get("owner") if isinstance(fm.get("owner"), str) else None
    fm_name = fm.get("name") if isinstance(fm.get("name"), str) else None
    is_template = template_category is not None or (
        owner is None and fm_owner is None and isinstance(fm.get("category"), str))
    final_name = name or (normalise_name(fm_name) if fm_name else _name_from_path(source.path))
    if not final_name or not NAME_RE.match(final_name):
        raise UsageError(f"{source.path}: cannot make a persona name from the file name",
                         hint="pass --name NAME (lowercase letters, digits, _ and -)")
    fields: dict[str, Any] = {"id": new_id()}
    fields.update((k, v) for k, v in fm.items() if k not in _DROPPED_KEYS)
    fields["version"] = "1.0.0"
    if is_template:
        if template_category is not None:
            fields["category"] = template_category
        return ImportItem(source.path, "template", final_name, f"templates/{final_name}.md",
                          render_document(fields, body))
    final_owner = owner or fm_owner
    if final_owner is None:
        raise UsageError(f"{source.path}: no owner for the persona",
                         hint="pass --owner OWNER (the folder under personas/), or "
                              "--template-category to import it as a template")
    if not NAME_RE.match(final_owner):
        raise UsageError(f"owner '{final_owner}' is not a valid name",
                         hint="owners are lowercase letters, digits, _ and -")
    key = f"{final_owner}/{final_name}"
    return ImportItem(source.path, "persona", key, f"personas/{key}.md",
                      render_document(fields, body))


def convert_set(source: Source, *, name: str | None = None) -> ImportItem:
    """A persona-set JSON file as `persona_sets/<set>/set.json`, its assets beside it. Pure.

    An object with a `personas` array is kept byte for byte; a bare array of member objects
    is wrapped in the service's shape. Anything else is refused (`ValidationFailed`).
    """
    set_name = name or set_name_for(source.path)
    if not set_name or not NAME_RE.match(set_name):
        raise UsageError(f"{source.path}: cannot make a set name from the file name",
                         hint="pass --name NAME (lowercase letters, digits, _ and -)")
    data = source.data
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        doc = None  # the normal rules report the exact JSON problem on validation
    if isinstance(doc, list):
        if not all(isinstance(m, dict) for m in doc):
            raise _refuse(source.path, "a JSON array must hold persona objects",
                          'write {"name": ..., "personas": [...]}', "set-schema")
        wrapped = {"name": set_name, "personas": doc, "metadata": {"status": "generated"}}
        data = (json.dumps(wrapped, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    folder = f"persona_sets/{set_name}"
    assets = {f"{folder}/{rel}": blob for rel, blob in source.assets.items()}
    return ImportItem(source.path, "persona_set", set_name, f"{folder}/set.json", data, assets)


def _is_set(path: str) -> bool:
    return path.lower().endswith(".json")


def _files_under(folder: Path) -> list[Path]:
    """Every file below `folder`, sorted, outside hidden folders."""
    return [p for p in sorted(folder.rglob("*")) if p.is_file()
            and not any(part.startswith(".") for part in p.relative_to(folder).parts[:-1])]


def _expand(path: Path) -> list[tuple[Path, dict[str, bytes]]]:
    """The files to import under `path`, each with its assets (a `set.json`'s folder)."""
    if not path.is_dir():
        return [(path, {})]
    files = _files_under(path)
    set_dirs = {p.parent for p in files if p.name == "set.json"}
    found: list[tuple[Path, dict[str, bytes]]] = []
    for file in files:
        owner = next((d for d in set_dirs if d in file.parents), None)
        if file.name == "set.json":
            assets = {p.relative_to(file.parent).as_posix(): p.read_bytes()
                      for p in _files_under(file.parent)
                      if p != file and not p.name.startswith(".")}
            found.append((file, assets))
        elif owner is None and (file.suffix.lower() in (*_INSTRUCTION_SUFFIXES, ".json")
                                or file.name == ".cursorrules"):
            found.append((file, {}))
    return found


def read_sources(paths: Iterable[Path | str]) -> list[Source]:
    """The files to import: each path, or every `*.md`/`*.json`/... file under a folder
    (a `set.json` there with the other files under its folder as its assets).

    Raises `UsageError` for a path that does not exist or a folder with nothing to import.
    """
    sources: list[Source] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise UsageError(f"{path} does not exist")
        files = _expand(path)
        if not files:
            raise UsageError(f"{path} holds no Markdown or JSON file to import")
        for file, assets in files:
            sources.append(Source(file.as_posix(), file.read_bytes(), assets))
    return sources


def _convert_all(sources: Sequence[Source], owner: str | None, name: str | None,
                 template_category: str | None, settings: Settings) -> list[ImportItem]:
    if name is not None and len(sources) > 1:
        raise UsageError("--name needs exactly one file to import",
                         hint="import the files one at a time, or let the file names decide")
    items: list[ImportItem] = []
    for src in sources:
        if _is_set(src.path):
            items.append(convert_set(src, name=name))
        else:
            items.append(convert_instruction(
                src, owner=owner, name=name, template_category=template_category,
                max_frontmatter_bytes=settings.limits.max_frontmatter_bytes))
    seen: dict[str, str] = {}
    for item in items:
        if item.path in seen:
            raise UsageError(f"{seen[item.path]} and {item.source} would both become "
                             f"{item.path}", hint="import one of them with --name NAME")
        seen[item.path] = item.source
    return items


def _check_free(items: Sequence[ImportItem], base: Snapshot) -> None:
    for item in items:
        loc = classify(item.path)
        assert loc is not None
        taken = base.paths_for_key(loc.kind, loc.key)
        if taken:
            raise ConflictError(f"{item.key} already exists ({taken[0]}); import never "
                                "overwrites", hint="pass --name NEW_NAME (and --owner) to "
                                "import it under another key")
        stray = next((a for a in item.assets if a in base.asset_paths), None)
        if stray is not None:
            raise ConflictError(f"{stray} already exists; import never overwrites",
                                hint=f"remove it, or pass --name NEW_NAME to import "
                                     f"{item.key} under another name")


def _check_disk(items: Sequence[ImportItem], root: Path) -> None:
    """No file to write exists on disk. The snapshot shows every file but those below a
    linked folder (`read_worktree` never follows links), which the write would go through."""
    for path, _ in _files(items):
        if os.path.lexists(root / path):
            raise ConflictError(f"{path} already exists; import never overwrites",
                                hint="pass --name NEW_NAME (and --owner) to import it under "
                                     "another key")


def _validate(items: Sequence[ImportItem], base: Snapshot,
              settings: Settings) -> tuple[Problem, ...]:
    """Problems on the imported files when added to `base`; refuses on an error."""
    new = [SourceFile(path=path, data=data) for path, data in _files(items)]
    by_path = {path: i.source for i in items for path in (i.path, *i.assets)}
    paths = by_path.keys()
    snap = update_snapshot(base, new, (), settings)
    mine = tuple(p for p in snap.problems if p.path in paths)
    errors = [p for p in mine if p.severity is Severity.ERROR]
    if errors:
        first = errors[0]
        raise ValidationFailed(
            f"import refused, nothing written: {len(errors)} error"
            f"{'s' if len(errors) != 1 else ''} (first: {by_path[first.path]} as "
            f"{first.location()}: {first.rule}: {first.message})", errors,
            hint=first.fix or "fix the source file and import it again")
    return mine


def _files(items: Iterable[ImportItem]) -> list[tuple[str, bytes]]:
    """Every file an import writes: each item's assets, then the item itself."""
    return [(path, data) for i in items for path, data in (*i.assets.items(), (i.path, i.data))]


def _write_file(root: Path, rel: str, data: bytes) -> None:
    try:
        write_atomic(root / rel, data, overwrite=False)
    except FileExistsError:  # appeared since the check: never overwrite
        raise ConflictError(f"{rel} appeared while importing; not overwritten") from None


def import_sources(settings: Settings, sources: Sequence[Source], *, owner: str | None = None,
                   name: str | None = None, template_category: str | None = None,
                   dry_run: bool = False, commit: bool = False,
                   author: Identity | str | None = None,
                   message: str | None = None) -> ImportResult:
    """Import `sources` into the repository at `settings.repo_path` (module docstring).

    Working-tree mode validates against the working tree and writes the files there; with
    `commit`, validates against the branch head and commits every file in one
    compare-and-swap commit (the working tree follows when the branch is checked out). With
    `dry_run`, everything but the writing happens.
    """
    if not sources:
        raise UsageError("nothing to import", hint="pass one or more files or folders")
    items = _convert_all(sources, owner, name, template_category, settings)
    root = settings.repo_path
    if commit:
        return _import_commit(settings, items, dry_run, author, message)
    base = build_snapshot(read_worktree(root), settings)
    _check_free(items, base)
    _check_disk(items, root)
    problems = _validate(items, base, settings)
    if dry_run:
        return ImportResult(tuple(items), problems, written=False)
    for path, data in _files(items):
        _write_file(root, path, data)
    return ImportResult(tuple(items), problems, written=True)


def _import_commit(settings: Settings, items: Sequence[ImportItem], dry_run: bool,
                   author: Identity | str | None, message: str | None) -> ImportResult:
    from maestro_git.repo.repository import Repository
    from maestro_git.repo.writes import Plan, Writer

    repo = Repository(settings)
    head = repo.head()
    base = repo.snapshot(head) if head else build_snapshot((), settings)
    _check_free(items, base)
    problems = _validate(items, base, settings)
    if dry_run:
        return ImportResult(tuple(items), problems, written=False)
    label = items[0].key if len(items) == 1 else f"{len(items)} entities"
    text = message or _commit_message(items)

    def plan(snap: Snapshot) -> Plan:
        _check_free(items, snap)
        return Plan(label, dict(_files(items)), text)

    def snapshot_at(commit_id: str | None) -> Snapshot:
        return repo.snapshot(commit_id) if commit_id else build_snapshot((), settings)

    writer = Writer(repo.git, settings, repo.write_branch(), snapshot_at, lambda _snap: None)
    commit_id = writer.commit(plan, author, None)
    return ImportResult(tuple(items), problems, written=True, commit=commit_id)


def _commit_message(items: Sequence[ImportItem]) -> str:
    if len(items) == 1:
        item = items[0]
        return f"Import {item.key} from {PurePosixPath(item.source).name}"
    lines = [f"Import {len(items)} entities", ""]
    lines += [f"- {i.key} from {PurePosixPath(i.source).name}" for i in items]
    return "\n".join(lines)


def import_paths(settings: Settings, paths: Iterable[Path | str],
                 **options: Any) -> ImportResult:
    """`import_sources` over the files at `paths` (folders expanded, see `read_sources`)."""
    return import_sources(settings, read_sources(paths), **options)


def describe(items: Iterable[ImportItem]) -> list[Mapping[str, str]]:
    """Rows for a table: source, kind, key, path."""
    return [{"source": i.source, "kind": i.kind, "key": i.key, "path": i.path} for i in items]
