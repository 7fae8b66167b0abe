"""Catch the mirror up with the branch: last mirrored commit → head, one commit at a time.

Rules of this module:
- The branch is read first-parent, oldest first: a merged branch arrives as its merge commit.
- A `Syncer` is long-lived: it keeps the last mirrored commit, its snapshot and the mirror's
  effective state in memory, so a `catch_up()` after one new commit re-reads and re-parses
  only the files that commit touched. Before each catch-up it reads the cursor from
  `sync_state` (one indexed row); if another writer moved it, the state is reloaded.
- Effective state: a file with an ERROR problem at a commit is not applied; its last good
  record stays (a new invalid file is not mirrored at all) and its errors go to `sync_errors`
  until a later commit fixes it.
- Identity: a persona's row id is its frontmatter `id` when that is a UUID; otherwise the id
  its key already has in the mirror, or (for a rename git detects) the id of the key it was
  renamed from, or else uuid5 of its key. A key whose frontmatter id is added or edited keeps
  its history (the mirror moves it to the new id).
- History rewritten (the cursor is gone or no longer an ancestor of the head, after a force
  push or a reset): judged within this mirror only (one schema per repository and branch,
  `registry`). The first commit after the last one the two lines share (the new line's root
  when they share none) is mirrored against what the database holds, then every later
  first-parent commit with its versions; versions of commits no longer on the branch are
  deleted, no version is written twice, and a `history_rewritten` audit event is recorded.
- `sync` mirrors every branch of `settings.mirrored_branches`, each into its own mirror
  with its own connection, writer lock, cursor, rows, versions, audit events and NOTIFYs.
- Durability: every commit of a catch-up but the last commits with `synchronous_commit =
  off`; the last one's flush makes them all durable. A server crash in between loses whole
  commits from the end (never part of one), and the next catch-up replays them.
- Listeners run after each commit's transaction has committed, then the hooks; a listener or
  hook that fails is logged and does not stop the sync.
- A commit PostgreSQL refuses for its data (SQLSTATE class 22, e.g. a `\\u0000` in jsonb; a
  NUL in a text parameter, which psycopg itself refuses without a SQLSTATE; or text that
  cannot be encoded, such as a lone surrogate) is applied again once with the files that
  hold such text (else, for an incremental commit, every file it touched) treated as invalid:
  their last good state stays, rule `unstorable-text` goes to `sync_errors`, and the mirror
  moves past the commit. A second refusal is raised as `MirrorDataError`.
- Identities in the GDPR erasure register (read at each catch-up) are mirrored as their
  pseudonyms.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg

from maestro_git.core import inherit
from maestro_git.core.formats import ParsedFile
from maestro_git.core.models import (
    AuditEvent,
    Change,
    ChangeAction,
    CommitInfo,
    Persona,
    PersonaSet,
    Problem,
    Severity,
    Template,
)
from maestro_git.core.plan import CommitPlan, plan_commit
from maestro_git.core.snapshot import Snapshot, build_snapshot, update_snapshot
from maestro_git.errors import DatabaseError
from maestro_git.git.repo import GitRepo
from maestro_git.mirror import apply as mirror
from maestro_git.mirror import bulk as mirror_bulk
from maestro_git.mirror import db, erasures
from maestro_git.mirror.events import EntityEvent, run_hooks
from maestro_git.settings import Settings

__all__ = ["CommitSummary", "Listener", "MirrorDataError", "MirroredCommit", "SyncReport",
           "Syncer", "sync", "sync_branches", "unstorable", "with_invalid_paths"]

log = logging.getLogger("maestro_git.mirror.sync")

FILE_PROGRESS_STEP = 100  # a whole-tree parse reports its progress every this many files

Record = Persona | Template | PersonaSet

UNSTORABLE_RULE = "unstorable-text"
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class MirrorDataError(DatabaseError):
    """PostgreSQL refused a commit's data even with its suspect files left out: not an
    outage, so retrying will not help until the commit's files change."""


def unstorable(value: object) -> bool:
    """True when `value` (a record, or anything inside one) holds text PostgreSQL cannot
    store: a NUL character or a lone surrogate (or a number jsonb cannot: inf, NaN)."""
    if isinstance(value, str):
        return _UNSTORABLE.search(value) is not None
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, Mapping):
        return any(unstorable(k) or unstorable(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(unstorable(v) for v in value)
    if hasattr(value, "model_dump"):
        return unstorable(value.model_dump())
    return False


def _data_error(exc: BaseException) -> str | None:
    """The one-line reason when `exc` is PostgreSQL refusing data (not an outage)."""
    if isinstance(exc, UnicodeEncodeError):
        return f"text cannot be encoded ({exc.reason})"
    cause = exc.__cause__ if isinstance(exc, DatabaseError) else None
    if isinstance(cause, psycopg.Error) and (cause.sqlstate or "").startswith("22"):
        return str(cause).strip().splitlines()[0]
    if isinstance(cause, psycopg.DataError) and not cause.sqlstate:
        # refused by psycopg before it reached the server (a NUL in a text parameter)
        return str(cause).strip().splitlines()[0]
    return None


@dataclass(frozen=True)
class MirroredCommit:
    """One commit, as listeners see it after its transaction committed."""

    commit: CommitInfo
    changes: list[Change]  # what was applied
    events: list[AuditEvent]
    snapshot: Snapshot  # the new effective state (what the mirror holds now)
    resolved: tuple[str, ...] = ()  # personas whose resolved content changed without an edit


Listener = Callable[[MirroredCommit], None]


@dataclass(frozen=True)
class CommitSummary:
    commit: str
    entities: int  # entities changed (added, modified, removed, renamed)
    errors: int  # files refused at that commit (recorded in sync_errors)
    ms: float


@dataclass(frozen=True)
class SyncReport:
    """What one catch-up did."""

    head: str | None
    branch: str = ""
    schema: str = ""  # the mirror's schema ("" for a bare connection)
    commits: int = 0
    entities: int = 0
    errors: int = 0  # files with errors at the commits mirrored (their last good state kept)
    rewritten: bool = False
    steps: tuple[CommitSummary, ...] = ()
    invalid_paths: tuple[str, ...] = ()  # files invalid at the head (`with_invalid_paths`)


@dataclass
class _State:
    commit: str | None
    raw: Snapshot | None  # every file's parse result at `commit` (None: not built yet)
    eff: Snapshot  # what the mirror holds
    ids: dict[str, uuid.UUID]
    children: dict[str, set[str]] = field(default_factory=dict)
    owners: dict[uuid.UUID, str] = field(default_factory=dict)  # row id -> key (`ids` reversed)


@dataclass(frozen=True)
class _Step:
    commit: str
    full: bool = False  # build the snapshot from the whole tree (first load, reconcile)
    reconcile: bool = False  # diff against the database state; versions only for git's delta
    rewritten_from: str | None = None  # the lost cursor, when history was rewritten
    bulk: bool = False


class Syncer:
    """Mirrors a branch into PostgreSQL, keeping what it needs in memory between calls.

    `conn_or_url`: an open connection (the caller keeps it, e.g. the daemon's lock session)
    or a URL (the syncer opens and closes its own connection). The caller is responsible for
    migrations and for holding the writer lock.
    """

    def __init__(self, settings: Settings, conn_or_url: db.Connection | str,
                 listeners: Sequence[Listener] = (), *, hooks: bool = True) -> None:
        self.settings = settings
        self.git = GitRepo(settings.repo_path)
        if isinstance(conn_or_url, str):
            self.conn = db.connect(conn_or_url)
            self._owns_conn = True
        else:
            self.conn = conn_or_url
            self._owns_conn = False
        self.listeners = list(listeners)
        self.hooks = hooks
        self._state: _State | None = None
        self._erasures = erasures.Erasures()  # re-read at each catch-up
        self._refused: str | None = None  # PostgreSQL's reason, while a step is re-applied
        self._refusals: dict[str, Problem] = {}  # path -> its unstorable-text problem

    def close(self) -> None:
        if self._owns_conn and not self.conn.closed:
            self.conn.close()

    def __enter__(self) -> Syncer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- state -----------------------------------------------------------------------------
    def _load(self) -> _State:
        with db.translate_errors("reading the mirror"):
            loaded = mirror.load_state(self.conn, self.settings.branch)
            refused = set(mirror.invalid_paths(self.conn, UNSTORABLE_RULE))
        raw = None
        if loaded.commit is not None and self.git.has_commit(loaded.commit):
            raw = build_snapshot(self.git.files_at(loaded.commit), self.settings, loaded.commit)
            if refused:  # files PostgreSQL refused stay at their last good state (rules)
                raw = dataclasses.replace(raw, invalid_paths=raw.invalid_paths | frozenset(
                    refused & set(raw.files)))
        eff = loaded.snapshot
        ids = dict(loaded.ids)
        return _State(loaded.commit, raw, eff, ids, inherit.children_index(eff.personas),
                      {v: k for k, v in ids.items()})

    def _current_state(self) -> _State:
        with db.translate_errors("reading the sync cursor"):
            cursor = mirror.read_cursor(self.conn, self.settings.branch)
        if self._state is None or self._state.commit != cursor:
            self._state = self._load()
        return self._state

    # -- planning --------------------------------------------------------------------------
    def _plan(self, state: _State, head: str, head_only: bool) -> tuple[list[_Step], bool]:
        cursor = state.commit
        if cursor is None:
            with db.translate_errors("reading the mirror"):
                empty = mirror.is_empty(self.conn)
            chain = [head] if head_only else self.git.first_parent_chain(None, head)
            steps = [_Step(c) for c in chain]
            steps[0] = _Step(chain[0], full=True, reconcile=not empty, bulk=empty)
            return steps, False
        if head_only:
            return [_Step(head, full=True)], False
        chain = self.git.first_parent_chain(cursor, head)
        if chain and self.git.commit_info(chain[0]).parents[:1] == (cursor,):
            return [_Step(c) for c in chain], False
        # The cursor is not on the head's first-parent line.
        full = self.git.first_parent_chain(None, head)
        known = self.git.has_commit(cursor)
        rewritten = not known or not self.git.is_ancestor(cursor, head)
        lo, hi = 0, len(full)  # last index whose commit is an ancestor of the cursor
        if known:
            while lo < hi:
                mid = (lo + hi) // 2
                if self.git.is_ancestor(full[mid], cursor):
                    lo = mid + 1
                else:
                    hi = mid
        # Every first-parent commit the mirror lacks, even when the lines share no ancestor
        # (lo is then 0: the whole new line, each commit with its versions).
        rest = full[lo:] or [head]
        steps = [_Step(c) for c in rest]
        steps[0] = _Step(rest[0], full=True, reconcile=True,
                         rewritten_from=cursor if rewritten else None)
        if rewritten:
            reachable = set(full)
            with db.translate_errors("reconciling rewritten history"), \
                    self.conn.transaction():
                stale = [r[0] for r in self.conn.execute(
                    "SELECT DISTINCT commit FROM persona_versions")
                    if r[0] not in reachable]
                if stale:
                    self.conn.execute("DELETE FROM persona_versions WHERE commit = ANY(%s)",
                                      (stale,))
        return steps, rewritten

    # -- one commit ------------------------------------------------------------------------
    def _assign_ids(self, state: _State, changes: Sequence[Change], new: Snapshot
                    ) -> dict[str, uuid.UUID]:
        """Patch `state.ids` and `state.owners` for `changes`, in place: O(changes), where
        copying two 10k-entry maps per commit cost more than the rest of the bookkeeping.
        Returns the ids the changed keys had before (what `apply_commit` calls `old_ids`).
        A failed commit drops the whole state (see `_step`), so no half-patched map stays."""
        ids, used = state.ids, state.owners
        before = {k: ids[k] for c in changes if c.kind == "persona"
                  for k in (c.key, c.old_key) if k is not None and k in ids}

        def drop(key: str) -> None:
            uid = ids.pop(key, None)
            if uid is not None and used.get(uid) == key:
                del used[uid]

        for c in changes:
            if c.kind != "persona":
                continue
            if c.action is ChangeAction.REMOVED:
                drop(c.key)
            elif c.action is ChangeAction.RENAMED and c.old_key is not None:
                drop(c.old_key)
        for c in changes:
            if c.kind != "persona" or c.action is ChangeAction.REMOVED:
                continue
            rec = new.personas[c.key]
            uid = mirror.persona_uuid(c.key, rec.id)
            if rec.id is None or uid == mirror.persona_uuid(c.key, None):
                if c.old_key is not None and c.old_key in before:
                    uid = before[c.old_key]
                elif c.key in before:
                    uid = before[c.key]
            owner = used.get(uid)
            if owner is not None and owner != c.key:
                log.warning("%s repeats the id of %s; mirrored under a derived id",
                            rec.path, owner)
                uid = uuid.uuid5(mirror.PERSONA_NAMESPACE, f"persona:{c.key}:duplicate")
            if ids.get(c.key) is not None and used.get(ids[c.key]) == c.key:
                del used[ids[c.key]]
            ids[c.key] = uid
            used[uid] = c.key
        return before

    def _update_children(self, state: _State, old: Snapshot, new: Snapshot,
                         keys: Iterable[str]) -> None:
        for key in keys:
            before, after = old.personas.get(key), new.personas.get(key)
            if before is not None and before.extends:
                state.children.get(before.extends, set()).discard(key)
            if after is not None and after.extends:
                state.children.setdefault(after.extends, set()).add(key)

    def _resolve(self, state: _State, new: Snapshot, changes: Sequence[Change],
                 composer: Callable[[str, str], str] = inherit.compose
                 ) -> tuple[dict[str, str], list[str]]:
        changed = {c.key for c in changes if c.kind == "persona"}
        changed |= {c.old_key for c in changes if c.kind == "persona" and c.old_key}
        if not changed:
            return {}, []
        present = {c.key for c in changes
                   if c.kind == "persona" and c.action is not ChangeAction.REMOVED}
        todo = set(present)
        if state.children:
            for key in changed:
                todo.update(inherit.descendants(key, index=state.children))
        resolved = inherit.resolve_bodies(todo, new.personas,
                                          self.settings.limits.max_inheritance_depth, composer)
        for key in present - resolved.keys():  # a chain that does not resolve: its own body
            resolved[key] = new.personas[key].body
        return resolved, sorted(k for k in resolved if k not in present)

    def _step(self, state: _State, step: _Step, *, durable: bool = True,
              files: Callable[[int, int], None] | None = None
              ) -> tuple[MirroredCommit, mirror.ApplyResult]:
        # Identities erased under the GDPR are written as their pseudonyms (`gdpr`).
        info = self._erasures.apply(self.git.commit_info(step.commit))
        # A first load opens its transaction before the parse and streams rows as files
        # parse (`mirror_bulk`); any other commit is parsed first and applied in one go.
        load = mirror_bulk.BulkLoad(self.conn, info, self.settings) if step.bulk else None
        try:
            with db.translate_errors(f"mirroring commit {step.commit[:7]}"), \
                    (load if load is not None else nullcontext()):
                raw, plan = self._prepare(state, step, info, load, files)
                result, descendants, extra = self._apply(state, step, info, plan, durable,
                                                         load)
        except BaseException:
            self._state = None  # patched in place: reload from the database next time
            raise
        state.commit, state.raw, state.eff = step.commit, raw, plan.new_effective
        done = MirroredCommit(info, list(plan.changes), list(plan.events), plan.new_effective,
                              tuple(descendants))
        self._after(done, extra)
        return done, result

    def _prepare(self, state: _State, step: _Step, info: CommitInfo,
                 load: mirror_bulk.BulkLoad | None,
                 files: Callable[[int, int], None] | None = None
                 ) -> tuple[Snapshot, CommitPlan]:
        """The commit's parse (I/O: git) and its plan (pure: `core.plan.plan_commit`)."""
        old_eff = state.eff
        if step.full or state.raw is None:
            on_parsed: Callable[[ParsedFile], None] | None = (
                load.offer if load is not None else None)
            if files is not None:
                on_parsed = _counting(on_parsed, self.git.count_files(step.commit), files)
            raw = build_snapshot(self.git.files_at(step.commit), self.settings, step.commit,
                                 on_parsed=on_parsed)
            paths = set(raw.files) | {r.path for t in (old_eff.personas, old_eff.templates,
                                                       old_eff.sets) for r in t.values()}
            renames: dict[str, str] = {}
            base = state.commit if state.commit and self.git.has_commit(state.commit) else None
            if base is not None:
                renames = self.git.changed_files(base, step.commit).renames
        else:
            delta = self.git.changed_files(state.commit, step.commit)
            raw = update_snapshot(state.raw, delta.changed, delta.removed, self.settings,
                                  step.commit)
            touched = {s.path for s in delta.changed} | set(delta.removed)
            paths = touched | (state.raw.invalid_paths ^ raw.invalid_paths)
            renames = delta.renames
        if self._refused is not None:
            raw = self._refuse(raw, paths, step.full)
        plan = plan_commit(
            info, old_eff, raw, paths, renames, full=step.full, branch=self.settings.branch,
            previously_invalid=state.raw.invalid_paths if state.raw is not None else None,
            extra_problems=self._refusals, rewritten_from=step.rewritten_from,
            now=datetime.now(UTC))
        return raw, plan

    def _refuse(self, raw: Snapshot, paths: set[str], full: bool) -> Snapshot:
        """`raw` with the files PostgreSQL cannot take marked invalid (see the rules)."""
        candidates = [p for p in sorted(paths) if p in raw.files and raw.is_valid(p)
                      and raw.files[p].record is not None]
        bad = [p for p in candidates if unstorable(raw.files[p].record)]
        if not bad and not full:
            bad = candidates
        self._refusals = {p: Problem(
            rule=UNSTORABLE_RULE, severity=Severity.ERROR, path=p,
            message=f"PostgreSQL cannot store this file: {self._refused}",
            fix="remove NUL characters and unpaired surrogates (maestro check finds them)")
            for p in bad}
        return dataclasses.replace(raw, invalid_paths=raw.invalid_paths | frozenset(bad))

    def _apply(self, state: _State, step: _Step, info: CommitInfo, plan: CommitPlan,
               durable: bool, load: mirror_bulk.BulkLoad | None
               ) -> tuple[mirror.ApplyResult, list[str], list[EntityEvent]]:
        """Ids, inheritance and the database transaction of one planned commit. Patches
        `state`'s id maps and children index in place (the caller drops the state on
        failure)."""
        old_eff, new_eff, changes = state.eff, plan.new_effective, list(plan.changes)
        old_ids = self._assign_ids(state, changes, new_eff)
        persona_keys = [k for c in changes if c.kind == "persona"
                        for k in (c.key, c.old_key) if k]
        self._update_children(state, old_eff, new_eff, persona_keys)
        resolved, descendants = self._resolve(
            state, new_eff, changes, load.composer if load is not None else inherit.compose)
        version_keys = None
        if step.reconcile:
            parent = info.parents[0] if info.parents else None
            git_delta = self.git.changed_files(parent, step.commit)
            in_delta = {s.path for s in git_delta.changed} | set(git_delta.removed)
            version_keys = frozenset(
                c.key for c in changes if c.kind == "persona"
                and ((c.path in in_delta) or (c.old_path in in_delta)))
        extra = [EntityEvent("resolved", "persona", k, step.commit) for k in descendants]
        result = mirror.apply_commit(
            self.conn, info, changes, old_eff, new_eff, list(plan.events), plan.problems,
            branch=self.settings.branch, ids=state.ids, old_ids=old_ids, resolved=resolved,
            version_keys=version_keys, extra_notifications=extra, bulk=load, durable=durable)
        return result, descendants, extra

    def _step_or_refuse(self, state: _State, step: _Step, durable: bool,
                        files: Callable[[int, int], None] | None
                        ) -> tuple[MirroredCommit, mirror.ApplyResult, _State]:
        """`_step`, applied once more without the files PostgreSQL refuses (module rules)."""
        try:
            done, result = self._step(state, step, durable=durable, files=files)
            return done, result, state
        except (DatabaseError, UnicodeEncodeError) as exc:
            reason = _data_error(exc)
            if reason is None:
                raise
        log.warning("commit %s: PostgreSQL refused its data (%s); applying it without the "
                    "files that hold such text", step.commit[:7], reason)
        state = self._current_state()  # the failed step dropped it: reload from the database
        self._refused = reason
        try:
            done, result = self._step(state, dataclasses.replace(step, bulk=False),
                                      durable=durable, files=files)
        except (DatabaseError, UnicodeEncodeError) as exc:
            again = _data_error(exc)
            if again is None:
                raise
            raise MirrorDataError(f"commit {step.commit[:7]} cannot be mirrored: {again}",
                                  hint="fix the commit's files (maestro check) and commit "
                                       "again") from exc
        finally:
            self._refused, self._refusals = None, {}
        return done, result, state

    def _after(self, done: MirroredCommit, extra: Sequence[EntityEvent]) -> None:
        for listener in self.listeners:
            try:
                listener(done)
            except Exception:  # a listener's failure never stops the mirror
                log.exception("listener %r failed on commit %s", listener, done.commit.short_id)
        if self.hooks:
            run_hooks(self.settings, [*done.events, *extra])

    # -- the public entry point ------------------------------------------------------------
    def catch_up(self, stop: threading.Event | None = None, *, head_only: bool = False,
                 progress: Callable[[int, int], None] | None = None,
                 files: Callable[[int, int], None] | None = None) -> SyncReport:
        """Mirror every commit from the cursor to the branch head (see the module rules).

        `stop` is checked between commits; `progress(done, total)` is called after each.
        `files(parsed, total)` reports a commit whose whole tree is parsed (a first load, a
        rewritten history): every `FILE_PROGRESS_STEP` files and at the last one.
        """
        bound = db.mirror_of(self.conn)
        branch, schema = self.settings.branch, bound.schema if bound is not None else ""
        head = self.git.head(self.settings.branch)
        if head is None:
            return SyncReport(head=None, branch=branch, schema=schema)
        state = self._current_state()
        if state.commit == head:
            return SyncReport(head=head, branch=branch, schema=schema)
        with db.translate_errors("reading the erasure register"):
            self._erasures = erasures.load_erasures(self.conn)
        steps, rewritten = self._plan(state, head, head_only)
        summaries: list[CommitSummary] = []
        entities = errors = 0
        for n, step in enumerate(steps, 1):
            if stop is not None and stop.is_set():
                break
            started = time.perf_counter()
            # Only the last commit of a catch-up waits for its WAL flush (which flushes the
            # earlier ones too); a crash before it loses whole commits, replayed next time.
            done, result, state = self._step_or_refuse(state, step, n == len(steps), files)
            failed = len({p.path for p in result.errors})
            summaries.append(CommitSummary(step.commit, len(done.changes), failed,
                                           (time.perf_counter() - started) * 1000))
            entities += len(done.changes)
            errors += failed
            if progress is not None:
                progress(n, len(steps))
        return SyncReport(head=head, branch=branch, schema=schema, commits=len(summaries),
                          entities=entities, errors=errors,
                          rewritten=rewritten, steps=tuple(summaries))


def _counting(then: Callable[[ParsedFile], None] | None, total: int,
              report: Callable[[int, int], None]) -> Callable[[ParsedFile], None]:
    """An `on_parsed` callback that reports (parsed, total) as files parse, then calls
    `then` (the first load's streaming) when there is one."""
    parsed = 0

    def on_parsed(file: ParsedFile) -> None:
        nonlocal parsed
        parsed += 1
        if parsed % FILE_PROGRESS_STEP == 0 or parsed == total:
            report(parsed, total)
        if then is not None:
            then(file)

    return on_parsed


def with_invalid_paths(conn: db.Connection, report: SyncReport) -> SyncReport:
    """`report` with the files the mirror keeps at their last good state (what the CLI
    shows after a sync or a rebuild; the daemon's catch-ups do not ask)."""
    with db.translate_errors("reading sync_errors"):
        return dataclasses.replace(report, invalid_paths=mirror.invalid_paths(conn))


def sync(settings: Settings, *, head_only: bool = False,
         progress: Callable[[int, int], None] | None = None,
         listeners: Sequence[Listener] = (),
         files: Callable[[int, int], None] | None = None) -> SyncReport:
    """Connect to the mirror of `settings.branch`, migrate it, take its writer lock and
    catch it up (one branch; `sync_branches` does every configured one).

    Raises `LockHeldError` when another process (a daemon) holds the mirror's writer lock.
    """
    conn = db.connect(settings)
    try:
        db.migrate(conn)
        with db.WriterLock(conn), Syncer(settings, conn, listeners) as syncer:
            report = syncer.catch_up(head_only=head_only, progress=progress, files=files)
        return with_invalid_paths(conn, report)
    finally:
        conn.close()


def sync_branches(settings: Settings, *, head_only: bool = False,
                  progress: Callable[[int, int], None] | None = None,
                  listeners: Callable[[Settings], Sequence[Listener]] | None = None,
                  files: Callable[[int, int], None] | None = None) -> list[SyncReport]:
    """`sync` for each branch of `settings.mirrored_branches`, in order; `listeners(s)` gives
    the listeners of the branch `s.branch` (e.g. the search index for the default only)."""
    reports = []
    for branch in settings.mirrored_branches:
        per_branch = settings.with_overrides(branch=branch)
        reports.append(sync(per_branch, head_only=head_only, progress=progress,
                            listeners=listeners(per_branch) if listeners else (),
                            files=files))
    return reports
