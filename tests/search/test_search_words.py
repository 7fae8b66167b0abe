"""Plain-word ranking from cached per-word scores (pure: no index, no temp dirs)."""

from __future__ import annotations

from typing import Any

import numpy as np

from maestro_git.search.speedups.arrays import WordScorer, encode, top
from maestro_git.search.speedups.words import WordScores


def _dense(scores: dict[int, float], size: int = 6) -> Any:
    out = np.zeros(size)
    for doc, score in scores.items():
        out[doc] = score
    return out


SCORES = {"a": _dense({1: 1.0, 2: 2.0, 3: 2.0}), "b": _dense({2: 1.0, 3: 1.0, 4: 5.0}),
          "c": _dense({4: 1.0})}


def test_words_intersect_sum_and_tie_on_the_lower_document() -> None:
    words = WordScores()
    assert words.top("searcher", ["a", "b"], 10, SCORES.__getitem__) == [(2, 3.0), (3, 3.0)]
    assert words.top("searcher", ["a"], 2, SCORES.__getitem__) == [(2, 2.0), (3, 2.0)]
    assert words.top("searcher", ["a"], 1, SCORES.__getitem__) == [(2, 2.0)]
    assert words.top("searcher", ["a", "c"], 10, SCORES.__getitem__) == []


def test_scores_are_kept_per_searcher_and_the_least_recent_word_goes_first() -> None:
    computed: list[str] = []

    def score(word: str) -> Any:
        computed.append(word)
        return SCORES[word]

    words = WordScores(max_words=2)
    words.top("one", ["a", "b"], 5, score)
    words.top("one", ["a"], 5, score)
    assert computed == ["a", "b"]  # both cached
    words.top("one", ["c"], 5, score)  # evicts b, the least recently used
    words.top("one", ["a", "b"], 5, score)
    assert computed == ["a", "b", "c", "b"]
    words.top("two", ["a"], 5, score)  # another searcher: nothing cached is used
    assert computed[-1] == "a"


def test_top_keeps_every_tie_at_the_limit_in_document_order() -> None:
    scores = np.array([0.0, 3.0, 1.0, 3.0, 3.0, 2.0, 3.0])
    assert top([scores], 2) == [(1, 3.0), (3, 3.0)]
    assert top([scores], 5) == [(1, 3.0), (3, 3.0), (4, 3.0), (6, 3.0), (5, 2.0)]
    assert top([scores, scores], 0) == []


def test_bm25f_is_whooshs_formula_and_skips_deleted_documents() -> None:
    from whoosh.scoring import bm25

    lengths = list(range(256))
    scorer = WordScorer(8, lengths)
    column = bytes([0, 3, 9, 1, 4])
    ids, weights = np.array([1, 2, 4], dtype="<u4"), np.array([1.0, 2.5, 5.0], dtype="<f4")
    scorer.add_bm25f(3, ids, weights, column, 1.7, 4.2, 0.75, 1.2)
    scorer.add_pairs([(4, 0.5)])
    scorer.drop(3, {2})
    expected = [0.0] * 8
    expected[4] = bm25(1.7, 1.0, 3, 4.2, 0.75, 1.2) + 0.5
    expected[7] = bm25(1.7, 5.0, 4, 4.2, 0.75, 1.2)
    assert scorer.scores.tolist() == expected


def test_encoded_arrays_read_back(tmp_path: Any) -> None:
    from maestro_git.search.speedups.arrays import SegmentArrays

    path = tmp_path / "seg.wsa"
    path.write_bytes(encode({"content": {b"review": ([0, 5, 9], [1.0, 2.0, 0.5])},
                             "tags": {b"x": ([2], [2.0])}}))
    found = SegmentArrays.open(path)
    assert found is not None and found.has("tags") and not found.has("name")
    postings = found.postings("content", b"review")
    assert postings is not None
    assert postings[0].tolist() == [0, 5, 9] and postings[1].tolist() == [1.0, 2.0, 0.5]
    assert found.postings("content", b"absent") is None
    (tmp_path / "bad.wsa").write_bytes(b"nothing here")
    assert SegmentArrays.open(tmp_path / "bad.wsa") is None
    assert SegmentArrays.open(tmp_path / "missing.wsa") is None


def test_the_term_table_is_not_a_pickle_and_damage_reads_as_no_arrays(tmp_path: Any) -> None:
    from maestro_git.search.speedups.arrays import SegmentArrays

    data = encode({"content": {b"review": ([0, 5, 9], [1.0, 2.0, 0.5]), b"caf\xc3\xa9": ([1], [1.0])},
                   "name": {}})
    assert b"\x80\x05" not in data[:40] and b"pickle" not in data  # no pickle protocol header
    path = tmp_path / "seg.wsa"
    path.write_bytes(data)
    found = SegmentArrays.open(path)
    assert found is not None and found.has("name")
    postings = found.postings("content", "café".encode())
    assert postings is not None and postings[0].tolist() == [1]
    for cut in range(1, len(data)):  # every truncation is no arrays or fewer postings, no error
        path.write_bytes(data[:cut])
        opened = SegmentArrays.open(path)
        if opened is not None:
            assert opened.postings("content", b"review") in (None,) or \
                opened.postings("content", b"review")[0].tolist() == [0, 5, 9]
