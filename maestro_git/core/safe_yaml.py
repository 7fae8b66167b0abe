"""Safe YAML for frontmatter: the C safe loader, no aliases, no duplicate keys, bounded depth.

Rules of this module (pure: text in, values and `Problem`s out):
- YAML is read with the C safe loader when libyaml is present (about 8x faster; a warning
  says so when it is missing).
- The frontmatter size is capped before parsing; the composed node graph is then walked once
  (linear even for an alias bomb, since aliases share nodes) to reject aliases, duplicate
  keys and nesting deeper than `MAX_NESTING` *before* any value is constructed. A 455-byte
  alias bomb never expands.
- Line and column numbers are the file's (the YAML starts on line 2, after `---`).
"""

from __future__ import annotations

import warnings
from typing import Any

import yaml

from maestro_git.core.models import Problem, Severity
from maestro_git.settings import Limits

__all__ = ["MAX_NESTING", "load_frontmatter"]

MAX_NESTING = 32  # frontmatter deeper than this is refused

try:
    _Base: type[yaml.SafeLoader] = yaml.CSafeLoader  # type: ignore[assignment]
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _Base = yaml.SafeLoader
    warnings.warn(
        "PyYAML was built without libyaml: frontmatter parsing is about 8x slower",
        RuntimeWarning,
        stacklevel=1,
    )

_STR_TAG = "tag:yaml.org,2002:str"
_RESOLVED_MAX = 4096  # plain scalars remembered by the resolver cache
_RESOLVED_LEN = 32  # only short ones (keys, booleans, versions, tags) repeat


class _Loader(_Base):  # type: ignore[valid-type,misc]
    """The safe loader with a memo of implicit scalar tags.

    The C composer calls the Python resolver for every scalar (a quarter of the composing
    time). For a safe loader (no path resolvers) a plain scalar's tag depends on its text
    only, and a quoted one is always a string, so short plain texts are remembered."""

    _resolved: dict[str, str] = {}

    def resolve(self, kind: type[yaml.Node], value: Any, implicit: Any) -> Any:
        if kind is yaml.ScalarNode and not self.yaml_path_resolvers:
            if not implicit[0]:
                return _STR_TAG
            resolved = self._resolved
            tag = resolved.get(value)
            if tag is None:
                tag = super().resolve(kind, value, implicit)
                if len(value) <= _RESOLVED_LEN and len(resolved) < _RESOLVED_MAX:
                    resolved[value] = tag
            return tag
        return super().resolve(kind, value, implicit)


def _problem(rule: str, path: str, message: str, fix: str, line: int | None = None,
             column: int | None = None) -> Problem:
    return Problem(rule=rule, severity=Severity.ERROR, path=path, message=message, fix=fix,
                   line=line, column=column)


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

    def visit(self, node: yaml.Node, depth: int) -> None:
        """Refuse a node seen before (an alias) or nested deeper than MAX_NESTING."""
        if id(node) in self.seen:
            raise self.refuse(node, "yaml-alias",
                              "YAML anchors and aliases are not allowed in frontmatter",
                              "write the value out in full instead of using &anchor / *alias")
        self.seen.add(id(node))
        if depth > MAX_NESTING:
            raise self.refuse(node, "frontmatter-type",
                              f"frontmatter is nested more than {MAX_NESTING} levels deep",
                              "flatten the frontmatter values")

    def build(self, node: yaml.Node, depth: int = 0) -> Any:
        self.visit(node, depth)
        tag = node.tag
        if isinstance(node, yaml.ScalarNode):
            if tag == _STR_TAG:
                return node.value
            if tag == _MERGE_TAG:
                raise _Unusual
            constructor = self.loader.yaml_constructors.get(tag) or \
                self.loader.yaml_constructors[None]
            return constructor(self.loader, node)
        # Plain string children (most nodes) are taken inline, without a call per node; the
        # checks are the same as build()'s.
        seen = self.seen
        inline = depth < MAX_NESTING
        if isinstance(node, yaml.MappingNode) and tag == _MAP_TAG:
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                if inline and key_node.tag == _STR_TAG and id(key_node) not in seen \
                        and isinstance(key_node, yaml.ScalarNode):
                    seen.add(id(key_node))
                    key = key_node.value
                else:
                    key = self.build(key_node, depth + 1)
                if key in out:
                    raise self.refuse(
                        key_node, "duplicate-field",
                        f"frontmatter key '{key}' appears more than once",
                        "keep one of the entries (YAML would silently use the last)")
                if inline and value_node.tag == _STR_TAG and id(value_node) not in seen \
                        and isinstance(value_node, yaml.ScalarNode):
                    seen.add(id(value_node))
                    out[key] = value_node.value
                else:
                    out[key] = self.build(value_node, depth + 1)
            return out
        if isinstance(node, yaml.SequenceNode) and tag == _SEQ_TAG:
            items: list[Any] = []
            for child in node.value:
                if inline and child.tag == _STR_TAG and id(child) not in seen \
                        and isinstance(child, yaml.ScalarNode):
                    seen.add(id(child))
                    items.append(child.value)
                else:
                    items.append(self.build(child, depth + 1))
            return items
        raise _Unusual

    def build_checked(self, root: yaml.Node, loader: Any) -> Any:
        """The slow path: check every node, then let PyYAML construct the document."""
        stack = [(root, 0)]
        while stack:
            node, depth = stack.pop()
            self.visit(node, depth)
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


def load_frontmatter(yaml_text: str, path: str, limits: Limits
                     ) -> tuple[Any, list[Problem], dict[str, int]]:
    """The frontmatter's value, its problems (then the value is None) and the file line of
    each top-level key. Never raises for a user's bad input."""
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
