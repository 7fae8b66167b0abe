"""Write frontmatter back into Markdown files, changing only what changed.

Pure: bytes in, bytes out (no file system, git or clock). Used by `maestro fmt`, `maestro new`
and the library's writes (create, update, rollback).

Rules of this module:
- The body (everything after the closing `---`) is kept byte for byte; so are the opening
  fence, a UTF-8 byte-order mark and the line endings (`\\n` or `\\r\\n`).
- Frontmatter is read with ruamel.yaml in round-trip mode, which knows where each top-level key
  starts. Only the lines of the keys that are set or removed are rewritten; every other line
  (comments, blank lines, key order, quoting, odd indentation) stays as it was. A rewritten key
  keeps its end-of-line comment (at its column), the quote style of a string, and the flow or
  block style of a list or mapping.
- A new key goes after its nearest predecessor in `CANONICAL_ORDER` (before the nearest
  successor, above that key's comment block, when no predecessor exists); keys outside that
  order go at the end.
- Frontmatter that cannot be edited line by line (a flow mapping `{...}`, indented top-level
  keys) is rewritten whole by ruamel's round-trip dumper, which still keeps comments and order.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import (
    DoubleQuotedScalarString,
    FoldedScalarString,
    LiteralScalarString,
    ScalarString,
    SingleQuotedScalarString,
)

from maestro_git.errors import ValidationFailed

__all__ = [
    "CANONICAL_ORDER",
    "format_document",
    "render_document",
    "semver_from_number",
    "set_body",
    "set_fields",
]

# The order `render_document` writes keys in, and the order new keys are inserted by.
CANONICAL_ORDER: tuple[str, ...] = (
    "id", "name", "owner", "display_name", "description", "version", "extends", "category",
    "model", "tools", "tags", "active", "metadata",
)
# Keys whose string values are always written double-quoted when new (a bare `1.0` is a float).
_QUOTED_KEYS = frozenset({"version"})

_OPEN = re.compile(r"\A(\ufeff?)---[ \t]*(\r?\n)")
_CLOSE = re.compile(r"^---[ \t]*\r?$", re.MULTILINE)
# Line breaks YAML readers may honour besides \n; line splicing is refused when present.
_ODD_BREAKS = re.compile("\r(?!\n)|[\x85\u2028\u2029]")
_SEMVER_NUMBER = re.compile(r"^\d+(\.\d+){0,2}$")
_RESOLVER = yaml.resolver.Resolver()


@dataclass(frozen=True)
class _Split:
    """A Markdown document cut into head (BOM + opening fence), YAML and tail (fence + body)."""

    head: str
    yaml: str
    tail: str
    newline: str


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationFailed(
            f"file is not valid UTF-8 (byte {exc.start})", (),
            hint="re-save the file with UTF-8 encoding") from exc


def _split(text: str) -> _Split | None:
    opening = _OPEN.match(text)
    if opening is None:
        return None
    close = _CLOSE.search(text, opening.end())
    if close is None:
        return None
    return _Split(text[:opening.end()], text[opening.end():close.start()],
                  text[close.start():], opening.group(2))


def _yaml() -> YAML:
    yaml = YAML(typ="rt", pure=True)
    yaml.preserve_quotes = True
    yaml.width = 4096  # never fold a long description over several lines
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def _load(yaml_text: str) -> CommentedMap | None:
    try:
        doc = _yaml().load(yaml_text)
    except YAMLError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValidationFailed(
            f"frontmatter is not valid YAML: {reason}", (),
            hint="run 'maestro check' to see where, and fix the YAML first") from exc
    if doc is None:
        return None
    if not isinstance(doc, CommentedMap):
        raise ValidationFailed(
            "frontmatter must be a mapping of key: value", (),
            hint="write the frontmatter as 'key: value' lines between the --- lines")
    return doc


def _resolves_as_non_string(value: str) -> bool:
    """True when PyYAML (YAML 1.1, which `formats` reads with) would not read `value`, written
    plain, as a string: `yes`, `on`, `1:20`, `1_000`, `2024-01-01`, `~`, ...

    ruamel.yaml quotes by YAML 1.2 rules, under which `yes` is a plain string."""
    implicit = (True, False)
    tag = _RESOLVER.resolve(yaml.ScalarNode, value, implicit)  # type: ignore[no-untyped-call]
    return bool(tag != "tag:yaml.org,2002:str")


def _is_scalar(value: Any) -> bool:
    return not isinstance(value, Mapping | list | tuple | set | frozenset)


def _styled(key: str, value: Any, old: Any) -> Any:
    """`value` as ruamel nodes, in the style `old` was written in (or the house style)."""
    if isinstance(value, str) and not isinstance(value, ScalarString):
        if "\n" in value:
            if isinstance(old, FoldedScalarString):
                return FoldedScalarString(value)
            return LiteralScalarString(value)
        if isinstance(old, DoubleQuotedScalarString | SingleQuotedScalarString):
            return type(old)(value)
        if old is None and key in _QUOTED_KEYS:
            return DoubleQuotedScalarString(value)
        if _resolves_as_non_string(value):
            return SingleQuotedScalarString(value)
        return value
    if isinstance(value, Mapping):
        node = CommentedMap()
        old_map = old if isinstance(old, Mapping) else {}
        for k, v in value.items():
            node[k] = _styled(str(k), v, old_map.get(k))
        flow = _flow(old, all(_is_scalar(v) for v in value.values()) and len(value) <= 6)
        node.fa.set_flow_style() if flow else node.fa.set_block_style()
        return node
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value) if isinstance(value, set | frozenset) else list(value)
        seq = CommentedSeq([_styled(key, v, None) for v in items])
        flow = _flow(old, all(_is_scalar(v) for v in items))
        seq.fa.set_flow_style() if flow else seq.fa.set_block_style()
        return seq
    return value


def _same(old: Any, new: Any) -> bool:
    """Equal values of the same YAML type (`True` is not `1`, a list is a tuple)."""
    if isinstance(old, bool) or isinstance(new, bool):
        return isinstance(old, bool) and isinstance(new, bool) and old == new
    if isinstance(old, str) or isinstance(new, str):
        return isinstance(old, str) and isinstance(new, str) and str(old) == str(new)
    if isinstance(old, Mapping) or isinstance(new, Mapping):
        return (isinstance(old, Mapping) and isinstance(new, Mapping)
                and list(old.keys()) == list(new.keys())
                and all(_same(old[k], new[k]) for k in old))
    if isinstance(old, list | tuple) or isinstance(new, list | tuple):
        return (isinstance(old, list | tuple) and isinstance(new, list | tuple)
                and len(old) == len(new) and all(map(_same, old, new)))
    if old is None or new is None:
        return old is None and new is None
    if isinstance(old, int | float) and isinstance(new, int | float):
        return isinstance(old, int) == isinstance(new, int) and bool(old == new)
    return bool(old == new)


def _flow(old: Any, default: bool) -> bool:
    if isinstance(old, CommentedMap | CommentedSeq):
        style = old.fa.flow_style()
        if style is not None:
            return bool(style)
    return default


def _dump(mapping: CommentedMap) -> str:
    out = io.StringIO()
    _yaml().dump(mapping, out)
    return out.getvalue()


def _render_entry(key: str, value: Any, old: Any) -> str:
    node = CommentedMap()
    node[key] = _styled(key, value, old)
    return _dump(node)


def _lines(text: str) -> list[str]:
    """Lines split at `\n` only, with their endings; `"".join(_lines(t)) == t`."""
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def _is_trailer(line: str) -> bool:
    """A blank line or a comment at column 0: never part of a top-level key's value."""
    return line.strip() == "" or line.startswith("#")


class _Layout:
    """Where each top-level key of a block mapping sits, as line ranges of the YAML text."""

    def __init__(self, doc: CommentedMap | None, lines: list[str]) -> None:
        self.lines = lines
        self.starts: dict[str, int] = {}
        self.ends: dict[str, int] = {}  # exclusive; trailing comments and blanks excluded
        if doc is None:
            return
        starts = {str(k): doc.lc.key(k)[0] for k in doc}
        ordered = sorted(starts.items(), key=lambda item: item[1])
        for index, (key, start) in enumerate(ordered):
            stop = ordered[index + 1][1] if index + 1 < len(ordered) else len(lines)
            while stop > start + 1 and _is_trailer(lines[stop - 1]):
                stop -= 1
            self.starts[key] = start
            self.ends[key] = stop

    def comment_block_start(self, key: str) -> int:
        """The first line of the comment lines directly above `key` (no blank line between)."""
        line = self.starts[key]
        while line > 0 and self.lines[line - 1].startswith("#"):
            line -= 1
        return line


def _spliceable(doc: CommentedMap | None, yaml_text: str) -> bool:
    if _ODD_BREAKS.search(yaml_text):
        return False
    if doc is None:
        return True
    if doc.fa.flow_style():
        return False
    seen: set[int] = set()
    for key in doc:
        line, column = doc.lc.key(key)
        if column != 0 or line in seen or not isinstance(key, str):
            return False
        seen.add(line)
    return True


def _eol_comment(doc: CommentedMap, key: str, line: int) -> tuple[str, int] | None:
    """The end-of-line comment on `key`'s first line: (text without newline, column)."""
    entry = doc.ca.items.get(key)
    token = entry[2] if entry and len(entry) > 2 else None
    if token is None or token.start_mark.line != line:
        return None
    text = token.value.split("\n", 1)[0].rstrip()
    return (text, token.start_mark.column) if text.startswith("#") else None


def _with_comment(rendered: str, comment: tuple[str, int] | None) -> str:
    if comment is None:
        return rendered
    text, column = comment
    first, _, rest = rendered.partition("\n")
    first = first.ljust(column) if len(first) < column else first + "  "
    return first + text + "\n" + rest


def _insert_at(layout: _Layout, key: str) -> int:
    """The line index a new `key` is inserted at."""
    if key in CANONICAL_ORDER:
        rank = CANONICAL_ORDER.index(key)
        before = [k for k in CANONICAL_ORDER[:rank] if k in layout.starts]
        if before:
            return max(layout.ends[k] for k in before)
        after = [k for k in CANONICAL_ORDER[rank + 1:] if k in layout.starts]
        if after:
            return min(layout.comment_block_start(k) for k in after)
    return len(layout.lines)


def _splice(doc: CommentedMap | None, yaml_text: str, updates: Mapping[str, Any],
            remove: set[str]) -> str:
    lines = _lines(yaml_text)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    layout = _Layout(doc, lines)
    replace: dict[int, tuple[int, str]] = {}  # start line -> (end line, new text)
    inserts: dict[int, list[str]] = {}
    for key, value in updates.items():
        if key in layout.starts:
            start, end = layout.starts[key], layout.ends[key]
            assert doc is not None
            if _same(doc[key], value):
                continue  # an unchanged value keeps its lines, inner comments included
            rendered = _render_entry(key, value, doc[key])
            replace[start] = (end, _with_comment(rendered, _eol_comment(doc, key, start)))
        else:
            inserts.setdefault(_insert_at(layout, key), []).append(
                _render_entry(key, value, None))
    for key in remove:
        if key in layout.starts and key not in updates:
            replace[layout.starts[key]] = (layout.ends[key], "")
    out: list[str] = []
    index = 0
    while index <= len(lines):
        out.extend(inserts.get(index, ()))
        if index == len(lines):
            break
        if index in replace:
            end, text = replace[index]
            out.append(text)
            index = end
        else:
            out.append(lines[index])
            index += 1
    return "".join(out)


def _rewrite_whole(doc: CommentedMap | None, updates: Mapping[str, Any],
                   remove: set[str]) -> str:
    node = doc if doc is not None else CommentedMap()
    for key in remove:
        node.pop(key, None)
    for key, value in updates.items():
        node[key] = _styled(key, value, node.get(key))
    return _dump(node) if node else ""


def _native_newlines(text: str, newline: str) -> str:
    return text.replace("\n", newline) if newline == "\r\n" else text


def set_fields(data: bytes, updates: Mapping[str, Any], remove: Iterable[str] = ()) -> bytes:
    """`data` (a persona or template file) with frontmatter keys set and removed.

    Only the lines of the keys in `updates` and `remove` change; the body and every other
    byte stay as they were. A file without frontmatter gets one (in `CANONICAL_ORDER`).
    Raises `ValidationFailed` when the file is not UTF-8 or its frontmatter is not a YAML
    mapping.
    """
    text = _decode(data)
    removed = set(remove)
    parts = _split(text)
    if parts is None:
        if not updates:
            return data
        bom = "\ufeff" if text.startswith("\ufeff") else ""
        newline = "\r\n" if "\r\n" in text.split("\n", 1)[0] + "\n" else "\n"
        fm = _render_fields(updates)
        head = _native_newlines(f"---\n{fm}---\n", newline)
        return (bom + head + text[len(bom):]).encode("utf-8")
    doc = _load(parts.yaml)
    if not updates and not (doc is not None and removed & {str(k) for k in doc}):
        return data
    newline = parts.newline
    if newline == "\r\n" and parts.yaml.count("\n") != parts.yaml.count("\r\n"):
        newline = "\n"  # mixed line endings: leave the \r\n lines as they are
    yaml_text = parts.yaml.replace("\r\n", "\n") if newline == "\r\n" else parts.yaml
    if _spliceable(doc, yaml_text):
        new_yaml = _splice(doc, yaml_text, updates, removed)
    else:
        new_yaml = _rewrite_whole(doc, updates, removed)
    return (parts.head + _native_newlines(new_yaml, newline) + parts.tail).encode("utf-8")


def set_body(data: bytes, body: str) -> bytes:
    """`data` with its body (everything after the frontmatter) replaced by `body`.

    The frontmatter is kept byte for byte; a file without frontmatter becomes `body`.
    """
    text = _decode(data)
    parts = _split(text)
    if parts is None:
        return body.encode("utf-8")
    fence_end = parts.tail.find("\n") + 1 if "\n" in parts.tail else len(parts.tail)
    fence = parts.tail[:fence_end]
    if not fence.endswith("\n"):
        fence += parts.newline
    return (parts.head + parts.yaml + fence + body).encode("utf-8")


def _render_fields(fields: Mapping[str, Any]) -> str:
    ordered = [k for k in CANONICAL_ORDER if k in fields]
    ordered += [k for k in fields if k not in CANONICAL_ORDER]
    node = CommentedMap()  # one dump for the whole frontmatter, not one per field
    for k in ordered:
        if fields[k] is not None:
            node[k] = _styled(k, fields[k], None)
    return _dump(node) if node else ""


def render_document(fields: Mapping[str, Any], body: str) -> bytes:
    """A new persona or template file: frontmatter from `fields` (keys in `CANONICAL_ORDER`,
    then the others in their given order; `None` values left out), then `body` verbatim."""
    return f"---\n{_render_fields(fields)}---\n{body}".encode()


def semver_from_number(raw: str) -> str | None:
    """`1` -> `1.0.0`, `1.2` -> `1.2.0`, `1.2.3` -> `1.2.3`; None when `raw` is not numeric."""
    raw = raw.strip()
    if not _SEMVER_NUMBER.match(raw):
        return None
    parts = raw.split(".")
    return ".".join(parts + ["0"] * (3 - len(parts)))


def _raw_scalar(yaml_text: str, doc: CommentedMap, key: str) -> str:
    """The text a single-line scalar value was written as (`1.10`, not the float 1.1)."""
    line, column = doc.lc.value(key)
    lines = yaml_text.split("\n")
    source = lines[line] if line < len(lines) else ""
    comment = _eol_comment(doc, key, line)
    end = comment[1] if comment else len(source)
    return source[column:end].strip()


_STR, _NULL = "tag:yaml.org,2002:str", "tag:yaml.org,2002:null"
_NUMBERS = frozenset({"tag:yaml.org,2002:int", "tag:yaml.org,2002:float"})
_FAST_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _already_formatted(yaml_text: str) -> bool:
    """True when `format_document` has nothing to do, decided with libyaml's composer.

    The common case of `maestro fmt` (a formatted file) then costs ~0.1 ms instead of a
    ruamel.yaml round-trip load (~10 ms). Composing never expands aliases. Anything unusual
    answers False and takes the full path, which reports errors properly."""
    try:
        node = yaml.compose(yaml_text, Loader=_FAST_LOADER)
    except yaml.YAMLError:
        return False
    if not isinstance(node, yaml.MappingNode):
        return False
    top = {k.value: v for k, v in node.value if isinstance(k, yaml.ScalarNode)}
    id_node = top.get("id")
    if not isinstance(id_node, yaml.Node) or (
            isinstance(id_node, yaml.ScalarNode) and (id_node.tag == _NULL or (
                id_node.tag == _STR and id_node.value == ""))):
        return False
    version = top.get("version")
    if isinstance(version, yaml.ScalarNode) and version.tag in _NUMBERS:
        return False
    tags = top.get("tags")
    return not (isinstance(tags, yaml.ScalarNode) and tags.tag == _STR)


def format_document(data: bytes, new_id: str) -> tuple[bytes, tuple[str, ...]]:
    """`maestro fmt` for one persona or template file: the new bytes and what changed.

    The normalisation is deliberately small, so a formatted file differs only where it must:
    - a missing or empty `id` is set to `new_id` (inserted as the first key);
    - a `version` written as a number (`1`, `1.2`) becomes the quoted semver `"1.2.0"`, read
      from the text as written (so `1.10` becomes `"1.10.0"`, not `"1.1.0"`);
    - `tags` written as one string (`coding, review`) becomes a list (`[coding, review]`).
    Everything else (key order, comments, quoting, the body) is left alone, and formatting a
    formatted file changes nothing. Raises `ValidationFailed` for frontmatter that is not a
    YAML mapping (`maestro check` says where).
    """
    text = _decode(data)
    parts = _split(text)
    if parts is not None and _already_formatted(parts.yaml):
        return data, ()
    doc = _load(parts.yaml) if parts is not None else None
    fields: Mapping[str, Any] = doc if doc is not None else {}
    updates: dict[str, Any] = {}
    changes: list[str] = []
    current_id = fields.get("id")
    if current_id is None or current_id == "":
        updates["id"] = new_id
        changes.append(f"assigned id {new_id}")
    version = fields.get("version")
    if (doc is not None and parts is not None and isinstance(version, int | float)
            and not isinstance(version, bool)):
        yaml_text = parts.yaml.replace("\r\n", "\n")
        semver = semver_from_number(_raw_scalar(yaml_text, doc, "version"))
        if semver is not None:
            updates["version"] = DoubleQuotedScalarString(semver)
            changes.append(f'version {_raw_scalar(yaml_text, doc, "version")} -> "{semver}"')
    tags = fields.get("tags")
    if isinstance(tags, str):
        tag_list: Sequence[str] = [t.strip() for t in tags.split(",") if t.strip()]
        updates["tags"] = list(tag_list)
        changes.append("tags written as a list")
    if not updates:
        return data, ()
    return set_fields(data, updates), tuple(changes)
