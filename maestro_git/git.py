"""The only module that imports pygit2: reading commits, trees and diffs; writing commits.

Reads never need a checkout: files come straight from a commit's tree (only the content
folders are walked). One `GitRepo` (one `pygit2.Repository`) per thread.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pygit2
from pygit2.enums import DeltaStatus, ObjectType

from maestro_git.errors import GitError, NotFoundError
from maestro_git.models import SourceFile
from maestro_git.worktree import CONTENT_DIRS

__all__ = ["CommitInfo", "GitRepo", "TreeDelta"]

# libgit2 does not cache trees over 4 KiB by default; history diffs are ~6x faster with this.
pygit2.settings.cache_object_limit(ObjectType.TREE, 1 << 20)

_LINK_MODE = pygit2.enums.FileMode.LINK


@dataclass(frozen=True)
class CommitInfo:
    id: str
    parents: tuple[str, ...]
    author_name: str
    author_email: str
    committer_name: str
    committer_email: str
    time: datetime  # author time, timezone-aware
    message: str

    @property
    def short_id(self) -> str:
        return self.id[:7]


@dataclass(frozen=True)
class TreeDelta:
    """What a commit changed under the content folders, relative to another commit."""

    changed: list[SourceFile] = field(default_factory=list)  # added or modified (new content)
    removed: list[str] = field(default_factory=list)  # paths gone (including renamed-from)
    renames: dict[str, str] = field(default_factory=dict)  # old path -> new path


def _signature_time(sig: pygit2.Signature) -> datetime:
    return datetime.fromtimestamp(sig.time, timezone(timedelta(minutes=sig.offset)))


class GitRepo:
    """A git repository on disk, opened with pygit2."""

    def __init__(self, path: Path | str) -> None:
        try:
            self.repo = pygit2.Repository(str(path))
        except pygit2.GitError as exc:
            raise GitError(f"{path} is not a git repository",
                           hint="run 'git init' there, or 'maestro init'") from exc
        self.path = Path(self.repo.workdir or self.repo.path).resolve()

    # -- revisions -----------------------------------------------------------------------
    def head(self, branch: str) -> str | None:
        """The commit id at `refs/heads/<branch>`, or None when the branch has no commit."""
        ref = self.repo.references.get(f"refs/heads/{branch}")
        if ref is None:
            return None
        return str(ref.resolve().target)

    def resolve(self, rev: str) -> str:
        """A full commit id for any revision expression (`HEAD~2`, a tag, a short id)."""
        try:
            obj = self.repo.revparse_single(rev)
            commit = obj.peel(pygit2.Commit)
        except (KeyError, ValueError, pygit2.GitError) as exc:
            raise NotFoundError(f"unknown revision '{rev}'") from exc
        return str(commit.id)

    def has_commit(self, commit_id: str) -> bool:
        try:
            obj = self.repo.get(commit_id)
        except (ValueError, pygit2.GitError):
            return False
        return obj is not None and obj.type == ObjectType.COMMIT

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        """True when `ancestor` is `descendant` or one of its ancestors."""
        if ancestor == descendant:
            return True
        return bool(self.repo.descendant_of(descendant, ancestor))

    def commit_info(self, commit_id: str) -> CommitInfo:
        commit = self._commit(commit_id)
        return CommitInfo(
            id=str(commit.id), parents=tuple(str(p) for p in commit.parent_ids),
            author_name=commit.author.name, author_email=commit.author.email,
            committer_name=commit.committer.name, committer_email=commit.committer.email,
            time=_signature_time(commit.author), message=commit.message)

    def first_parent_chain(self, since: str | None, until: str) -> list[str]:
        """Commits on the first-parent line from `since` (exclusive) to `until` (inclusive),
        oldest first. `since=None` means from the root commit."""
        chain: list[str] = []
        current: pygit2.Commit | None = self._commit(until)
        while current is not None:
            cid = str(current.id)
            if cid == since:
                break
            chain.append(cid)
            current = current.parents[0] if current.parent_ids else None
        chain.reverse()
        return chain

    # -- content -------------------------------------------------------------------------
    def files_at(self, commit_id: str) -> Iterator[SourceFile]:
        """Every file under the content folders at `commit_id`, read from the tree."""
        tree = self._commit(commit_id).tree
        for top in CONTENT_DIRS:
            if top in tree:
                entry = tree[top]
                if entry.type == ObjectType.TREE:
                    yield from self._walk(entry, top)

    def _walk(self, tree: pygit2.Tree, prefix: str) -> Iterator[SourceFile]:
        for entry in tree:
            path = f"{prefix}/{entry.name}"
            if entry.type == ObjectType.TREE:
                yield from self._walk(entry, path)
            elif entry.type == ObjectType.BLOB:
                yield self._source(path, entry.id, entry.filemode)

    def _source(self, path: str, oid: pygit2.Oid, mode: int) -> SourceFile:
        data = self.repo[oid].data
        if mode == _LINK_MODE:
            return SourceFile(path=path, data=b"", is_symlink=True,
                              link_target=data.decode("utf-8", "replace"))
        return SourceFile(path=path, data=data)

    def read_file(self, commit_id: str, path: str) -> bytes | None:
        """The bytes of `path` at `commit_id`, or None when it does not exist there."""
        tree = self._commit(commit_id).tree
        try:
            entry = tree[path]
        except KeyError:
            return None
        return bytes(self.repo[entry.id].data)

    def changed_files(self, old: str | None, new: str) -> TreeDelta:
        """Content-folder files that differ from `old` to `new` (renames detected)."""
        new_tree = self._commit(new).tree
        if old is None:
            return TreeDelta(changed=list(self.files_at(new)))
        old_tree = self._commit(old).tree
        diff = self.repo.diff(old_tree, new_tree)
        diff.find_similar()
        delta = TreeDelta()
        for d in diff.deltas:
            new_path, old_path = d.new_file.path, d.old_file.path
            if d.status in (DeltaStatus.DELETED,):
                if _in_content(old_path):
                    delta.removed.append(old_path)
                continue
            if d.status == DeltaStatus.RENAMED:
                if _in_content(old_path):
                    delta.removed.append(old_path)
                    if _in_content(new_path):
                        delta.renames[old_path] = new_path
            if _in_content(new_path):
                delta.changed.append(self._source(new_path, d.new_file.id, d.new_file.mode))
        return delta

    def _commit(self, commit_id: str) -> pygit2.Commit:
        try:
            obj = self.repo[commit_id]
        except (KeyError, ValueError) as exc:
            raise NotFoundError(f"commit {commit_id} is not in the repository") from exc
        if not isinstance(obj, pygit2.Commit):
            raise NotFoundError(f"{commit_id} is not a commit")
        return obj


def _in_content(path: str) -> bool:
    return path.split("/", 1)[0] in CONTENT_DIRS


def now_utc() -> datetime:
    return datetime.now(UTC)
