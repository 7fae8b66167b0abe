"""The git layer's writes: commits made without a checkout, and the working tree kept in step.

`write_commit` builds the new tree in memory from the base commit's tree, rebuilding only the
subtrees on the changed paths, and moves the branch ref with compare-and-swap. libgit2's
`create_commit(ref, ...)` refuses a first parent that is no longer the branch tip and checks it
under the ref's lock file, so the swap is atomic across threads and processes; a lost swap
raises `StaleHeadError` carrying the current tip.

`dirty_paths` and `sync_worktree` look after a checked-out branch: a write refuses to overwrite
uncommitted changes, and afterwards writes the touched files into the working tree and the
index (under a lock file shared by maestro writers), so `git status` stays clean.

The functions take the `GitRepo` handle (`maestro_git.git.repo`), which exposes them as methods.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pygit2
from pygit2.enums import FileMode

from maestro_git.atomic import write_atomic
from maestro_git.errors import ConfigError, GitError

if TYPE_CHECKING:
    from maestro_git.git.repo import GitRepo

__all__ = ["Identity", "StaleHeadError", "dirty_paths", "sync_worktree", "write_commit"]

_IDENTITY_RE = re.compile(r"^\s*(?P<name>[^<>]*?)\s*<(?P<email>[^<>\s]+)>\s*$")


@dataclass(frozen=True)
class Identity:
    """Who a commit is by: a name and an e-mail address."""

    name: str
    email: str

    @classmethod
    def parse(cls, text: str) -> Identity:
        """`Name <email>` as an identity; a `ConfigError` when it is not in that shape."""
        match = _IDENTITY_RE.match(text)
        if not match or not match["name"]:
            raise ConfigError(f"'{text}' is not an identity",
                              hint="write it as 'Full Name <name@example.com>'")
        return cls(match["name"], match["email"])

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>"


class StaleHeadError(GitError):
    """The branch moved (or its ref was locked) while a write was being prepared."""

    def __init__(self, branch: str, current: str | None) -> None:
        super().__init__(f"branch '{branch}' moved to {current} during the write")
        self.current = current


def write_commit(git: GitRepo, branch: str, base: str | None,
                 changes: Mapping[str, bytes | None], author: Identity, committer: Identity,
                 message: str, when: datetime | None = None) -> str:
    """Commit `changes` (path -> new bytes, or None to delete) on top of `base` and move
    `refs/heads/<branch>` from `base` to the new commit, atomically (`GitRepo.write_commit`).
    `when` is the author and committer time (now when None; a migration replays old
    times), written with its UTC offset."""
    repo = git.repo
    ref = f"refs/heads/{branch}"
    base_tree = git.tree(base) if base is not None else None
    blobs: dict[str, tuple[pygit2.Oid, int] | None] = {
        path: None if data is None else (repo.create_blob(data), FileMode.BLOB)
        for path, data in changes.items()}
    tree_id = _build_tree(repo, base_tree, blobs)
    if tree_id is None:
        tree_id = repo.TreeBuilder().write()
    when = when if when is not None else datetime.now(UTC)
    offset = when.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    author_sig = pygit2.Signature(author.name, author.email, int(when.timestamp()), minutes)
    committer_sig = pygit2.Signature(committer.name, committer.email,
                                     int(when.timestamp()), minutes)
    if base is None:
        oid = repo.create_commit(None, author_sig, committer_sig, message, tree_id, [])
        try:
            repo.references.create(ref, oid)
        except (pygit2.AlreadyExistsError, ValueError, pygit2.GitError, OSError) as exc:
            raise StaleHeadError(branch, git.head(branch)) from exc
        return str(oid)
    try:
        oid = repo.create_commit(ref, author_sig, committer_sig, message, tree_id,
                                 [pygit2.Oid(hex=base)])
    except (pygit2.GitError, OSError) as exc:  # a held lock file surfaces as OSError
        current = git.head(branch)
        if current is None:
            raise GitError(f"branch '{branch}' was deleted during the write") from exc
        text = str(exc)
        if current != base or "lock" in text or "first parent" in text:
            raise StaleHeadError(branch, current) from exc
        raise GitError(f"cannot commit on '{branch}': {text}") from exc
    return str(oid)


def _build_tree(repo: pygit2.Repository, tree: pygit2.Tree | None,
                changes: Mapping[str, tuple[pygit2.Oid, int] | None]) -> pygit2.Oid | None:
    """A new tree: `tree` with `changes` applied; only changed subtrees are rebuilt.
    None when the result is empty (so emptied folders disappear, as in git)."""
    builder = repo.TreeBuilder(tree) if tree is not None else repo.TreeBuilder()
    nested: dict[str, dict[str, tuple[pygit2.Oid, int] | None]] = {}
    for path, value in changes.items():
        name, sep, rest = path.partition("/")
        if sep:
            nested.setdefault(name, {})[rest] = value
        elif value is None:
            if builder.get(name) is not None:
                builder.remove(name)
        else:
            builder.insert(name, value[0], value[1])
    for name, sub in nested.items():
        existing = tree[name] if tree is not None and name in tree else None
        subtree = existing if isinstance(existing, pygit2.Tree) else None
        sub_id = _build_tree(repo, subtree, sub)
        if sub_id is None:
            if builder.get(name) is not None:
                builder.remove(name)
        else:
            builder.insert(name, sub_id, FileMode.TREE)
    if len(builder) == 0:
        return None
    return builder.write()


# -- the working tree ------------------------------------------------------------------------
def dirty_paths(git: GitRepo, paths: Sequence[str], base: str | None,
                current: str | None = None) -> list[str]:
    """Those of `paths` whose working-tree file or index entry differs from `base` (and, when
    given, also from `current`) (`GitRepo.dirty_paths`)."""
    root = Path(git.repo.workdir)
    index = git.repo.index
    index.read(False)
    dirty = []
    for path in paths:
        expected = {None if c is None else git.blob_id(c, path) for c in (base, current)
                    if c is not None or base is None}
        full = root / path
        on_disk = str(pygit2.hashfile(str(full))) if full.is_file() else None
        staged = str(index[path].id) if path in index else None
        if on_disk not in expected or staged not in expected:
            dirty.append(path)
    return dirty


def sync_worktree(git: GitRepo, commit: str, paths: Sequence[str]) -> None:
    """Write `paths` as they are at `commit` into the working tree and the index (deleting
    those that are absent there) (`GitRepo.sync_worktree`)."""
    root = Path(git.repo.workdir)
    with _worktree_lock(Path(git.repo.path)):
        index = git.repo.index
        index.read(True)
        for path in paths:
            full = root / path
            blob = git.blob_id(commit, path)
            if blob is None:
                if full.is_file() or full.is_symlink():
                    full.unlink()
                    _prune_empty_dirs(full.parent, root)
                if path in index:
                    index.remove(path)
            else:
                write_atomic(full, git.read_blob(blob), mode=0o644)
                index.add(path)
        _write_index(index)


def _write_index(index: pygit2.Index) -> None:
    deadline = time.monotonic() + 5.0
    while True:
        try:
            index.write()
            return
        except (pygit2.GitError, OSError) as exc:  # index.lock held by a git command
            if time.monotonic() > deadline:
                raise GitError(f"cannot update the git index: {exc}",
                               hint="is a git command running in this repository?") from exc
            time.sleep(0.02)


@contextmanager
def _worktree_lock(git_dir: Path) -> Iterator[None]:
    """Serialises index updates by maestro writers (threads and processes)."""
    fd = os.open(git_dir / "maestro-worktree.lock", os.O_CREAT | os.O_RDWR, 0o644)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                break
            except OSError as exc:  # pragma: no cover - signal interruption
                if exc.errno != errno.EINTR:
                    raise
        yield
    finally:
        os.close(fd)


def _prune_empty_dirs(folder: Path, root: Path) -> None:
    while folder != root and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent
