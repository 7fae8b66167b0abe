"""Plain-word ranking from cached per-word scores (pure: no index, no temp dirs)."""

from __future__ import annotations

from maestro_git.search_words import WordScores

SCORES = {"a": {1: 1.0, 2: 2.0, 3: 2.0}, "b": {2: 1.0, 3: 1.0, 4: 5.0}, "c": {4: 1.0}}


def test_words_intersect_sum_and_tie_on_the_lower_document() -> None:
    words = WordScores()
    assert words.top("searcher", ["a", "b"], 10, SCORES.__getitem__) == [(2, 3.0), (3, 3.0)]
    assert words.top("searcher", ["a"], 2, SCORES.__getitem__) == [(2, 2.0), (3, 2.0)]
    assert words.top("searcher", ["a", "c"], 10, SCORES.__getitem__) == []


def test_scores_are_kept_per_searcher_and_the_least_recent_word_goes_first() -> None:
    computed: list[str] = []

    def score(word: str) -> dict[int, float]:
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
