"""Query text checks and highlighted snippets (pure; no whoosh, no I/O).

Rules of this module:
- `check_query` rejects what Whoosh would silently turn into nothing, with a one-line reason
  (`SearchError`).
- `snippet` marks matched words as `**word**` in up to two fragments of about 160
  characters, joined with ` … `. It scans the stored text once with the same tokenizer the
  field was indexed with and a cached normaliser (lower case, stem), instead of re-running
  the full Whoosh analyzer chain and highlighter on every hit.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from itertools import compress

from maestro_git.errors import SearchError

__all__ = ["Matcher", "check_query", "snippet"]

_FIELD_RE = re.compile(r"(?:^|[\s(+-])(\w+):")
_OPERATORS = {"AND", "OR", "NOT", "ANDNOT", "ANDMAYBE"}


def check_query(text: str, fields: Collection[str]) -> None:
    """Raise `SearchError` for an empty or malformed query; `fields` are the names allowed
    before a colon."""
    if not text.strip():
        raise SearchError("empty search query", hint='try e.g. maestro search "code review"')
    if text.count('"') % 2:
        raise SearchError("unbalanced quotes in the query", hint='close the phrase: "…"')
    depth = 0
    for ch in text:
        depth += (ch == "(") - (ch == ")")
        if depth < 0:
            break
    if depth != 0:
        raise SearchError("unbalanced parentheses in the query")
    if text.count("[") != text.count("]") or text.count("{") != text.count("}"):
        raise SearchError("unbalanced range brackets in the query",
                          hint="write a range as age:[50 TO 59]")
    outside = re.sub(r'"[^"]*"', "PHRASE", text)  # a phrase is an operand (and a value)
    for name in _FIELD_RE.findall(outside):
        if name not in fields:
            raise SearchError(f"unknown field '{name}' in the query",
                              hint="fields: " + ", ".join(sorted(fields)))
    if re.search(r"\w+:(\s|$)", outside):
        raise SearchError("a field in the query has no value", hint="write e.g. tag:coding")
    words = outside.split()
    if words and (words[-1] in _OPERATORS or words[0] in _OPERATORS - {"NOT"}):
        raise SearchError("a boolean operator in the query has nothing on one side",
                          hint="write e.g. coding AND review")


@dataclass(frozen=True)
class Matcher:
    """The words a query looks for in one field, in that field's indexed form: exact
    `terms`, and `prefixes` (from `word*`). `tokens` is the field's tokenizer and
    `normalize` maps a token to its indexed term (e.g. lower case, then stem)."""

    terms: frozenset[str]
    prefixes: tuple[str, ...]
    tokens: re.Pattern[str]
    normalize: Callable[[str], str]

    def __bool__(self) -> bool:
        return bool(self.terms or self.prefixes)

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Where the text has a matched word, as (start, end) character offsets. The tokens
        are found, normalised and tested with map/compress (C loops), not one by one."""
        matches = list(self.tokens.finditer(text))
        normalized = map(self.normalize, map(re.Match.group, matches))
        if self.prefixes:
            prefixes, terms = self.prefixes, self.terms
            hits: Iterable[bool] = [t in terms or t.startswith(prefixes) for t in normalized]
        else:
            hits = map(self.terms.__contains__, normalized)
        return list(map(re.Match.span, compress(matches, hits)))


def snippet(text: str, matcher: Matcher, *, maxchars: int = 160, surround: int = 50,
            top: int = 2, between: str = " … ") -> str:
    """Up to `top` fragments of `text` around its matched words (most matches first, shown in
    text order), each word marked `**word**`; "" when nothing matches."""
    spans = matcher.spans(text)
    if not spans:
        return ""
    fragments: list[tuple[int, int, list[tuple[int, int]]]] = []
    i = 0
    previous_end = 0
    while i < len(spans):
        first = spans[i]
        group = [first]
        i += 1
        while i < len(spans) and spans[i][1] - first[0] + 2 * surround <= maxchars:
            group.append(spans[i])
            i += 1
        start = max(previous_end, first[0] - surround)
        end = min(len(text), group[-1][1] + surround)
        if i < len(spans):  # fragments never overlap: stop before the next match
            end = min(end, spans[i][0])
        fragments.append((start, end, group))
        previous_end = end
    best = sorted(fragments, key=lambda f: (-len({text[a:b].lower() for a, b in f[2]}),
                                            -len(f[2]), f[0]))[:top]
    return between.join(_marked(text, start, end, group)
                        for start, end, group in sorted(best, key=lambda f: f[0]))


def _marked(text: str, start: int, end: int, group: list[tuple[int, int]]) -> str:
    """text[start:end] cut at whole words, with each span in `group` marked."""
    if start > 0:
        cut = text.find(" ", start, group[0][0])
        start = cut + 1 if cut != -1 else start
    if end < len(text):
        cut = text.rfind(" ", group[-1][1], end)
        end = cut if cut != -1 else end
    out: list[str] = []
    pos = start
    for a, b in group:
        out.append(text[pos:a])
        out.append("**" + text[a:b] + "**")
        pos = b
    out.append(text[pos:end])
    return "".join(out)
