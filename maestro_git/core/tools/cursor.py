"""Cursor rules: `.cursor/rules/**/*.mdc` (FORMATS.md §4.4).

Traps: a quoted `alwaysApply: "true"` is read as false; plain `.md` files in `.cursor/rules`
are ignored. `globs` is written as Cursor writes it, an unquoted comma-separated string (not
strict YAML when it starts with `*`: it is read as text here), and a YAML list is accepted.
"""

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
                                f"alwaysApply is {value!r}, a string: Cursor reads it as false",
                                "write alwaysApply: true (unquoted)", line=1))
    globs = fm.get("globs")
    if globs is not None and not (isinstance(globs, str) or (
            isinstance(globs, list) and all(isinstance(g, str) for g in globs))):
        problems.append(problem("tool-invalid-value", path,
                                "globs must be a comma-separated string or a list of globs",
                                "write globs: src/**/*.ts,test/**/*.ts", line=1))
    return problems


RULE = ToolFormat(
    id="cursor", family="cursor", summary="a Cursor rule", folder=".cursor/rules",
    suffix=".mdc", keys={"description": "description"},
    order=("description", "globs", "alwaysApply"), raw_keys=("globs",), check=_check)
