"""Plain-word queries ranked from cached per-word scores (pure: no whoosh, no I/O).

Most searches are a few plain words (`code reviewer`): every word must match, in any of the
default fields, and a document's score is the sum of its BM25F scores for each word in each
field. Whoosh answers these by walking a union of matchers over the default fields for each
word, intersected across words, in Python, one matching document at a time; common words
match thousands of documents, and that walk was most of a search's time.

Here the scores of one word (all its default-field terms, summed per document) are computed
once per searcher by `score_word` (Whoosh's BM25F, from the bulk writer's posting arrays or
Whoosh's own matchers and scorers, so the values are Whoosh's) as one array over the
documents, and kept in a small LRU; a query then intersects the words' documents, sums
their scores and keeps the best with array operations (`search_arrays.top`).

Rules of this module:
- The cache belongs to one searcher (one committed generation of the index): a new searcher
  empties it, so a cached score never outlives the documents it was computed from.
- Ranking is Whoosh's: higher score first, then lower document number. A score is the
  document's full sum, which is what Whoosh gives when it scores that document alone. Its
  walk over an intersection of unions sometimes leaves out a field's score for a word
  (whoosh-reloaded 2.7.5, with or without this project's patches), so a search could rank a
  document matching a word in two fields below its due; here it cannot. Sums go word by
  word, so they may differ from Whoosh's matcher-tree order in a float's last bits.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Any

from maestro_git.search.speedups.arrays import top as _top

__all__ = ["WordScores"]

Scores = Any  # one word's scores: a float64 array over the documents (`search_arrays`)

MAX_WORDS = 64  # words kept per searcher (8 bytes a document each: 120 KB on the 10k bench)


class WordScores:
    """Values kept for the current searcher, most recently used kept: per-word document
    scores (`top`), or any other value of that searcher (`peek`/`put`, the index's kept
    answers). Another searcher's first `put` empties it."""

    def __init__(self, max_words: int = MAX_WORDS) -> None:
        self.max_words = max_words
        self._owner: object | None = None
        self._words: OrderedDict[Hashable, Scores] = OrderedDict()

    def top(self, owner: object, words: Sequence[Hashable], limit: int,
            score_word: Callable[[Any], Scores]) -> list[tuple[int, float]]:
        """The `limit` best documents having every word, as (document, score), best first.

        `owner` is the searcher the scores are for (another one empties the cache);
        `score_word(word)` gives one word's scores when they are not cached."""
        per_word = []
        for word in words:
            found = self.peek(owner, word)
            if found is None:
                found = score_word(word)
                self.put(owner, word, found)
            per_word.append(found)
        return _top(per_word, limit)

    def peek(self, owner: object, key: Hashable) -> Any:
        """What `put` kept under `key` for `owner` (None: nothing, or another owner's)."""
        if owner is not self._owner:
            return None
        found = self._words.get(key)
        if found is not None:
            self._words.move_to_end(key)
        return found

    def put(self, owner: object, key: Hashable, value: Any) -> None:
        """Keep `value` under `key` for `owner` (another owner's entries go first)."""
        if owner is not self._owner:
            self._words.clear()
            self._owner = owner
        self._words[key] = value
        while len(self._words) > self.max_words:
            self._words.popitem(last=False)

    def clear(self) -> None:
        self._words.clear()
        self._owner = None
