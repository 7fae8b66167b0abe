"""`@path` imports of CLAUDE.md and GEMINI.md: found outside code, kept as written.

Both tools read `@path` (relative to the importing file; Gemini also `@./x.md`, `@../x.md`,
`@/abs.md`) anywhere in the text except inside code spans and fenced blocks, up to five hops.
maestro keeps the lines byte for byte; the importer reports the files they name (import them
explicitly to make them personas).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable

from maestro_git.core.models import Problem
from maestro_git.core.tools.common import problem

__all__ = ["MAX_CHAIN_PROBLEMS", "MAX_DEPTH", "chain_problems", "find_imports",
           "import_problems"]

MAX_DEPTH = 5  # hops Claude Code and Gemini CLI follow from the root file (FORMATS.md 4.2, 4.6)
MAX_CHAIN_PROBLEMS = 20  # problems one root file reports (a wide loop repeats itself)
_MAX_VISITS = 2_000  # files read while walking one root's imports
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


def chain_problems(path: str, text: str, read: Callable[[str], str | None], *, tool: str,
                   max_depth: int = MAX_DEPTH) -> list[Problem]:
    """The `@path` imports that start at the root file `path` (its `text`), followed the way
    the tool follows them: a loop (`tool-import-cycle`), a chain longer than `max_depth`
    hops, whose last file the tool never loads (`tool-import-depth`), and an import that
    names no file (`tool-import-missing`). Each names the chain from the root:
    `CLAUDE.md → docs/a.md → docs/b.md → docs/a.md`.

    `read(rel)` gives the text of the file at `rel` (POSIX, relative to the root's folder,
    normalised, possibly starting with `..`), or None when there is none. Absolute and home
    paths are left to `import_problems`. Pure: the caller owns the reading."""
    root = posixpath.basename(path) or path
    problems: list[Problem] = []
    seen: set[tuple[str, ...]] = set()
    visits = 0

    def report(rule: str, message: str, fix: str, line: int) -> None:
        if len(problems) < MAX_CHAIN_PROBLEMS:
            problems.append(problem(rule, path, message, fix, line=line))

    def walk(chain: list[str], body: str, first_line: int | None) -> None:
        nonlocal visits
        here = posixpath.dirname(chain[-1]) if len(chain) > 1 else ""
        for line, target in find_imports(body):
            if target.startswith(("/", "~/")):
                continue
            rel = posixpath.normpath(posixpath.join(here, target))
            at = first_line if first_line is not None else line
            names = chain
            if rel in chain:
                loop = " → ".join([*names, rel])
                if tuple(names + [rel]) not in seen:
                    seen.add(tuple(names + [rel]))
                    report("tool-import-cycle", f"the @imports loop: {loop}; {tool} stops "
                           "at the file it has already read", f"remove @{target} from "
                           f"{names[-1]}", at)
                continue
            hops = len(chain)
            if hops > max_depth:
                whole = " → ".join([*names, rel])
                report("tool-import-depth", f"the @import chain {whole} is {hops} hops; "
                       f"{tool} follows at most {max_depth}, so {rel} is never loaded",
                       f"import {rel} from a file nearer to {root}", at)
                continue
            visits += 1
            found = read(rel) if visits <= _MAX_VISITS else ""
            if found is None:
                report("tool-import-missing", f"@{target} in {names[-1]} names no file "
                       f"({rel}); {tool} loads nothing for it",
                       "fix the path (relative to the file that imports it) or remove it",
                       at)
                continue
            walk([*chain, rel], found, at)

    walk([root], text, None)
    return problems
