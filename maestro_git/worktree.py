"""Reading a working tree from disk into `SourceFile`s (the file-system edge of the core).

Only the content folders are read (`personas/`, `templates/`, `persona_sets/`). Symlinks are
reported as symlinks with their target, never followed, so validation can refuse links that
leave the repository.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from maestro_git.models import SourceFile

__all__ = ["CONTENT_DIRS", "read_worktree"]

CONTENT_DIRS = ("personas", "templates", "persona_sets")


def _walk(root: Path, top: Path) -> Iterator[SourceFile]:
    for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            full = Path(dirpath) / name
            rel = full.relative_to(root).as_posix()
            if full.is_symlink():
                yield SourceFile(path=rel, data=b"", is_symlink=True,
                                 link_target=os.readlink(full))
            else:
                yield SourceFile(path=rel, data=full.read_bytes())
        for name in dirnames:
            full = Path(dirpath) / name
            if full.is_symlink():
                rel = full.relative_to(root).as_posix()
                yield SourceFile(path=rel, data=b"", is_symlink=True,
                                 link_target=os.readlink(full))


def read_worktree(root: Path, paths: Sequence[Path] | None = None) -> Iterator[SourceFile]:
    """Every file under the content folders of `root` (or under `paths`, when given)."""
    root = root.resolve()
    tops = [Path(p).resolve() for p in paths] if paths else [root / d for d in CONTENT_DIRS]
    for top in tops:
        if top.is_file():
            yield SourceFile(path=top.relative_to(root).as_posix(), data=top.read_bytes())
        elif top.is_dir():
            yield from _walk(root, top)
