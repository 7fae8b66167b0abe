"""`placeholder-override`: a child part that replaces its parent's with nothing real."""

from __future__ import annotations

from maestro_git.core.inherit import replacements
from maestro_git.core.models import Persona
from maestro_git.core.rules.overrides import is_placeholder, placeholder_overrides

PARENT = (
    "# Code Reviewer\n\nYou review code for security and clarity.\n\n"
    "## Core Principles\n- Never approve code that logs secrets\n- Explain every finding\n\n"
    "## Communication Style\n- Point at the exact line\n"
)
# What `maestro new --extends` wrote in the last wave: the blank scaffold.
OLD_SCAFFOLD_CHILD = (
    "# Child\n\n\n"
    "## Core Principles\n- Be accurate, and say so when you are not sure\n\n"
    "## Communication Style\n- Be clear and concise\n"
)


def persona(key: str, body: str, extends: str | None = None, body_line: int = 6) -> Persona:
    owner, name = key.split("/")
    return Persona(name=name, owner=owner, path=f"personas/{key}.md", body=body,
                   extends=extends, body_line=body_line)


def test_replacements_name_each_replaced_part_with_its_line() -> None:
    found = replacements(PARENT, OLD_SCAFFOLD_CHILD)
    assert [(r.part, r.heading, r.line) for r in found] == [
        ("section", "# Child", 0),
        ("section", "## Core Principles", 3),
        ("section", "## Communication Style", 6)]
    assert found[1].parent_text.startswith("- Never approve code that logs secrets")


def test_an_appended_section_replaces_nothing() -> None:
    assert replacements(PARENT, "## Python\n- Prefer pathlib\n") == []


def test_placeholder_text_is_recognised_and_real_text_is_not() -> None:
    assert is_placeholder("")
    assert is_placeholder("\n\n")
    assert is_placeholder("- TODO\n")
    assert is_placeholder("Describe here who you are.\n")
    assert is_placeholder("- Be clear and concise\n")
    assert is_placeholder("...\n")
    assert is_placeholder("- \n")
    assert not is_placeholder("- Never approve code that logs secrets\n")
    assert not is_placeholder("- Be clear and concise\n- Cite the OWASP rule\n")
    assert not is_placeholder("- Mention the todo list only when asked\n")
    assert is_placeholder("- TODO: the team's rules\n- <your rules here>\n")


def test_old_scaffold_child_is_warned_for_each_part_it_wipes_out() -> None:
    personas = {"acme/reviewer": persona("acme/reviewer", PARENT),
                "acme/child": persona("acme/child", OLD_SCAFFOLD_CHILD, "acme/reviewer")}
    problems = placeholder_overrides(personas["acme/child"], personas, 8)
    assert [(p.rule, p.line, p.severity.value) for p in problems] == [
        ("placeholder-override", 6, "warning"),
        ("placeholder-override", 9, "warning"),
        ("placeholder-override", 12, "warning")]
    assert problems[1].message == (
        "the section '## Core Principles' replaces acme/reviewer's with placeholder text: the "
        "effective instruction loses the parent's 2 lines there")
    assert problems[0].message.startswith("the section '# Child' replaces acme/reviewer's "
                                          "with empty text")
    assert problems[0].fix.startswith("write this persona's own text there")


def test_a_child_with_real_overrides_or_appended_sections_is_clean() -> None:
    child = ("## Core Principles\n- Never approve code that logs secrets or tokens\n\n"
             "## Python\n- TODO\n")
    personas = {"acme/reviewer": persona("acme/reviewer", PARENT),
                "acme/child": persona("acme/child", child, "acme/reviewer")}
    assert placeholder_overrides(personas["acme/child"], personas, 8) == []


def test_a_grandparents_section_counts_through_the_effective_parent() -> None:
    personas = {
        "acme/base": persona("acme/base", "## Safety\n- Never run rm -rf\n"),
        "acme/mid": persona("acme/mid", "## Style\n- Short answers\n", "acme/base"),
        "acme/leaf": persona("acme/leaf", "## Safety\n\n", "acme/mid")}
    problems = placeholder_overrides(personas["acme/leaf"], personas, 8)
    assert [p.message for p in problems] == [
        "the section '## Safety' replaces acme/mid's with empty text: the effective "
        "instruction loses the parent's 1 line there"]


def test_replacing_a_placeholder_with_a_placeholder_is_not_reported() -> None:
    personas = {"acme/base": persona("acme/base", "## Notes\n- TODO\n"),
                "acme/leaf": persona("acme/leaf", "## Notes\n\n", "acme/base")}
    assert placeholder_overrides(personas["acme/leaf"], personas, 8) == []


def test_a_broken_chain_gives_no_placeholder_warning() -> None:
    personas = {"acme/leaf": persona("acme/leaf", "## Notes\n\n", "acme/gone")}
    assert placeholder_overrides(personas["acme/leaf"], personas, 8) == []
