"""What the pages compute, without a server: hidden characters, diffs, section sources,
charts and member changes."""

from __future__ import annotations

import re

from maestro_git.server.web import views


def test_hidden_characters_become_labelled_markers_and_text_is_escaped() -> None:
    html = views.visible("a\u200bb <b>\u202e\t")
    assert str(html) == (
        'a<span class="hidden-char" title="U+200B ZERO WIDTH SPACE">⟦U+200B⟧</span>b '
        '&lt;b&gt;<span class="hidden-char" title="U+202E RIGHT-TO-LEFT OVERRIDE">⟦U+202E⟧'
        '</span><span class="hidden-char" title="U+0009 TAB">⟦U+0009⟧</span>')
    assert views.hidden_characters("x\u00a0y\u200bz\u200b") == (
        "U+00A0 NO-BREAK SPACE", "U+200B ZERO WIDTH SPACE")
    assert views.hidden_characters("plain text\nwith lines") == ()
    assert views.hidden_characters("bidi \u2066x\u2069, tag \U000e0041, private \ue000") == (
        "U+2066 LEFT-TO-RIGHT ISOLATE", "U+2069 POP DIRECTIONAL ISOLATE", "U+E0041 TAG LATIN "
        "CAPITAL LETTER A", "U+E000 UNNAMED")
    assert str(views.visible("a < b\n")) == "a &lt; b\n"


def test_diff_lines_are_classified() -> None:
    lines = views.diff_lines("--- a/x\n+++ b/x\n@@ -1 +1 @@\n-old\n+new\u200b\n same\n")
    assert [line.kind for line in lines] == ["file", "file", "hunk", "del", "add", "context"]
    assert "⟦U+200B⟧" in lines[4].html


def test_each_resolved_section_names_the_persona_that_supplied_it() -> None:
    root = "# Base\n\nBe polite.\n\n## Safety\n\nNo secrets.\n"
    child = "# Child\n\nChild text.\n\n## Style\n\nShort answers.\n"
    resolved = "# Child\n\nChild text.\n\n## Safety\n\nNo secrets.\n\n## Style\n\nShort answers.\n"
    sections = views.attribute_sections((("a/base", root), ("a/child", child)), resolved)
    assert [(s.heading, s.source) for s in sections] == [
        ("Child", "a/child"), ("Safety", "a/base"), ("Style", "a/child")]


def test_sections_of_an_ancestor_outside_the_scope_are_not_named() -> None:
    child = "## Style\n\nShort.\n"
    resolved = "# Base\n\nHidden rules.\n\n## Style\n\nShort.\n"
    sections = views.attribute_sections(((None, None), ("a/child", child)), resolved)
    assert [(s.heading, s.source) for s in sections] == [("Base", None), ("Style", "a/child")]


def test_score_charts_are_inline_svg_with_a_title_and_one_bar_per_score() -> None:
    items = views.score_items({"relevance": 0.81, "nested": {"x": 2}, "note": "text",
                               "flag": True})
    assert items == (("relevance", 0.81), ("nested.x", 2.0))
    svg = str(views.bar_chart(items, "RQE <scores>"))
    assert svg.startswith('<svg class="chart" role="img"')
    assert "<title>RQE &lt;scores&gt;</title>" in svg
    assert len(re.findall(r'class="chart-bar"', svg)) == 2
    assert views.score_items(0.5) == (("score", 0.5),)
    assert str(views.bar_chart((), "nothing")) == ""


def test_member_changes_name_added_removed_and_changed_fields() -> None:
    old = {"personas": [{"name": "A", "age": 30}, {"name": "B", "age": 40}]}
    new = {"personas": [{"name": "A", "age": 31, "city": "Oslo"}, {"name": "C"}]}
    changes = views.member_changes(old, new)
    assert [(c.name, c.change) for c in changes] == [
        ("A", "changed"), ("C", "added"), ("B", "removed")]
    assert changes[0].fields == (("age", "30", "31"), ("city", "(absent)", '"Oslo"'))
    assert views.member_changes(old, old) == []


def test_a_body_on_a_page_has_no_images_and_its_headings_sit_under_the_page_h1() -> None:
    html = views.for_page('<h1>T</h1><h2>S</h2><h6>deep</h6><p><img src="x" alt="a">'
                          '<a href="https://e.x" rel="noopener noreferrer">l</a>'
                          '<code class="language-py">c</code></p>')
    assert str(html) == ('<h3>T</h3><h4>S</h4><h6>deep</h6><p>'
                         '<a href="https://e.x" rel="noopener noreferrer">l</a>'
                         '<code class="language-py">c</code></p>')
