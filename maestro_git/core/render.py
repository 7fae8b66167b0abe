"""Markdown to HTML that is safe to display (the seed's criterion 16, on output).

Rules of this module (DESIGN.md, nh3 + markdown-it-py):
- The Markdown source is stored and mirrored verbatim: sanitising Markdown destroys code
  fences, block quotes and autolinks. Validation refuses dangerous HTML in the source
  (`content_rules`), and HTML made from it for display is sanitised here, on output.
- `render_html` renders CommonMark (with tables) through markdown-it-py and cleans the result
  with nh3's allow-list: scripts, styles, event-handler attributes and `javascript:` URLs go;
  headings, lists, emphasis, links (with `rel="noopener noreferrer"`), tables, quotes and code
  blocks (with their `language-*` class) stay.
- Nothing hidden comes out: every hidden or unstorable character (`core.chars`) left in the
  HTML, whether typed or written as a character reference (`&#8203;`, `&ZeroWidthSpace;`),
  is shown as the visible text `<U+200B>` (escaped, so it is text in element content and in
  attribute values alike). `maestro check` refuses such files; this is the second fence, for
  a rule turned off in maestro.toml or content that never passed `check`.
- Pure: text in, text out.
"""

from __future__ import annotations

import re

import nh3
from markdown_it import MarkdownIt

from maestro_git.core.chars import HIDDEN, UNSTORABLE

__all__ = ["render_html"]

_MARKDOWN = MarkdownIt("commonmark", {"html": True}).enable("table")
_ATTRIBUTES = {**nh3.ALLOWED_ATTRIBUTES, "code": {"class"}}


def _keep_language_class(tag: str, attribute: str, value: str) -> str | None:
    if attribute == "class":
        return value if tag == "code" and value.startswith("language-") else None
    return value


def _shown(match: re.Match[str]) -> str:
    return f"&lt;U+{ord(match.group(0)):04X}&gt;"


def render_html(markdown: str) -> str:
    """Safe HTML for a persona's Markdown body (or any Markdown text)."""
    # A surrogate cannot reach the HTML libraries (they take UTF-8): shown before, like NUL.
    markdown = UNSTORABLE.sub(lambda m: f"<U+{ord(m.group(0)):04X}>", markdown)
    out = nh3.clean(_MARKDOWN.render(markdown), attributes=_ATTRIBUTES,
                    attribute_filter=_keep_language_class)
    return HIDDEN.sub(_shown, out)
