"""Continue rules: `.continue/rules/*.md` (FORMATS.md §4.7)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from maestro_git.core.models import Problem
from maestro_git.core.tools.common import problem
from maestro_git.core.tools.format import ToolFormat

__all__ = ["RULE"]


def _check(fmt: ToolFormat, fm: Mapping[str, Any], body: str, path: str) -> list[Problem]:
    problems: list[Problem] = []
    value = fm.get("alwaysApply")
    if value is not None and not isinstance(value, bool):
        problems.append(problem("tool-quoted-boolean", path,
                                f"alwaysApply is {value!r}, not a YAML boolean",
                                "write alwaysApply: true or false (unquoted)", line=1))
    for key in ("globs", "regex"):
        value = fm.get(key)
        if value is not None and not (isinstance(value, str) or (
                isinstance(value, list) and all(isinstance(v, str) for v in value))):
            problems.append(problem("tool-invalid-value", path,
                                    f"{key} must be a string or a list of strings",
                                    f"write {key}: as text or a list", line=1))
    return problems


RULE = ToolFormat(
    id="continue", family="continue", summary="a Continue rule", folder=".continue/rules",
    keys={"display_name": "name", "description": "description"},
    order=("name", "description", "globs", "regex", "alwaysApply"), check=_check)
