"""`@path` imports of CLAUDE.md and GEMINI.md: found outside code, kept as written.

Both tools read `@path` (relative to the importing file; Gemini also `@./x.md`, `@../x.md`,
`@/abs.md`) anywhere in the text except inside code spans and fenced blocks, up to five hops.
maestro keeps the lines byte for byte; the importer reports the files they name (import them
explicitly to make them personas).
"""

from __future__ import annotations

import re

from maestro_git.core.models import Problem
from maestro_git.core.tools.common import problem

__all__ = ["MAX_DEPTH", "find_imports", "import_problems"]

MAX_DEPTH = 5
_FENCE = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,})")
_SPAN = re.compile(r"`+[^`]*`+")
_IMPORT = re.compile(r"(?:^|(?<=\s))@((?:\.{1,2}/|/|~/)?[\w.-][\w./-]*)")


def find_imports(text: str) -> list[tuple[int, str]]:
    """(line, path) of every `@path` import outside code, in order."""
    found: list[tuple[int, str]] = []
    fence: str | None = None
    for number, line in enumerate(text.split("\n"), start=1):
        opened = _FENCE.match(line)
        if fence is not None:
            if opened and opened.group(1)[0] == fence[0] and len(opened.group(1)) >= len(fence):
                fence = None
            continue
        if opened:
            fence = opened.group(1)
            continue
        for match in _IMPORT.finditer(_SPAN.sub(lambda m: " " * len(m[0]), line)):
            target = match.group(1).rstrip(".")
            if "/" in target or "." in target:
                found.append((number, target))
    return found


def import_problems(text: str, path: str) -> list[Problem]:
    """Imports that the tool cannot follow from a repository (absolute or home paths)."""
    return [problem("tool-import-missing", path,
                    f"@{target} is outside the repository; the persona's readers will not "
                    "have it", "import a path relative to this file", line=line)
            for line, target in find_imports(text) if target.startswith(("/", "~/"))]
