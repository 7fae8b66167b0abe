"""Bytes ⇄ records: persona and template Markdown with YAML frontmatter, persona-set JSON.

Rules of this module (pure: no file system, git or database):
- `parse_file(SourceFile, Limits)` never raises for a user's bad input: every problem becomes a
  `Problem` value and the record is `None` when the file cannot be understood.
- Frontmatter is detected and split with python-frontmatter's `YAMLHandler` (forced, so a file
  starting with `{` is never read as JSON), with a boundary of exactly `---`; the body is kept
  byte for byte and line numbers stay exact.
- The YAML itself is read by `safe_yaml` (C safe loader; aliases, duplicate keys and deep
  nesting refused before any value is constructed); persona-set JSON by `set_format`.
- A file's path decides its kind and key (`classify`); frontmatter may repeat name/owner but a
  mismatch is a problem, never a silent override.
- Type problems are found here (a record needs the right types); the semantic rules (names,
  ids, semver, tags, sizes, hidden Unicode, HTML, ...) live in `validate`.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any

from frontmatter.default_handlers import YAMLHandler

from maestro_git.core.models import (
    EntityKind,
    Persona,
    PersonaSet,
    Problem,
    Severity,
    SourceFile,
    Template,
)
from maestro_git.core.safe_yaml import MAX_NESTING, load_frontmatter
from maestro_git.core.sets import parse_set
from maestro_git.settings import Limits

__all__ = [
    "MAX_NESTING",
    "NAME_RE",
    "PERSONA_KEYS",
    "TEMPLATE_KEYS",
    "Location",
    "ParsedFile",
    "classify",
    "content_hash",
    "decode_text",
    "parse_file",
    "split_frontmatter",
]

NAME_RE = re.compile(r"^[a-z0-9_-]{1,100}$")

# Frontmatter keys with a meaning of their own; every other key is kept in `metadata`.
PERSONA_KEYS = frozenset(
    {"id", "name", "owner", "display_name", "description", "version", "extends", "tags",
     "active", "metadata", "model", "tools"}
)
TEMPLATE_KEYS = PERSONA_KEYS | {"category"}

# python-frontmatter's YAML handler with a strict boundary: exactly `---` (plus trailing
# blanks) on its own line, so `----` rules and `--- x` lines in a body never split a file.
_HANDLER = YAMLHandler(fm_boundary=re.compile(r"^---[ \t]*\r?$", re.MULTILINE))


@dataclass(frozen=True)
class Location:
    """What a path means: the entity kind, its key, and the owner/name parts of the key."""

    kind: EntityKind
    key: str
    owner: str | None
    name: str


@dataclass(frozen=True)
class ParsedFile:
    """A file after parsing: its record (None when unreadable) and the problems found.

    `location` is what the path means (None for a file maestro does not read) and `text` the
    decoded text (None when unreadable), so validation never re-classifies or re-decodes.
    A snapshot keeps its parse results without `text` (`without_text`): holding every
    file's text twice would double a large repository's memory."""

    path: str
    kind: EntityKind | None
    record: Persona | Template | PersonaSet | None
    problems: tuple[Problem, ...]
    content_hash: str
    # file line of each top-level frontmatter key, and of each set member ("members[3]",
    # by position in `PersonaSet.members`)
    field_lines: Mapping[str, int] = field(default_factory=dict)
    location: Location | None = None
    text: str | None = None

    def without_text(self, extra: tuple[Problem, ...] = ()) -> ParsedFile:
        """This result without its text, with `extra` problems appended."""
        return replace(self, problems=self.problems + extra, text=None)


def content_hash(data: bytes) -> str:
    """SHA-256 hex digest of a file's bytes (the unit of change detection)."""
    return hashlib.sha256(data).hexdigest()


def classify(path: str) -> Location | None:
    """Where a repository path belongs, or None for files maestro does not read.

    `personas/<owner>/<name>.md`, `templates/<name>.md`, `persona_sets/<set>.json`,
    `persona_sets/<set>/set.json`. Names are not validated here (that is a rule).
    """
    parts = path.split("/")
    if parts[0] == "personas" and len(parts) == 3 and parts[2].endswith(".md"):
        name = parts[2][:-3]
        return Location("persona", f"{parts[1]}/{name}", parts[1], name)
    if parts[0] == "templates" and len(parts) == 2 and parts[1].endswith(".md"):
        name = parts[1][:-3]
        return Location("template", name, None, name)
    if parts[0] == "persona_sets":
        if len(parts) == 2 and parts[1].endswith(".json"):
            name = parts[1][:-5]
            return Location("persona_set", name, None, name)
        if len(parts) == 3 and parts[2] == "set.json":
            return Location("persona_set", parts[1], None, parts[1])
    return None


def _problem(
    rule: str, path: str, message: str, fix: str, line: int | None = None,
    column: int | None = None, severity: Severity = Severity.ERROR,
) -> Problem:
    return Problem(rule=rule, severity=severity, path=path, message=message, fix=fix,
                   line=line, column=column)


class _Unclosed(ValueError):
    """The file opens a frontmatter block with `---` and never closes it."""


def _split(text: str) -> tuple[str | None, str, int]:
    if text.startswith("\ufeff"):
        text = text[1:]
    if not _HANDLER.detect(text):
        return None, text, 1
    parts = _HANDLER.FM_BOUNDARY.split(text, 2) if _HANDLER.FM_BOUNDARY else []
    if len(parts) < 3:
        raise _Unclosed
    _, yaml_text, body = parts
    # The boundary regex stops before each line's "\n": drop exactly that one newline.
    yaml_text = yaml_text[1:] if yaml_text.startswith("\n") else yaml_text
    body_line = 2 + yaml_text.count("\n") + 1
    body = body[1:] if body.startswith("\n") else body
    return yaml_text, body, body_line


def split_frontmatter(text: str) -> tuple[str | None, str, int]:
    """Split `text` into (frontmatter YAML or None, body, body's first line number).

    The body is returned byte for byte. A file whose first line is `---` but which never
    closes the block is returned as all body (`parse_file` reports it as `yaml-syntax`).
    """
    try:
        return _split(text)
    except _Unclosed:
        return None, text[1:] if text.startswith("\ufeff") else text, 1


def _decode(src: SourceFile, limits: Limits) -> tuple[str | None, list[Problem]]:
    if len(src.data) > limits.max_file_bytes:
        return None, [_problem(
            "file-too-large", src.path,
            f"file is {len(src.data)} bytes, over the limit of {limits.max_file_bytes}",
            "split the file, or raise limits.max_file_bytes in maestro.toml", line=1)]
    nul = src.data.find(b"\x00")
    if nul >= 0:
        line = src.data.count(b"\n", 0, nul) + 1
        return None, [_problem(
            "binary-file", src.path, "file contains NUL bytes: it is binary, not text",
            "save the file as UTF-8 text (images belong in persona_sets/<set>/images/)",
            line=line)]
    try:
        return src.data.decode("utf-8"), []
    except UnicodeDecodeError as exc:
        line = src.data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (src.data.rfind(b"\n", 0, exc.start) + 1) + 1
        return None, [_problem(
            "invalid-utf8", src.path,
            f"byte 0x{src.data[exc.start]:02x} is not valid UTF-8",
            "re-save the file with UTF-8 encoding", line=line, column=col)]


def _jsonable(value: Any, depth: int = 0) -> Any:
    """YAML values (dates, sets, binary, NaN, non-string keys) as plain JSON values, so
    metadata goes into jsonb unchanged."""
    if isinstance(value, str) or value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, Mapping):
        return {str(_jsonable(k, depth + 1)): _jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v, depth + 1) for v in value]
    return str(value)


MAX_MODEL_CHARS = 200


def _model_problems(model: str, path: str, line: int | None) -> list[Problem]:
    """`model` is one non-empty line (a model name or id, as the agent tools take it)."""
    fix = "name a model (sonnet, opus, haiku, a full model id, or inherit) or remove 'model'"
    if not model.strip():
        return [_problem("invalid-model", path, "'model' is empty: an agent tool given this "
                         "persona would have no model to run it on", fix, line=line)]
    if "\n" in model.strip() or len(model) > MAX_MODEL_CHARS:
        return [_problem("invalid-model", path, f"'model' must be one line of at most "
                         f"{MAX_MODEL_CHARS} characters (a model name or id)", fix, line=line)]
    return []


def _tools_problems(tools: Any, path: str, line: int | None) -> list[Problem]:
    """`tools` is a list of distinct non-empty tool names (`[]`: none). The agent tools'
    comma string (`Read, Grep`) is what `maestro import` turns into that list."""
    if isinstance(tools, str):
        listed = "[" + ", ".join(t.strip() for t in tools.split(",") if t.strip()) + "]"
        return [_problem("invalid-tools", path, f"'tools' is the string '{tools}': a persona "
                         "lists its tools", f"write tools: {listed}", line=line)]
    if not isinstance(tools, list):
        return [_problem("invalid-tools", path, "'tools' must be a list of tool names",
                         "write e.g. tools: [Read, Grep] ([] for none)", line=line)]
    out: list[Problem] = []
    seen: set[str] = set()
    for number, tool in enumerate(tools, start=1):
        if not isinstance(tool, str) or not tool.strip():
            what = "empty" if isinstance(tool, str) or tool is None else "not a string"
            out.append(_problem("invalid-tools", path, f"tool {number} in 'tools' is {what}",
                                "give each entry a tool name, e.g. Read", line=line))
        elif tool in seen:
            out.append(_problem("invalid-tools", path, f"'{tool}' is listed twice in 'tools'",
                                "list each tool once", line=line))
        else:
            seen.add(tool)
    return out


def _document_fields(
    fm: Mapping[Any, Any], lines: Mapping[str, int], path: str, known: frozenset[str]
) -> tuple[dict[str, Any], list[Problem]]:
    """Typed fields from frontmatter; unknown keys go into metadata."""
    problems: list[Problem] = []
    out: dict[str, Any] = {}

    def bad(key: str, expected: str) -> None:
        problems.append(_problem(
            "frontmatter-type", path, f"frontmatter field '{key}' must be {expected}",
            f"set '{key}' to {expected}", line=lines.get(key)))

    for key in ("id", "display_name", "description", "extends", "category", "model"):
        if key in fm and key in known and fm[key] is not None:
            if isinstance(fm[key], str):
                out[key] = fm[key]
            else:
                bad(key, "a string")
    if "version" in fm:
        value = fm["version"]
        if isinstance(value, str):
            out["version"] = value
        else:
            bad("version", 'a quoted semver string such as "1.2.0"')
    if "tags" in fm and fm["tags"] is not None:
        tags = fm["tags"]
        if isinstance(tags, list) and all(isinstance(t, str) for t in tags):
            out["tags"] = tuple(tags)
        else:
            bad("tags", "a list of strings, e.g. [coding, review]")
    if "model" in out:
        problems += _model_problems(out["model"], path, lines.get("model"))
    if "tools" in fm and fm["tools"] is not None:
        tools_problems = _tools_problems(fm["tools"], path, lines.get("tools"))
        if tools_problems:
            problems += tools_problems
        else:
            out["tools"] = tuple(fm["tools"])
    if "active" in fm:
        if isinstance(fm["active"], bool):
            out["active"] = fm["active"]
        else:
            bad("active", "true or false")
    for key in ("name", "owner"):
        if key in fm and not isinstance(fm[key], str):
            bad(key, "a string")
    metadata: dict[str, Any] = {}
    if "metadata" in fm and fm["metadata"] is not None:
        if isinstance(fm["metadata"], dict):
            metadata.update(fm["metadata"])
        else:
            bad("metadata", "a mapping, e.g. {category: development}")
    for key, value in fm.items():
        if key not in known:
            metadata[str(key)] = value
    out["metadata"] = _jsonable(metadata)
    return out, problems


def _parse_document(
    src: SourceFile, loc: Location, text: str, limits: Limits, digest: str
) -> tuple[Persona | Template | None, list[Problem], dict[str, int]]:
    try:
        yaml_text, body, body_line = _split(text)
    except _Unclosed:
        return None, [_problem(
            "yaml-syntax", src.path, "frontmatter opened with --- on line 1 is never closed",
            "add a line with --- after the frontmatter (or remove the first line)", line=1,
            column=1)], {}
    fm: Any = {}
    lines: dict[str, int] = {}
    if yaml_text is not None:
        fm, problems, lines = load_frontmatter(yaml_text, src.path, limits)
        if problems:
            return None, problems, {}
        if fm is None:
            fm = {}
        if not isinstance(fm, dict):
            return None, [_problem(
                "frontmatter-type", src.path, "frontmatter must be a mapping of key: value",
                "write the frontmatter as 'key: value' lines between the --- lines",
                line=2)], {}
    known = TEMPLATE_KEYS if loc.kind == "template" else PERSONA_KEYS
    fields, problems = _document_fields(fm, lines, src.path, known)
    for key, expected in (("name", loc.name), ("owner", loc.owner)):
        if key in fm and isinstance(fm[key], str) and fm[key] != (expected or fm[key]):
            problems.append(_problem(
                f"{key}-mismatch", src.path,
                f"frontmatter {key} '{fm[key]}' does not match the path ('{expected}')",
                f"remove '{key}' from the frontmatter or move the file to match it",
                line=lines.get(key)))
    common = dict(fields, name=loc.name, path=src.path, body=body, body_line=body_line,
                  content_hash=digest, size_bytes=len(src.data))
    record: Persona | Template
    if loc.kind == "template":
        record = Template(**common)
    else:
        record = Persona(owner=loc.owner or "", **common)
    return record, problems, lines


def decode_text(src: SourceFile, limits: Limits) -> str | None:
    """The file's text when it is within the size limit, not binary and valid UTF-8."""
    return _decode(src, limits)[0]


def parse_file(src: SourceFile, limits: Limits) -> ParsedFile:
    """Parse one file into its record and the problems found on the way. Never raises."""
    loc = classify(src.path)
    digest = content_hash(src.data)
    if loc is None:
        return ParsedFile(src.path, None, None, (), digest)
    if src.is_symlink:
        # Symlinks are judged by validation (inside/outside the repository); never followed.
        return ParsedFile(src.path, loc.kind, None, (), digest, location=loc)
    text, problems = _decode(src, limits)
    if text is None:
        return ParsedFile(src.path, loc.kind, None, tuple(problems), digest, location=loc)
    record: Persona | Template | PersonaSet | None
    if loc.kind == "persona_set":
        record, problems, lines = parse_set(src, loc.name, text, digest)
    else:
        record, problems, lines = _parse_document(src, loc, text, limits, digest)
    return ParsedFile(src.path, loc.kind, record, tuple(problems), digest, lines, loc, text)
