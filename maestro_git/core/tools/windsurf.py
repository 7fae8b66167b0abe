"""Windsurf rules: `.windsurf/rules/*.md` (FORMATS.md §4.8); 12,000 characters a file."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from maestro_git.core.models import Problem
from maestro_git.core.tools.common import problem
from maestro_git.core.tools.format import ToolFormat

__all__ = ["RULE"]

_TRIGGERS = ("always_on", "manual", "model_decision", "glob")


def _check(fmt: ToolFormat, fm: Mapping[str, Any], body: str, path: str) -> list[Problem]:
    problems: list[Problem] = []
    trigger = fm.get("trigger")
    if trigger is not None and trigger not in _TRIGGERS:
        problems.append(problem("tool-invalid-value", path,
                                f"trigger '{trigger}' is not one of {', '.join(_TRIGGERS)}",
                                f"use one of: {', '.join(_TRIGGERS)}", line=1))
    if trigger == "glob" and not fm.get("globs"):
        problems.append(problem("tool-invalid-value", path,
                                "trigger: glob without globs never applies",
                                "add globs: <pattern>", line=1))
    if trigger == "model_decision" and not fm.get("description"):
        problems.append(problem("tool-required-key", path,
                                "trigger: model_decision without a description is never "
                                "chosen", "add description: ...", line=1))
    return problems


RULE = ToolFormat(
    id="windsurf", family="windsurf", summary="a Windsurf rule", folder=".windsurf/rules",
    keys={"description": "description"}, order=("trigger", "description", "globs"),
    raw_keys=("globs",), max_chars=12_000, limit_counts_file=True, check=_check)
