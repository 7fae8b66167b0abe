"""Bytes ⇄ records: persona and template Markdown with YAML frontmatter, persona-set JSON.

Rules of this module (pure: no file system, git or database):
- `parse_file(SourceFile, Limits)` never raises for a user's bad input: every problem becomes a
  `Problem` value and the record is `None` when the file cannot be understood.
- YAML is read with the C safe loader when libyaml is present; aliases are rejected before
  construction (a 455-byte alias bomb expands to gigabytes) and the frontmatter size is capped.
- A file's path decides its kind and key (`classify`); frontmatter may repeat name/owner but a
  mismatch is a problem, never a silent override.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from maestro_git.models import (
    EntityKind,
    Persona,
    PersonaSet,
    PersonaSetMember,
    Problem,
    Severity,
    SourceFile,
    Template,
)
from maestro_git.settings import Limits

__all__ = [
    "NAME_RE",
    "ParsedFile",
    "classify",
    "content_hash",
    "parse_file",
    "split_frontmatter",
]

NAME_RE = re.compile(r"^[a-z0-9_-]{1,100}$")

try:
    _Loader: type[yaml.SafeLoader] = yaml.CSafeLoader  # type: ignore[assignment]
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _Loader = yaml.SafeLoader
    warnings.warn(
        "PyYAML was built without libyaml: frontmatter parsing is about 8x slower",
        RuntimeWarning,
        stacklevel=1,
    )

# Frontmatter keys with a meaning of their own; every other key is kept in `metadata`.
PERSONA_KEYS = frozenset(
    {"id", "name", "owner", "display_name", "description", "version", "extends", "tags",
     "active", "metadata"}
)
TEMPLATE_KEYS = PERSONA_KEYS | {"category"}


@dataclass(frozen=True)
class Location:
    kind: EntityKind
    key: str
    owner: str | None
    name: str


@dataclass(frozen=True)
class ParsedFile:
    """A file after parsing: its record (None when unreadable) and the problems found."""

    path: str
    kind: EntityKind | None
    record: Persona | Template | PersonaSet | None
    problems: tuple[Problem, ...]
    content_hash: str


def content_hash(data: bytes) -> str:
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


_FENCE = re.compile(r"\A---[ \t]*\r?\n")
_CLOSE = re.compile(r"^---[ \t]*\r?$", re.MULTILINE)


def split_frontmatter(text: str) -> tuple[str | None, str, int]:
    """Split `text` into (frontmatter YAML or None, body, body's first line number)."""
    if text.startswith("\ufeff"):
        text = text[1:]
    opening = _FENCE.match(text)
    if not opening:
        return None, text, 1
    close = _CLOSE.search(text, opening.end())
    if close is None:
        return None, text, 1
    yaml_text = text[opening.end():close.start()]
    rest = text[close.end():]
    if rest.startswith("\r\n"):
        rest = rest[2:]
    elif rest.startswith("\n"):
        rest = rest[1:]
    body_line = text.count("\n", 0, close.end()) + 2
    return yaml_text, rest, body_line


def _load_yaml(yaml_text: str, path: str, limits: Limits) -> tuple[Any, list[Problem]]:
    size = len(yaml_text.encode("utf-8"))
    if size > limits.max_frontmatter_bytes:
        return None, [_problem(
            "frontmatter-too-large", path,
            f"frontmatter is {size} bytes, over the limit of {limits.max_frontmatter_bytes}",
            "move long text into the Markdown body, or raise limits.max_frontmatter_bytes "
            "in maestro.toml", line=2)]
    try:
        for event in yaml.parse(yaml_text, Loader=_Loader):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                mark = event.start_mark
                return None, [_problem(
                    "yaml-alias", path,
                    "YAML anchors and aliases are not allowed in frontmatter",
                    "write the value out in full instead of using &anchor / *alias",
                    line=mark.line + 2 if mark else None,
                    column=mark.column + 1 if mark else None)]
        return yaml.load(yaml_text, Loader=_Loader), []
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        return None, [_problem(
            "yaml-syntax", path, f"frontmatter is not valid YAML: {reason}",
            "fix the YAML between the --- lines (quote values that contain ': ' or start "
            "with a special character)",
            line=mark.line + 2 if mark else None, column=mark.column + 1 if mark else None)]


def _decode(src: SourceFile, limits: Limits) -> tuple[str | None, list[Problem]]:
    if len(src.data) > limits.max_file_bytes:
        return None, [_problem(
            "file-too-large", src.path,
            f"file is {len(src.data)} bytes, over the limit of {limits.max_file_bytes}",
            "split the file, or raise limits.max_file_bytes in maestro.toml")]
    if b"\x00" in src.data:
        return None, [_problem(
            "binary-file", src.path, "file contains NUL bytes: it is binary, not text",
            "save the file as UTF-8 text")]
    try:
        return src.data.decode("utf-8"), []
    except UnicodeDecodeError as exc:
        line = src.data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (src.data.rfind(b"\n", 0, exc.start) + 1) + 1
        return None, [_problem(
            "invalid-utf8", src.path,
            f"byte 0x{src.data[exc.start]:02x} is not valid UTF-8",
            "re-save the file with UTF-8 encoding", line=line, column=col)]


def _type_problem(path: str, key: str, expected: str, fix: str = "") -> Problem:
    return _problem("frontmatter-type", path, f"frontmatter field '{key}' must be {expected}",
                    fix or f"set '{key}' to {expected}", line=None)


def _field_line(yaml_text: str, key: str) -> int | None:
    match = re.search(rf"^{re.escape(key)}\s*:", yaml_text, re.MULTILINE)
    if match is None:
        return None
    return yaml_text.count("\n", 0, match.start()) + 2


def _document_fields(
    fm: Mapping[str, Any], yaml_text: str, path: str, known: frozenset[str]
) -> tuple[dict[str, Any], list[Problem]]:
    """Typed fields from frontmatter; unknown keys go into metadata."""
    problems: list[Problem] = []
    out: dict[str, Any] = {}

    def bad(key: str, expected: str) -> None:
        p = _type_problem(path, key, expected)
        problems.append(p.model_copy(update={"line": _field_line(yaml_text, key)}))

    for key in ("id", "display_name", "description", "extends", "category"):
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
    if "active" in fm:
        if isinstance(fm["active"], bool):
            out["active"] = fm["active"]
        else:
            bad("active", "true or false")
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


def _jsonable(value: Any) -> Any:
    """YAML values (dates, sets) made JSON-safe, so metadata can go into jsonb unchanged."""
    return json.loads(json.dumps(value, default=str))


def _parse_document(
    src: SourceFile, loc: Location, text: str, limits: Limits
) -> tuple[Persona | Template | None, list[Problem]]:
    yaml_text, body, body_line = split_frontmatter(text)
    fm: Any = {}
    problems: list[Problem] = []
    if yaml_text is not None:
        fm, problems = _load_yaml(yaml_text, src.path, limits)
        if problems:
            return None, problems
        if fm is None:
            fm = {}
        if not isinstance(fm, dict):
            return None, [_problem(
                "frontmatter-type", src.path, "frontmatter must be a mapping of key: value",
                "write the frontmatter as 'key: value' lines between the --- lines", line=2)]
    known = TEMPLATE_KEYS if loc.kind == "template" else PERSONA_KEYS
    fields, problems = _document_fields(fm, yaml_text or "", src.path, known)
    for key, expected in (("name", loc.name), ("owner", loc.owner)):
        if key in fm and expected is not None and fm[key] != expected:
            problems.append(_problem(
                f"{key}-mismatch", src.path,
                f"frontmatter {key} '{fm[key]}' does not match the path ('{expected}')",
                f"remove '{key}' from the frontmatter or move the file to match it",
                line=_field_line(yaml_text or "", key)))
    common = dict(fields, name=loc.name, path=src.path, body=body, body_line=body_line,
                  content_hash=content_hash(src.data), size_bytes=len(src.data))
    record: Persona | Template
    if loc.kind == "template":
        record = Template(**common)
    else:
        record = Persona(owner=loc.owner or "", **common)
    return record, problems


def _parse_set(
    src: SourceFile, loc: Location, text: str
) -> tuple[PersonaSet | None, list[Problem]]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, [_problem("json-syntax", src.path, f"not valid JSON: {exc.msg}",
                               "fix the JSON syntax (a trailing comma or a missing quote?)",
                               line=exc.lineno, column=exc.colno)]
    if not isinstance(doc, dict) or not isinstance(doc.get("personas"), list):
        return None, [_problem("set-schema", src.path,
                               "a persona set must be an object with a 'personas' array",
                               'write {"name": ..., "personas": [...], "metadata": {...}}',
                               line=1)]
    problems: list[Problem] = []
    metadata = doc.get("metadata") or {}
    if not isinstance(metadata, dict):
        problems.append(_problem("set-schema", src.path, "'metadata' must be an object",
                                 'write "metadata": {"status": "generated", ...}'))
        metadata = {}
    members: list[PersonaSetMember] = []
    for index, raw in enumerate(doc["personas"]):
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            problems.append(_problem(
                "set-schema", src.path, f"personas[{index}] must be an object with a 'name'",
                'give every member a "name" string'))
            continue
        members.append(PersonaSetMember(
            name=raw["name"], persona_data=raw,
            image_url=raw.get("image_url") if isinstance(raw.get("image_url"), str) else None,
            image_prompt=raw.get("image_prompt")
            if isinstance(raw.get("image_prompt"), str) else None,
            similarity_score=raw.get("similarity_score"),
            validation_status=raw.get("validation_status")
            if isinstance(raw.get("validation_status"), str) else None,
        ))
    status = metadata.get("status")
    if status is not None and status not in ("generated", "expanded", "validated"):
        problems.append(_problem(
            "set-schema", src.path, f"metadata.status '{status}' is not a known status",
            "use one of: generated, expanded, validated"))
        status = None
    cycle = metadata.get("generation_cycle")
    if cycle is not None and (not isinstance(cycle, int) or isinstance(cycle, bool)):
        problems.append(_problem("set-schema", src.path,
                                 "metadata.generation_cycle must be an integer",
                                 "write a whole number, e.g. 1"))
        cycle = None
    title = doc.get("name") if isinstance(doc.get("name"), str) else None
    description = doc.get("description") if isinstance(doc.get("description"), str) else None
    record = PersonaSet(
        name=loc.name, path=src.path, title=title, description=description,
        members=tuple(members), rqe_scores=metadata.get("rqe_scores"),
        diversity_score=metadata.get("diversity_score"),
        validation_scores=metadata.get("validation_scores"), generation_cycle=cycle,
        status=status, metadata=metadata, content_hash=content_hash(src.data),
        size_bytes=len(src.data))
    return record, problems


def parse_file(src: SourceFile, limits: Limits) -> ParsedFile:
    """Parse one file into its record and the problems found on the way. Never raises."""
    loc = classify(src.path)
    digest = content_hash(src.data)
    if loc is None:
        return ParsedFile(src.path, None, None, (), digest)
    if src.is_symlink:
        # Symlinks are judged by validation (inside/outside the repository); never followed here.
        return ParsedFile(src.path, loc.kind, None, (), digest)
    text, problems = _decode(src, limits)
    if text is None:
        return ParsedFile(src.path, loc.kind, None, tuple(problems), digest)
    record: Persona | Template | PersonaSet | None
    if loc.kind == "persona_set":
        record, problems = _parse_set(src, loc, text)
    else:
        record, problems = _parse_document(src, loc, text, limits)
    return ParsedFile(src.path, loc.kind, record, tuple(problems), digest)
