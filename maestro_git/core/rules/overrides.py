"""`placeholder-override`: a child's section that replaces its parent's with nothing real.

Pure: personas in, problems out. Under `extends`, a child section titled like one of its
parent's replaces it (see `inherit`). A scaffold left as it was, or an empty heading, then
silently deletes the parent's text from the effective instruction: the title section's
introduction, a "Core Principles" list, a safety rule. This rule reports each part of a
child's body that replaces a parent part holding text with a part that is empty or only
placeholder text (TODO, TBD, "Describe here ...", "lorem ipsum", "...", or the generic lines
`maestro new` writes into a persona without a parent).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from maestro_git.core import inherit
from maestro_git.core.models import Persona, Problem
from maestro_git.core.rules.catalogue import problem as _p
from maestro_git.errors import InheritanceError

__all__ = ["SCAFFOLD_LINES", "is_placeholder", "placeholder_overrides"]

# The generic lines `maestro new` writes for a persona without a parent (scaffold imports
# them, so the two cannot drift apart).
SCAFFOLD_LINES = (
    "- Be accurate, and say so when you are not sure",
    "- Be clear and concise",
)
# Matched against a line without its list mark: a line that starts with a to-do marker, or
# is only an ellipsis or a bracketed blank (`<your rules>`, `[fill in]`), or says so.
_MARKER = re.compile(
    r"^(?:todo|tbd|fixme|xxx)\b|^(?:\.\.\.|…|<[^<>]*>|\[[^\[\]]*\])$|lorem ipsum|"
    r"describe here|write here",
    re.IGNORECASE)
_SCAFFOLD = frozenset(line.casefold() for line in SCAFFOLD_LINES)
_LIST_MARK = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s*")


def is_placeholder(text: str) -> bool:
    """True when `text` (a section without its heading) has no line of real content: it is
    blank, or every non-blank line is a placeholder marker or a scaffold line."""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.casefold() in _SCAFFOLD:
            continue
        content = _LIST_MARK.sub("", stripped).strip()
        if not content or _MARKER.search(content):
            continue
        return False
    return True


def _count_lines(text: str) -> int:
    return sum(1 for line in text.splitlines() if line.strip())


def placeholder_overrides(rec: Persona, personas: Mapping[str, Persona],
                          max_depth: int) -> list[Problem]:
    """`placeholder-override` warnings for `rec` against its parent's effective body.

    Cheap for the common case: the parent is resolved only when `rec`'s own body has an
    empty or placeholder part at all. A chain that does not resolve gives nothing (the
    inheritance rules report it)."""
    if not rec.extends or rec.extends not in personas:
        return []
    if not _has_candidate(rec.body):
        return []
    try:
        parent = inherit.resolve(rec.extends, personas, max_depth)
    except InheritanceError:  # a broken chain is reported by the inheritance rules
        return []
    problems: list[Problem] = []
    for part in inherit.replacements(parent.body, rec.body):
        if not is_placeholder(part.child_text) or is_placeholder(part.parent_text):
            continue
        lost = _count_lines(part.parent_text)
        what = ("its introduction (the text before the first heading)" if
                part.part == "preamble" else f"the section '{part.heading.strip()}'")
        empty = "empty" if not part.child_text.strip() else "placeholder"
        problems.append(_p(
            "placeholder-override", rec.path,
            f"{what} replaces {rec.extends}'s with {empty} text: the effective instruction "
            f"loses the parent's {lost} line{'s' if lost != 1 else ''} there",
            "write this persona's own text there, give the heading a title of its own to "
            "add a section instead, or delete the part to keep the parent's",
            line=rec.body_line + part.line))
    return problems


def _has_candidate(body: str) -> bool:
    preamble, sections = inherit.split_parts(body)
    if preamble.strip() and is_placeholder(preamble):
        return True
    return any(is_placeholder(text.partition("\n")[2]) for text in sections)
