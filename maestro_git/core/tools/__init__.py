"""Agent-tool files ⇄ personas: Claude Code, GitHub Copilot, Cursor, AGENTS.md, Gemini CLI,
Continue and Windsurf (one module per tool family; FORMATS.md holds their keys and traps).

Rules of this package (pure: paths and bytes in, records and `Problem`s out):
- `detect(path)` says which format a file of a consuming repository is in, by its place
  (`.claude/agents/*.md`, `.github/agents/*.agent.md`, `.cursor/rules/**/*.mdc`, ...);
- `ToolFormat.parse` reads a file into a `ToolDoc` (persona fields, tool-only keys in
  `extra`, the tool's traps as problems); `ToolFormat.render` writes one back, exactly;
- `doc_for_persona` and `persona_fields` convert between a `ToolDoc` and a persona: the
  tool-only keys live in the persona's `metadata.<family>` (`metadata.claude`, ...).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

from maestro_git.core.models import Persona
from maestro_git.core.tools import agents_md, claude, continue_, copilot, cursor, gemini, windsurf
from maestro_git.core.tools.common import GENERATED_RE, ToolDoc, strip_generated
from maestro_git.core.tools.format import ToolFormat, persona_name

__all__ = [
    "FORMATS",
    "GENERATED_RE",
    "TARGETS",
    "ToolDoc",
    "ToolFormat",
    "detect",
    "doc_for_persona",
    "ignored_reason",
    "persona_fields",
    "persona_name",
    "strip_generated",
    "target",
]

FORMATS: dict[str, ToolFormat] = {f.id: f for f in (
    claude.AGENT, claude.MEMORY, claude.RULE, copilot.INSTRUCTIONS, copilot.SCOPED, copilot.PROMPT,
    copilot.AGENT, copilot.CHATMODE, cursor.RULE, agents_md.AGENTS_MD, gemini.GEMINI_MD,
    continue_.RULE, windsurf.RULE)}

# `--target` names: every format id, plus the short name of each family's main format.
TARGETS: dict[str, str] = {
    **{fid: fid for fid in FORMATS},
    "claude": "claude-agent", "claude-rules": "claude-rule", "copilot": "copilot-agent", "gemini": "gemini-md",
    "agents_md": "agents-md",
}

# (glob on the path inside a consuming repository, format id), first match wins.
_PLACES: tuple[tuple[str, str], ...] = (
    (".claude/agents/*.md", "claude-agent"),
    (".claude/rules/**.md", "claude-rule"),
    ("CLAUDE.md", "claude-md"), (".claude/CLAUDE.md", "claude-md"),
    ("CLAUDE.local.md", "claude-md"),
    (".github/copilot-instructions.md", "copilot-instructions"),
    (".github/instructions/**.instructions.md", "copilot-scoped"),
    (".github/prompts/*.prompt.md", "copilot-prompt"),
    (".github/agents/*.md", "copilot-agent"),
    (".github/chatmodes/*.chatmode.md", "copilot-chatmode"),
    (".cursor/rules/**.mdc", "cursor"),
    ("AGENTS.md", "agents-md"), ("**/AGENTS.md", "agents-md"),
    ("GEMINI.md", "gemini-md"), ("**/GEMINI.md", "gemini-md"),
    (".continue/rules/*.md", "continue"),
    (".windsurf/rules/*.md", "windsurf"),
)


def target(name: str) -> ToolFormat:
    """The format a `--target` name stands for; `KeyError` for an unknown one."""
    return FORMATS[TARGETS[name]]


def detect(path: str) -> ToolFormat | None:
    """The tool format of `path` (relative to the folder being imported), or None."""
    posix = PurePosixPath(path).as_posix()
    for pattern, fid in _PLACES:
        if _match(posix, pattern):
            return FORMATS[fid]
    return None


def _match(path: str, pattern: str) -> bool:
    # fnmatch's `*` crosses `/`; a single-star pattern must not, so compare part counts.
    if "**" not in pattern and path.count("/") != pattern.count("/"):
        return False
    return fnmatch.fnmatchcase(path, pattern.replace("**", "*"))


def ignored_reason(path: str) -> str | None:
    """Why a tool would ignore a file in one of its folders (a Markdown file in
    `.cursor/rules`, which Cursor skips), or None."""
    posix = PurePosixPath(path).as_posix()
    if posix.startswith(".cursor/rules/") and posix.endswith(".md"):
        return "Cursor ignores .md files in .cursor/rules (rules are .mdc)"
    if posix.startswith(".claude/rules/") and not posix.endswith(".md"):
        return "Claude Code reads only .md files in .claude/rules"
    return None


def doc_for_persona(fmt: ToolFormat, persona: Persona, body: str) -> ToolDoc:
    """The tool document of `persona` with `body` (the resolved instruction, for export)."""
    extra = persona.metadata.get(fmt.family)
    return ToolDoc(
        format=fmt.id, name=persona.name, body=body, display_name=persona.display_name,
        description=persona.description, model=persona.model, tools=persona.tools,
        extra=dict(extra) if isinstance(extra, Mapping) else {})


def persona_fields(fmt: ToolFormat, doc: ToolDoc) -> dict[str, Any]:
    """The frontmatter fields of a persona made from `doc` (no id, name or version)."""
    fields: dict[str, Any] = {
        "display_name": doc.display_name, "description": doc.description,
        "model": doc.model, "tools": list(doc.tools) if doc.tools is not None else None}
    if doc.extra:
        fields["metadata"] = {fmt.family: dict(doc.extra)}
    return {k: v for k, v in fields.items() if v is not None}
