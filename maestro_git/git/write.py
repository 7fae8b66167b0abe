"""The git layer's writes: commits made without a checkout, put on the branch by compare-and-swap.

`write_commit` builds the new tree in memory from the base commit's tree, rebuilding only the
subtrees on the changed paths, and moves the branch ref with compare-and-swap. libgit2's
`create_commit(ref, ...)` refuses a first parent that is no longer the branch tip and checks it
under the ref's lock file, so the swap is atomic across threads and processes; a lost swap
raises `StaleHeadError` carrying the current tip.

On a checked-out branch, `maestro_git.git.checkout` calls `write_commit` while it holds
git's `index.lock`, so the working tree and the index move with the branch.

The functions take the `GitRepo` handle (`maestro_git.git.repo`), which exposes them as methods.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pygit2
from pygit2.enums import FileMode

from maestro_git.errors import ConfigError, GitError

if TYPE_CHECKING:
    from maestro_git.git.repo import GitRepo

__all__ = ["Identity", "StaleHeadError", "write_commit"]

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
