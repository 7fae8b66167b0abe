"""The schema's field types with their speed paths: tokenizer replicas and memo caches.

Indexing is most of a rebuild's time, and Whoosh's analyzer chain (a Token object per word,
through four filters) was half of that. `FastText` computes a text field's postings with a
plain function giving exactly what its analyzer would; `ID` and `Keyword` remember the
postings of values that repeat across documents. With the speed paths off (`speedups`),
each of them is the Whoosh field it extends: its `index` is Whoosh's own.

The classes are pickled into the index's TOC with the schema, so they stay importable under
these names whatever the speed paths do (renaming them is a `SCHEMA_VERSION` change).

Rules of this module: every replica is pinned against its analyzer by a test
(`test_fast_postings_equal_the_analyzers`); the caches are bounded (emptied when full).
"""

from __future__ import annotations

import operator
import re
from collections import Counter
from collections.abc import Callable
from itertools import chain
from pickle import dumps
from typing import Any

from whoosh import fields, formats
from whoosh.analysis import STOP_WORDS, LowercaseFilter, RegexTokenizer, StemmingAnalyzer
from whoosh.lang.porter import stem
from whoosh.system import pack_uint

from maestro_git.search import speedups

__all__ = ["ID", "NAME_ANALYZER", "NAME_TOKENS", "TEXT", "TEXT_TOKENS", "FastText", "Keyword",
           "name_terms", "plain_stem", "stemmed", "text_terms"]

NAME_TOKENS = re.compile(r"[^\W_]+")  # code_reviewer -> code reviewer
TEXT_TOKENS = re.compile(r"\w+(?:\.?\w+)*")  # StemmingAnalyzer's tokenizer
NAME_ANALYZER = RegexTokenizer(NAME_TOKENS.pattern) | LowercaseFilter()
TEXT = StemmingAnalyzer()  # tokens, lower case, stop words (and 1-letter words), Porter stem
_STOP_WORDS = frozenset(STOP_WORDS)


def plain_stem(token: str) -> str:
    """What `TEXT` indexes for one kept token, computed each time (the plain path)."""
    found: str = stem(token.lower())
    return found


class _Stems(dict[str, str]):
    """Token -> the token as `TEXT` indexes it (lower case, then Porter stem), computed on
    the first lookup: `stemmed` is this dict's own `__getitem__`, so a cached token costs
    no Python frame (snippets map it over every token of a hit's text)."""

    def __missing__(self, token: str) -> str:
        if len(self) > 200_000:
            self.clear()
        found: str = stem(token.lower())
        self[token] = found
        return found


_STEMS = _Stems()
stemmed: Callable[[str], str] = _STEMS.__getitem__


def name_terms(text: str) -> tuple[list[str], int]:
    """What `NAME_ANALYZER` indexes for `text`: its terms and the first one's position."""
    return [t.lower() for t in NAME_TOKENS.findall(text)], 0


_TERMS: dict[str, str] = {}  # token -> its term, "" for a stop word


def _term(token: str) -> str:
    lower = token.lower()
    term = "" if len(lower) < 2 or lower in _STOP_WORDS else stemmed(lower)
    if len(_TERMS) > 200_000:
        _TERMS.clear()
    _TERMS[token] = term
    return term


def _line_terms(text: str) -> tuple[list[str], int, int]:
    """`text`'s terms (stop words dropped), how many tokens precede the first term (all of
    them if none) and how many tokens it has."""
    get = _TERMS.get
    tokens = TEXT_TOKENS.findall(text)
    mapped = list(map(get, tokens))
    if None in mapped:
        mapped = [m if m is not None else _term(t) for m, t in zip(mapped, tokens, strict=True)]
    terms = list(filter(None, mapped))
    lead = next((i for i, term in enumerate(mapped) if term), len(mapped)) if terms else len(mapped)
    return terms, lead, len(mapped)


_LINES: dict[str, tuple[list[str], int, int]] = {}  # a line of text -> `_line_terms`
_LINE_CACHE_MIN = 400  # characters; shorter texts are tokenised whole


def text_terms(text: str) -> tuple[list[str], int]:
    """What `TEXT` indexes for `text`: its terms (stop words dropped) and the first one's
    position (Whoosh's StopFilter keeps the first kept token's position, then counts on).

    A long text is tokenised line by line (no token spans a line break), and each line's
    terms are remembered: Markdown bodies repeat headings, list items and boilerplate lines
    from persona to persona, and a remembered line costs one lookup."""
    if len(text) < _LINE_CACHE_MIN:
        terms, lead, _ = _line_terms(text)
        return terms, (lead if terms else 0)
    if len(_LINES) > 100_000:
        _LINES.clear()
    terms = []
    first = -1
    before = 0  # tokens before this line, while no term has been found
    for line in text.split("\n"):
        found = _LINES.get(line)
        if found is None:
            found = _LINES[line] = _line_terms(line)
        if found[0]:
            terms += found[0]
            if first < 0:
                first = before + found[1]
        elif first < 0:
            before += found[2]
    return terms, max(first, 0)


class FastText(fields.TEXT):  # type: ignore[misc]
    """A TEXT field that computes its postings with `terms` (a plain function giving exactly
    what its analyzer would) instead of the analyzer's chain of Token objects: indexing is
    most of a rebuild's time, and the analyzer chain was half of that."""

    def __init__(self, terms: Callable[[str], tuple[list[str], int]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.terms = terms

    def index(self, value: Any, **kwargs: Any) -> Any:
        fmt = self.format
        if kwargs or not isinstance(value, str) or type(fmt) not in _FAST_FORMATS \
                or not speedups.enabled():
            return super().index(value, **kwargs)
        terms, first = self.terms(value)
        boost = fmt.field_boost
        if type(fmt) is formats.Frequency:
            return [(w.encode("utf-8"), n, n * boost, pack_uint(n))
                    for w, n in Counter(terms).items()]
        positions: dict[str, list[int]] = {}
        for pos, term in enumerate(terms, first):
            found = positions.get(term)
            if found is None:
                positions[term] = [pos]
            else:
                found.append(pos)
        encode = fmt.encode
        single = _SINGLE_POSITIONS
        found_items = []
        for w, p in positions.items():
            n = len(p)
            if n == 1:
                value = single.get(p[0]) or _single_position(p[0], encode)
            else:  # `Positions.encode(p)`: the count, then the pickled deltas
                value = pack_uint(n) + dumps(list(map(operator.sub, p, chain((0,), p))), 2)
            found_items.append((w.encode("utf-8"), n, n * boost, value))
        return found_items


_SINGLE_POSITIONS: dict[int, bytes] = {}


def _single_position(pos: int, encode: Callable[[list[int]], bytes]) -> bytes:
    """`Positions.encode([pos])`, cached: most terms occur once in a document."""
    found = _SINGLE_POSITIONS.get(pos)
    if found is None:
        found = _SINGLE_POSITIONS[pos] = encode([pos])
    return found


_FAST_FORMATS = (formats.Frequency, formats.Positions)


class _Remembered:
    """A field whose postings for a value are remembered: ids, keywords and flags repeat
    across documents (`kind`, `owner`, `set`, `tags`, …), and Whoosh's analyzer chain
    costs far more than the lookup. Only plain string values are remembered."""

    _memo: dict[str, list[Any]]

    def index(self, value: Any, **kwargs: Any) -> Any:
        if kwargs or not isinstance(value, str) or not speedups.enabled():
            return super().index(value, **kwargs)  # type: ignore[misc]
        memo = self.__dict__.get("_memo")
        if memo is None or len(memo) > 50_000:
            memo = self._memo = {}
        found = memo.get(value)
        if found is None:
            found = memo[value] = list(super().index(value))  # type: ignore[misc]
        return found

    def __getstate__(self) -> dict[str, Any]:  # the schema is pickled into the index's TOC
        state = dict(self.__dict__)
        state.pop("_memo", None)
        return state


class ID(_Remembered, fields.ID):  # type: ignore[misc]
    pass


class Keyword(_Remembered, fields.KEYWORD):  # type: ignore[misc]
    pass
