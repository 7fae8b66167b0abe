"""Sync with the search index: the mirror catches up, the index is written once, for the head.

What `maestro sync` and `maestro rebuild` run (the daemon keeps its own per-commit indexer for
live commits, in `daemon/session.py`).

Rules of this module:
- The index only ever serves the head, so a catch-up over many commits updates it once, after
  the last commit, with every commit's changes applied against the final snapshot (an entity
  added then removed is deleted, one renamed then edited is written once). A catch-up that
  changes `BULK_CHANGES` entities or more is a rebuild (`SearchIndex.update` decides).
- A large first load (the mirror or the index is empty, or `head_only`) does not wait for the
  mirror: the index of the head is rebuilt in a spawned child process started before the
  mirror loads, so the two overlap on a machine with two cores. The child reads and parses
  the head itself (about a sixth of the rebuild's cost, paid twice so that nothing is pickled
  between the processes). After the catch-up the index is reconciled by content hash when
  the mirror ended elsewhere (the branch moved) or keeps a last good state for an invalid file.
- The index is a rebuildable cache: a failed child or update is logged and the sync's report
  stands; `maestro index rebuild` mends it.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from maestro_git.core.models import Change
from maestro_git.core.snapshot import coalesce_changes
from maestro_git.git.repo import GitRepo
from maestro_git.mirror import apply as mirror
from maestro_git.mirror import db
from maestro_git.mirror.sync import (
    Listener,
    MirroredCommit,
    Syncer,
    SyncReport,
    with_invalid_paths,
)
from maestro_git.mirror.verify import rebuild
from maestro_git.search.index import SearchIndex
from maestro_git.settings import Settings

__all__ = ["CatchUpIndex", "rebuild_and_index", "sync_and_index"]

log = logging.getLogger("maestro_git.ops.sync")

# A head with at least this many files is indexed in a child process while the mirror loads;
# below it the child's start (an interpreter and its imports) costs more than it overlaps.
OVERLAP_MIN_FILES = 2000
CHILD_TIMEOUT = 3600.0  # seconds to wait for the index child once the mirror is done

Progress = Callable[[int, int], None]


def _rebuild_at(settings: Settings, commit: str) -> None:
    """The child's work: parse `commit` and rebuild the index from it."""
    logging.basicConfig(level=logging.WARNING)
    from maestro_git.repo.snapshots import snapshot_of

    with SearchIndex(settings) as index:  # no name for the snapshot: `rebuild` frees it
        index.rebuild(snapshot_of(settings, commit))


@dataclass
class CatchUpIndex:
    """A sync listener that collects every mirrored commit's changes and writes the index
    once, in `finish`, for the last commit (see the module rules).

    `background` is the head a child process is already rebuilding the index for (`start`)."""

    settings: Settings
    changes: list[Change] = field(default_factory=list)
    last: MirroredCommit | None = None
    commits: int = 0
    writes: int = 0  # index writes done by this object (0 or 1; the child's is not counted)
    background: str | None = None
    base: str | None = None  # the first mirrored commit's first parent
    _child: Any = None

    def __call__(self, mirrored: MirroredCommit) -> None:
        if self.last is None:  # the commit the index must be at for these changes to apply
            parents = mirrored.commit.parents
            self.base = parents[0] if parents else None
        self.changes.extend(mirrored.changes)
        self.last = mirrored
        self.commits += 1

    def start(self, head: str) -> None:
        """Rebuild the index of `head` in a spawned child process, now."""
        ctx = multiprocessing.get_context("spawn")
        self._child = ctx.Process(target=_rebuild_at, args=(self.settings, head),
                                  name="maestro-index-rebuild", daemon=True)
        self._child.start()
        self.background = head

    def _join(self) -> bool:
        """Wait for the child; True when it rebuilt the index."""
        if self._child is None:
            return False
        self._child.join(CHILD_TIMEOUT)
        if self._child.is_alive():
            self._child.terminate()
            self._child.join()
        ok: bool = self._child.exitcode == 0
        if not ok:
            log.warning("search index child exited with %s: indexing in this process",
                        self._child.exitcode)
        self._child = None
        return ok

    def finish(self) -> None:
        """Bring the index to the last mirrored commit: one write at most."""
        built = self._join()
        last = self.last
        if last is None:
            return  # nothing mirrored: the index is left as it was (or as the child made it)
        try:
            with SearchIndex(self.settings) as index:
                if built and self.background == last.commit.id:
                    if last.snapshot.invalid_paths:  # the mirror keeps last good states
                        index.reconcile(last.snapshot)
                        self.writes += 1
                    return
                if built:
                    index.ensure(last.snapshot)
                elif self.base is not None and index.commit == self.base:
                    index.update(dataclasses.replace(last, changes=coalesce_changes(self.changes)))
                else:
                    # The index is not where these changes start (a sync with --no-index, or
                    # an index update that failed, came between): compare it with the whole
                    # head rather than apply only this run's changes.
                    snapshot = last.snapshot
                    if snapshot.commit != last.commit.id:
                        snapshot = dataclasses.replace(snapshot, commit=last.commit.id)
                    index.ensure(snapshot)
                self.writes += 1
        except Exception as exc:  # a cache: the mirror is done; `maestro index rebuild` mends it
            log.warning("search index not updated to %s: %s: %s", last.commit.short_id,
                        type(exc).__name__, exc)

    def abandon(self) -> None:
        """Stop the child (the sync failed)."""
        if self._child is not None:
            self._child.terminate()
            self._child.join()
            self._child = None


def _first_load(settings: Settings, conn: db.Connection, git: GitRepo, head: str, *,
                head_only: bool, fresh: bool) -> bool:
    """Whether this catch-up is a large load worth indexing in parallel."""
    if git.count_files(head) < OVERLAP_MIN_FILES:
        return False
    with db.translate_errors("reading the sync cursor"):
        cursor = mirror.read_cursor(conn, settings.branch)
    if cursor == head and not fresh:
        return False  # nothing to mirror: the catch-up returns at once
    return fresh or head_only or cursor is None or not SearchIndex(settings).exists()


def _indexed(settings: Settings, conn: db.Connection, *, head_only: bool, fresh: bool,
             run: Callable[[list[Listener]], SyncReport]) -> SyncReport:
    """`run(listeners)` (a catch-up) with the index written once for its head, in a child
    process alongside it when the load is large (`fresh`: the mirror is about to be emptied)."""
    collector = CatchUpIndex(settings)
    git = GitRepo(settings.repo_path)
    head = git.head(settings.branch)
    if head is not None and _first_load(settings, conn, git, head, head_only=head_only,
                                                fresh=fresh):
        collector.start(head)
    try:
        report = run([collector])
    except BaseException:
        collector.abandon()
        raise
    collector.finish()
    return report


def sync_and_index(settings: Settings, *, head_only: bool = False, index: bool = True,
                   progress: Progress | None = None,
                   files: Progress | None = None) -> SyncReport:
    """Connect, migrate, take the writer lock, catch the mirror up and (unless `index` is
    False) bring the search index to the head once (`maestro sync`).

    `progress` and `files` as for `Syncer.catch_up`. Raises `LockHeldError` when another
    process (a daemon) holds the writer lock.
    """
    conn = db.connect(settings)
    try:
        db.migrate(conn)
        with db.WriterLock(conn):
            def run(listeners: list[Listener]) -> SyncReport:
                with Syncer(settings, conn, listeners) as syncer:
                    report = syncer.catch_up(head_only=head_only, progress=progress,
                                             files=files)
                return with_invalid_paths(conn, report)

            if not index:
                return run([])
            return _indexed(settings, conn, head_only=head_only, fresh=False, run=run)
    finally:
        conn.close()


def rebuild_and_index(settings: Settings, conn: db.Connection, *, head_only: bool = False,
                      index: bool = True, progress: Progress | None = None,
                      files: Progress | None = None) -> SyncReport:
    """`mirror.verify.rebuild` (empty the derived tables, keeping `persona_usage`, and mirror
    the branch again) with the search index written once for the head (`maestro rebuild`).
    Raises `LockHeldError` when a daemon holds the writer lock."""
    def run(listeners: list[Listener]) -> SyncReport:
        return rebuild(settings, conn, head_only=head_only, listeners=tuple(listeners),
                       progress=progress, files=files)

    if not index:
        return run([])
    db.migrate(conn)  # `_first_load` reads the mirror before `rebuild` takes the lock
    return _indexed(settings, conn, head_only=head_only, fresh=True, run=run)
