"""Bytes ⇄ records: persona and template Markdown with YAML frontmatter, persona-set JSON.

Rules of this module (pure: no file system, git or database):
- `parse_file(SourceFile, Limits)` never raises for a user's bad input: every problem becomes a
  `Problem` value and the record is `None` when the file cannot be understood.
- Frontmatter is detected and split with python-frontmatter's `YAMLHandler` (forced, so a file
  starting with `{` is never read as JSON), with a boundary of exactly `---`; the body is kept
  byte for byte and line numbers stay exact.
- YAML is read with the C safe loader when libyaml is present. The frontmatter size is capped
  before parsing; the composed node graph is then walked once (linear even for an alias bomb,
  since aliases share nodes) to reject aliases, duplicate keys and deep nesting *before* any
  value is constructed. A 455-byte alias bomb never expands.
- Persona-set JSON is read with duplicate keys and NaN/Infinity rejected.
- A file's path decides its kind and key (`classify`); frontmatter may repeat name/owner but a
  mismatch is a problem, never a silent override.
- Type problems are found here (a record needs the right types); the semantic rules (names,
  ids, semver, tags, sizes, hidden Unicode, HTML, ...) live in `validate`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import yaml
from frontmatter.default_handlers import YAMLHandler

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
MAX_NESTING = 32  # frontmatter and set JSON deeper than this are refused

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
SET_STATUSES = ("generated", "expanded", "validated")

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
    """A file after parsing: its record (None when unreadable) and the problems found."""

    path: str
    kind: EntityKind | None
    record: Persona | Template | PersonaSet | None
    problems: tuple[Problem, ...]
    content_hash: str
    # file line of each top-level frontmatter key, and of each set member ("members[3]",
    # by position in `PersonaSet.members`)
    field_lines: Mapping[str, int] = field(default_factory=dict)


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


def _mark(mark: Any) -> tuple[int | None, int | None]:
    """File line/column (1-based) of a YAML mark; the YAML starts on line 2 of the file."""
    if mark is None:
        return None, None
    return mark.line + 2, mark.column + 1


def _first_alias(yaml_text: str) -> tuple[int | None, int | None]:
    try:
        for event in yaml.parse(yaml_text, Loader=_Loader):
            if isinstance(event, yaml.AliasEvent):
                return _mark(event.start_mark)
    except yaml.YAMLError:
        pass
    return None, None


class _Refused(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


class _Unusual(Exception):
    """A tag the fast builder leaves to PyYAML's constructor (!!set, !!omap, merge keys)."""


_STR_TAG = "tag:yaml.org,2002:str"
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _Builder:
    """Walk the composed node graph once: refuse aliases (the composer shares one node object
    between an anchor and its aliases, so a repeat visit is an alias), duplicate keys and deep
    nesting, and build the plain values on the way. Linear in the size of the text."""

    def __init__(self, loader: Any, yaml_text: str, path: str) -> None:
        self.loader = loader
        self.yaml_text = yaml_text
        self.path = path
        self.seen: set[int] = set()

    def refuse(self, node: yaml.Node, rule: str, message: str, fix: str) -> _Refused:
        line, col = _first_alias(self.yaml_text) if rule == "yaml-alias" else _mark(
            node.start_mark)
        return _Refused(_problem(rule, self.path, message, fix, line=line, column=col))

    def build(self, node: yaml.Node, depth: int = 0) -> Any:
        if id(node) in self.seen:
            raise self.refuse(node, "yaml-alias",
                              "YAML anchors and aliases are not allowed in frontmatter",
                              "write the value out in full instead of using &anchor / *alias")
        self.seen.add(id(node))
        if depth > MAX_NESTING:
            raise self.refuse(node, "frontmatter-type",
                              f"frontmatter is nested more than {MAX_NESTING} levels deep",
                              "flatten the frontmatter values")
        tag = node.tag
        if isinstance(node, yaml.ScalarNode):
            if tag == _STR_TAG:
                return node.value
            if tag == _MERGE_TAG:
                raise _Unusual
            constructor = self.loader.yaml_constructors.get(tag) or \
                self.loader.yaml_constructors[None]
            return constructor(self.loader, node)
        if isinstance(node, yaml.MappingNode) and tag == _MAP_TAG:
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self.build(key_node, depth + 1)
                if key in out:
                    raise self.refuse(
                        key_node, "duplicate-field",
                        f"frontmatter key '{key}' appears more than once",
                        "keep one of the entries (YAML would silently use the last)")
                out[key] = self.build(value_node, depth + 1)
            return out
        if isinstance(node, yaml.SequenceNode) and tag == _SEQ_TAG:
            return [self.build(child, depth + 1) for child in node.value]
        raise _Unusual

    def build_checked(self, root: yaml.Node, loader: Any) -> Any:
        """The slow path: check every node, then let PyYAML construct the document."""
        stack = [(root, 0)]
        while stack:
            node, depth = stack.pop()
            if id(node) in self.seen:
                raise self.refuse(node, "yaml-alias",
                                  "YAML anchors and aliases are not allowed in frontmatter",
                                  "write the value out in full instead of using &anchor / "
                                  "*alias")
            self.seen.add(id(node))
            if depth > MAX_NESTING:
                raise self.refuse(node, "frontmatter-type",
                                  f"frontmatter is nested more than {MAX_NESTING} levels deep",
                                  "flatten the frontmatter values")
            if isinstance(node, yaml.MappingNode):
                stack.extend((n, depth + 1) for pair in node.value for n in pair)
            elif isinstance(node, yaml.SequenceNode):
                stack.extend((n, depth + 1) for n in node.value)
        return loader.construct_document(root)


def _key_lines(root: yaml.Node) -> dict[str, int]:
    if not isinstance(root, yaml.MappingNode):
        return {}
    return {str(k.value): k.start_mark.line + 2 for k, _ in root.value
            if isinstance(k, yaml.ScalarNode)}


def _load_yaml(yaml_text: str, path: str, limits: Limits
               ) -> tuple[Any, list[Problem], dict[str, int]]:
    size = len(yaml_text.encode("utf-8", "surrogatepass"))
    if size > limits.max_frontmatter_bytes:
        return None, [_problem(
            "frontmatter-too-large", path,
            f"frontmatter is {size} bytes, over the limit of {limits.max_frontmatter_bytes}",
            "move long text into the Markdown body, or raise limits.max_frontmatter_bytes "
            "in maestro.toml", line=2)], {}
    loader = _Loader(yaml_text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, [], {}
        try:
            value = _Builder(loader, yaml_text, path).build(root)
        except _Unusual:
            value = _Builder(loader, yaml_text, path).build_checked(root, loader)
        return value, [], _key_lines(root)
    except _Refused as refused:
        return None, [refused.problem], {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        line, col = _mark(mark)
        return None, [_problem(
            "yaml-syntax", path, f"frontmatter is not valid YAML: {reason}",
            "fix the YAML between the --- lines (quote values that contain ': ' or start "
            "with a special character)", line=line, column=col)], {}
    except Exception as exc:  # noqa: BLE001 - PyYAML's constructors raise anything on odd input
        # e.g. an unhashable mapping key, a timestamp out of range, `!!int` with no digits
        return None, [_problem(
            "yaml-syntax", path, f"frontmatter value cannot be read: {exc}",
            "fix the YAML between the --- lines", line=2)], {}
    finally:
        loader.dispose()


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
        fm, problems, lines = _load_yaml(yaml_text, src.path, limits)
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


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _json_line(text: str, pattern: str, nth: int = 0) -> int | None:
    """Line of the `nth` match of `pattern` in `text` (a best effort for JSON locations)."""
    for i, match in enumerate(re.finditer(pattern, text)):
        if i == nth:
            return text.count("\n", 0, match.start()) + 1
    return None


_NAME_VALUE = re.compile(r'"name"\s*:\s*("(?:[^"\\\n]|\\.)*")')


def _member_lines(text: str) -> dict[str, list[int]]:
    """name -> lines of each `"name": "<name>"` in a set's JSON text, in order (one pass)."""
    out: dict[str, list[int]] = {}
    line, pos = 1, 0
    for match in _NAME_VALUE.finditer(text):
        line += text.count("\n", pos, match.start())
        pos = match.start()
        try:
            name = json.loads(match.group(1))
        except ValueError:
            continue
        out.setdefault(name, []).append(line)
    return out


def _parse_set(
    src: SourceFile, loc: Location, text: str, digest: str
) -> tuple[PersonaSet | None, list[Problem], dict[str, int]]:
    try:
        doc = json.loads(text, object_pairs_hook=_pairs, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        return None, [_problem("json-syntax", src.path, f"not valid JSON: {exc.msg}",
                               "fix the JSON syntax (a trailing comma or a missing quote?)",
                               line=exc.lineno, column=exc.colno)], {}
    except _DuplicateKey as exc:
        key_re = r'"' + re.escape(exc.key) + r'"\s*:'
        return None, [_problem(
            "duplicate-field", src.path, f"JSON key '{exc.key}' appears twice in one object",
            "keep one of the entries (JSON readers disagree on which one wins)",
            line=_json_line(text, key_re, 1))], {}
    except RecursionError:
        return None, [_problem("json-syntax", src.path, "JSON is nested too deeply",
                               "flatten the persona set")], {}
    except ValueError as exc:
        return None, [_problem("json-syntax", src.path, f"not valid JSON: {exc}",
                               "write numbers as finite decimals (NaN and Infinity are "
                               "not JSON)")], {}
    if not isinstance(doc, dict) or not isinstance(doc.get("personas"), list):
        return None, [_problem("set-schema", src.path,
                               "a persona set must be an object with a 'personas' array",
                               'write {"name": ..., "personas": [...], "metadata": {...}}',
                               line=1)], {}
    problems: list[Problem] = []
    name_lines = _member_lines(text)
    seen: dict[str, int] = {}
    lines: dict[str, int] = {}

    def schema(message: str, fix: str, line: int | None = None) -> None:
        problems.append(_problem("set-schema", src.path, message, fix, line=line))

    metadata = doc.get("metadata")
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        schema("'metadata' must be an object", 'write "metadata": {"status": "generated"}',
               _json_line(text, r'"metadata"\s*:'))
        metadata = {}
    for key in ("name", "description"):
        if key in doc and doc[key] is not None and not isinstance(doc[key], str):
            schema(f"'{key}' must be a string", f'write "{key}": "..."',
                   _json_line(text, rf'"{key}"\s*:'))
    members: list[PersonaSetMember] = []
    for index, raw in enumerate(doc["personas"]):
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            schema(f"personas[{index}] must be an object with a 'name' string",
                   'give every member a "name" string')
            continue
        nth = seen.get(raw["name"], 0)
        seen[raw["name"]] = nth + 1
        found = name_lines.get(raw["name"], [])
        line = found[nth] if nth < len(found) else None
        if line is not None:
            lines[f"members[{len(members)}]"] = line
        for key in ("image_url", "image_prompt", "validation_status"):
            if raw.get(key) is not None and not isinstance(raw[key], str):
                schema(f"personas[{index}].{key} must be a string",
                       f'write "{key}": "..." or remove it', line)
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
    if status is not None and status not in SET_STATUSES:
        schema(f"metadata.status '{status}' is not a known status",
               "use one of: generated, expanded, validated", _json_line(text, r'"status"\s*:'))
        status = None
    cycle = metadata.get("generation_cycle")
    if cycle is not None and (not isinstance(cycle, int) or isinstance(cycle, bool)):
        schema("metadata.generation_cycle must be an integer", "write a whole number, e.g. 1",
               _json_line(text, r'"generation_cycle"\s*:'))
        cycle = None
    title = doc.get("name") if isinstance(doc.get("name"), str) else None
    description = doc.get("description") if isinstance(doc.get("description"), str) else None
    record = PersonaSet(
        name=loc.name, path=src.path, title=title, description=description,
        members=tuple(members), rqe_scores=metadata.get("rqe_scores"),
        diversity_score=metadata.get("diversity_score"),
        validation_scores=metadata.get("validation_scores"), generation_cycle=cycle,
        status=status, metadata=metadata, content_hash=digest,
        size_bytes=len(src.data))
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
        return ParsedFile(src.path, loc.kind, None, (), digest)
    text, problems = _decode(src, limits)
    if text is None:
        return ParsedFile(src.path, loc.kind, None, tuple(problems), digest)
    record: Persona | Template | PersonaSet | None
    if loc.kind == "persona_set":
        record, problems, lines = _parse_set(src, loc, text, digest)
    else:
        record, problems, lines = _parse_document(src, loc, text, limits, digest)
    return ParsedFile(src.path, loc.kind, record, tuple(problems), digest, lines)
