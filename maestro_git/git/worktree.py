"""Reading a working tree from disk into `SourceFile`s (the file-system edge of the core).

Only the content folders are read (`personas/`, `templates/`, `persona_sets/`). Symlinks are
reported as symlinks with their target, never followed, so validation can refuse links that
leave the repository. Hidden entries (a leading dot: editor swap files, `.git`) are skipped.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from maestro_git.core.models import SourceFile

__all__ = ["CONTENT_DIRS", "read_worktree"]

CONTENT_DIRS = ("personas", "templates", "persona_sets")


def _walk(directory: str, rel: str) -> Iterator[SourceFile]:
    """Files below `directory` (whose repository-relative path is `rel`), sorted by name."""
    with os.scandir(directory) as scan:
        entries = sorted((e for e in scan if not e.name.startswith(".")), key=lambda e: e.name)
    for entry in entries:
        path = f"{rel}/{entry.name}"
        if entry.is_symlink():
            yield SourceFile(path=path, data=b"", is_symlink=True,
                             link_target=os.readlink(entry.path))
        elif entry.is_dir(follow_symlinks=False):
            yield from _walk(entry.path, path)
        elif entry.is_file(follow_symlinks=False):
            with open(entry.path, "rb") as fh:
                yield SourceFile(path=path, data=fh.read())


def read_worktree(root: Path, paths: Sequence[Path] | None = None) -> Iterator[SourceFile]:
    """Every file under the content folders of `root` (or under `paths`, when given)."""
    root = root.resolve()
    tops = [Path(p).resolve() for p in paths] if paths else [root / d for d in CONTENT_DIRS]
    for top in tops:
        rel = top.relative_to(root).as_posix()
        if top.is_file():
            yield SourceFile(path=rel, data=top.read_bytes())
        elif top.is_dir():
            yield from _walk(str(top), rel)
