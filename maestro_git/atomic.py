"""Writing a local file atomically: a reader sees the old file or the new one, never half.

`write_atomic` writes the bytes to a temporary file in the target's folder (so the final step
is a rename within one file system) and then either `os.replace`s the target or, with
`overwrite=False`, hard-links the temporary file to the target, which fails when the target
exists, so a file that appeared meanwhile is never overwritten. Every local file maestro
writes (scaffolded personas, the working tree after a commit, exports, imports, CODEOWNERS,
backups) goes through it.

The new file keeps the permission bits of the file it replaces, or gets `0o644` (`mode`
overrides both).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["write_atomic"]


def write_atomic(path: Path, data: bytes, *, overwrite: bool = True,
                 mode: int | None = None) -> None:
    """Write `data` to `path` through a temporary file beside it (parent folders created).

    With `overwrite=False`, raises `FileExistsError` when `path` exists (a file, a folder or a
    link) and leaves it untouched. `mode` is the new file's permission bits (default: the
    replaced file's, else `0o644`).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        if mode is None:
            try:
                mode = path.stat().st_mode & 0o7777 if overwrite else 0o644
            except FileNotFoundError:
                mode = 0o644
        os.chmod(tmp, mode)
        if overwrite:
            os.replace(tmp, path)
        else:
            _link_new(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _link_new(tmp: str, path: Path) -> None:
    """Give `tmp` the name `path` only if nothing has it, then drop the name `tmp`."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: check, then rename
        if os.path.lexists(path):
            raise FileExistsError(f"{path} exists") from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)
