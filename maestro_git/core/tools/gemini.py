"""Gemini CLI: `GEMINI.md`, plain Markdown with `@file` imports (FORMATS.md §4.6)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from maestro_git.core.models import Problem
from maestro_git.core.tools.format import ToolFormat
from maestro_git.core.tools.imports import import_problems

__all__ = ["GEMINI_MD"]


def _check(fmt: ToolFormat, fm: Mapping[str, Any], body: str, path: str) -> list[Problem]:
    return import_problems(body, path)


GEMINI_MD = ToolFormat(id="gemini-md", family="gemini", summary="Gemini CLI's GEMINI.md",
                       single="GEMINI.md", frontmatter=False, check=_check)
