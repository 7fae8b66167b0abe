"""The git layer's handle and its reads: commits, trees, diffs, the history of one file.

The git layer is this module, `maestro_git.git.write`, `.checkout` and `.locks`, the only
package modules that import pygit2 (besides the benchmark generator). `GitRepo` is the handle
on one repository (one `pygit2.Repository`; one `GitRepo` per thread); its write methods are
carried out by `git_write` (`write_commit`; it also defines `Identity` and `StaleHeadError`,
re-exported here), `git_checkout` (`commit_checked_out`, `sync_worktree`: the checked-out
branch, its index and files moved together under git's `index.lock`) and `locks`
(`writers_lock`).

Reads never need a checkout: files come straight from a commit's tree (only the content
folders are walked). Writes never need one either: see `git_write`.

`file_history` walks only the commits that touch one path (comparing tree entry ids, never
diffing whole trees), follows renames, and simplifies merges the way `git log -- PATH` does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal

import pygit2
from pygit2.enums import DeltaStatus, ObjectType, SortMode

from maestro_git.core.models import CommitInfo, SourceFile
from maestro_git.errors import GitError, NotFoundError
from maestro_git.git import checkout as git_checkout
from maestro_git.git import write as git_write
from maestro_git.git.checkout import DirtyWorktreeError
from maestro_git.git.locks import LockTimeout, writers_lock
from maestro_git.git.worktree import CONTENT_DIRS
from maestro_git.git.write import Identity, StaleHeadError

__all__ = [
    "DirtyWorktreeError",
    "FileVersion",
    "GitRepo",
    "Identity",
    "LockTimeout",
    "StaleHeadError",
    "TreeDelta",
]

# libgit2 does not cache trees over 4 KiB by default; history diffs are ~6x faster with this.
pygit2.settings.cache_object_limit(ObjectType.TREE, 1 << 20)

_LINK_MODE = pygit2.enums.FileMode.LINK
# libgit2 reads pack files through mapped windows and by default keeps up to 8 GB of them
# mapped: reading a 100,000-persona head touched 810 MB of a 2.6 GB pack, all of it counted
# in the process's resident memory. Bounded, the same read holds 26 MB of the pack; the
# read costs ~20 % more (2.85 -> 3.43 s at 100k personas), and nothing for a pack smaller
# than the bound (the 10k benchmark's).
PACK_MAPPED_LIMIT = 256 << 20
PACK_WINDOW = 32 << 20


@dataclass(frozen=True)
class TreeDelta:
    """What a commit changed under the content folders, relative to another commit."""

    changed: list[SourceFile] = field(default_factory=list)  # added or modified (new content)
    removed: list[str] = field(default_factory=list)  # paths gone (including renamed-from)
    renames: dict[str, str] = field(default_factory=dict)  # old path -> new path


@dataclass(frozen=True)
class FileVersion:
    """One commit that changed a tracked file (a step of `GitRepo.file_history`)."""

    commit: str
    path: str | None  # the path at this commit; None when this commit deleted the file
    old_path: str | None  # the path in the (first differing) parent; None when added here
    blob: str | None  # the blob id at this commit; None when deleted
    status: Literal["added", "modified", "renamed", "deleted"]


def _signature_time(sig: pygit2.Signature) -> datetime:
    return datetime.fromtimestamp(sig.time, timezone(timedelta(minutes=sig.offset)))


def init_repository(path: Path | str, branch: str = "main") -> GitRepo:
    """`git init` at `path` with `branch` as the unborn HEAD; returns the opened repository."""
    try:
        pygit2.init_repository(str(path), initial_head=branch)
    except pygit2.GitError as exc:
        raise GitError(f"cannot create a git repository at {path}: {exc}") from exc
    return GitRepo(path)


class GitRepo:
    """A git repository on disk, opened with pygit2."""

    def __init__(self, path: Path | str) -> None:
        if pygit2.settings.mwindow_mapped_limit != PACK_MAPPED_LIMIT:  # process-wide
            pygit2.settings.mwindow_size = PACK_WINDOW
            pygit2.settings.mwindow_mapped_limit = PACK_MAPPED_LIMIT
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

    def merge_base(self, a: str, b: str) -> str | None:
        """The best common ancestor of two commits, or None when they share no history."""
        base = self.repo.merge_base(self._commit(a).id, self._commit(b).id)
        return str(base) if base is not None else None

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

    def roots(self, head: str) -> tuple[str, ...]:
        """The root commits (no parents) reachable from `head`, sorted."""
        walker = self.repo.walk(self._commit(head).id, SortMode.NONE)
        return tuple(sorted(str(c.id) for c in walker if not c.parent_ids))

    def default_identity(self) -> Identity | None:
        """`user.name` / `user.email` from git's configuration, when both are set."""
        config = self.repo.config
        try:
            name, email = config["user.name"], config["user.email"]
        except KeyError:
            return None
        return Identity(str(name), str(email)) if name and email else None

    # -- content -------------------------------------------------------------------------
    def files_at(self, commit_id: str) -> Iterator[SourceFile]:
        """Every file under the content folders at `commit_id`, read from the tree."""
        tree = self._commit(commit_id).tree
        for top in CONTENT_DIRS:
            if top in tree:
                entry = tree[top]
                if isinstance(entry, pygit2.Tree):
                    yield from self._walk(entry, top)
                elif entry.filemode == _LINK_MODE:  # a content folder that is a link
                    yield self._source(top, entry.id, entry.filemode)

    def count_files(self, commit_id: str) -> int:
        """How many files `files_at(commit_id)` yields, without reading them (for progress)."""
        stack: list[Any] = [tree for _, tree in self._content_trees(commit_id)]
        count = 0
        while stack:
            entry = stack.pop()
            if isinstance(entry, pygit2.Tree):
                stack.extend(entry)
            elif isinstance(entry, pygit2.Blob):
                count += 1
        return count

    def _content_trees(self, commit_id: str) -> Iterator[tuple[str, pygit2.Tree]]:
        tree = self._commit(commit_id).tree
        for top in CONTENT_DIRS:
            if top in tree:
                entry = tree[top]
                if isinstance(entry, pygit2.Tree):  # a file named like a folder is not read
                    yield top, entry

    def _walk(self, tree: pygit2.Tree, prefix: str) -> Iterator[SourceFile]:
        for entry in tree:
            path = f"{prefix}/{entry.name}"
            if isinstance(entry, pygit2.Tree):
                yield from self._walk(entry, path)
            elif isinstance(entry, pygit2.Blob):  # read from the entry: no second lookup
                if entry.filemode == _LINK_MODE:
                    yield self._source(path, entry.id, entry.filemode)
                else:
                    yield SourceFile(path=path, data=entry.data)

    def _source(self, path: str, oid: pygit2.Oid, mode: int) -> SourceFile:
        data = self._blob_bytes(oid)
        if mode == _LINK_MODE:
            return SourceFile(path=path, data=b"", is_symlink=True,
                              link_target=data.decode("utf-8", "replace"))
        return SourceFile(path=path, data=data)

    def read_file(self, commit_id: str, path: str) -> bytes | None:
        """The bytes of `path` at `commit_id`, or None when it does not exist there."""
        blob = _entry_id(self._commit(commit_id).tree, path)
        return None if blob is None else self._blob_bytes(blob)

    def read_blob(self, blob_id: str) -> bytes:
        """The bytes of a blob by id."""
        return self._blob_bytes(blob_id)

    def _blob_bytes(self, oid: pygit2.Oid | str) -> bytes:
        obj = self.repo[oid]
        if not isinstance(obj, pygit2.Blob):
            raise NotFoundError(f"{oid} is not a file")
        return bytes(obj.data)

    def blob_id(self, commit_id: str, path: str) -> str | None:
        """The blob id of `path` at `commit_id` (None when absent or not a file)."""
        return _entry_id(self._commit(commit_id).tree, path)

    def changed_files(self, old: str | None, new: str) -> TreeDelta:
        """Content-folder files that differ from `old` to `new` (renames detected)."""
        new_tree = self._commit(new).tree
        if old is None:
            return TreeDelta(changed=list(self.files_at(new)))
        old_tree = self._commit(old).tree
        diff = old_tree.diff_to_tree(new_tree)
        diff.find_similar()
        delta = TreeDelta()
        for d in diff.deltas:
            new_path, old_path = d.new_file.path, d.old_file.path
            if d.status in (DeltaStatus.DELETED,):
                if _in_content(old_path):
                    delta.removed.append(old_path)
                continue
            if d.status == DeltaStatus.RENAMED and _in_content(old_path):
                delta.removed.append(old_path)
                if _in_content(new_path):
                    delta.renames[old_path] = new_path
            if _in_content(new_path):
                delta.changed.append(self._source(new_path, d.new_file.id, d.new_file.mode))
        return delta

    def changed_paths(self, old: str, new: str) -> set[str]:
        """Every path (old and new side, any folder) that differs between two commits."""
        diff = self._commit(old).tree.diff_to_tree(self._commit(new).tree)
        return {p for d in diff.deltas for p in (d.old_file.path, d.new_file.path)}

    # -- history of one file ---------------------------------------------------------------
    def file_history(self, start: str, path: str,
                     identity: Callable[[bytes], str | None] | None = None
                     ) -> list[FileVersion]:
        """The commits that changed the file at `path` (as of `start`), newest first.

        Only commits that touch the path are examined: each commit's tree entry for the path
        is compared with its parents' (no whole-tree diff). When the file appears in a commit
        but not in its parent, the parent's path is found by `identity` (a stable id read from
        the bytes, e.g. the frontmatter `id`) among the files deleted by that commit, else by
        git's rename detection (`find_similar`) on that one commit's diff.

        Merges follow git's default history simplification: when the file at a merge equals
        the file in one of its parents (same path, same blob), the merge is not a version and
        only that parent is followed, so a clean merge of a branch that edited the file shows
        the branch's own commit. A merge whose file differs from every parent (a conflict
        resolution) is a version, and every parent is followed.
        """
        head = self._commit(start)
        track: dict[str, str] = {str(head.id): path}
        out: list[FileVersion] = []
        for commit in self.repo.walk(head.id, SortMode.TOPOLOGICAL | SortMode.TIME):
            cid = str(commit.id)
            current = track.pop(cid, None)
            if current is None:
                continue
            blob = _entry_id(commit.tree, current)
            sides: list[tuple[pygit2.Commit, str, str | None]] = []
            for parent in commit.parents:
                parent_blob = _entry_id(parent.tree, current)
                if parent_blob is None and blob is not None:
                    origin = self._origin(parent, commit, current, blob, identity)
                    if origin is not None:
                        sides.append((parent, origin, _entry_id(parent.tree, origin)))
                        continue
                sides.append((parent, current, parent_blob))
            same = next((s for s in sides if s[1] == current and s[2] == blob), None)
            if same is not None:
                track.setdefault(str(same[0].id), current)
            else:
                version = _file_version(cid, current, blob, sides)
                if version is not None:
                    out.append(version)
                for parent, parent_path, _ in sides:
                    track.setdefault(str(parent.id), parent_path)
            if not track:
                break
        return out

    def _origin(self, parent: pygit2.Commit, commit: pygit2.Commit, path: str, blob: str,
                identity: Callable[[bytes], str | None] | None) -> str | None:
        """The path in `parent` of the file that `commit` has at `path` (a rename), if any."""
        top = path.split("/", 1)[0]
        diff = parent.tree.diff_to_tree(commit.tree)
        deleted = [d.old_file for d in diff.deltas
                   if d.status == DeltaStatus.DELETED and d.old_file.path.split("/", 1)[0] == top]
        if not deleted:
            return None
        if identity is not None:
            wanted = identity(self.read_blob(blob))
            if wanted is not None:
                for old in deleted:
                    if identity(self.read_blob(str(old.id))) == wanted:
                        return str(old.path)
        diff.find_similar()
        for d in diff.deltas:
            if d.status == DeltaStatus.RENAMED and d.new_file.path == path:
                return str(d.old_file.path)
        return None

    # -- writing (carried out by maestro_git.git.write) -----------------------------------
    def write_commit(self, branch: str, base: str | None, changes: Mapping[str, bytes | None],
                     author: Identity, committer: Identity, message: str,
                     when: datetime | None = None) -> str:
        """Commit `changes` (path -> new bytes, or None to delete) on top of `base` and move
        `refs/heads/<branch>` from `base` to the new commit, atomically.

        Raises `StaleHeadError` when the branch is no longer at `base` (or its ref is locked
        by another writer at this instant); nothing is changed then except an unreferenced
        commit object, which `git gc` collects.
        """
        return git_write.write_commit(self, branch, base, changes, author, committer, message,
                                      when)

    # -- the working tree ------------------------------------------------------------------
    @property
    def workdir(self) -> Path | None:
        """The working tree's root (None for a bare repository)."""
        return None if self.repo.is_bare or not self.repo.workdir else Path(self.repo.workdir)

    def checked_out_branch(self) -> str | None:
        """The branch HEAD names (also one without commits yet); None when HEAD is detached
        or names something other than a local branch."""
        if self.repo.head_is_detached:
            return None
        target = self.repo.references["HEAD"].target
        if isinstance(target, str) and target.startswith("refs/heads/"):
            return target.removeprefix("refs/heads/")
        return None

    @property
    def is_shallow(self) -> bool:
        """Whether this is a shallow clone (history cut off at `.git/shallow`)."""
        return bool(self.repo.is_shallow)

    def has_ref(self, name: str) -> bool:
        """Whether the full reference `name` (`refs/remotes/origin/main`) exists."""
        return self.repo.references.get(name) is not None

    def remote_names(self) -> list[str]:
        """The configured remotes, `origin` first."""
        names = [str(r.name) for r in self.repo.remotes]
        return sorted(names, key=lambda n: (n != "origin", n))

    def checked_out(self, branch: str) -> Path | None:
        """The working tree's root when this repository has one with `branch` checked out."""
        if self.repo.is_bare or not self.repo.workdir:
            return None
        target = self.repo.references["HEAD"].target
        if target != f"refs/heads/{branch}":
            return None
        return Path(self.repo.workdir)

    def commit_checked_out(self, branch: str, base: str | None,
                           changes: Mapping[str, bytes | None], author: Identity,
                           committer: Identity, message: str, deadline: float) -> str:
        """`write_commit` on the checked-out `branch`, with the index and the touched files
        brought in line under git's `index.lock` (`maestro_git.git.checkout`). Raises
        `StaleHeadError` when the branch is not at `base`, `DirtyWorktreeError` when a
        touched file has uncommitted changes, `LockTimeout` past `deadline`."""
        return git_checkout.commit_checked_out(self, branch, base, changes, author, committer,
                                               message, deadline)

    def commit_series_checked_out(self, branch: str, base: str | None,
                                  write: Callable[[str | None], list[str]],
                                  paths: Sequence[str], deadline: float) -> list[str]:
        """A series of commits on the checked-out `branch` (`write(base)` makes them) with
        `paths` then brought in line, under one `index.lock` (`maestro_git.git.checkout`)."""
        return git_checkout.commit_series_checked_out(self, branch, base, write, paths,
                                                      deadline)

    def sync_worktree(self, commit: str, paths: Sequence[str], deadline: float) -> None:
        """Write `paths` as they are at `commit` into the working tree and the index (deleting
        those that are absent there), under git's `index.lock`. Other paths are not touched."""
        git_checkout.sync_worktree(self, commit, paths, deadline)

    def writers_lock(self, deadline: float) -> AbstractContextManager[None]:
        """maestro's writers' lock on this repository (`maestro_git.git.locks`)."""
        return writers_lock(Path(self.repo.path), deadline)

    def tree(self, commit_id: str) -> pygit2.Tree:
        """The root tree of a commit (for the git layer's own modules)."""
        return self._commit(commit_id).tree

    def _commit(self, commit_id: str) -> pygit2.Commit:
        try:
            obj = self.repo[commit_id]
        except (KeyError, ValueError) as exc:
            raise NotFoundError(f"commit {commit_id} is not in the repository") from exc
        if not isinstance(obj, pygit2.Commit):
            raise NotFoundError(f"{commit_id} is not a commit")
        return obj


def _entry_id(tree: pygit2.Tree, path: str) -> str | None:
    try:
        entry = tree[path]
    except KeyError:
        return None
    return str(entry.id) if entry.type == ObjectType.BLOB else None


def _file_version(commit: str, path: str, blob: str | None,
                  sides: Sequence[tuple[pygit2.Commit, str, str | None]]) -> FileVersion | None:
    """How `commit` changed the file, judged against its first parent (or none: a root)."""
    if not sides:
        if blob is None:
            return None
        return FileVersion(commit, path, None, blob, "added")
    _, old_path, old_blob = sides[0]
    if blob is None:
        if old_blob is None:
            return None
        return FileVersion(commit, None, old_path, None, "deleted")
    if old_blob is None:
        return FileVersion(commit, path, None, blob, "added")
    status: Literal["modified", "renamed"] = "renamed" if old_path != path else "modified"
    return FileVersion(commit, path, old_path, blob, status)


def _in_content(path: str) -> bool:
    return path.split("/", 1)[0] in CONTENT_DIRS


def now_utc() -> datetime:
    return datetime.now(UTC)
