"""GitHub Copilot: repository instructions, scoped instructions, prompt files, custom agents
and legacy chat modes (FORMATS.md §4.3).

Traps: a custom agent needs `description`; its body is cut at 30,000 characters on
github.com; `user-invocable` was once spelled `user-invokable` and a prompt's `agent` was
`mode` (both spellings are read; both at once is an error, since the tool reads one); `infer`
is retired; in VS Code an instructions file without `applyTo` is never applied by itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from maestro_git.core.models import Problem
from maestro_git.core.tools.common import problem
from maestro_git.core.tools.format import ToolFormat

__all__ = ["AGENT", "CHATMODE", "INSTRUCTIONS", "PROMPT", "SCOPED"]

_TARGETS = {"vscode", "github-copilot"}
_EXCLUDE = {"code-review", "coding-agent"}


def _check_agent(fmt: ToolFormat, fm: Mapping[str, Any], body: str, path: str
                 ) -> list[Problem]:
    problems: list[Problem] = []
    if "infer" in fm:
        problems.append(problem("tool-deprecated-key", path,
                                "'infer' is retired: Copilot no longer reads it",
                                "use disable-model-invocation and user-invocable", line=1))
    target = fm.get("target")
    if target is not None and target not in _TARGETS:
        problems.append(problem("tool-invalid-value", path,
                                f"target '{target}' is not vscode or github-copilot",
                                "remove target (both) or use one of those", line=1))
    for key in ("disable-model-invocation", "user-invocable", "user-invokable"):
        if key in fm and not isinstance(fm[key], bool):
            problems.append(problem("tool-quoted-boolean", path,
                                    f"{key} is {fm[key]!r}, not a YAML boolean",
                                    f"write {key}: true or false (unquoted)", line=1))
    meta = fm.get("metadata")
    if meta is not None and not (isinstance(meta, dict) and all(
            isinstance(v, str) for v in meta.values())):
        problems.append(problem("tool-invalid-value", path,
                                "metadata must map strings to strings on github.com",
                                "quote every metadata value", line=1))
    return problems


def _check_scoped(fmt: ToolFormat, fm: Mapping[str, Any], body: str, path: str
                  ) -> list[Problem]:
    problems: list[Problem] = []
    if "applyTo" not in fm:
        problems.append(problem("tool-invalid-value", path,
                                "no applyTo: VS Code never applies this file by itself",
                                'add applyTo: "**" (all files) or a glob', line=1))
    elif not isinstance(fm["applyTo"], str):
        problems.append(problem("tool-invalid-value", path,
                                "applyTo must be one string (globs separated by commas)",
                                'write applyTo: "**/*.ts,**/*.tsx"', line=1))
    exclude = fm.get("excludeAgent")
    if exclude is not None and exclude not in _EXCLUDE:
        problems.append(problem("tool-invalid-value", path,
                                f"excludeAgent '{exclude}' is not code-review or coding-agent",
                                "use one of those", line=1))
    return problems


def _check_chatmode(fmt: ToolFormat, fm: Mapping[str, Any], body: str, path: str
                    ) -> list[Problem]:
    return [problem("tool-deprecated-key", path,
                    "chat modes are legacy: VS Code loads them as custom agents",
                    "move it to .github/agents/<name>.agent.md", line=1)]


_AGENT_KEYS = {"display_name": "name", "description": "description", "tools": "tools",
               "model": "model"}

INSTRUCTIONS = ToolFormat(
    id="copilot-instructions", family="copilot",
    summary="Copilot's repository instructions", single=".github/copilot-instructions.md",
    keys={"display_name": "name", "description": "description"})

SCOPED = ToolFormat(
    id="copilot-scoped", family="copilot", summary="a Copilot instructions file",
    folder=".github/instructions", suffix=".instructions.md",
    keys={"display_name": "name", "description": "description"},
    order=("name", "description", "applyTo", "excludeAgent"), check=_check_scoped)

PROMPT = ToolFormat(
    id="copilot-prompt", family="copilot", summary="a Copilot prompt file",
    folder=".github/prompts", suffix=".prompt.md", keys=_AGENT_KEYS,
    order=("name", "description", "argument-hint", "agent", "mode", "model", "tools"),
    quote_lists=True, aliases={"mode": "agent"})

AGENT = ToolFormat(
    id="copilot-agent", family="copilot", summary="a Copilot custom agent",
    folder=".github/agents", suffix=".agent.md", keys=_AGENT_KEYS,
    order=("name", "description", "target", "tools", "model"), quote_lists=True,
    aliases={"user-invokable": "user-invocable"}, required=("description",),
    max_chars=30_000, check=_check_agent)

CHATMODE = ToolFormat(
    id="copilot-chatmode", family="copilot", summary="a Copilot chat mode",
    folder=".github/chatmodes", suffix=".chatmode.md",
    keys={"description": "description", "tools": "tools", "model": "model"},
    order=("description", "tools", "model"), quote_lists=True, check=_check_chatmode)
