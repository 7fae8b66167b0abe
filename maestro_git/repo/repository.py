"""The file-and-git API: snapshots, history, diffs, and writes that are commits.

`Repository(settings)` works on the repository at `settings.repo_path`, on the checked-out
branch, unless a branch is named (`Repository(settings, branch=...)`, or `--branch` /
`MAESTRO_BRANCH`, which set `settings.branch`); a bare repository uses `settings.branch`
(`[sync] branch`, default `main`). With a detached HEAD, reads use the commit HEAD points at
and writes are refused. A write moves only that branch. Reads never need a checkout: snapshots come from commit trees, history and
the audit trail from `maestro_git.repo.history`, the review from `maestro_git.core.rules.versions`. Every write
(`create`, `update`, `rename`, `delete`, `rollback`) is one commit on the branch, planned,
validated and committed with compare-and-swap by `maestro_git.repo.writes` (its docstring gives the
steps); the author is the acting user: an explicit `author` > `Settings.author_name/
author_email` > git's `user.name/user.email`.

A `Repository` may be shared by threads: each thread gets its own `pygit2` handle.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from maestro_git.core.formats import parse_file
from maestro_git.core.inherit import resolve_bodies
from maestro_git.core.models import (
    AuditEvent,
    Persona,
    PersonaSet,
    Problem,
    SourceFile,
    Template,
    Version,
)
from maestro_git.core.rules.validate import apply_severities
from maestro_git.core.rules.versions import parse_semver, version_problems
from maestro_git.core.snapshot import Snapshot, build_snapshot, update_snapshot
from maestro_git.errors import NotFoundError, UsageError
from maestro_git.git.repo import GitRepo, Identity
from maestro_git.git.worktree import read_worktree
from maestro_git.repo.history import commit_events, read_history
from maestro_git.repo.snapshots import WORKTREE
from maestro_git.repo.writes import WRITE_DEADLINE_SECONDS, Writer, key_path
from maestro_git.settings import Settings

if TYPE_CHECKING:
    from maestro_git.core.diff import EntityDiff

__all__ = ["WORKTREE", "WRITE_DEADLINE_SECONDS", "Repository", "key_path"]

_EMPTY = ":empty"  # the side before a root commit: nothing

class Repository:
    """A persona repository: read any revision, write commits."""

    def __init__(self, settings: Settings, branch: str | None = None) -> None:
        self.settings = settings
        self._local = threading.local()
        self._lock = threading.Lock()
        self._cached: Snapshot | None = None
        self.detached = False
        self.follows_checkout = False  # on the checked-out branch because none was named
        _ = self.git  # fail early (GitError) when repo_path is not a repository
        if branch is None:
            branch = settings.branch
            if settings.branch_is_default and self.git.workdir is not None:
                current = self.git.checked_out_branch()
                self.detached = current is None
                self.follows_checkout = True
                branch = current or branch
        self.branch = branch

    @property
    def git(self) -> GitRepo:
        """This thread's handle on the git repository."""
        repo: GitRepo | None = getattr(self._local, "git", None)
        if repo is None:
            repo = GitRepo(self.settings.repo_path)
            self._local.git = repo
        return repo

    def reopen(self) -> GitRepo:
        """A fresh handle on the repository (after another program, such as `git fetch`,
        changed its refs, objects or shallow boundary)."""
        repo = GitRepo(self.settings.repo_path)
        self._local.git = repo
        return repo

    # -- reading -------------------------------------------------------------------------
    def head(self) -> str | None:
        """The branch's current commit (None for a branch without commits); with a detached
        HEAD (and no --branch), the commit HEAD points at."""
        if self.detached:
            return self.git.resolve("HEAD")
        return self.git.head(self.branch)

    @property
    def base_branch(self) -> str:
        """The branch changes are reviewed against and promoted from: `[sync] branch`
        (default `main`)."""
        return self.settings.branch

    def resolve(self, rev: str) -> str:
        """A full commit id for `rev`; `HEAD` means the branch head."""
        if rev == WORKTREE:
            raise UsageError("the working tree is not a commit",
                             hint="name a revision (HEAD, a branch, a commit id)")
        if rev == "HEAD":
            head = self.head()
            if head is None:
                raise NotFoundError(f"branch '{self.branch}' has no commits yet")
            return head
        return self.git.resolve(rev)

    def snapshot(self, rev: str = "HEAD") -> Snapshot:
        """Every record and problem at `rev`, read from the commit's tree (no checkout);
        `WORKTREE` reads the files on disk instead (the branch head in a bare repository).

        The last snapshot is kept, and the next one is derived from it by re-parsing only
        the files that differ, so consecutive revisions and writes stay cheap.
        """
        if rev == _EMPTY:
            return self._snapshot_at(None)
        if rev == WORKTREE:
            if self.git.workdir is None:
                return self.snapshot()
            return build_snapshot(read_worktree(self.git.workdir), self.settings)
        return self._snapshot_at(self.resolve(rev))

    def _snapshot_at(self, commit: str | None) -> Snapshot:
        if commit is None or commit == _EMPTY:
            return build_snapshot((), self.settings, None)
        with self._lock:
            cached = self._cached
        if cached is not None and cached.commit == commit:
            return cached
        if cached is not None and cached.commit is not None:
            delta = self.git.changed_files(cached.commit, commit)
            snap = update_snapshot(cached, delta.changed, delta.removed, self.settings, commit)
        else:
            snap = build_snapshot(self.git.files_at(commit), self.settings, commit)
        self._remember(snap)
        return snap

    def _remember(self, snap: Snapshot) -> None:
        with self._lock:
            self._cached = snap

    def write_branch(self) -> str:
        """The branch a write moves: the checked-out one (or --branch). Refused
        (`UsageError`) on a detached HEAD, where no branch says what a write should move."""
        if self.detached:
            head = self.git.resolve("HEAD")
            raise UsageError(f"HEAD is detached at {head[:7]}: a write needs a branch",
                             hint="check out a branch (git switch NAME), or name one with "
                                  "--branch NAME")
        return self.branch

    def _writer(self) -> Writer:
        """This thread's write path (`maestro_git.repo.writes`) on `write_branch()`."""
        return Writer(self.git, self.settings, self.write_branch(), self._snapshot_at,
                      self._remember)

    def history(self, key: str, rev: str = "HEAD") -> list[Version]:
        """Every version of `key` up to `rev`, newest first: the commits that changed its
        file, following renames and moves (see `GitRepo.file_history` for merges).

        Raises `NotFoundError` when no commit ever had the file.
        """
        start = self.resolve(rev)
        versions = read_history(self.git, start, self._path_of(key, start))
        if not versions:
            raise NotFoundError(f"'{key}' has no history on {self._where}",
                                hint="check the key with 'maestro list'")
        return versions

    @property
    def _where(self) -> str:
        return "the detached HEAD" if self.detached else self.branch

    def _path_of(self, key: str, commit: str) -> str:
        """The file of `key`: a persona or template path, or a persona set's file."""
        if "/" in key or self.git.blob_id(commit, f"templates/{key}.md") is not None:
            return key_path(key)
        for candidate in (f"persona_sets/{key}.json", f"persona_sets/{key}/set.json"):
            if self.git.blob_id(commit, candidate) is not None:
                return candidate
        return key_path(key)

    def version_commit(self, key: str, ref: str, rev: str = "HEAD") -> Version:
        """The version of `key` that `ref` names: a semver (`1.2.0`, the newest commit that
        had it) or any revision (the version current at that commit)."""
        return self._version_in(key, self.history(key, rev), ref)

    def _version_in(self, key: str, versions: Sequence[Version], ref: str) -> Version:
        if parse_semver(ref) is not None:
            for v in versions:
                if v.version == ref and v.content_hash is not None:
                    return v
        try:
            commit = self.git.resolve(ref)
        except NotFoundError:
            known = ", ".join(dict.fromkeys(v.version for v in versions if v.version))
            raise NotFoundError(f"'{ref}' is neither a version of {key} nor a revision",
                                hint=f"versions of {key}: {known}") from None
        for v in versions:
            if self.git.is_ancestor(v.commit, commit):
                return v
        raise NotFoundError(f"{key} did not exist at {ref}")

    def diff(self, key: str, rev_a: str | None = None, rev_b: str | None = None,
             resolved: bool = False) -> EntityDiff:
        """What changed in `key` (a persona, template or persona set) from `rev_a` to
        `rev_b`, like `git diff`: revisions, semver versions of `key`, or `WORKTREE`.

        - two given: the one with the other;
        - `rev_a` only: `rev_a` with the working tree (the branch head when a branch was
          named, or in a bare repository);
        - none: on a branch other than `base_branch`, what the branch changed (the merge
          base with it) up to the working tree; otherwise the uncommitted change when there
          is one, else the version before the current one with the head.

        `key` may be absent on one side (added, deleted) and is followed across a rename by
        its frontmatter `id`. With `resolved`, the bodies compared are the effective
        instructions at each side, so a change to a parent shows in every child.
        """
        a, b = self._diff_sides(key, rev_a, rev_b)
        old_snap, new_snap = self.snapshot(a), self.snapshot(b)
        new = _find(new_snap, key)
        old = _find(old_snap, key)
        if old is None and new is not None:
            old = _by_id(old_snap, new)
        if new is None and old is not None:
            new = _by_id(new_snap, old)
        if old is None and new is None:
            raise NotFoundError(f"'{key}' exists neither at {self._label(a)} nor at "
                                f"{self._label(b)}", hint="check the key with 'maestro list'")
        old_body = new_body = None
        if resolved:
            if not isinstance(new or old, Persona):
                raise UsageError(f"'{key}' is not a persona: only personas inherit")
            depth = self.settings.limits.max_inheritance_depth
            if isinstance(old, Persona):
                old_body = resolve_bodies([old.key], old_snap.personas, depth).get(old.key)
            if isinstance(new, Persona):
                new_body = resolve_bodies([new.key], new_snap.personas, depth).get(new.key)
        from maestro_git.core.diff import diff_records  # only for diffs: not at start-up

        return diff_records(old, new, old_body=old_body, new_body=new_body, resolved=resolved,
                            rev_a=self._label(a), rev_b=self._label(b))

    def _read_document(self, commit: str, path: str) -> Persona | Template | None:
        data = self.git.read_file(commit, path)
        if data is None:
            return None
        rec = parse_file(SourceFile(path=path, data=data), self.settings.limits).record
        return rec if isinstance(rec, Persona | Template) else None

    def _label(self, side: str) -> str:
        return {WORKTREE: "worktree", _EMPTY: "empty"}.get(side, side)

    def _diff_sides(self, key: str, rev_a: str | None, rev_b: str | None) -> tuple[str, str]:
        """The two sides `diff` compares: commit ids or `WORKTREE`."""
        tip = WORKTREE if self.follows_checkout else "HEAD"
        if rev_a is not None:
            b = self._side(key, rev_b) if rev_b is not None else self._side(key, tip)
            return self._side(key, rev_a), b
        head = self.resolve("HEAD")
        if self.branch != self.base_branch or self.detached:
            base = self._branch_base(head)
            if base is not None and base != head:
                return base, self._side(key, tip)
        if tip == WORKTREE and self._uncommitted(key, head):
            return head, WORKTREE
        try:
            versions = self.history(key, head)
        except NotFoundError:
            return head, head
        reachable = [v for v in versions if self.git.is_ancestor(v.commit, head)]
        if len(reachable) < 2:  # one version: it was added there
            parents = self.git.commit_info(reachable[0].commit).parents if reachable else ()
            return (parents[0] if parents else _EMPTY), head
        return reachable[1].commit, head

    def _side(self, key: str, rev: str) -> str:
        if rev == WORKTREE:
            return WORKTREE
        if parse_semver(rev) is not None:
            return self.version_commit(key, rev).commit
        return self.resolve(rev)

    def _branch_base(self, head: str) -> str | None:
        """The merge base of `head` with the base branch (its remote-tracking ref first)."""
        for ref in (f"refs/remotes/origin/{self.base_branch}", f"refs/heads/{self.base_branch}"):
            if self.git.has_ref(ref):
                base = self.git.merge_base(head, self.git.resolve(ref))
                if base is not None:
                    return base
        return None

    def _uncommitted(self, key: str, head: str) -> bool:
        disk = _find(self.snapshot(WORKTREE), key)
        committed = _find(self._snapshot_at(head), key)
        return (disk.content_hash if disk else None) != (
            committed.content_hash if committed else None)

    def log(self, key: str | None = None, since: datetime | None = None,
            author: str | None = None, rev: str = "HEAD") -> list[AuditEvent]:
        """The audit trail, newest first: created / updated / renamed / deleted /
        rolled_back events of the commits on the branch's first-parent line (the commits the
        mirror sees; a merge's events are the changes it brought in, by its author).

        `key` keeps the events of that entity under any of its names; `since` those at or
        after a time; `author` those whose actor name or e-mail contains the text
        (case-insensitive).
        """
        head = self.resolve(rev)
        paths: set[str] = set()
        keys: set[str] = set()
        if key is not None:
            for v in self.history(key, head):
                paths.add(v.path)
                keys.add(v.key)
        needle = author.lower() if author else None
        events: list[AuditEvent] = []
        for cid in reversed(self.git.first_parent_chain(None, head)):
            info = self.git.commit_info(cid)
            if since is not None and info.time < _aware(since):
                continue
            if needle and needle not in f"{info.author_name} <{info.author_email}>".lower():
                continue
            parent = info.parents[0] if info.parents else None
            if paths and not any(self.git.blob_id(cid, p) != (
                    self.git.blob_id(parent, p) if parent else None) for p in paths):
                continue
            for event in self.commit_events(cid, paths or None):
                if not keys or event.key in keys or event.old_key in keys:
                    events.append(event)
        return events

    def commit_events(self, commit: str, paths: set[str] | None = None) -> list[AuditEvent]:
        """The audit events of one commit (`history.commit_events`)."""
        return commit_events(self.git, self.settings, commit, paths)

    def review_base(self, against: str | None = None) -> str:
        """The commit a review compares with: `against`, else the merge base of HEAD with
        `origin/<base branch>` (when that remote branch exists) or with `<base branch>`
        (`maestro review` finds it harder: `maestro_git.repo.review.find_base`)."""
        if against is not None:
            return self.resolve(against)
        head = self.git.resolve("HEAD")
        return self._branch_base(head) or head

    def review(self, against: str | None = None) -> tuple[str, list[Problem]]:
        """Validate the working tree (the branch head in a bare repository) and check
        version discipline against `review_base(against)`; returns the base commit and the
        problems (validation problems and `version-not-raised`, severities as configured)."""
        base_commit = self.review_base(against)
        base = self._snapshot_at(base_commit)
        head = (build_snapshot(read_worktree(self.settings.repo_path), self.settings)
                if self.git.workdir is not None else self.snapshot())
        problems = list(head.problems)
        problems += apply_severities(version_problems(base, head), self.settings)
        problems.sort(key=lambda p: (p.path, p.line or 0, p.column or 0, p.rule))
        return base_commit, problems

    # -- writing (maestro_git.repo.writes) ----------------------------------------------------
    def create(self, key: str, body: str, fields: Mapping[str, Any] | None = None,
               author: Identity | str | None = None, message: str | None = None,
               base: str | None = None) -> str:
        """Commit a new persona (`owner/name`) or template (`name`); returns the commit id.

        `fields` is the frontmatter; an `id` (a new UUID) and `version: 1.0.0` are added
        when missing. Raises `ConflictError` when the key exists.
        """
        path = key_path(key)
        values = dict(fields or {})
        values.setdefault("id", str(uuid.uuid4()))
        values.setdefault("version", "1.0.0")
        from maestro_git.core.writeback import render_document  # ruamel.yaml: writes only

        data = render_document(values, body)
        writer = self._writer()
        return writer.commit(lambda snap: writer.plan_create(snap, key, path, data, message),
                             author, base)

    def update(self, key: str, body: str | None = None,
               fields: Mapping[str, Any] | None = None, remove: Iterable[str] = (),
               author: Identity | str | None = None, message: str | None = None,
               base: str | None = None) -> str:
        """Commit a change to `key`: frontmatter `fields` set, `remove`d, and/or a new `body`.

        Only the lines of the changed keys are rewritten. Unless `fields` sets `version`,
        the patch version is raised. Raises `UsageError` when nothing would change.
        """
        updates = dict(fields or {})
        removed = tuple(remove)
        writer = self._writer()
        return writer.commit(
            lambda snap: writer.plan_update(snap, key, body, updates, removed, message),
            author, base)

    def rename(self, key: str, new_key: str, author: Identity | str | None = None,
               message: str | None = None, base: str | None = None) -> str:
        """Move `key` to `new_key` (another name, or another owner folder) in one commit.

        The file keeps its bytes and `id` (frontmatter `name`/`owner`, when written, follow
        the path, and then the patch version is raised); personas that `extends` the old key
        are pointed at the new one (their patch version raised) in the same commit.
        """
        new_path = key_path(new_key)
        if (new_key.count("/") == 1) != (key.count("/") == 1):
            raise UsageError(f"cannot rename {key} to {new_key}: a persona stays a persona "
                             "and a template a template")
        writer = self._writer()
        return writer.commit(
            lambda snap: writer.plan_rename(snap, key, new_key, new_path, message),
            author, base)

    def delete(self, key: str, author: Identity | str | None = None,
               message: str | None = None, base: str | None = None) -> str:
        """Delete `key` in a commit. Refused (`ValidationFailed`) while personas extend it."""
        writer = self._writer()
        return writer.commit(lambda snap: writer.plan_delete(snap, key, message), author, base)

    def rollback(self, key: str, to: str, author: Identity | str | None = None,
                 message: str | None = None, base: str | None = None) -> str:
        """Restore `key` to an earlier version, as a new commit; history is never rewritten.

        `to` is a semver version of `key` (the newest commit that had it) or a revision. The
        file gets that version's bytes exactly, except `version`, which becomes the next
        patch after the higher of the current and the restored version. The commit message
        records `Rollback to version X (commit abc1234)`. A deleted persona can be restored
        the same way (at its last path).
        """
        start = base or self.head()
        if start is None:
            raise NotFoundError(f"branch '{self.branch}' has no commits yet")
        target = self.version_commit(key, to, start)
        old_bytes = self.git.read_file(target.commit, target.path)
        if old_bytes is None or target.content_hash is None:
            raise NotFoundError(f"{key} was deleted at {to}",
                                hint=f"pick a version before {target.commit[:7]} from "
                                     f"'maestro history {key}'")
        old_doc = self._read_document(target.commit, target.path)
        restored_version = target.version or (old_doc.version if old_doc else "1.0.0")
        writer = self._writer()
        return writer.commit(
            lambda snap: writer.plan_rollback(snap, key, target, old_bytes, restored_version,
                                              message),
            author, base)

    def promote(self, key: str, source: str, target: str,
                author: Identity | str | None = None, message: str | None = None) -> str:
        """Commit `key`'s file (and the ancestors its effective instruction needs, where they
        differ) from the head of branch `source` onto branch `target`, compare-and-swap.

        Only `target` moves. The commit carries `Maestro-Action: promoted`, so the audit
        trail records a `promoted` event. Returns the new commit on `target`."""
        if self.git.head(target) is None:
            raise NotFoundError(f"branch '{target}' does not exist",
                                hint=f"create it once: git branch {target} {source}")
        start = self.git.head(source)
        if start is None:
            raise NotFoundError(f"branch '{source}' does not exist or has no commits")
        source_snap = self._snapshot_at(start)
        from maestro_git.repo.promote import plan_promotion

        writer = Writer(self.git, self.settings, target, self._snapshot_at, self._remember)
        return writer.commit(
            lambda snap: plan_promotion(self.git, source_snap, snap, key, source, target,
                                        message),
            author, None)


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _find(snap: Snapshot, key: str) -> Persona | Template | PersonaSet | None:
    if "/" in key:
        return snap.personas.get(key)
    return snap.templates.get(key) or snap.sets.get(key)


def _by_id(snap: Snapshot, rec: Persona | Template | PersonaSet) -> Persona | Template | None:
    """The record of `snap` with `rec`'s frontmatter id (the same entity under another key)."""
    if isinstance(rec, PersonaSet) or not rec.id:
        return None
    for path in snap.paths_for_id(rec.id):
        found = snap.files[path].record
        if isinstance(found, Persona | Template) and found.kind == rec.kind:
            return found
    return None
