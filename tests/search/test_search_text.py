"""Query checks and snippets (pure: no index, no temp dirs)."""

from __future__ import annotations

import re

import pytest

from maestro_git.errors import SearchError
from maestro_git.search.query import Matcher, check_query, snippet

WORDS = re.compile(r"\w+")


def _matcher(*terms: str, prefixes: tuple[str, ...] = ()) -> Matcher:
    return Matcher(frozenset(terms), prefixes, WORDS, str.lower)


def test_snippet_marks_every_matched_word_in_text_order() -> None:
    text = "You review Code for correctness. Code review needs tests."
    assert snippet(text, _matcher("code")) == (
        "You review **Code** for correctness. **Code** review needs tests.")


def test_snippet_keeps_the_two_fragments_with_most_distinct_words() -> None:
    filler = " ".join(["lorem"] * 40)
    text = f"alpha {filler} beta gamma {filler} alpha {filler} gamma"
    out = snippet(text, _matcher("beta", "gamma", "alpha"))
    assert out.count(" … ") == 1
    assert "**beta** **gamma**" in out
    assert len(out) < 2 * 160 + 20


def test_snippet_fragments_never_repeat_text() -> None:
    text = "one match here and then another match a little later in the same line"
    out = snippet(text, _matcher("match"), maxchars=30, surround=10)
    assert out.count("another") == 1


def test_snippet_marks_prefix_matches_and_is_empty_without_match() -> None:
    assert "**migration**" in snippet("Plan migration paths.", _matcher(prefixes=("migr",)))
    assert snippet("nothing to see", _matcher("absent")) == ""


def test_check_query_names_the_unknown_field_and_lists_the_known_ones() -> None:
    with pytest.raises(SearchError, match="unknown field 'colour'") as err:
        check_query("colour:blue", {"tags", "name"})
    assert err.value.hint == "fields: name, tags"
    check_query('title:"code reviewer" AND tags:coding', {"title", "tags"})
