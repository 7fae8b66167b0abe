"""Claude Code: subagents (`.claude/agents/<name>.md`), memory (`CLAUDE.md`) and project
rules (`.claude/rules/**/*.md`).

Subagent traps (FORMATS.md §4.1): without `description` the agent is silently ignored; an
empty `hooks` (`hooks: []`) silently drops it; `name` is lowercase letters and hyphens. The
body is the whole system prompt. `CLAUDE.md` is plain Markdown whose `@path` imports
(`imports.find_imports`) are kept as written. A rule is Markdown with an optional `paths:`
(a glob or a list of globs): with it the rule loads when Claude works on a matching file,
without it at launch, like `.claude/CLAUDE.md` (FORMATS.md §4.2). Trap: Cursor's `globs` /
`alwaysApply` in a rule are not read, so the rule silently loads for every file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from maestro_git.core.models import Problem
from maestro_git.core.tools.common import problem
from maestro_git.core.tools.format import ToolFormat
from maestro_git.core.tools.imports import import_problems

__all__ = ["AGENT", "MEMORY", "RULE"]

_NAME = re.compile(r"^[a-z][a-z0-9-]*$")
_MODELS = {"sonnet", "opus", "haiku", "inherit"}
_CHOICES: dict[str, frozenset[str]] = {
    "permissionMode": frozenset({"default", "acceptEdits", "auto", "dontAsk",
                                 "bypassPermissions", "plan"}),
    "memory": frozenset({"user", "project", "local"}),
    "effort": frozenset({"low", "medium", "high", "xhigh", "max"}),
    "isolation": frozenset({"worktree"}),
    "color": frozenset({"red", "blue", "green", "yellow", "purple", "orange", "pink", "cyan"}),
}


def _check_agent(fmt: ToolFormat, fm: Mapping[str, Any], body: str, path: str
                 ) -> list[Problem]:
    problems: list[Problem] = []
    if "hooks" in fm and (not isinstance(fm["hooks"], dict) or not fm["hooks"]):
        problems.append(problem(
            "tool-dropped-file", path,
            f"'hooks: {fm['hooks']!r}' is not a mapping of hook events: Claude Code silently "
            "drops the whole agent", "remove 'hooks' or give it PreToolUse/PostToolUse/Stop "
            "entries", line=1))
    name = fm.get("name")
    if isinstance(name, str) and not _NAME.match(name):
        problems.append(problem("tool-invalid-value", path,
                                f"name '{name}' is not lowercase letters and hyphens",
                                "write the name like 'code-reviewer'", line=1))
    model = fm.get("model")
    if model is not None and not (isinstance(model, str) and (
            model in _MODELS or model.startswith("claude-"))):
        problems.append(problem("tool-invalid-value", path,
                                f"model '{model}' is not sonnet, opus, haiku, inherit or a "
                                "claude-… model id", "use one of those", line=1))
    for key, allowed in _CHOICES.items():
        value = fm.get(key)
        if value is not None and value not in allowed:
            problems.append(problem("tool-invalid-value", path,
                                    f"{key} '{value}' is not one of {', '.join(sorted(allowed))}",
                                    f"use one of: {', '.join(sorted(allowed))}", line=1))
    for key in ("maxTurns",):
        if key in fm and (not isinstance(fm[key], int) or isinstance(fm[key], bool)):
            problems.append(problem("tool-invalid-value", path, f"{key} must be an integer",
                                    f"write {key}: 10", line=1))
    if "background" in fm and not isinstance(fm["background"], bool):
        problems.append(problem("tool-quoted-boolean", path,
                                f"background is {fm['background']!r}, not a YAML boolean",
                                "write background: true (unquoted)", line=1))
    return problems


def _check_memory(fmt: ToolFormat, fm: Mapping[str, Any], body: str, path: str
                  ) -> list[Problem]:
    return import_problems(body, path)


def _check_rule(fmt: ToolFormat, fm: Mapping[str, Any], body: str, path: str
                ) -> list[Problem]:
    problems: list[Problem] = []
    for key in ("globs", "alwaysApply"):
        if key in fm:
            problems.append(problem(
                "tool-invalid-value", path, f"'{key}' is Cursor's key: Claude Code does not "
                "read it in a rule, so this rule loads for every file",
                "scope the rule with paths: [\"src/**/*.ts\"], or remove the key to load it "
                "always", line=1))
    paths = fm.get("paths")
    if "paths" in fm and not (isinstance(paths, str) and paths.strip() or isinstance(
            paths, list) and paths and all(isinstance(p, str) and p.strip() for p in paths)):
        problems.append(problem(
            "tool-invalid-value", path, "paths must be a glob or a list of globs",
            'write paths: ["src/**/*.ts"] (quoted), or remove paths to load the rule always',
            line=1))
    return problems + import_problems(body, path)


AGENT = ToolFormat(
    id="claude-agent", family="claude", summary="a Claude Code subagent",
    folder=".claude/agents", suffix=".md",
    keys={"name": "name", "description": "description", "tools": "tools", "model": "model"},
    order=("name", "description", "tools", "model"), tools_style="comma",
    required=("description",), hyphen_names=True, check=_check_agent)

MEMORY = ToolFormat(
    id="claude-md", family="claude", summary="Claude Code's CLAUDE.md", single="CLAUDE.md",
    frontmatter=False, check=_check_memory)

RULE = ToolFormat(
    id="claude-rule", family="claude", summary="a Claude Code rule", folder=".claude/rules",
    suffix=".md", order=("paths",), check=_check_rule)
