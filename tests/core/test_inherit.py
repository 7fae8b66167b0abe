"""`extends`: the composition rule, chains, cycles, depth and missing parents."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maestro_git.core import inherit
from maestro_git.core.inherit import (
    ancestry,
    children,
    compose,
    descendants,
    find_cycles,
    resolve,
)
from maestro_git.core.models import Persona
from maestro_git.errors import InheritanceError


def persona(key: str, body: str = "", extends: str | None = None) -> Persona:
    owner, name = key.split("/")
    return Persona(owner=owner, name=name, path=f"personas/{key}.md", body=body,
                   extends=extends)


def table(*items: Persona) -> dict[str, Persona]:
    return {p.key: p for p in items}


PARENT = ("# Assistant\nYou are a helpful assistant.\n\n## Style\n- friendly\n\n"
          "## Rules\n- cite sources\n")
CHILD = "# Python Reviewer\nYou review Python code.\n\n## Style\n- terse\n\n## Checklist\n- tests\n"


def test_child_sections_replace_same_titled_parent_sections_in_place() -> None:
    assert compose(PARENT, CHILD) == (
        "# Python Reviewer\nYou review Python code.\n\n## Style\n- terse\n\n"
        "## Rules\n- cite sources\n\n## Checklist\n- tests\n")


def test_heading_match_ignores_case_and_spacing_but_not_level() -> None:
    parent = "## Core   Principles\n- a\n### Style\n- b\n"
    child = "## core principles\n- A\n## Style\n- C\n"
    assert compose(parent, child) == (
        "## core principles\n- A\n\n### Style\n- b\n\n## Style\n- C\n")


def test_child_preamble_replaces_parent_preamble_only_when_not_blank() -> None:
    assert compose("Intro.\n## A\nx\n", "\n\n## B\ny\n") == "Intro.\n\n## A\nx\n\n## B\ny\n"
    assert compose("Intro.\n## A\nx\n", "New intro.\n") == "New intro.\n\n## A\nx\n"


def test_headings_inside_code_fences_do_not_split_sections() -> None:
    parent = "## Example\n```md\n## Not a heading\n```\n## Rules\n- r\n"
    child = "## Rules\n- R\n~~~\n# nor this\n~~~\n"
    assert compose(parent, child) == (
        "## Example\n```md\n## Not a heading\n```\n\n## Rules\n- R\n~~~\n# nor this\n~~~\n")


def test_a_missing_final_newline_does_not_glue_sections() -> None:
    assert compose("## A\nx", "## B\ny") == "## A\nx\n\n## B\ny"


def test_composed_sections_are_separated_by_a_blank_line() -> None:
    parent = "# Base\nYou help.\n## Style\n- Be clear and concise\n"
    child = "## Expertise Areas\n- Python\n"
    assert compose(parent, child) == (
        "# Base\nYou help.\n\n## Style\n- Be clear and concise\n\n## Expertise Areas\n"
        "- Python\n")
    assert compose("## A\nx\n\n", "## B\ny\n") == "## A\nx\n\n## B\ny\n"  # no second one


def test_resolve_composes_the_whole_chain_root_first() -> None:
    personas = table(
        persona("a/root", "# Root\nYou are root.\n## One\n1\n## Two\n2\n"),
        persona("a/mid", "## Two\nTWO\n## Three\n3\n", extends="a/root"),
        persona("b/leaf", "## One\nONE\n", extends="a/mid"),
    )
    resolved = resolve("b/leaf", personas)
    assert resolved.chain == ("a/root", "a/mid", "b/leaf")
    assert resolved.body == (
        "# Root\nYou are root.\n\n## One\nONE\n\n## Two\nTWO\n\n## Three\n3\n")


def test_a_persona_without_parent_resolves_to_its_body_unchanged() -> None:
    body = "  odd\r\nbytes\n\n"
    resolved = resolve("a/x", table(persona("a/x", body)))
    assert (resolved.chain, resolved.body) == (("a/x",), body)


def test_missing_parent_raises() -> None:
    with pytest.raises(InheritanceError, match="'a/x': it extends 'a/nope', which does not"):
        resolve("a/x", table(persona("a/x", extends="a/nope")))
    with pytest.raises(InheritanceError, match="ancestor 'a/p' extends 'a/gone'"):
        resolve("a/x", table(persona("a/x", extends="a/p"), persona("a/p", extends="a/gone")))


def test_unknown_key_raises() -> None:
    with pytest.raises(InheritanceError, match="does not exist"):
        resolve("a/none", {})


def test_cycle_raises_and_is_found() -> None:
    personas = table(persona("a/x", extends="a/y"), persona("a/y", extends="a/x"),
                     persona("a/z", extends="a/x"), persona("a/self", extends="a/self"))
    with pytest.raises(InheritanceError, match="cycle a/x -> a/y -> a/x"):
        resolve("a/x", personas)
    with pytest.raises(InheritanceError, match="ancestors form the cycle"):
        resolve("a/z", personas)
    assert find_cycles(personas) == [("a/self",), ("a/x", "a/y")]


def test_depth_limit_counts_extends_links() -> None:
    personas = table(*(persona(f"a/p{i}", f"## S{i}\n", f"a/p{i - 1}" if i else None)
                       for i in range(10)))
    assert resolve("a/p8", personas, max_depth=8).chain[0] == "a/p0"
    with pytest.raises(InheritanceError, match="more than 8 extends links"):
        resolve("a/p9", personas, max_depth=8)
    assert ancestry("a/p3", personas, max_depth=2).issue == "depth"
    assert ancestry("a/p2", personas, max_depth=2).issue is None


def test_children_and_descendants() -> None:
    personas = table(persona("a/root"), persona("a/b", extends="a/root"),
                     persona("a/c", extends="a/root"), persona("a/d", extends="a/b"),
                     persona("a/x", extends="a/y"), persona("a/y", extends="a/x"))
    assert children("a/root", personas) == ["a/b", "a/c"]
    assert descendants("a/root", personas) == ["a/b", "a/c", "a/d"]
    assert descendants("a/x", personas) == ["a/y"]
    assert descendants("a/d", personas) == []


@pytest.mark.parametrize("body", [
    "", "plain text\nno headings\n", "# Title\n\nIntro.\n## Rules  ##\nBe brief.\n#no\n",
    "pre\n   ### Deep   Title \t\n text\n#\n# \n", "# A\n```\n# not a heading\n```\n## B\n",
    "# A\r\n\r\ntext\r\n## B\r\n", "# A\u2028## B\nline\n", "~~~\n# code\n~~~\n# Real\n",
])
def test_section_split_fast_path_matches_the_line_by_line_split(body: str) -> None:
    from maestro_git.core.inherit import _split_lines, _split_sections

    assert _split_sections(body) == _split_lines(body)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(["#", "## ", "   #", "    #", "#######", "\t", " ", "\n",
                                 "a", "b c", " ##", "x#", "\u00e9", "`", "~"]), max_size=40))
def test_section_split_fast_path_matches_the_line_by_line_split_on_any_text(
        parts: list[str]) -> None:
    from maestro_git.core.inherit import _split_lines, _split_sections

    body = "".join(parts)
    assert _split_sections(body) == _split_lines(body)


# -- the memoised resolution a mirror uses (equal to the plain definitions) ----------------
@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from("abcdefgh"), st.sampled_from("abcdefghxy") | st.none(),
                       max_size=8),
       st.integers(min_value=0, max_value=4))
def test_resolve_bodies_equals_resolve_for_every_chain(links: dict[str, str | None],
                                                       depth: int) -> None:
    """Chains, cycles, missing parents and too-deep chains: memoised resolution gives
    `resolve`'s body or leaves the key out where `resolve` raises."""
    personas = {f"o/{k}": Persona(owner="o", name=k, path=f"personas/o/{k}.md",
                                  body=f"# {k}\n## {k} part\ntext {k}\n## shared\n{k}\n",
                                  extends=f"o/{parent}" if parent else None)
                for k, parent in links.items()}
    expected = {}
    for key in personas:
        with contextlib.suppress(InheritanceError):
            expected[key] = inherit.resolve(key, personas, depth).body
    keys = [*personas, "o/missing"]
    assert inherit.resolve_bodies(keys, personas, depth) == expected
    assert inherit.resolve_bodies(reversed(keys), personas, depth) == expected
    composer = inherit.Composer()  # a shared memory gives the same bodies, twice
    assert inherit.resolve_bodies(keys, personas, depth, composer) == expected
    assert inherit.resolve_bodies(reversed(keys), personas, depth, composer) == expected


def test_composer_composes_each_pair_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A first load resolves with the `Composer` it streamed with: the second pass must be
    lookups, and a different body must still be composed."""
    calls: list[tuple[str, str]] = []
    real = inherit.compose

    def counting(parent: str, child: str) -> str:
        calls.append((parent, child))
        return real(parent, child)

    monkeypatch.setattr(inherit, "compose", counting)
    composer = inherit.Composer()
    parent, child = "# P\n## a\nA\n", "## a\nchild A\n"
    first = composer(parent, child)
    assert composer(parent, "".join(child)) == first == real(parent, child)
    assert len(calls) == 1
    assert composer(parent, "## b\nB\n") == real(parent, "## b\nB\n")
    assert len(calls) == 2
