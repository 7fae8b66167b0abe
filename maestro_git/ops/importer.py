"""Migration tools: existing system instructions and persona-set JSON into the repository.

What is imported (`import_sources`, the `maestro import` command):
- a folder is searched by `discover`: the agent tools' files in their places (`core.tools`),
  persona-set JSON and a repository layout; every other file is skipped with its reason
  (`ImportResult.skipped`), never refusing the import;
- an agent-tool file with frontmatter (a Claude subagent, a Copilot agent, prompt, chat mode
  or instructions file, a Cursor, Continue or Windsurf rule) becomes a persona through its
  `ToolFormat`: mapped keys to fields (`description`, `model`, `tools`, ...), the tool's other
  keys kept under `metadata.<tool>`, the body byte for byte, and the tool's traps returned as
  problems (`convert_tool`);
- a plain instruction file (GEMINI.md, CLAUDE.md, AGENTS.md, `.cursorrules`,
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

import dataclasses
import json
import os
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from maestro_git.atomic import write_atomic
from maestro_git.core import tools
from maestro_git.core.formats import NAME_RE, classify, split_frontmatter
from maestro_git.core.models import EntityKind, Problem, Severity, SourceFile
from maestro_git.core.rules.sets import is_served_path
from maestro_git.core.safe_yaml import load_frontmatter
from maestro_git.core.snapshot import Snapshot, build_snapshot, update_snapshot
from maestro_git.core.tools.imports import chain_problems, find_imports
from maestro_git.core.writeback import render_document
from maestro_git.errors import ConflictError, UsageError, ValidationFailed
from maestro_git.git.repo import Identity
from maestro_git.settings import Limits, Settings

__all__ = [
    "GENERIC_NAMES",
    "ImportItem",
    "ImportResult",
    "Source",
    "convert_instruction",
    "attach_static",
    "convert_set",
    "convert_tool",
    "describe",
    "discover",
    "import_paths",
    "import_sources",
    "normalise_name",
    "read_sources",
    "set_name_for",
    "tool_format",
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
    tool: str | None = None  # the agent-tool format found by its place (`core.tools`)


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
    skipped: tuple[tuple[str, str], ...] = ()  # (path, why) of files a folder held and not read


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


def tool_format(source: Source) -> tools.ToolFormat | None:
    """The agent-tool format of `source`: found by its place in the folder imported, or, for
    a file named on its own, by the end of its path (`…/.claude/agents/x.md`)."""
    if source.tool is not None:
        return tools.FORMATS[source.tool]
    parts = PurePosixPath(source.path.replace("\\", "/")).parts
    for start in range(len(parts)):
        found = tools.detect("/".join(parts[start:]))
        if found is not None:
            return found
    return None


def convert_tool(source: Source, fmt: tools.ToolFormat, *, owner: str | None = None,
                 name: str | None = None,
                 new_id: Callable[[], str] = lambda: str(uuid.uuid4())
                 ) -> tuple[ImportItem, list[Problem]]:
    """An agent-tool file (a Claude subagent, a Copilot agent, a Cursor rule, ...) as a
    persona: its fields typed, its tool-only keys in `metadata.<tool>`, its body byte for
    byte. Returns the tool's problems with it (a trap the tool would drop the file for, or a
    note that an export will normalise its frontmatter)."""
    doc = fmt.parse(source.path, source.data)
    problems = list(doc.problems)
    note = fmt.normalised_note(source.path, source.data, doc)
    if note is not None:
        problems.append(note)
    if any(p.rule == "invalid-utf8" for p in problems):
        raise ValidationFailed(f"{source.path}: {problems[0].message}", problems,
                               hint=problems[0].fix)
    final_name = name or doc.name
    if not NAME_RE.match(final_name):
        raise UsageError(f"{source.path}: cannot make a persona name from '{final_name}'",
                         hint="pass --name NAME (lowercase letters, digits, _ and -)")
    if owner is None:
        raise UsageError(f"{source.path}: no owner for the persona",
                         hint="pass --owner OWNER (the folder under personas/)")
    if not NAME_RE.match(owner):
        raise UsageError(f"owner '{owner}' is not a valid name",
                         hint="owners are lowercase letters, digits, _ and -")
    fields: dict[str, Any] = {"id": new_id(), **tools.persona_fields(fmt, doc),
                              "version": "1.0.0"}
    key = f"{owner}/{final_name}"
    return ImportItem(source.path, "persona", key, f"personas/{key}.md",
                      render_document(fields, doc.body)), problems


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


# Folders a project holds that are never instruction files (not even noted one by one).
_NEVER = frozenset({".git", "node_modules", ".venv", "venv", "__pycache__", ".maestro",
                    ".tox", ".mypy_cache", ".pytest_cache", ".ruff_cache", "dist", "build"})


def _files_under(folder: Path) -> list[Path]:
    """Every file below `folder`, sorted, outside the folders in `_NEVER`."""
    return [p for p in sorted(folder.rglob("*")) if p.is_file()
            and not any(part in _NEVER for part in p.relative_to(folder).parts[:-1])]


def _looks_like_set(file: Path) -> bool:
    """A JSON file of persona-set shape (the service's names, or an object with a
    `personas` array): sniffed, so a `package.json` is noted, not refused."""
    rel_name = file.name
    if rel_name.startswith("default_personas") or file.parent.name == "default_personas":
        return True
    try:
        doc = json.loads(file.read_bytes())
    except (ValueError, UnicodeDecodeError, RecursionError):
        return False
    return isinstance(doc, dict) and isinstance(doc.get("personas"), list)


def _kind_of(rel: str, file: Path) -> tuple[str | None, str | None]:
    """(tool format id or "" for another importable file, or None; why it is skipped)."""
    fmt = tools.detect(rel)
    if fmt is not None:
        return fmt.id, None
    if file.name == ".cursorrules" or classify(rel) is not None:
        return "", None
    if file.suffix.lower() == ".json":
        if _looks_like_set(file):
            return "", None
        return None, "JSON that is not a persona set"
    reason = tools.ignored_reason(rel)
    if reason is not None:
        return None, reason
    if file.suffix.lower() in _INSTRUCTION_SUFFIXES:
        return None, "not an instruction file of a known tool (name it explicitly to import it)"
    return None, "not an instruction or persona-set file"


def _expand(path: Path) -> tuple[list[tuple[Path, dict[str, bytes], str | None]],
                                 list[tuple[str, str]]]:
    """The files to import under `path`, each with its assets (a `set.json`'s folder) and
    its tool format, and the files skipped there with the reason."""
    if not path.is_dir():
        return [(path, {}, None)], []
    files = _files_under(path)
    set_dirs = {p.parent for p in files if p.name == "set.json"}
    found: list[tuple[Path, dict[str, bytes], str | None]] = []
    skipped: list[tuple[str, str]] = []
    for file in files:
        owner = next((d for d in set_dirs if d in file.parents), None)
        if file.name == "set.json":
            assets = {p.relative_to(file.parent).as_posix(): p.read_bytes()
                      for p in _files_under(file.parent)
                      if p != file and not p.name.startswith(".")}
            found.append((file, assets, None))
            continue
        if owner is not None:
            continue
        kind, reason = _kind_of(file.relative_to(path).as_posix(), file)
        if kind is None:
            skipped.append((file.as_posix(), reason or "not imported"))
        else:
            found.append((file, {}, kind or None))
    return found, skipped


def discover(paths: Iterable[Path | str]) -> tuple[list[Source], list[tuple[str, str]]]:
    """The files to import, and those skipped. A file named explicitly is always read; a
    folder is searched for what a user has: the agent tools' files (`.claude/agents/`,
    `CLAUDE.md`, `.github/copilot-instructions.md`, `.github/instructions/`,
    `.github/prompts/`, `.github/agents/`, `.github/chatmodes/`, `.cursor/rules/**/*.mdc`,
    `AGENTS.md`, `GEMINI.md`, `.continue/rules/`, `.windsurf/rules/`, `.cursorrules`),
    persona-set JSON, and a repository layout (`personas/`, `templates/`, `persona_sets/`);
    any other file (a README, `docs/`, `package.json`) is skipped with its reason.

    Raises `UsageError` for a path that does not exist or a folder with nothing to import.
    """
    sources: list[Source] = []
    skipped: list[tuple[str, str]] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise UsageError(f"{path} does not exist")
        files, passed = _expand(path)
        skipped += passed
        if not files:
            raise UsageError(f"{path} holds no instruction or persona-set file to import",
                             hint="name a file explicitly to import it")
        for file, assets, tool in files:
            sources.append(Source(file.as_posix(), file.read_bytes(), assets, tool))
    return sources, skipped


def read_sources(paths: Iterable[Path | str]) -> list[Source]:
    """The files to import (see `discover`), without the list of those skipped."""
    return discover(paths)[0]


def _convert_all(sources: Sequence[Source], owner: str | None, name: str | None,
                 template_category: str | None, settings: Settings,
                 static: Path | None = None) -> tuple[list[ImportItem], list[Problem]]:
    if name is not None and len(sources) > 1:
        raise UsageError("--name needs exactly one file to import",
                         hint="import the files one at a time, or let the file names decide")
    items: list[ImportItem] = []
    notes: list[Problem] = []
    for src in sources:
        fmt = tool_format(src)
        if _is_set(src.path):
            item = convert_set(src, name=name)
            if static is not None:
                item, missing = attach_static(item, static)
                notes += missing
            items.append(item)
        elif fmt is not None and fmt.frontmatter:
            item, found = convert_tool(src, fmt, owner=owner, name=name)
            if name is None and any(i.path == item.path for i in items):
                item, note = _renamed(item, fmt)
                found.append(note)
            items.append(item)
            notes += found
        else:
            plain = Source(src.path, _without_generated(src.data), src.assets, src.tool)
            if fmt is not None:
                notes += fmt.parse(src.path, plain.data).problems
                notes += _import_notes(src)
                notes += _chain_notes(src, fmt)
            items.append(convert_instruction(
                plain, owner=owner, name=name, template_category=template_category,
                max_frontmatter_bytes=settings.limits.max_frontmatter_bytes))
    seen: dict[str, str] = {}
    for item in items:
        if item.path in seen:
            raise UsageError(f"{seen[item.path]} and {item.source} would both become "
                             f"{item.path}", hint="import one of them with --name NAME")
        seen[item.path] = item.source
    return items, notes


def _renamed(item: ImportItem, fmt: tools.ToolFormat) -> tuple[ImportItem, Problem]:
    """A tool file whose name another file of the import already took (`typescript.mdc`
    beside `typescript.instructions.md`) takes its tool family as a suffix."""
    key = f"{item.key}-{fmt.family.replace('_', '-')}"
    note = Problem(rule="duplicate-key", severity=Severity.INFO, path=item.source,
                   message=f"{item.key} is taken by another file of this import; imported "
                           f"as {key}", fix="pass --name NAME to choose another name")
    return dataclasses.replace(item, key=key, path=f"personas/{key}.md"), note


def _without_generated(data: bytes) -> bytes:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return data  # convert_instruction reports it
    return tools.strip_generated(text)[0].encode("utf-8")


def _import_notes(src: Source) -> list[Problem]:
    """CLAUDE.md / GEMINI.md `@path` imports: kept as written, named so the user can import
    the files they point at explicitly (a README or docs/ is never imported by itself)."""
    text = src.data.decode("utf-8", "replace")
    return [Problem(rule="tool-import-missing", severity=Severity.INFO, path=src.path,
                    line=line, message=f"@{target} is kept as a reference, not imported",
                    fix=f"import {target} explicitly to make it a persona of its own")
            for line, target in find_imports(text) if not target.startswith(("/", "~/"))]


_CHAIN_TOOLS = {"claude-md": "Claude Code", "gemini-md": "Gemini CLI"}


def _chain_notes(src: Source, fmt: tools.ToolFormat) -> list[Problem]:
    """A CLAUDE.md / GEMINI.md's `@path` chains as the tool follows them from where the
    file is: loops, chains past five hops and imports of files that are not there."""
    tool = _CHAIN_TOOLS.get(fmt.id)
    if tool is None:
        return []
    base = Path(src.path).parent

    def read(rel: str) -> str | None:
        file = base / rel
        try:
            return file.read_text(encoding="utf-8", errors="replace") if file.is_file() \
                else None
        except OSError:
            return None

    return chain_problems(src.path, src.data.decode("utf-8", "replace"), read, tool=tool)


def _static_file(static: Path, url: str) -> Path | None:
    """The file a served URL path stands for under the service's static folder `static`:
    `/static/images/personas/p.png` is `<static>/images/personas/p.png` (or the path below
    the folder's own name, or, failing both, a file of that name directly in it)."""
    rel = PurePosixPath(url.lstrip("/"))
    candidates = [static / rel.as_posix()]
    if len(rel.parts) > 1:
        candidates.append(static.joinpath(*rel.parts[1:]))
    candidates.append(static / rel.name)
    return next((c for c in candidates if c.is_file()), None)


def attach_static(item: ImportItem, static: Path) -> tuple[ImportItem, list[Problem]]:
    """A set with each member's served image (`/static/images/personas/persona_7.png`)
    copied from `static` into `persona_sets/<set>/images/` and its `image_url` rewritten to
    `images/<file>` (only that JSON string changes, the rest of the file stays byte for
    byte). An image not found is noted and its URL kept."""
    try:
        doc = json.loads(item.data)
    except ValueError:
        return item, []
    members = doc.get("personas") if isinstance(doc, dict) else None
    text = item.data.decode("utf-8")
    assets = dict(item.assets)
    notes: list[Problem] = []
    folder = item.path[: -len("set.json")]
    for member in members if isinstance(members, list) else []:
        url = member.get("image_url") if isinstance(member, dict) else None
        if not isinstance(url, str) or not is_served_path(url):
            continue
        found = _static_file(static, url)
        if found is None:
            notes.append(Problem(rule="set-image-url-path", severity=Severity.WARNING,
                                 path=item.source, message=f"{url} is not under {static}; "
                                 "its URL is kept", fix="pass the service's static folder"))
            continue
        new_url = f"images/{found.name}"
        assets[f"{folder}{new_url}"] = found.read_bytes()
        for old in (json.dumps(url), json.dumps(url).replace("/", "\\/")):
            text = text.replace(f'"image_url": {old}', f'"image_url": {json.dumps(new_url)}')
    data = text.encode("utf-8")
    if any(json.dumps(m.get("image_url")) in text for m in members or []
           if isinstance(m, dict) and isinstance(m.get("image_url"), str)
           and is_served_path(m["image_url"]) and _static_file(static, m["image_url"])):
        for member in members or []:  # spelled another way in the file: write it anew
            url = member.get("image_url") if isinstance(member, dict) else None
            if isinstance(url, str) and is_served_path(url):
                hit = _static_file(static, url)
                if hit is not None:
                    member["image_url"] = f"images/{hit.name}"
        data = (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    return ImportItem(item.source, item.kind, item.key, item.path, data, assets), notes


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
                   message: str | None = None, static: Path | None = None,
                   skipped: Sequence[tuple[str, str]] = ()) -> ImportResult:
    """Import `sources` into the repository at `settings.repo_path` (module docstring).

    Working-tree mode validates against the working tree and writes the files there; with
    `commit`, validates against the branch head and commits every file in one
    compare-and-swap commit (the working tree follows when the branch is checked out). With
    `dry_run`, everything but the writing happens.
    """
    if not sources:
        raise UsageError("nothing to import", hint="pass one or more files or folders")
    if static is not None and not static.is_dir():
        raise UsageError(f"--static {static} is not a folder",
                         hint="pass the persona-set service's static folder (./static)")
    items, notes = _convert_all(sources, owner, name, template_category, settings, static)
    root = settings.repo_path
    if commit:
        result = _import_commit(settings, items, dry_run, author, message)
    else:
        from maestro_git.repo.snapshots import snapshot_of

        base = snapshot_of(settings)
        _check_free(items, base)
        _check_disk(items, root)
        problems = _validate(items, base, settings)
        if not dry_run:
            for path, data in _files(items):
                _write_file(root, path, data)
        result = ImportResult(tuple(items), problems, written=not dry_run)
    return dataclasses.replace(result, problems=(*notes, *result.problems),
                               skipped=tuple(skipped))


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
    """`import_sources` over the files at `paths` (folders searched, see `discover`)."""
    sources, skipped = discover(paths)
    return import_sources(settings, sources, skipped=skipped, **options)


def describe(items: Iterable[ImportItem]) -> list[Mapping[str, str]]:
    """Rows for a table: source, kind, key, path."""
    return [{"source": i.source, "kind": i.kind, "key": i.key, "path": i.path} for i in items]
