"""Reading a working tree from disk into `SourceFile`s (the file-system edge of the core).

Only the content folders are read (`personas/`, `templates/`, `persona_sets/`). Symlinks are
reported as symlinks with their target, never followed, so validation can refuse links that
leave the repository: a symlinked file, a symlinked owner or set folder, a content folder
that is itself a link, and a link on the way to a path asked for by name. Hidden entries (a
leading dot) are read like any other, as git reads them (validation reports them); only
editor droppings are skipped (`.a.md.swp` and other vim swap files, `.#a.md` emacs locks,
`a.md~` backups, `.~lock.a#`, vim's `4913` probe, `.DS_Store`), which are never committed
on purpose and come and go while a file is edited.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from maestro_git.core.models import SourceFile

__all__ = ["CONTENT_DIRS", "is_editor_temp", "read_worktree"]

CONTENT_DIRS = ("personas", "templates", "persona_sets")
_EDITOR_TEMP = re.compile(r"^(?:\..*\.sw[a-p]|\.#.*|.*~|\.~lock\..*#|4913|\.DS_Store)$")


def is_editor_temp(name: str) -> bool:
    """Whether a file name is an editor's temporary file (a swap file, lock or backup)."""
    return _EDITOR_TEMP.match(name) is not None


def _link(path: str, full: str) -> SourceFile:
    return SourceFile(path=path, data=b"", is_symlink=True, link_target=os.readlink(full))


def _walk(directory: str, rel: str) -> Iterator[SourceFile]:
    """Files below `directory` (whose repository-relative path is `rel`), sorted by name."""
    with os.scandir(directory) as scan:
        entries = sorted((e for e in scan if not is_editor_temp(e.name)), key=lambda e: e.name)
    for entry in entries:
        path = f"{rel}/{entry.name}"
        if entry.is_symlink():
            yield _link(path, entry.path)
        elif entry.is_dir(follow_symlinks=False):
            yield from _walk(entry.path, path)
        elif entry.is_file(follow_symlinks=False):
            with open(entry.path, "rb") as fh:
                yield SourceFile(path=path, data=fh.read())


def _absolute(root: Path, path: Path) -> Path:
    """`path` made absolute without following links inside the repository."""
    full = Path(os.path.abspath(path))
    if full.is_relative_to(root):
        return full
    return full.parent.resolve() / full.name  # e.g. the repository reached through a link


def read_worktree(root: Path, paths: Sequence[Path] | None = None) -> Iterator[SourceFile]:
    """Every file under the content folders of `root` (or under `paths`, when given)."""
    root = root.resolve()
    tops = [_absolute(root, Path(p)) for p in paths] if paths else \
        [root / d for d in CONTENT_DIRS]
    for top in tops:
        rel = top.relative_to(root).as_posix()
        link = next((p for p in (top, *top.parents) if p != root and p.is_relative_to(root)
                     and p.is_symlink()), None)
        if link is not None:  # the path itself, or a folder on the way, is a link
            yield _link(link.relative_to(root).as_posix(), str(link))
        elif top.is_file():
            yield SourceFile(path=rel, data=top.read_bytes())
        elif top.is_dir():
            yield from _walk(str(top), rel)
