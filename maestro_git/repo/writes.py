"""Writes that are commits: plan the new file bytes, validate them, commit with compare-and-swap.

`Repository` (`maestro_git.repo.repository`) is the façade; each of its writes (`create`, `update`,
`rename`, `delete`, `rollback`) is one commit on the branch, made by a `Writer` like this:

0. wait for maestro's writers' lock on the repository (`GitRepo.writers_lock`): maestro
   writers take turns, so writes to different personas never fail for contention;
1. take the branch head (or the caller's `base`) and the repository snapshot there;
2. plan the new file bytes (`Writer.plan_*`: frontmatter edited line by line by
   `maestro_git.core.writeback`, the body kept byte for byte) and validate the result: a write that
   would leave an error on a file it touches, or add an error anywhere else (a child left
   without its parent), is refused with `ValidationFailed` and nothing is committed;
3. commit with compare-and-swap on the branch ref (`GitRepo.write_commit`); on a checked-out
   branch (`GitRepo.commit_checked_out`) under git's `index.lock`, refusing when a touched
   file has uncommitted changes (staged or not), and then writing the touched files and their
   index entries, so `git status` stays clean and what the human staged stays staged;
4. when a program outside maestro (a human's `git commit`) moved the branch first, the
   commits in between are inspected: if they touched none of this write's files the write is
   re-planned on the new head and retried (until `WRITE_DEADLINE_SECONDS`); if they touched
   one, `ConflictError` names the entity and the newest commit that changed its file. No
   update is ever lost.

The author is the acting user: an explicit `author` > `Settings.author_name/author_email` >
git's `user.name/user.email`; the committer is the configured identity (or the author).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from maestro_git.core import inherit
from maestro_git.core.audit import rollback_message
from maestro_git.core.formats import classify, parse_file
from maestro_git.core.models import Persona, Problem, Severity, SourceFile, Template, Version
from maestro_git.core.rules.versions import bump_patch, compare_versions
from maestro_git.core.snapshot import Snapshot, update_snapshot
from maestro_git.errors import (
    ConfigError,
    ConflictError,
    NotFoundError,
    UsageError,
    ValidationFailed,
)
from maestro_git.git.repo import DirtyWorktreeError, GitRepo, Identity, StaleHeadError
from maestro_git.settings import Settings

__all__ = ["WRITE_DEADLINE_SECONDS", "Document", "Plan", "Writer", "key_path"]

def set_fields(data: bytes, updates: Mapping[str, Any], remove: Sequence[str] = ()) -> bytes:
    """`core.writeback.set_fields`, imported at the first write: ruamel.yaml is a tenth of a
    read-only command's start-up (`maestro history` imports this module for `key_path`)."""
    from maestro_git.core import writeback

    return writeback.set_fields(data, updates, remove)


def set_body(data: bytes, body: str) -> bytes:
    """`core.writeback.set_body`, imported at the first write (see `set_fields`)."""
    from maestro_git.core import writeback

    return writeback.set_body(data, body)


# How long one write may wait for other writers (maestro's, git's locks) and retry on a branch
# that programs outside maestro keep moving, before it is refused.
WRITE_DEADLINE_SECONDS = 30.0

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
class Plan:
    """The files one write changes, and how it is described."""

    label: str  # the entity, for messages ("acme/reviewer")
    changes: Mapping[str, bytes | None]  # path -> new bytes (None: delete)
    message: str


class Writer:
    """One thread's write path on a branch: plans a change on a snapshot, commits it.

    `snapshot_at` gives the snapshot at a commit (the repository's cached one when it can);
    `remember` is handed the snapshot after each commit, so the next read or write starts
    from it.
    """

    def __init__(self, git: GitRepo, settings: Settings, branch: str,
                 snapshot_at: Callable[[str | None], Snapshot],
                 remember: Callable[[Snapshot], None]) -> None:
        self.git = git
        self.settings = settings
        self.branch = branch
        self._snapshot_at = snapshot_at
        self._remember = remember

    # -- planning: what each write changes ------------------------------------------------
    def plan_create(self, snap: Snapshot, key: str, path: str, data: bytes,
                    message: str | None) -> Plan:
        """A new file `path` with `data`; `ConflictError` when `key` exists."""
        if path in snap.files:
            raise ConflictError(f"{key} already exists", hint=f"edit {path} instead, or "
                                "use 'maestro rename' to free the name")
        return Plan(key, {path: data}, message or f"Create {key}")

    def plan_update(self, snap: Snapshot, key: str, body: str | None,
                    updates: Mapping[str, Any], removed: Sequence[str],
                    message: str | None) -> Plan:
        """`key` with frontmatter `updates` set, `removed` keys dropped, maybe a new `body`;
        the patch version raised unless `updates` sets `version`."""
        doc, data = self._current(snap, key)
        version = updates.get("version", bump_patch(doc.version))
        new = set_fields(data, {**updates, "version": version}, removed)  # one rewrite
        if body is not None:
            new = set_body(new, body)
        unchanged = new == data if "version" in updates else self._same_content(doc, new)
        if unchanged:
            raise UsageError(f"nothing to change in {key}")
        return Plan(key, {doc.path: new}, message or f"Update {key} to {version}")

    def plan_rename(self, snap: Snapshot, key: str, new_key: str, new_path: str,
                    message: str | None) -> Plan:
        """`key` moved to `new_path`, and the personas extending it pointed at `new_key`."""
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
        return Plan(key, changes, message or f"Rename {key} to {new_key}")

    def plan_delete(self, snap: Snapshot, key: str, message: str | None) -> Plan:
        """`key`'s file removed."""
        doc, _ = self._current(snap, key)
        return Plan(key, {doc.path: None}, message or f"Delete {key}")

    def plan_rollback(self, snap: Snapshot, key: str, target: Version, old_bytes: bytes,
                      restored_version: str, message: str | None) -> Plan:
        """`key` given `old_bytes` (the file at `target`) with the next patch version after
        the higher of the current and the restored version."""
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
        return Plan(key, {path: data}, text)

    # -- committing ------------------------------------------------------------------------
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

    def commit(self, plan: Callable[[Snapshot], Plan], author: Identity | str | None,
               base: str | None) -> str:
        """Commit what `plan` makes of the snapshot at `base` (default: the branch head), as
        `author`; re-planned on the new head when the branch moved first without touching
        this write's files (steps 1-5 above). Returns the new commit id.

        Maestro writers take turns (`GitRepo.writers_lock`), so they never lose a
        compare-and-swap to one another; only a program outside maestro can move the branch
        under a write, which then retries on the new head until `WRITE_DEADLINE_SECONDS`."""
        git = self.git
        who = self._author(author)
        committer = self._configured_identity() or who
        deadline = time.monotonic() + WRITE_DEADLINE_SECONDS
        worktree = git.checked_out(self.branch)
        with git.writers_lock(deadline):
            start = base if base is not None else git.head(self.branch)
            planned: tuple[str | None, Plan, Snapshot] | None = None
            while True:
                if planned is None or planned[0] != start:
                    snap = self._snapshot_at(start)
                    step = plan(snap)
                    planned = (start, step, self._validate(snap, step))
                _, step, after = planned
                try:
                    if worktree is not None:
                        commit = git.commit_checked_out(self.branch, start, step.changes, who,
                                                        committer, step.message, deadline)
                    else:
                        commit = git.write_commit(self.branch, start, step.changes, who,
                                                  committer, step.message)
                except DirtyWorktreeError as dirty:
                    raise ConflictError(
                        dirty.message, hint="commit or discard them first; maestro writes "
                                            "would overwrite them") from dirty
                except StaleHeadError as stale:
                    self._check_race(step, start, stale.current)
                    if time.monotonic() > deadline:
                        raise self._timeout(stale.current == start) from stale
                    if stale.current == start:  # a program held the ref's lock just then
                        time.sleep(random.uniform(0.001, 0.01))
                    start = stale.current
                    continue
                self._remember(replace(after, commit=commit))
                return commit

    def _timeout(self, locked: bool) -> ConflictError:
        if locked:
            return ConflictError(
                f"the branch '{self.branch}' stayed locked for {WRITE_DEADLINE_SECONDS:.0f} s",
                hint=f"if no git command is running, remove .git/refs/heads/{self.branch}.lock")
        return ConflictError(
            f"the branch '{self.branch}' kept moving for {WRITE_DEADLINE_SECONDS:.0f} s "
            "(commits from outside maestro)", hint="try again")

    def _check_race(self, step: Plan, base: str | None, current: str | None) -> None:
        """Raise `ConflictError` naming the commit that changed a file of this write between
        `base` and `current`; when none did, the write may be replayed on `current`."""
        if current is None or current == base:
            return
        if base is None:
            touched = {f.path for f in self.git.files_at(current)}
        else:
            touched = self.git.changed_paths(base, current)
        clash = set(touched) & set(step.changes)
        if clash:
            info = self.git.commit_info(self._changed_by(clash, base, current))
            raise ConflictError(
                f"{step.label} was changed by commit {info.short_id} ({info.author_name}: "
                f"{info.message.splitlines()[0] if info.message else ''}) while this write "
                "was being made",
                hint=f"nothing was committed; look at 'maestro history {step.label}' and "
                     "apply the change again on top of it")

    def _changed_by(self, paths: set[str], base: str | None, current: str) -> str:
        """The newest commit on the first-parent line from `base` to `current` that changed
        one of `paths` (`current` when none can be told apart, as after a merge)."""
        chain = self.git.first_parent_chain(base, current)
        for commit in reversed(chain):
            parents = self.git.commit_info(commit).parents
            parent = parents[0] if parents else None
            if any(self.git.blob_id(commit, p) != (
                    self.git.blob_id(parent, p) if parent else None) for p in paths):
                return commit
        return current

    def _validate(self, snap: Snapshot, step: Plan) -> Snapshot:
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

