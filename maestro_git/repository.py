"""The file-and-git API: snapshots, history, diffs, and writes that are commits.

`Repository(settings)` works on the repository at `settings.repo_path`, branch
`settings.branch`. Reads never need a checkout. Every write (`create`, `update`, `rename`,
`delete`, `rollback`) is one commit on the branch, made like this:

1. take the branch head (or the caller's `base`) and the repository snapshot there;
2. plan the new file bytes (frontmatter edited line by line by `maestro_git.writeback`, the
   body kept byte for byte) and validate the result: a write that would leave an error on a
   file it touches, or add an error anywhere else (a child left without its parent), is
   refused with `ValidationFailed` and nothing is committed;
3. refuse when the working tree (if the branch is checked out) has uncommitted changes to a
   file the write touches;
4. commit with compare-and-swap on the branch ref (`GitRepo.write_commit`). When another
   writer moved the branch first, the commits in between are inspected: if they touched none
   of this write's files the write is re-planned on the new head and retried (bounded); if
   they touched one, `ConflictError` names the entity and the commit. No update is ever lost;
5. write the touched files into the working tree and the index, so `git status` stays clean.

The author is the acting user: an explicit `author` > `Settings.author_name/author_email` >
git's `user.name/user.email`; the committer is the configured identity (or the author).

A `Repository` may be shared by threads: each thread gets its own `pygit2` handle.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from maestro_git import inherit
from maestro_git.audit import rollback_message
from maestro_git.errors import (
    ConfigError,
    ConflictError,
    NotFoundError,
    UsageError,
    ValidationFailed,
)
from maestro_git.formats import classify, parse_file
from maestro_git.git import GitRepo, Identity, StaleHeadError
from maestro_git.history import (
    PersonaDiff,
    commit_events,
    diff_versions,
    read_history,
    resolved_body,
)
from maestro_git.models import AuditEvent, Persona, Problem, Severity, SourceFile, Template, Version
from maestro_git.review import bump_patch, compare_versions, parse_semver, version_problems
from maestro_git.settings import Settings
from maestro_git.snapshot import Snapshot, build_snapshot, update_snapshot
from maestro_git.validate import apply_severities
from maestro_git.worktree import read_worktree
from maestro_git.writeback import render_document, set_body, set_fields

__all__ = ["MAX_ATTEMPTS", "Repository", "key_path"]

MAX_ATTEMPTS = 20  # lost compare-and-swaps of one write before giving up
LOCK_WAIT_SECONDS = 10.0  # how long a write waits for another writer's lock on the branch ref

Document = Persona | Template


def key_path(key: str) -> str:
    """The file of a persona (`owner/name`) or template (`name`) key."""
    if key.count("/") == 1:
        return f"personas/{key}.md"
    if "/" not in key and key:
        return f"templates/{key}.md"
    raise UsageError(f"'{key}' is not a persona or template key",
                     hint="persona keys are <owner>/<name>; template keys are <name>")


@dataclass(frozen=True)
class _Plan:
    """The files one write changes, and how it is described."""

    label: str  # the entity, for messages ("acme/reviewer")
    changes: Mapping[str, bytes | None]  # path -> new bytes (None: delete)
    message: str


class Repository:
    """A persona repository: read any revision, write commits."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.branch = settings.branch
        self._local = threading.local()
        self._lock = threading.Lock()
        self._cached: Snapshot | None = None
        _ = self.git  # fail early (GitError) when repo_path is not a repository

    @property
    def git(self) -> GitRepo:
        """This thread's handle on the git repository."""
        repo: GitRepo | None = getattr(self._local, "git", None)
        if repo is None:
            repo = GitRepo(self.settings.repo_path)
            self._local.git = repo
        return repo

    # -- reading -------------------------------------------------------------------------
    def head(self) -> str | None:
        """The branch's current commit (None for a branch without commits)."""
        return self.git.head(self.branch)

    def resolve(self, rev: str) -> str:
        """A full commit id for `rev`; `HEAD` means the branch head."""
        if rev == "HEAD":
            head = self.head()
            if head is None:
                raise NotFoundError(f"branch '{self.branch}' has no commits yet")
            return head
        return self.git.resolve(rev)

    def snapshot(self, rev: str = "HEAD") -> Snapshot:
        """Every record and problem at `rev`, read from the commit's tree (no checkout).

        The last snapshot is kept, and the next one is derived from it by re-parsing only
        the files that differ, so consecutive revisions and writes stay cheap.
        """
        return self._snapshot_at(self.resolve(rev))

    def _snapshot_at(self, commit: str | None) -> Snapshot:
        if commit is None:
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
        with self._lock:
            self._cached = snap
        return snap

    def history(self, key: str, rev: str = "HEAD") -> list[Version]:
        """Every version of `key` up to `rev`, newest first: the commits that changed its
        file, following renames and moves (see `GitRepo.file_history` for merges).

        Raises `NotFoundError` when no commit ever had the file.
        """
        start = self.resolve(rev)
        versions = read_history(self.git, start, self._path_of(key, start))
        if not versions:
            raise NotFoundError(f"'{key}' has no history on {self.branch}",
                                hint="check the key with 'maestro list'")
        return versions

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
             resolved: bool = False) -> PersonaDiff:
        """What changed in `key` from `rev_a` to `rev_b` (revisions or semver versions).

        Defaults: `rev_b` is the branch head; `rev_a` is the version before the one current
        at `rev_b`. With `resolved`, the bodies compared are the effective instructions
        with inheritance applied.
        """
        head = self.resolve("HEAD")
        versions = self.history(key, head)
        b = self._version_in(key, versions, rev_b).commit if rev_b else head
        if rev_a:
            a = self._version_in(key, versions, rev_a).commit
        else:
            reachable = (v for v in versions if self.git.is_ancestor(v.commit, b))
            next(reachable, None)  # the version current at b
            previous = next(reachable, None)
            a = previous.commit if previous is not None else b
        old = self._document_at(versions, a)
        new = self._document_at(versions, b)
        old_body = new_body = None
        if resolved:
            old_body = resolved_body(self.git, self.settings, old, a) if old else None
            new_body = resolved_body(self.git, self.settings, new, b) if new else None
        return diff_versions(key, a, b, old, new, old_body=old_body, new_body=new_body,
                             resolved=resolved)

    def _document_at(self, versions: Sequence[Version], commit: str) -> Document | None:
        for v in versions:
            if self.git.is_ancestor(v.commit, commit):
                if v.content_hash is None:
                    return None
                return self._read_document(commit, v.path)
        return None

    def _read_document(self, commit: str, path: str) -> Document | None:
        data = self.git.read_file(commit, path)
        if data is None:
            return None
        rec = parse_file(SourceFile(path=path, data=data), self.settings.limits).record
        return rec if isinstance(rec, Persona | Template) else None

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
        `origin/<branch>` (when that remote branch exists) or with `<branch>`."""
        if against is not None:
            return self.resolve(against)
        head = self.git.resolve("HEAD")
        for ref in (f"refs/remotes/origin/{self.branch}", f"refs/heads/{self.branch}"):
            try:
                other = self.git.resolve(ref)
            except NotFoundError:
                continue
            base = self.git.merge_base(head, other)
            if base is not None:
                return base
        return head

    def review(self, against: str | None = None) -> tuple[str, list[Problem]]:
        """Validate the working tree (the branch head in a bare repository) and check
        version discipline against `review_base(against)`; returns the base commit and the
        problems (validation problems and `version-not-raised`, severities as configured)."""
        base_commit = self.review_base(against)
        base = self._snapshot_at(base_commit)
        if self.git.workdir is not None:
            head = build_snapshot(read_worktree(self.settings.repo_path), self.settings)
        else:
            head = self.snapshot()
        problems = list(head.problems)
        problems += apply_severities(version_problems(base, head), self.settings)
        problems.sort(key=lambda p: (p.path, p.line or 0, p.column or 0, p.rule))
        return base_commit, problems

    # -- writing -------------------------------------------------------------------------
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
        data = render_document(values, body)

        def plan(snap: Snapshot) -> _Plan:
            if path in snap.files:
                raise ConflictError(f"{key} already exists", hint=f"edit {path} instead, or "
                                    "use 'maestro rename' to free the name")
            return _Plan(key, {path: data}, message or f"Create {key}")

        return self._write(plan, author, base)

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

        def plan(snap: Snapshot) -> _Plan:
            doc, data = self._current(snap, key)
            version = updates.get("version", bump_patch(doc.version))
            new = set_fields(data, {**updates, "version": version}, removed)  # one rewrite
            if body is not None:
                new = set_body(new, body)
            unchanged = new == data if "version" in updates else self._same_content(doc, new)
            if unchanged:
                raise UsageError(f"nothing to change in {key}")
            return _Plan(key, {doc.path: new}, message or f"Update {key} to {version}")

        return self._write(plan, author, base)

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

        def plan(snap: Snapshot) -> _Plan:
            doc, data = self._current(snap, key)
            if new_path in snap.files:
                raise ConflictError(f"{new_key} already exists",
                                    hint="choose another name, or delete that one first")
            loc = classify(new_path)
            assert loc is not None
            renamed = _follow_path(data, loc.name, loc.owner)
            if renamed != data:
                renamed = set_fields(renamed, {"version": bump_patch(doc.version)})
            changes: dict[str, bytes | None] = {doc.path: None, new_path: renamed}
            if isinstance(doc, Persona):
                for child in inherit.children(key, snap.personas):
                    if child == key:
                        continue
                    rec = snap.personas[child]
                    raw = self._bytes(snap, rec.path)
                    changes[rec.path] = set_fields(
                        raw, {"extends": new_key, "version": bump_patch(rec.version)})
            return _Plan(key, changes, message or f"Rename {key} to {new_key}")

        return self._write(plan, author, base)

    def delete(self, key: str, author: Identity | str | None = None,
               message: str | None = None, base: str | None = None) -> str:
        """Delete `key` in a commit. Refused (`ValidationFailed`) while personas extend it."""

        def plan(snap: Snapshot) -> _Plan:
            doc, _ = self._current(snap, key)
            return _Plan(key, {doc.path: None}, message or f"Delete {key}")

        return self._write(plan, author, base)

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

        def plan(snap: Snapshot) -> _Plan:
            path = key_path(key)
            current = snap.files.get(path)
            rec = current.record if current is not None else None
            if isinstance(rec, Persona | Template):
                current_version = rec.version
                current_bytes = self._bytes(snap, path)
                if current_bytes == set_fields(old_bytes, {"version": rec.version}):
                    raise UsageError(f"{key} already has the content of version "
                                     f"{restored_version}")
            else:
                current_version = restored_version
                path = target.path
            higher = current_version
            if compare_versions(restored_version, current_version) == 1:
                higher = restored_version
            new_version = bump_patch(higher)
            data = set_fields(old_bytes, {"version": new_version})
            loc = classify(path)
            if loc is not None:
                data = _follow_path(data, loc.name, loc.owner)
            text = rollback_message(key, restored_version, target.commit)
            if message:
                text = message.rstrip("\n") + "\n\n" + text.split("\n\n", 1)[1]
            return _Plan(key, {path: data}, text)

        return self._write(plan, author, base)

    # -- the write pipeline ----------------------------------------------------------------
    def _current(self, snap: Snapshot, key: str) -> tuple[Document, bytes]:
        path = key_path(key)
        parsed = snap.files.get(path)
        if parsed is None:
            raise NotFoundError(f"{key} does not exist on {self.branch}",
                                hint="list the keys with 'maestro list'")
        rec = parsed.record
        if not isinstance(rec, Persona | Template):
            raise ValidationFailed(f"{path} cannot be parsed; fix it by hand first",
                                   snap.problems_for(path))
        return rec, self._bytes(snap, path)

    def _same_content(self, doc: Document, new: bytes) -> bool:
        """Whether `new` says what `doc` already says, apart from its version."""
        rec = parse_file(SourceFile(path=doc.path, data=new), self.settings.limits).record
        if not isinstance(rec, Persona | Template):
            return False
        ignore = {"version", "content_hash", "size_bytes", "body_line"}
        return rec.model_dump(exclude=ignore) == doc.model_dump(exclude=ignore)

    def _bytes(self, snap: Snapshot, path: str) -> bytes:
        if snap.commit is None:  # pragma: no cover - an empty branch has no files
            raise NotFoundError(f"{path} does not exist")
        data = self.git.read_file(snap.commit, path)
        if data is None:  # pragma: no cover - the snapshot came from this commit
            raise NotFoundError(f"{path} does not exist at {snap.commit[:7]}")
        return data

    def _write(self, plan: Callable[[Snapshot], _Plan], author: Identity | str | None,
               base: str | None) -> str:
        git = self.git
        who = self._author(author)
        committer = self._configured_identity() or who
        start = base if base is not None else git.head(self.branch)
        worktree = git.checked_out(self.branch)
        attempts = 0
        locked_since: float | None = None
        planned: tuple[str | None, _Plan, Snapshot] | None = None
        while True:
            if planned is None or planned[0] != start:
                snap = self._snapshot_at(start)
                step = plan(snap)
                planned = (start, step, self._validate(snap, step))
            _, step, after = planned
            paths = sorted(step.changes)
            if worktree is not None:
                dirty = git.dirty_paths(paths, start, git.head(self.branch))
                if dirty:
                    raise ConflictError(
                        f"{dirty[0]} has uncommitted changes in the working tree",
                        hint="commit or discard them first; maestro writes would overwrite "
                             "them")
            try:
                commit = git.write_commit(self.branch, start, step.changes, who, committer,
                                          step.message)
            except StaleHeadError as stale:
                self._check_race(step, start, stale.current)
                if stale.current == start:  # another writer held the ref's lock just then
                    now = time.monotonic()
                    locked_since = locked_since or now
                    if now - locked_since > LOCK_WAIT_SECONDS:
                        raise ConflictError(
                            f"the branch '{self.branch}' stayed locked for "
                            f"{LOCK_WAIT_SECONDS:.0f} s", hint="if no git command is running, "
                            f"remove .git/refs/heads/{self.branch}.lock") from stale
                    time.sleep(random.uniform(0.001, 0.01))
                    continue
                attempts += 1
                locked_since = None
                if attempts >= MAX_ATTEMPTS:
                    raise ConflictError(
                        f"gave up writing after {MAX_ATTEMPTS} attempts: the branch "
                        f"'{self.branch}' keeps moving", hint="try again") from stale
                start = stale.current
                time.sleep(random.uniform(0, 0.002 * attempts))
                continue
            with self._lock:
                self._cached = replace(after, commit=commit)
            if worktree is not None:
                git.sync_worktree(commit, paths)
            return commit

    def _check_race(self, step: _Plan, base: str | None, current: str | None) -> None:
        """Raise `ConflictError` when the commits from `base` to `current` touched a file of
        this write; otherwise the write may be replayed on `current`."""
        if current is None or current == base:
            return
        if base is None:
            touched = {f.path for f in self.git.files_at(current)}
        else:
            touched = self.git.changed_paths(base, current)
        clash = sorted(touched & set(step.changes))
        if clash:
            info = self.git.commit_info(current)
            raise ConflictError(
                f"{step.label} was changed by commit {info.short_id} ({info.author_name}: "
                f"{info.message.splitlines()[0] if info.message else ''}) while this write "
                "was being made",
                hint=f"nothing was committed; look at 'maestro history {step.label}' and "
                     "apply the change again on top of it")

    def _validate(self, snap: Snapshot, step: _Plan) -> Snapshot:
        changed = [SourceFile(path=p, data=d) for p, d in step.changes.items() if d is not None]
        removed = [p for p, d in step.changes.items() if d is None]
        after = update_snapshot(snap, changed, removed, self.settings, None)
        before = {_fingerprint(p) for p in snap.problems if p.severity is Severity.ERROR}
        touched = {p for p, d in step.changes.items() if d is not None}
        errors: list[Problem] = [
            p for p in after.problems if p.severity is Severity.ERROR
            and (p.path in touched or _fingerprint(p) not in before)]
        if errors:
            first = errors[0]
            raise ValidationFailed(
                f"{step.label}: the write would not validate ({len(errors)} error"
                f"{'s' if len(errors) != 1 else ''}; first: {first.location()}: "
                f"{first.rule}: {first.message})", errors,
                hint=first.fix or "nothing was committed")
        return after

    def _configured_identity(self) -> Identity | None:
        name, email = self.settings.author_name, self.settings.author_email
        if name and email:
            return Identity(name, email)
        default = self.git.default_identity()
        if default is None:
            return None
        return Identity(name or default.name, email or default.email)

    def _author(self, author: Identity | str | None) -> Identity:
        if isinstance(author, Identity):
            return author
        if isinstance(author, str):
            return Identity.parse(author)
        found = self._configured_identity()
        if found is None:
            raise ConfigError("no author identity for the commit",
                              hint="pass --author 'Name <email>', set MAESTRO_AUTHOR_NAME and "
                                   "MAESTRO_AUTHOR_EMAIL, or git config user.name/user.email")
        return found


def _fingerprint(problem: Problem) -> tuple[str, str, str]:
    return (problem.rule, problem.path, problem.message)


def _follow_path(data: bytes, name: str, owner: str | None) -> bytes:
    """`data` with frontmatter `name`/`owner`, when written there, set to the path's."""
    updates: dict[str, Any] = {}
    if _writes_key(data, "name"):
        updates["name"] = name
    if owner is not None and _writes_key(data, "owner"):
        updates["owner"] = owner
    return set_fields(data, updates) if updates else data


def _writes_key(data: bytes, key: str) -> bool:
    head = data.split(b"\n---", 1)[0]
    return any(line.startswith(f"{key}:".encode()) for line in head.splitlines())


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
