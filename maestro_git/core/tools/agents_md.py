"""AGENTS.md: plain Markdown, no frontmatter, no import syntax (FORMATS.md §4.5)."""

from __future__ import annotations

from maestro_git.core.tools.format import ToolFormat

__all__ = ["AGENTS_MD"]

AGENTS_MD = ToolFormat(id="agents-md", family="agents_md", summary="AGENTS.md",
                       single="AGENTS.md", frontmatter=False)
