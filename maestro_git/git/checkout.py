"""A library commit on the checked-out branch: the branch, the index and the files move together.

`commit_checked_out` holds git's `index.lock` (`maestro_git.git.locks.IndexLock`) from before
the compare-and-swap on the branch until the new index is renamed into place:

1. under the lock, the branch must still be at `base` (else `StaleHeadError`: the caller
   re-plans on the new head or reports the conflict);
2. every path the write touches must be, in the index and on disk, exactly as at `base`
   (else `DirtyWorktreeError`): a human's uncommitted edit of that file is never overwritten,
   and because maestro writers update these under the same lock, a file another writer has
   just committed is never mistaken for one;
3. the new index is prepared: the index read under the lock with only the touched paths'
   entries replaced by the new blobs, so whatever the human has staged for other paths stays
   staged and their other edits stay untouched;
4. the commit moves the branch (`write_commit`, compare-and-swap) and the prepared index is
   renamed into place at once, so the moment where the branch is new and the index old (a
   `git commit` that reads HEAD then, and the index just before, would commit the old
   entries back) is as short as a rename;
5. the touched files are written, and the lock is released a moment later
   (`IndexLock`'s linger).

Git's own `git commit` reads the index before it takes the lock and writes that copy back
under it. The lock is kept `LINGER_SECONDS` past the rename, so a `git commit` that read the
old index finds the lock still held and exits ("index.lock: File exists"; run again, it reads
the new index). A git process stalled for longer than that between its read and its lock
could still write the old entries back: that is git's own race with any index writer (two
git commands race the same way) and cannot be closed from outside git.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pygit2
from pygit2.enums import FileMode

from maestro_git.atomic import write_atomic
from maestro_git.errors import GitError
from maestro_git.git.locks import IndexLock
from maestro_git.git.write import Identity, StaleHeadError, write_commit

if TYPE_CHECKING:
    from maestro_git.git.repo import GitRepo

__all__ = ["DirtyWorktreeError", "commit_checked_out", "commit_series_checked_out",
           "sync_worktree"]


class DirtyWorktreeError(GitError):
    """Files a write touches have uncommitted changes (staged or not) in the working tree."""

    def __init__(self, paths: Sequence[str]) -> None:
        super().__init__(f"{paths[0]} has uncommitted changes in the working tree")
        self.paths = list(paths)


@contextmanager
def _locked_at(git: GitRepo, branch: str, base: str | None, deadline: float
               ) -> Iterator[IndexLock]:
    """git's `index.lock`, held while `branch` is still at `base` (StaleHeadError if not)."""
    with IndexLock(Path(git.repo.path), deadline) as lock:
        current = git.head(branch)
        if current != base:
            raise StaleHeadError(branch, current)
        yield lock


def commit_checked_out(git: GitRepo, branch: str, base: str | None,
                       changes: Mapping[str, bytes | None], author: Identity,
                       committer: Identity, message: str, deadline: float) -> str:
    """Commit `changes` on `branch` (checked out in `git`'s working tree) on top of `base`,
    and bring the index and the files in line, all under `index.lock` (steps 1-5 above).
    `deadline` (a `time.monotonic()`) bounds the wait for the lock."""
    root = _root(git)
    paths = sorted(changes)
    with _locked_at(git, branch, base, deadline) as lock:
        assert lock.index is not None
        dirty = _dirty(git, lock.index, root, paths, base)
        if dirty:
            raise DirtyWorktreeError(dirty)
        blobs = {path: None if data is None else str(git.repo.create_blob(data))
                 for path, data in changes.items()}
        _stage(lock.index, blobs)
        lock.write()  # ready before the branch moves, in place right after it
        commit = write_commit(git, branch, base, changes, author, committer, message)
        lock.commit()
        _write_files(git, root, commit, paths)
    return commit


def commit_series_checked_out(git: GitRepo, branch: str, base: str | None,
                              write: Callable[[str | None], list[str]],
                              paths: Sequence[str], deadline: float) -> list[str]:
    """`write(base)` (which commits a series on `branch` and returns the new ids, in order)
    and then `paths` brought in line with the last one in the index and the files, all under
    one `index.lock`: a human `git commit` can neither run in between nor write an index
    that lacks the series' files (a migration's replay)."""
    root = _root(git)
    with _locked_at(git, branch, base, deadline) as lock:
        assert lock.index is not None
        ids = write(base)
        if ids:
            _stage(lock.index, {path: git.blob_id(ids[-1], path) for path in paths})
            lock.commit()
            _write_files(git, root, ids[-1], paths)
    return ids


def sync_worktree(git: GitRepo, commit: str, paths: Sequence[str], deadline: float) -> None:
    """Write `paths` as they are at `commit` into the working tree and the index (deleting
    those absent there), under `index.lock`; other paths are not touched."""
    root = _root(git)
    with IndexLock(Path(git.repo.path), deadline) as lock:
        assert lock.index is not None
        _stage(lock.index, {path: git.blob_id(commit, path) for path in paths})
        lock.commit()
        _write_files(git, root, commit, paths)


def _root(git: GitRepo) -> Path:
    root = git.workdir
    if root is None:
        raise GitError("the repository has no working tree")
    return root


def _dirty(git: GitRepo, index: pygit2.Index, root: Path, paths: Sequence[str],
           base: str | None) -> list[str]:
    """Those of `paths` whose index entry or working-tree file differs from `base`."""
    conflicted = {e.path for entries in (index.conflicts or ()) for e in entries if e}
    dirty = []
    for path in paths:
        expected = git.blob_id(base, path) if base is not None else None
        full = root / path
        if full.is_symlink() or (full.exists() and not full.is_file()):
            on_disk: str | None = "not a file"
        else:
            on_disk = str(pygit2.hashfile(str(full))) if full.is_file() else None
        staged = str(index[path].id) if path in index else None
        if path in conflicted or on_disk != expected or staged != expected:
            dirty.append(path)
    return dirty


def _write_files(git: GitRepo, root: Path, commit: str, paths: Sequence[str]) -> None:
    """Write `paths` as they are at `commit` into the working tree (deleting those absent)."""
    for path in paths:
        full = root / path
        blob = git.blob_id(commit, path)
        if blob is None:
            if full.is_file() or full.is_symlink():
                full.unlink()
                _prune_empty_dirs(full.parent, root)
        else:
            write_atomic(full, git.read_blob(blob), mode=0o644)


def _stage(index: pygit2.Index, blobs: Mapping[str, str | None]) -> None:
    """Set the entries of `blobs` (path -> blob id, None: remove) in `index`. The entries
    carry no stat data, which tells git and libgit2 to hash the file to compare it (the
    index keeps the old index file's mtime, so these entries would be re-checked anyway:
    `maestro_git.git.locks.IndexLock.commit`)."""
    for path, blob in blobs.items():
        if blob is None:
            if path in index:
                index.remove(path)
        else:
            index.add(pygit2.IndexEntry(path, pygit2.Oid(hex=blob), FileMode.BLOB))


def _prune_empty_dirs(folder: Path, root: Path) -> None:
    while folder != root and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent
