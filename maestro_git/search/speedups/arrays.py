"""Per-segment posting arrays and vectorised BM25F for plain-word queries (the only numpy
importer; no whoosh).

A plain word's first search used to decode every Whoosh posting block of the word in each
default field (a pickled, zlib-compressed block of 128 postings with their positions) and
score the postings one pair at a time: on the 10k-persona benchmark a common word (~10,000
documents) cost ~27 ms, and a two-word query twice that. A rebuild's bulk writer already
holds every posting in memory, so it also writes, beside each segment, the document numbers
and weights of every term of the default fields as flat little-endian arrays (`encode`, a
`.wsa` file named after the segment, which Whoosh deletes with its segment; its term
table is plain arrays, never a pickle). A word's
scores are then a few array operations: read (a memory map), look up the field lengths,
BM25F, add into one dense array of the index's documents (`WordScorer`).

Rules of this module:
- Scores are Whoosh's: BM25F with the searcher's idf, average field length, B and K1, the
  posting weights as Whoosh stores them (float32) and the length byte as Whoosh decodes it,
  computed in float64 in the order `whoosh.scoring.bm25` does.
- A word's scores are one float64 array over the searcher's document numbers: 0.0 where the
  word does not match (a match always scores above zero: idf and weights are positive).
- numpy is imported where scores are computed, not with the module: writing a segment's
  arrays (`encode`, a rebuild) and the commands that only write the index never load it.
- Segments without arrays (those Whoosh's writer wrote: incremental updates and their merges)
  are scored by the caller, which adds its (document, score) pairs with `add_pairs`.
"""

from __future__ import annotations

import mmap
import struct
import sys
from array import array
from collections.abc import Iterable, Mapping, Sequence
from itertools import accumulate
from pathlib import Path
from typing import Any

__all__ = ["EXTENSION", "SegmentArrays", "WordScorer", "encode", "top"]

EXTENSION = ".wsa"
_MAGIC = b"MGWSA2\x00\x00"
_HEADER = struct.Struct("<8sQ")  # magic, length of the term table
_COUNT = struct.Struct("<I")

Postings = tuple[Sequence[int], Sequence[float]]  # document numbers (ascending), weights


def encode(fields: Mapping[str, Mapping[bytes, Postings]]) -> bytes:
    """The `.wsa` file of one segment: a header, a term table and, for each term, its
    document numbers (uint32) then its weights (float32), all little-endian and aligned.

    The term table is plain arrays, no pickle: a field count, then per field its name's
    length and UTF-8 name, its term count n, n term lengths (uint32), n data offsets
    (uint64), n posting counts (uint32), the n terms' bytes back to back, padding to 8."""
    table: list[bytes] = [_COUNT.pack(len(fields))]
    chunks: list[bytes] = []
    offset = 0
    for name, terms in fields.items():
        encoded = name.encode("utf-8")
        lengths, offsets, counts = array("I"), array("Q"), array("I")
        for term, (ids, weights) in terms.items():
            count = len(ids)
            lengths.append(len(term))
            offsets.append(offset)
            counts.append(count)
            chunks.append(_little(array("I", ids)))  # from a list: far faster than numpy
            chunks.append(_little(array("f", weights)))
            offset += 8 * count
        blob = b"".join(terms)
        table += [_COUNT.pack(len(encoded)), encoded, _COUNT.pack(len(terms)),
                  _little(lengths), _little(offsets), _little(counts), blob,
                  b"\x00" * (-(len(encoded) + len(blob)) % 8)]
    head = b"".join(table)
    head += b"\x00" * (-(len(head) + _HEADER.size) % 8)
    return b"".join([_HEADER.pack(_MAGIC, len(head)), head, *chunks])


def _little(values: array[Any]) -> bytes:
    if sys.byteorder == "big":
        values.byteswap()
    return values.tobytes()


def _read_array(code: str, raw: bytes) -> array[Any]:
    values = array(code)
    values.frombytes(raw)
    if sys.byteorder == "big":
        values.byteswap()
    return values


def _decode_table(head: bytes) -> dict[str, dict[bytes, tuple[int, int]]]:
    """The term table `encode` wrote: {field: {term: (data offset, posting count)}};
    ValueError on anything else."""
    table: dict[str, dict[bytes, tuple[int, int]]] = {}
    (fields,), at = _COUNT.unpack_from(head, 0), _COUNT.size
    for _ in range(fields):
        (size,) = _COUNT.unpack_from(head, at)
        name = head[at + 4:at + 4 + size].decode("utf-8")
        at += 4 + size
        (n,) = _COUNT.unpack_from(head, at)
        at += 4
        lengths = _read_array("I", head[at:at + 4 * n])
        offsets = _read_array("Q", head[at + 4 * n:at + 12 * n])
        counts = _read_array("I", head[at + 12 * n:at + 16 * n])
        at += 16 * n
        total = sum(lengths)
        blob = head[at:at + total]
        if len(lengths) != n or len(counts) != n or len(blob) != total:
            raise ValueError("a truncated term table")
        at += total + (-(size + total) % 8)
        ends = list(accumulate(lengths))
        terms = [blob[e - k:e] for e, k in zip(ends, lengths, strict=True)]
        table[name] = dict(zip(terms, zip(offsets, counts, strict=True), strict=True))
    return table


class SegmentArrays:
    """A segment's `.wsa` file, memory-mapped (its pages are read when a term is)."""

    def __init__(self, path: Path) -> None:
        with open(path, "rb") as f:  # the map outlives the descriptor
            self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        magic, size = _HEADER.unpack_from(self._map, 0)
        if magic != _MAGIC or _HEADER.size + size > len(self._map):
            raise ValueError(f"{path.name} is not a posting-array file")
        self._table = _decode_table(self._map[_HEADER.size:_HEADER.size + size])
        self._data = _HEADER.size + size

    @classmethod
    def open(cls, path: Path) -> SegmentArrays | None:
        """The arrays at `path`, or None when there are none (or they are unreadable)."""
        try:
            return cls(path)
        except (OSError, ValueError, struct.error, UnicodeDecodeError):
            return None

    def has(self, field: str) -> bool:
        return field in self._table

    def postings(self, field: str, term: bytes) -> tuple[Any, Any] | None:
        """The term's (document numbers, weights) in this segment, None if it has none."""
        found = self._table[field].get(term)
        if found is None:
            return None
        import numpy as np

        offset, count = found
        start = self._data + offset
        if start + 8 * count > len(self._map):
            return None  # a truncated file: the caller scores from the posting blocks
        ids = np.frombuffer(self._map, dtype="<u4", count=count, offset=start)
        weights = np.frombuffer(self._map, dtype="<f4", count=count, offset=start + 4 * count)
        return ids, weights


class WordScorer:
    """One word's scores over a searcher's `size` documents, added field by field."""

    def __init__(self, size: int, lengths: Sequence[int]) -> None:
        import numpy as np

        self.scores = np.zeros(size, dtype=np.float64)
        self._lengths = np.asarray(lengths, dtype=np.float64)  # length byte -> length

    def add_bm25f(self, offset: int, ids: Any, weights: Any, column: bytes | None,
                  idf: float, avgfl: float, b: float, k1: float) -> None:
        """Add one term's BM25F scores for one segment (its documents at `offset`);
        `column` is the field's length byte per document (None: every length is 1).
        The segment's deleted documents are scored too: `drop` them once its terms are in."""
        if len(ids) == 0:
            return
        import numpy as np

        tf = weights.astype(np.float64)
        if column is None:
            fl: Any = np.ones(len(ids))
        else:
            fl = self._lengths[np.frombuffer(column, dtype=np.uint8)[ids]]
        # whoosh.scoring.bm25: idf * ((tf * (K1 + 1)) / (tf + K1 * ((1 - B) + B * fl / avgfl)))
        found = idf * ((tf * (k1 + 1)) / (tf + k1 * ((1 - b) + b * fl / avgfl)))
        self.scores[ids.astype(np.int64) + offset] += found

    def drop(self, offset: int, deleted: Iterable[int]) -> None:
        """Unscore a segment's deleted documents (segment document numbers, at `offset`)."""
        import numpy as np

        found = np.fromiter(deleted, dtype=np.int64)
        if len(found):
            self.scores[found + offset] = 0.0

    def add_pairs(self, pairs: Iterable[tuple[int, float]]) -> None:
        """Add one term's (document, score) pairs (top-level document numbers, each once)."""
        found = list(pairs)
        if found:
            import numpy as np

            docs, scores = zip(*found, strict=True)
            self.scores[np.array(docs, dtype=np.int64)] += np.array(scores, dtype=np.float64)


def top(per_word: Sequence[Any], limit: int) -> list[tuple[int, float]]:
    """The `limit` best documents matching every word, as (document, score): the sum of
    the words' scores, higher first, then lower document number. Sums go word by word."""
    import numpy as np

    matched = per_word[0] > 0
    total = per_word[0].copy()
    for scores in per_word[1:]:
        matched &= scores > 0
        total += scores
    docs = np.flatnonzero(matched)
    if len(docs) == 0 or limit <= 0:
        return []
    found = total[docs]
    if len(docs) > limit:  # everything tied with the limit-th best, then the exact order
        kth = np.partition(found, len(found) - limit)[len(found) - limit]
        keep = found >= kth
        docs, found = docs[keep], found[keep]
    order = np.lexsort((docs, -found))[:limit]
    return [(int(docs[i]), float(found[i])) for i in order]
