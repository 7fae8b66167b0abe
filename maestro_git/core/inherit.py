"""`extends`: parent chains, cycles, and the effective instruction of a persona.

Pure: takes personas, returns records; no I/O.

A persona's key is `<owner>/<name>`; `extends: <owner>/<name>` names its parent. The chain of a
persona is its ancestors root first and the persona itself last. A chain is *depth* `n` when
it has `n` `extends` hops (a persona without `extends` has depth 0); more than `max_depth`
hops is an error, as are a missing parent and a cycle (`resolve` raises `InheritanceError`).

Composition rule (the effective instruction, `ResolvedPersona.body`), applied from the root
down, one generation at a time:

1. A body is split into a *preamble* (the text before its first heading) and *sections*. A
   section starts at an ATX heading line (`#` … `######`) outside fenced code blocks and runs
   to the next heading of any level (sections are flat: a `###` under a `##` is a section of
   its own).
2. The result starts as the parent's effective body.
3. A child preamble that is not blank replaces the parent's preamble.
4. Title: when the child's first section is a level-1 heading and the parent has a level-1
   section, the child's replaces the parent's first level-1 section, whatever its text.
5. Every other child section whose heading matches a parent section (same level, same text
   ignoring case and repeated spaces) replaces that section in place; the others are
   appended at the end, in the child's order.
6. Text is kept byte for byte, except between chunks: a chunk that does not end with a
   blank line gets a newline (and then an empty line) before another chunk follows it, so
   composed sections are always separated by a blank line (`- Be concise` never runs into
   the next `## Heading`). A persona without `extends` resolves to its body unchanged.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from maestro_git.core.models import Persona
from maestro_git.errors import InheritanceError

__all__ = [
    "Ancestry",
    "Composer",
    "ResolvedPersona",
    "ancestry",
    "children",
    "children_index",
    "compose",
    "descendants",
    "find_cycles",
    "Replacement",
    "replacements",
    "resolve",
    "resolve_bodies",
    "split_parts",
]

DEFAULT_MAX_DEPTH = 8


@dataclass(frozen=True)
class ResolvedPersona:
    """A persona with its inheritance applied."""

    key: str
    chain: tuple[str, ...]  # root ancestor first, `key` last
    body: str  # the composed effective instruction


@dataclass(frozen=True)
class Ancestry:
    """The walk up a persona's `extends` links: the chain found and, if any, why it stops.

    `chain` is root first, `key` last, when `issue` is None. Otherwise it holds what was
    walked (key first is NOT guaranteed): `issue` is "missing" (`missing` names the key that
    does not exist and `via` the persona whose `extends` names it), "cycle" (`cycle` holds the
    keys of the loop, in link order) or "depth" (more than `max_depth` hops).
    """

    key: str
    chain: tuple[str, ...]
    issue: Literal["missing", "cycle", "depth"] | None = None
    missing: str | None = None
    via: str | None = None
    cycle: tuple[str, ...] = ()

    def describe(self) -> str:
        """A one-line reason, for messages."""
        if self.issue == "missing":
            who = "it" if self.via == self.key else f"its ancestor '{self.via}'"
            return f"{who} extends '{self.missing}', which does not exist"
        if self.issue == "cycle":
            loop = " -> ".join((*self.cycle, self.cycle[0]))
            on = self.key in self.cycle
            return f"{'it is part of' if on else 'its ancestors form'} the cycle {loop}"
        if self.issue == "depth":
            return (f"its chain has more than {len(self.chain) - 2} extends links: "
                    + " -> ".join(reversed(self.chain)))
        return "resolves"


def ancestry(key: str, personas: Mapping[str, Persona],
             max_depth: int = DEFAULT_MAX_DEPTH) -> Ancestry:
    """Walk up from `key`; never raises. `key` itself must be in `personas`."""
    walked: list[str] = [key]
    position = {key: 0}
    current = personas[key]
    while current.extends:
        parent = current.extends
        if parent in position:
            loop = tuple(walked[position[parent]:])
            return Ancestry(key, tuple(reversed(walked)), "cycle", cycle=loop)
        if parent not in personas:
            return Ancestry(key, tuple(reversed(walked)), "missing", missing=parent,
                            via=current.key)
        position[parent] = len(walked)
        walked.append(parent)
        if len(walked) - 1 > max_depth:
            return Ancestry(key, tuple(reversed(walked)), "depth")
        current = personas[parent]
    return Ancestry(key, tuple(reversed(walked)))


_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*\r?$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


@dataclass(frozen=True)
class _Section:
    level: int
    title: str  # normalised
    text: str


# The fast path finds heading lines by the newline before them ("\n" is prefixed to the body
# so the first line has one too): a pattern that starts with a literal lets the regex engine
# skip from newline to newline instead of trying every position. Same rule as `_ATX`.
_ATX_AFTER_NEWLINE = re.compile(
    r"\n {0,3}(#{1,6})(?:[ \t]+([^\n]*?))?(?:[ \t]+#+)?[ \t]*(?=\n|\Z)")
# Bodies with a fence, or a line break other than "\n" that `str.splitlines` knows, go line
# by line (`_split_lines`); substring tests find them faster than one regex alternation.
_FENCES_AND_BREAKS = ("```", "~~~", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e")
_UNICODE_BREAKS = ("\x85", "\u2028", "\u2029")


def _needs_line_walk(body: str) -> bool:
    return any(s in body for s in _FENCES_AND_BREAKS) or (
        not body.isascii() and any(s in body for s in _UNICODE_BREAKS))


def _split_sections(body: str) -> tuple[str, list[_Section]]:
    """(preamble, sections) of a Markdown body; headings inside fenced code are ignored."""
    if not _needs_line_walk(body):
        # With "\n" prefixed, a match's start is its heading line's offset in `body`.
        starts = list(_ATX_AFTER_NEWLINE.finditer("\n" + body))
        if not starts:
            return body, []
        ends = [m.start() for m in starts[1:]] + [len(body)]
        return body[:starts[0].start()], [
            _Section(len(m.group(1)), " ".join((m.group(2) or "").split()).casefold(),
                     body[m.start():end]) for m, end in zip(starts, ends, strict=True)]
    return _split_lines(body)


def split_parts(body: str) -> tuple[str, list[str]]:
    """(preamble, section texts) of a Markdown body, each section with its heading line."""
    preamble, sections = _split_sections(body)
    return preamble, [sec.text for sec in sections]


def _split_lines(body: str) -> tuple[str, list[_Section]]:
    preamble: list[str] = []
    sections: list[tuple[int, str, list[str]]] = []
    fence: str | None = None
    for line in body.splitlines(keepends=True):
        stripped = line.rstrip("\r\n")
        fence_match = _FENCE.match(stripped)
        if fence is not None:
            if fence_match and fence_match.group(1)[0] == fence[0] \
                    and len(fence_match.group(1)) >= len(fence) \
                    and not stripped.strip().lstrip(fence[0]):
                fence = None
        elif fence_match:
            fence = fence_match.group(1)
        else:
            heading = _ATX.match(stripped)
            if heading:
                title = " ".join((heading.group(2) or "").split()).casefold()
                sections.append((len(heading.group(1)), title, [line]))
                continue
        (sections[-1][2] if sections else preamble).append(line)
    return "".join(preamble), [_Section(lvl, t, "".join(lines)) for lvl, t, lines in sections]


def _join(chunks: Iterable[str]) -> str:
    out: list[str] = []
    for chunk in chunks:
        if not chunk:
            continue
        if out:
            if not out[-1].endswith("\n"):
                out.append("\n")
            if not "".join(out[-2:]).endswith(("\n\n", "\n\r\n")):
                out.append("\n")  # a blank line between composed chunks
        out.append(chunk)
    return "".join(out)


def compose(parent_body: str, child_body: str) -> str:
    """The child's effective body over its parent's (see the module docstring)."""
    p_pre, p_secs = _split_sections(parent_body)
    c_pre, c_secs = _split_sections(child_body)
    preamble = c_pre if c_pre.strip() else p_pre
    result = list(p_secs)
    rest = c_secs
    if c_secs and c_secs[0].level == 1:
        for i, sec in enumerate(result):
            if sec.level == 1:
                result[i] = c_secs[0]
                rest = c_secs[1:]
                break
    index = {(s.level, s.title): i for i, s in reversed(list(enumerate(result)))}
    for sec in rest:
        at = index.get((sec.level, sec.title))
        if at is not None:
            result[at] = sec
        else:
            result.append(sec)
    return _join([preamble, *(s.text for s in result)])


@dataclass(frozen=True)
class Replacement:
    """A part of a child's body that replaces a part of its parent's effective body.

    `part` is "preamble" or "section"; `heading` the child's heading line ("" for the
    preamble); `child_text` and `parent_text` the two parts without their heading line;
    `line` the 0-based line of the child's part within the child's body.
    """

    part: Literal["preamble", "section"]
    heading: str
    child_text: str
    parent_text: str
    line: int


def _heading_and_rest(text: str) -> tuple[str, str]:
    first, _, rest = text.partition("\n")
    return first.rstrip("\r"), rest


def replacements(parent_body: str, child_body: str) -> list[Replacement]:
    """Every part of `child_body` that `compose(parent_body, child_body)` puts in place of a
    part of `parent_body` (rules 3 to 5 of the module docstring), in the child's order."""
    p_pre, p_secs = _split_sections(parent_body)
    c_pre, c_secs = _split_sections(child_body)
    found: list[Replacement] = []
    if c_pre.strip() and p_pre.strip():
        found.append(Replacement("preamble", "", c_pre, p_pre, 0))
    offset = len(c_pre)
    starts = []
    for sec in c_secs:
        starts.append(offset)
        offset += len(sec.text)
    remaining = list(p_secs)
    rest = list(zip(c_secs, starts, strict=True))
    if c_secs and c_secs[0].level == 1:
        for i, sec in enumerate(remaining):
            if sec.level == 1:
                heading, text = _heading_and_rest(c_secs[0].text)
                found.append(Replacement("section", heading, text,
                                         _heading_and_rest(sec.text)[1],
                                         child_body.count("\n", 0, starts[0])))
                remaining[i] = c_secs[0]
                rest = rest[1:]
                break
    index = {(s.level, s.title): s for s in reversed(remaining)}
    for sec, start in rest:
        parent = index.get((sec.level, sec.title))
        if parent is not None and parent is not sec:
            heading, text = _heading_and_rest(sec.text)
            found.append(Replacement("section", heading, text,
                                     _heading_and_rest(parent.text)[1],
                                     child_body.count("\n", 0, start)))
    return found


class Composer:
    """`compose` with a memory: each (parent body, child body) pair is composed once.

    A first load composes every chain while it streams rows and again when it resolves
    the finished snapshot; sharing one `Composer` makes the second pass a lookup. Bodies
    are compared by value, so a hit is always the right answer. Keep one per commit: it
    holds every body it composed.
    """

    def __init__(self) -> None:
        self._done: dict[tuple[str, str], str] = {}

    def __call__(self, parent_body: str, child_body: str) -> str:
        pair = (parent_body, child_body)
        body = self._done.get(pair)
        if body is None:
            body = self._done[pair] = compose(parent_body, child_body)
        return body


def resolve(key: str, personas: Mapping[str, Persona],
            max_depth: int = DEFAULT_MAX_DEPTH) -> ResolvedPersona:
    """The effective persona `key`: its chain and composed body.

    Raises `InheritanceError` when `key` does not exist, a parent is missing, the chain
    loops, or it has more than `max_depth` `extends` links.
    """
    if key not in personas:
        raise InheritanceError(f"persona '{key}' does not exist",
                               hint="persona keys are <owner>/<name>")
    found = ancestry(key, personas, max_depth)
    if found.issue is not None:
        hints = {"missing": "create the parent persona or correct `extends` (owner/name)",
                 "cycle": "remove `extends` from one persona of the cycle",
                 "depth": f"flatten the chain to at most {max_depth} extends links"}
        raise InheritanceError(f"cannot resolve '{key}': {found.describe()}",
                               hint=hints[found.issue])
    body = personas[found.chain[0]].body
    for ancestor in found.chain[1:]:
        body = compose(body, personas[ancestor].body)
    return ResolvedPersona(key=key, chain=found.chain, body=body)


def resolve_bodies(keys: Iterable[str], personas: Mapping[str, Persona],
                   max_depth: int = DEFAULT_MAX_DEPTH,
                   composer: Callable[[str, str], str] = compose) -> dict[str, str]:
    """key -> effective body (as `resolve(key).body`) for every key of `keys` whose chain
    resolves; keys that do not exist, or whose chain has a missing parent, a cycle or more
    than `max_depth` links, are left out.

    Each persona on the way is composed once, over its parent's memoised body, so resolving
    a whole repository costs one `compose` per persona instead of one per chain link.
    Pass a `Composer` already used for the same bodies to reuse its compositions.
    """
    # key -> (links, effective body), or None when its chain does not resolve.
    done: dict[str, tuple[int, str] | None] = {}
    out: dict[str, str] = {}
    for key in keys:
        if key not in personas:
            continue
        walk: list[str] = []  # from `key` up to the first known or root ancestor
        on_walk: set[str] = set()
        current: str | None = key
        above: tuple[int, str] | None = (-1, "")  # what the top of the walk composes over
        while current is not None:
            if current in done:
                above = done[current]
                break
            if current not in personas or current in on_walk:  # missing parent, or a cycle
                above = None
                break
            on_walk.add(current)
            walk.append(current)
            current = personas[current].extends or None
        for name in reversed(walk):
            entry: tuple[int, str] | None = None
            if above is not None and above[0] < max_depth:
                body = personas[name].body
                entry = (0, body) if above[0] < 0 else (above[0] + 1, composer(above[1], body))
            done[name] = above = entry
        result = done[key]
        if result is not None:
            out[key] = result[1]
    return out


def children_index(personas: Mapping[str, Persona]) -> dict[str, set[str]]:
    """parent key -> keys of the personas that extend it (parents need not exist)."""
    index: dict[str, set[str]] = {}
    for persona in personas.values():
        if persona.extends:
            index.setdefault(persona.extends, set()).add(persona.key)
    return index


def children(key: str, personas: Mapping[str, Persona]) -> list[str]:
    """Keys of the personas whose `extends` is `key`, sorted."""
    return sorted(p.key for p in personas.values() if p.extends == key)


def descendants(key: str, personas: Mapping[str, Persona] | None = None, *,
                index: Mapping[str, Iterable[str]] | None = None) -> list[str]:
    """Keys of every persona that inherits from `key`, directly or not, sorted (without
    `key`, even when a cycle leads back to it). Pass `index` (from `children_index`) to
    avoid rebuilding it for many calls."""
    if index is None:
        index = children_index(personas or {})
    seen: set[str] = {key}
    queue = deque([key])
    while queue:
        for child in index.get(queue.popleft(), ()):
            if child not in seen:
                seen.add(child)
                queue.append(child)
    seen.discard(key)
    return sorted(seen)


def find_cycles(personas: Mapping[str, Persona]) -> list[tuple[str, ...]]:
    """Every `extends` cycle once, each rotated to start at its smallest key, sorted."""
    state: dict[str, int] = {}  # 1: on the current walk, 2: done
    cycles: list[tuple[str, ...]] = []
    for start in personas:
        walk: list[str] = []
        key: str | None = start
        while key is not None and key in personas and state.get(key) is None:
            state[key] = 1
            walk.append(key)
            key = personas[key].extends or None
        if key is not None and state.get(key) == 1:
            loop = walk[walk.index(key):]
            first = loop.index(min(loop))
            cycles.append(tuple(loop[first:] + loop[:first]))
        for done in walk:
            state[done] = 2
    return sorted(cycles)
