"""The Whoosh side of the search index: the schema, how its text fields are tokenised, the
query parser and the merge policy. With `index.py` (which opens, writes and reads the
index), `search_postings.py` and `search_bulk.py` the only modules that import whoosh.

- `SCHEMA` with `_FastText`, a TEXT field that computes its postings with a plain function
  giving exactly what its analyzer would (indexing is most of a rebuild's time).
- `parse_query` (Whoosh query syntax, with field aliases and `>`/`<`), rejecting what Whoosh
  would silently turn into nothing, with a one-line `SearchError`.
- `matchers`: what a snippet should mark for a query, tokenised as the indexed fields are.
- `merge_small`: the merge policy of incremental updates; `latest_searcher`: a searcher at
  the latest generation that reuses the segment readers still current.
- How postings are read and plain words scored (and the patches to Whoosh internals, applied
  when this module is imported, which `index.py` does) is in `search_postings.py`; this
  module re-exports its `score_terms`, `text_of` and `word_groups`.
"""

from __future__ import annotations

import operator
import re
from collections import Counter
from collections.abc import Callable, Iterator
from itertools import chain
from pickle import dumps
from typing import Any

from whoosh import fields, formats, qparser
from whoosh.analysis import STOP_WORDS, LowercaseFilter, RegexTokenizer, StemmingAnalyzer
from whoosh.lang.porter import stem
from whoosh.query import And, AndNot, Not, Phrase, Prefix, Query, Term
from whoosh.reading import EmptyReader, MultiReader, SegmentReader
from whoosh.searching import Searcher
from whoosh.system import pack_uint

from maestro_git.errors import SearchError
from maestro_git.search.documents import uid as _uid
from maestro_git.search.query import Matcher
from maestro_git.search.query import check_query as _check_query_fields
from maestro_git.search.speedups.postings import (  # applies the patches
    score_terms,
    text_of,
    word_groups,
)

__all__ = [
    "FIELDS",
    "PLAIN_WORDS",
    "SCHEMA",
    "SCHEMA_VERSION",
    "check_query",
    "deletions",
    "latest_searcher",
    "matchers",
    "merge_small",
    "parse_query",
    "score_terms",
    "text_of",
    "word_groups",
]

SCHEMA_VERSION = 2  # recorded in the index; bump when `SCHEMA` or its tokenising changes
SMALL_SEGMENT = 1000  # documents; segments below it (or a tenth of the largest) are merged

_NAME_TOKENS = re.compile(r"[^\W_]+")  # code_reviewer -> code reviewer
_TEXT_TOKENS = re.compile(r"\w+(?:\.?\w+)*")  # StemmingAnalyzer's tokenizer
_NAME_ANALYZER = RegexTokenizer(_NAME_TOKENS.pattern) | LowercaseFilter()
_TEXT = StemmingAnalyzer()  # tokens, lower case, stop words (and 1-letter words), Porter stem
_STOP_WORDS = frozenset(STOP_WORDS)
class _Stems(dict[str, str]):
    """Token -> the token as `_TEXT` indexes it (lower case, then Porter stem), computed on
    the first lookup: `_stemmed` is this dict's own `__getitem__`, so a cached token costs
    no Python frame (snippets map it over every token of a hit's text)."""

    def __missing__(self, token: str) -> str:
        if len(self) > 200_000:
            self.clear()
        found: str = stem(token.lower())
        self[token] = found
        return found


_STEMS = _Stems()
_stemmed: Callable[[str], str] = _STEMS.__getitem__


def _name_terms(text: str) -> tuple[list[str], int]:
    """What `_NAME_ANALYZER` indexes for `text`: its terms and the first one's position."""
    return [t.lower() for t in _NAME_TOKENS.findall(text)], 0


_TERMS: dict[str, str] = {}  # token -> its term, "" for a stop word


def _term(token: str) -> str:
    lower = token.lower()
    term = "" if len(lower) < 2 or lower in _STOP_WORDS else _stemmed(lower)
    if len(_TERMS) > 200_000:
        _TERMS.clear()
    _TERMS[token] = term
    return term


def _line_terms(text: str) -> tuple[list[str], int, int]:
    """`text`'s terms (stop words dropped), how many tokens precede the first term (all of
    them if none) and how many tokens it has."""
    get = _TERMS.get
    tokens = _TEXT_TOKENS.findall(text)
    mapped = list(map(get, tokens))
    if None in mapped:
        mapped = [m if m is not None else _term(t) for m, t in zip(mapped, tokens, strict=True)]
    terms = list(filter(None, mapped))
    lead = next((i for i, term in enumerate(mapped) if term), len(mapped)) if terms else len(mapped)
    return terms, lead, len(mapped)


_LINES: dict[str, tuple[list[str], int, int]] = {}  # a line of text -> `_line_terms`
_LINE_CACHE_MIN = 400  # characters; shorter texts are tokenised whole


def _text_terms(text: str) -> tuple[list[str], int]:
    """What `_TEXT` indexes for `text`: its terms (stop words dropped) and the first one's
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


class _FastText(fields.TEXT):  # type: ignore[misc]
    """A TEXT field that computes its postings with `terms` (a plain function giving exactly
    what its analyzer would) instead of the analyzer's chain of Token objects: indexing is
    most of a rebuild's time, and the analyzer chain was half of that."""

    def __init__(self, terms: Callable[[str], tuple[list[str], int]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.terms = terms

    def index(self, value: Any, **kwargs: Any) -> Any:
        fmt = self.format
        if kwargs or not isinstance(value, str) or type(fmt) not in _FAST_FORMATS:
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
        if kwargs or not isinstance(value, str):
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


class _ID(_Remembered, fields.ID):  # type: ignore[misc]
    pass


class _Keyword(_Remembered, fields.KEYWORD):  # type: ignore[misc]
    pass

SCHEMA = fields.Schema(
    uid=_ID(unique=True, stored=True, sortable=True),
    kind=_ID(stored=True),
    key=_ID(stored=True),
    member=fields.STORED(),
    owner=_ID(stored=True),
    name=_FastText(_name_terms, analyzer=_NAME_ANALYZER, field_boost=5.0, stored=True,
                   phrase=False),
    display_name=_FastText(_name_terms, analyzer=_NAME_ANALYZER, field_boost=4.0, stored=True),
    description=_FastText(_text_terms, analyzer=_TEXT, field_boost=2.0, stored=True),
    tags=_Keyword(commas=True, lowercase=True, scorable=True, field_boost=2.0, stored=True),
    category=_Keyword(lowercase=True, scorable=True, stored=True),
    set=_Keyword(stored=True),
    status=_ID(),
    extends=_ID(),
    active=fields.BOOLEAN(),
    age=fields.NUMERIC(),
    metadata=_FastText(_text_terms, analyzer=_TEXT, phrase=False),
    content=_FastText(_text_terms, analyzer=_TEXT, stored=True),
    hash=fields.ID(sortable=True),
    commit=fields.STORED(),
    schema_version=fields.STORED(),
)

# Fields an unqualified word is looked up in, with the parser-side boost of each.
# Every one of them is scorable: a field without term weights (ID) in the default union
# turns off Whoosh's block-quality skipping and makes every query score every match.
_DEFAULT_FIELDS = ("name", "display_name", "description", "tags", "category", "metadata",
                   "content")
_ALIASES = {"tags": ["tag"], "set": ["in_set"], "content": ["body", "text"],
            "display_name": ["title"]}
FIELDS: tuple[str, ...] = tuple(sorted(
    {n for n in SCHEMA.names() if n not in ("uid", "hash", "commit", "schema_version", "member")}
    | {a for names in _ALIASES.values() for a in names}))


# -- merging ------------------------------------------------------------------------------

def merge_small(writer: Any, segments: list[Any]) -> list[Any]:
    """A Whoosh merge policy: every small segment (incremental updates write one per
    commit) into one, leaving the large ones a rebuild wrote. Whoosh's MERGE_SMALL merges
    only a few of them per call, so a burst of updates kept dozens of segments."""
    largest = max((seg.doc_count_all() for seg in segments), default=0)
    limit = max(SMALL_SEGMENT, largest // 10)
    small = [seg for seg in segments if seg.doc_count_all() < limit]
    if len(small) < 2:
        return segments
    for seg in small:
        reader = SegmentReader(writer.storage, writer.schema, seg)
        writer.add_reader(reader)
        reader.close()
    return [seg for seg in segments if seg not in small]


# -- reading and deleting -----------------------------------------------------------------

def _renew_deletions(reader: Any, segment: Any) -> None:
    """Point a reused segment reader at its segment's current deletion set."""
    reader._segment = segment
    reader.__dict__.pop("deleted_docs_set", None)  # a cached_property of the old set
    perdoc = getattr(reader, "_perdoc", None)
    if perdoc is not None and hasattr(perdoc, "_segment"):
        perdoc._segment = segment


def latest_searcher(ix: Any, old: Any, *, reuse: bool) -> tuple[Any, int]:
    """A searcher at `ix`'s latest committed generation, and that generation.

    With `reuse`, the segment readers of `old` (a searcher of the same index directory) are
    reused for segments still there, pointed at their current deletion sets; the others are
    closed. Without it, `old` (if any) is closed."""
    toc = ix._read_toc()
    reusable: dict[str | None, Any] = {}
    if old is not None and reuse:
        reusable = {getattr(r, "_segid", None): r for r, _ in old.reader().leaf_readers()}
    elif old is not None:
        old.close()
    readers = []
    for seg in toc.segments:
        reader = reusable.pop(seg.segment_id(), None)
        if reader is None:
            reader = SegmentReader(ix.storage, toc.schema, seg, generation=toc.generation)
        elif reader._segment is not seg:
            _renew_deletions(reader, seg)
        readers.append(reader)
    for leftover in reusable.values():
        leftover.close()
    if not readers:
        combined: Any = EmptyReader(toc.schema)
    elif len(readers) == 1:
        combined = readers[0]
    else:
        combined = MultiReader(readers, generation=toc.generation)
    return Searcher(combined, fromindex=ix), toc.generation


def deletions(kind: str, key: str) -> list[Query]:
    """Queries matching every document of one entity (a set: its members too)."""
    found: list[Query] = [Term("uid", _uid(kind, key))]
    if kind == "persona_set":
        found.append(Term("set", key) & Term("kind", "set_member"))
    return found


# -- query parsing ------------------------------------------------------------------------

def check_query(text: str) -> None:
    """Reject what Whoosh would silently turn into nothing, with a one-line reason."""
    _check_query_fields(text, FIELDS)


def _errors(q: Query) -> list[str]:
    found = [str(q.error)] if getattr(q, "error", None) else []
    for child in q.children():
        found += _errors(child)
    return found


def _parser(group: type[qparser.syntax.GroupNode] | Any = qparser.AndGroup
            ) -> qparser.QueryParser:
    parser = qparser.MultifieldParser(list(_DEFAULT_FIELDS), SCHEMA, group=group)
    parser.add_plugin(qparser.FieldAliasPlugin(_ALIASES))
    parser.add_plugin(qparser.GtLtPlugin())
    return parser


_AND_PARSER = _parser()
_OR_PARSER = _parser(qparser.OrGroup.factory(0.9))


def parse_query(text: str, *, any_word: bool = False) -> Query:
    """`text` in Whoosh query syntax as a query over the index, or `SearchError`."""
    check_query(text)
    parser = _OR_PARSER if any_word else _AND_PARSER
    try:
        q = parser.parse(text)
    except Exception as exc:  # whoosh raises assorted errors on odd input
        raise SearchError(f"cannot parse the query: {exc}") from exc
    errors = _errors(q)
    if errors:
        raise SearchError(f"cannot parse the query: {errors[0]}")
    return _positional_phrases(q)


def _positional_phrases(q: Query) -> Query:
    """A phrase over a field without positions (tags, owner, …) as all of its words, since
    Whoosh refuses such a phrase and the multifield parser asks every field for it."""
    if isinstance(q, Phrase):
        field = SCHEMA[q.fieldname] if q.fieldname in SCHEMA.names() else None
        if field is None or not field.format or not field.format.supports("positions"):
            return And([Term(q.fieldname, w) for w in q.words])
        return q
    return q.apply(_positional_phrases)


# -- snippets -----------------------------------------------------------------------------

PLAIN_WORDS = re.compile(r"^[\w\s'.,-]+$")
# The fields a snippet comes from, in order, each with its tokenizer and normaliser at
# indexing (`_TEXT`'s and `_NAME_ANALYZER`'s), so a snippet marks exactly the indexed words.
_SNIPPET_FIELDS: dict[str, tuple[re.Pattern[str], Callable[[str], str]]] = {
    "content": (_TEXT_TOKENS, _stemmed),
    "description": (_TEXT_TOKENS, _stemmed),
    "display_name": (_NAME_TOKENS, str.lower),
}


def _positive_leaves(q: Query) -> Iterator[Query]:
    """The leaf queries a hit matched (not those under NOT)."""
    if isinstance(q, Not):
        return
    if isinstance(q, AndNot):
        yield from _positive_leaves(q.a)
    elif q.is_leaf():
        yield q
    else:
        for child in q.children():
            yield from _positive_leaves(child)


def matchers(q: Query) -> dict[str, Matcher]:
    """For each snippet field the query searched, what to mark in it."""
    terms: dict[str, set[str]] = {}
    prefixes: dict[str, list[str]] = {}
    for leaf in _positive_leaves(q):
        name = leaf.field()
        if name not in _SNIPPET_FIELDS:
            continue
        if isinstance(leaf, Prefix):
            prefixes.setdefault(name, []).append(str(leaf.text))
        elif isinstance(leaf, Phrase):
            terms.setdefault(name, set()).update(str(w) for w in leaf.words)
        elif isinstance(leaf, Term):
            terms.setdefault(name, set()).add(text_of(leaf.text))
    found = {}
    for name, (tokens, normalize) in _SNIPPET_FIELDS.items():
        if name in terms or name in prefixes:
            found[name] = Matcher(frozenset(terms.get(name, ())),
                                  tuple(prefixes.get(name, ())), tokens, normalize)
    return found
