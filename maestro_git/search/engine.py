"""The Whoosh side of the search index: the schema, how its text fields are tokenised, the
query parser and the merge policy. With `index.py` (which opens, writes and reads the
index), `search_postings.py` and `search_bulk.py` the only modules that import whoosh.

- `SCHEMA`, whose field types (`speedups.fields`) compute postings with the speed paths'
  tokenizer replicas when those are on, and with Whoosh's analyzers when they are off.
- `parse_query` (Whoosh query syntax, with field aliases and `>`/`<`), rejecting what Whoosh
  would silently turn into nothing, with a one-line `SearchError`.
- `matchers`: what a snippet should mark for a query, tokenised as the indexed fields are.
- `merge_small`: the merge policy of incremental updates; `latest_searcher`: a searcher at
  the latest generation (with the speed paths on it reuses the segment readers still
  current; off, it is Whoosh's own `ix.searcher()`).
- How postings are read and plain words scored fast is in `speedups.postings`; nothing here
  patches Whoosh (`speedups.install()` does, when `SearchIndex` asks).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from whoosh import fields, qparser
from whoosh.query import And, AndNot, Not, Phrase, Prefix, Query, Term
from whoosh.reading import EmptyReader, MultiReader, SegmentReader
from whoosh.searching import Searcher

from maestro_git.core import grammar
from maestro_git.errors import SearchError
from maestro_git.search import speedups
from maestro_git.search.documents import uid as _uid
from maestro_git.search.query import Matcher
from maestro_git.search.speedups.fields import (
    ID,
    NAME_ANALYZER,
    NAME_TOKENS,
    TEXT,
    TEXT_TOKENS,
    FastText,
    Keyword,
    name_terms,
    plain_stem,
    stemmed,
    text_terms,
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
    "text_of",
    "to_whoosh",
]

SCHEMA_VERSION = 4  # recorded in the index; bump when `SCHEMA` or its tokenising changes
SMALL_SEGMENT = 1000  # documents; segments below it (or a tenth of the largest) are merged

SCHEMA = fields.Schema(
    uid=ID(unique=True, stored=True, sortable=True),
    kind=ID(stored=True),
    key=ID(stored=True),
    member=fields.STORED(),
    owner=ID(stored=True),
    name=FastText(name_terms, analyzer=NAME_ANALYZER, field_boost=5.0, stored=True,
                   phrase=False),
    display_name=FastText(name_terms, analyzer=NAME_ANALYZER, field_boost=4.0, stored=True),
    description=FastText(text_terms, analyzer=TEXT, field_boost=2.0, stored=True),
    tags=Keyword(commas=True, lowercase=True, scorable=True, field_boost=2.0, stored=True),
    category=Keyword(lowercase=True, scorable=True, stored=True),
    model=Keyword(lowercase=True),  # a persona's typed agent settings (`tool_terms`)
    tools=Keyword(commas=True, lowercase=True),
    set=Keyword(stored=True),
    status=ID(),
    extends=ID(),
    active=fields.BOOLEAN(),
    age=fields.NUMERIC(),
    metadata=FastText(text_terms, analyzer=TEXT, phrase=False),
    content=FastText(text_terms, analyzer=TEXT, stored=True),
    hash=fields.ID(sortable=True),
    commit=fields.STORED(),
    schema_version=fields.STORED(),
)

# Fields an unqualified word is looked up in, with the parser-side boost of each.
# Every one of them is scorable: a field without term weights (ID) in the default union
# turns off Whoosh's block-quality skipping and makes every query score every match.
_DEFAULT_FIELDS = ("name", "display_name", "description", "tags", "category", "metadata",
                   "content")
_ALIASES = {"tags": ["tag"], "tools": ["tool"], "set": ["in_set"], "content": ["body", "text"],
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
    if not speedups.enabled():
        if old is not None:
            old.close()
        searcher = ix.searcher()
        return searcher, searcher.reader().generation()
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
    grammar.parse(text)


_BARE = re.compile(r"[\w.,'-]+")


def _term(text: str) -> str:
    """A word as Whoosh query syntax: bare when it is plain, else single-quoted (literal)."""
    if _BARE.fullmatch(text) and not text.startswith("-") and text not in ("AND", "OR", "NOT"):
        return text
    return "'" + text.replace("'", "") + "'"


def to_whoosh(node: grammar.Node, *, top: bool = True) -> str:
    """A query tree (`core/grammar.py`) as Whoosh query syntax, which Whoosh's parser then
    analyses field by field (stems, stop words, the multifield default)."""
    if isinstance(node, grammar.Word):
        head = f"{node.field}:" if node.field else ""
        return head + (node.text + "*" if node.prefix else _term(node.text))
    if isinstance(node, grammar.Phrase):
        head = f"{node.field}:" if node.field else ""
        return head + '"' + " ".join(w.replace('"', "") for w in node.words) + '"'
    if isinstance(node, grammar.Range):
        if node.low is not None and node.high is not None:
            return f"{node.field}:[{node.low} TO {node.high}]"
        if node.high is not None:
            return f"{node.field}:<={node.high}"
        return f"{node.field}:>={node.low if node.low is not None else -(2**31)}"
    if isinstance(node, grammar.Not):
        return "NOT " + to_whoosh(node.item, top=False)
    joiner = " " if isinstance(node, grammar.And) else " OR "
    text = joiner.join(to_whoosh(item, top=False) for item in node.items)
    return text if top else f"({text})"


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
    """`text` in the query language (`core/grammar.py`) as a query over the index, or
    `SearchError`: parsed once into the grammar's tree, then given to Whoosh's parser as
    Whoosh syntax (`to_whoosh`), which applies each field's analyzer."""
    tree = grammar.parse(text)
    parser = _OR_PARSER if any_word else _AND_PARSER
    try:
        q = parser.parse(to_whoosh(tree))
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
# indexing (`TEXT`'s and `NAME_ANALYZER`'s), so a snippet marks exactly the indexed words.
# With the speed paths on, stems come from their memo (`speedups.fields.stemmed`).
_SNIPPET_FIELDS: dict[str, tuple[re.Pattern[str], Callable[[str], str] | None]] = {
    "content": (TEXT_TOKENS, None),
    "description": (TEXT_TOKENS, None),
    "display_name": (NAME_TOKENS, str.lower),
}


def text_of(value: Any) -> str:
    """A stored or column value as text."""
    return value.decode() if isinstance(value, bytes) else str(value or "")


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
    stems = stemmed if speedups.enabled() else plain_stem
    for name, (tokens, normalize) in _SNIPPET_FIELDS.items():
        if normalize is None:
            normalize = stems
        if name in terms or name in prefixes:
            found[name] = Matcher(frozenset(terms.get(name, ())),
                                  tuple(prefixes.get(name, ())), tokens, normalize)
    return found
