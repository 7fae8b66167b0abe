"""How the index's postings are read and scored: patches to Whoosh internals, and the
scoring of plain-word queries. Part of the version-guarded speed paths (`speedups`): the
patches are applied by `patch()`, which only `speedups.install()` calls, never on import.

- Patches to the pinned whoosh-reloaded 2.7.5 (same results, faster; tests pin them):
  `W3LeafMatcher.skip_to` (a binary search in a block), `W3PerDocReader.doc_field_length`
  (the length column read once), and a per-file cache of decoded posting blocks
  (`W3LeafMatcher._read_data` / `_read_ids`).
- `word_groups`: the words of a plain-word query; `score_terms`: one word's scores over the
  documents, from the bulk writer's posting arrays (`search_arrays`) where a segment has
  them, else from Whoosh's matchers and scorers.
"""

from __future__ import annotations

import bisect
import operator
import weakref
import zlib
from collections.abc import Iterator
from itertools import chain, compress, repeat
from pathlib import Path
from typing import Any

from whoosh.codec.whoosh3 import LENGTHS_COLUMN, W3LeafMatcher, W3PerDocReader, _lenfield
from whoosh.compat import loads
from whoosh.fields import FieldType, Schema
from whoosh.matching import FilterMatcher, ReadTooFar
from whoosh.query import And, Or, Query, Term
from whoosh.scoring import BM25F, BM25FScorer
from whoosh.util.numeric import byte_to_length
from whoosh.util.numlists import delta_decode

from maestro_git.search.speedups.arrays import EXTENSION, SegmentArrays, WordScorer

__all__ = ["BLOCK_CACHE_BYTES", "Word", "patch", "score_terms", "text_of", "unpatch",
           "word_groups"]


# -- patches to Whoosh internals ----------------------------------------------------------

def _skip_to(self: Any, targetid: int) -> None:
    """`W3LeafMatcher.skip_to` with a binary search inside the block: Whoosh steps through
    a block one posting at a time, which is most of the time an AND of two common words
    takes (every candidate of one word is looked up in the other)."""
    if not self.is_active():
        raise ReadTooFar
    if targetid <= self.id():
        return
    block_max_id = self.block_max_id
    if targetid > block_max_id():
        self._skip_to_block(lambda: targetid > block_max_id())
    if self.is_active() and self.id() < targetid:  # the block holds an id >= targetid
        self._i = bisect.bisect_left(self._ids, targetid, self._i)


def _doc_field_length(self: Any, docnum: int, fieldname: str, default: int = 0) -> int | None:
    """`W3PerDocReader.doc_field_length` from the length column read once into memory:
    Whoosh seeks and reads the file for every posting it writes at a commit (a third of a
    rebuild's commit) and for every document it scores. A segment's lengths never change."""
    if docnum > self._doccount:
        raise IndexError(f"Asked for docnum {docnum!r} of {self._doccount}")
    cache = self.__dict__.setdefault("_lengths_in_memory", {})
    column = cache.get(fieldname, cache)
    if column is cache:
        reader = self._cached_reader(_lenfield(fieldname), LENGTHS_COLUMN)
        column = cache[fieldname] = None if reader is None else bytes(reader)
    if column is None:
        return default
    lbyte = column[docnum]
    return byte_to_length(lbyte) if lbyte else None  # None for 0, as Whoosh does


def _length_column(reader: Any, fieldname: str) -> bytes | None:
    """The length bytes of `fieldname` in a segment reader's documents, as
    `_doc_field_length` holds them in memory (None: the field has no length column)."""
    reader.doc_field_length(0, fieldname, 1)  # reads the column into memory
    column: bytes | None = reader._perdoc.__dict__.get("_lengths_in_memory", {}).get(fieldname)
    return column


BLOCK_CACHE_BYTES = 2_000_000  # stored bytes of cached blocks per postings file (~18 MB decoded)


class _Blocks(dict[int, list[Any]]):
    """One postings file's decoded blocks by offset: [data tuple, decoded ids or None]."""

    size = 0  # the stored bytes of the blocks held


_BLOCKS: weakref.WeakKeyDictionary[Any, _Blocks] = weakref.WeakKeyDictionary()


def _block(self: Any) -> list[Any]:
    """The decoded block a `W3LeafMatcher` is at, from the cache or read into it. A full
    cache is emptied (decoded blocks take about nine times their stored size)."""
    postfile = self._postfile
    blocks = _BLOCKS.get(postfile)
    if blocks is None:
        blocks = _BLOCKS[postfile] = _Blocks()
    offset = self._dataoffset
    found = blocks.get(offset)
    if found is None:
        raw = postfile.get(offset, self._nextoffset - offset)
        found = [loads(zlib.decompress(raw) if self._compression else raw), None]
        if blocks.size + len(raw) > BLOCK_CACHE_BYTES:
            blocks.clear()
            blocks.size = 0
        blocks[offset] = found
        blocks.size += len(raw)
    return found


def _read_data(self: Any) -> None:
    """`W3LeafMatcher._read_data` through a cache of decoded blocks: Whoosh decompresses and
    unpickles a posting block (and delta-decodes its ids) each time a query reaches it,
    a fifth to a half of a search's time. A segment's postings file never changes once written,
    so its blocks are keyed by file object and offset (the cache goes with the segment
    reader that holds the file). The cached tuples are only read, never changed."""
    self._data = _block(self)[0]


def _read_ids(self: Any) -> None:
    """`W3LeafMatcher._read_ids`, the decoded ids kept with the cached block."""
    found = _block(self)
    if found[1] is None:
        ids = found[0][0]
        found[1] = ids if self._byteids else tuple(delta_decode(ids))
    self._data = found[0]
    self._ids = found[1]


# The pinned whoosh-reloaded 2.7.5; same results, faster (tests pin both). Applied by
# `speedups.install()` (never on import) and removed by `speedups.switch_off()`.
_PATCHES: tuple[tuple[type, str, Any], ...] = (
    (W3LeafMatcher, "skip_to", _skip_to),
    (W3LeafMatcher, "_read_data", _read_data),
    (W3LeafMatcher, "_read_ids", _read_ids),
    (W3PerDocReader, "doc_field_length", _doc_field_length),
)
_ORIGINALS: dict[tuple[type, str], Any] = {(cls, name): cls.__dict__[name]
                                           for cls, name, _ in _PATCHES}


def patch() -> None:
    """Put the patched methods in place (see `speedups.install`)."""
    for cls, name, replacement in _PATCHES:
        setattr(cls, name, replacement)


def unpatch() -> None:
    """Whoosh's own methods again, and no cached blocks."""
    for (cls, name), original in _ORIGINALS.items():
        setattr(cls, name, original)
    _BLOCKS.clear()


# -- plain words ------------------------------------------------------------------------

def text_of(value: Any) -> str:
    """A stored or column value as text."""
    return value.decode() if isinstance(value, bytes) else str(value or "")


# -- plain words ------------------------------------------------------------------------

Word = tuple[tuple[str, str], ...]  # one word of a query: its (field, term) in each field


def word_groups(q: Query, schema: Schema) -> list[Word] | None:
    """The words of `q` if it is an AND of words, each one `Term` or an OR of `Term`s,
    without boosts (what the multifield parser makes of plain words: one OR per word over
    the default fields; `tag:x OR word` is one such OR too), else None.

    Every term must be text in a field of `schema` whose terms are their text's UTF-8 (a
    text, keyword or id field): the parser gives `age:54` as NUMERIC-encoded bytes and
    `active:true` as a bool, which Whoosh's own search runs."""
    parts = q.subqueries if type(q) is And else [q]
    if type(q) is And and q.boost != 1.0:
        return None
    words: list[Word] = []
    for part in parts:
        if type(part) is Term:
            terms = [part]
        elif type(part) is Or and part.boost == 1.0 and not part.scale:
            terms = list(part.subqueries)
        else:
            return None
        if not terms or not all(type(t) is Term and t.boost == 1.0 and isinstance(t.text, str)
                                and _text_field(schema, t.fieldname) for t in terms):
            return None
        words.append(tuple((t.fieldname, t.text) for t in terms))
    return words or None


def _text_field(schema: Schema, fieldname: str) -> bool:
    """Whether `fieldname` is in `schema` and its terms are their text's UTF-8, as
    `score_terms` (and the words' score cache) take them."""
    return fieldname in schema.names() and \
        type(schema[fieldname]).to_bytes is FieldType.to_bytes


def score_terms(searcher: Any, word: Word) -> Any:
    """Every live document matching any term of `word`, with the sum of its scores for
    them, as one array over `searcher`'s document numbers (`search_arrays`; 0.0: no match).

    A segment the bulk writer wrote has posting arrays: its BM25F-scored terms are scored
    from them, a term at a time with array operations. Other segments (and other scorers)
    go through the matchers and scorers `Searcher.search` uses, skipping deleted documents.
    """
    scorer = WordScorer(searcher.doc_count_all(), _LENGTHS)
    schema = searcher.schema
    weighting = searcher.weighting
    bm25f = type(weighting) is BM25F
    context: Any = None
    for sub, offset in searcher.leaf_searchers():
        reader = sub.reader()
        found = _segment_arrays(reader) if bm25f else None
        for fieldname, text in word:
            field = schema[fieldname] if fieldname in schema.names() else None
            if found is not None and field is not None and field.scorable \
                    and found.has(fieldname):
                postings = found.postings(fieldname, field.to_bytes(text))
                if postings is not None:
                    scorer.add_bm25f(offset, *postings, _length_column(reader, fieldname),
                                     searcher.idf(fieldname, text),
                                     searcher.avg_field_length(fieldname) or 1,
                                     weighting._field_B.get(fieldname, weighting.B),
                                     weighting.K1)
                continue
            if context is None:
                context = searcher.context()
            m = Term(fieldname, text).matcher(sub, context)
            pairs = _block_scores(m, reader, fieldname, offset)
            scorer.add_pairs(_walk_scores(m, offset) if pairs is None else pairs)
        if found is not None and reader.has_deletions():
            scorer.drop(offset, reader.deleted_docs_set)
    return scorer.scores


_LENGTHS = tuple(byte_to_length(i) for i in range(256))  # what a length byte stands for


def _segment_arrays(reader: Any) -> SegmentArrays | None:
    """The posting arrays the bulk writer wrote beside `reader`'s segment, opened once per
    segment reader (None: the segment has none)."""
    cache = reader.__dict__
    if "_maestro_arrays" not in cache:
        storage = reader._storage
        storage = getattr(storage, "b", storage)  # a compound segment: files over the folder
        folder = getattr(storage, "folder", None)
        found = None
        if folder is not None:
            found = SegmentArrays.open(Path(folder) / reader._segment.make_filename(EXTENSION))
        cache["_maestro_arrays"] = found
    found_arrays: SegmentArrays | None = cache["_maestro_arrays"]
    return found_arrays


def _walk_scores(m: Any, offset: int) -> Iterator[tuple[int, float]]:
    is_active, docnum, score, step = m.is_active, m.id, m.score, m.next
    while is_active():
        yield offset + docnum(), score()
        step()


class _ScoreMemo(dict[tuple[float, int], float]):
    """BM25F scores by (weight, field length byte): a posting's score depends on nothing
    else, so each pair is scored once, by the scorer itself."""

    def __init__(self, scorer: Any) -> None:
        super().__init__()
        self.scorer = scorer

    def __missing__(self, key: tuple[float, int]) -> float:
        weight, lbyte = key  # the length as `_doc_field_length` gives it (-1: no column)
        length = 1 if lbyte < 0 else (byte_to_length(lbyte) if lbyte else None)
        found = self[key] = self.scorer(weight, length)
        return float(found)


def _block_scores(m: Any, reader: Any, fieldname: str, offset: int
                  ) -> Iterator[tuple[int, float]] | None:
    """The (document, score) pairs of one BM25F-scored term of a segment, a block at a time
    with the per-posting work in C; None: not such a term (the caller walks the matcher)."""
    deleted: Any = ()
    if type(m) is FilterMatcher and m._exclude:
        deleted, m = m._ids, m.child
    if type(m) is not W3LeafMatcher or type(m.scorer) is not BM25FScorer:
        return None
    column = _length_column(reader, fieldname)
    return chain.from_iterable(_blocks(m, column, deleted, offset, _ScoreMemo(m.scorer._score)))


def _blocks(m: Any, column: bytes | None, deleted: Any, offset: int, memo: _ScoreMemo
            ) -> Iterator[Iterator[tuple[int, float]]]:
    """Each block's (document, score) pairs, as an iterator made of C iterators."""
    while m.is_active():
        m._read_ids()
        m._read_weights()
        ids = m._ids
        weights = m._weights
        if deleted:
            live = list(map(operator.not_, map(deleted.__contains__, ids)))
            ids, weights = list(compress(ids, live)), list(compress(weights, live))
        lbytes = map(column.__getitem__, ids) if column is not None else repeat(-1)
        scored = map(memo.__getitem__, zip(weights, lbytes, strict=False))
        yield zip(map(offset.__add__, ids), scored, strict=False)
        m._i = m._blocklength - 1
        m.next()
