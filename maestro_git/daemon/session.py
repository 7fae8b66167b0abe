"""The daemon's link to the mirror: the writer-lock session, the syncer, the index batching.

- `MirrorSession` is what the daemon needs from the mirror (take the writer lock, catch up,
  check the session is alive, close); `DbSession` is the default, over `maestro_git.mirror.db` and
  `maestro_git.mirror.sync`. Tests pass their own factory to `Daemon`.
- One connection holds the advisory lock and carries the syncer's writes, so a session that
  dies takes the lock and the writes down together.
- The search index is a rebuildable cache: `_Indexer` batches mirrored commits in a thread of
  its own, off the mirror's path, and only logs its failures.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Protocol

from maestro_git.core.models import Change
from maestro_git.core.snapshot import coalesce_changes
from maestro_git.daemon.log import DaemonLog
from maestro_git.mirror import db
from maestro_git.mirror.sync import Listener, MirroredCommit, Syncer
from maestro_git.settings import Settings

__all__ = ["DbSession", "MirrorSession", "MirroredSummary", "SessionFactory"]


class MirrorSession(Protocol):
    """The daemon's link to the mirror: the lock session and, once it holds the lock, the
    syncer. Every method raises `DatabaseError` when the database cannot be used."""

    def acquire(self) -> bool:
        """Connect when needed, then try the writer lock once; True when this session holds
        it (the writer then applies pending migrations)."""
        ...

    def catch_up(self, stop: threading.Event | None = None,
                 on_commit: Callable[[MirroredSummary], None] | None = None) -> int:
        """Mirror every commit after the cursor, one transaction each (only while holding
        the lock), calling `on_commit` after each; stop between commits when `stop` is set.
        Returns the number of commits mirrored."""
        ...

    def alive(self) -> bool:
        """True while the session (and so the lock, when held) is up."""
        ...

    def close(self, drain: float = 30.0) -> None:
        """Release the lock and close the connections; `acquire` may reconnect later.
        `drain`: how long queued search-index updates may take first."""
        ...

    def cancel(self) -> None:
        """From another thread: stop the statement the session is running (a stopping
        daemon's commit in flight rolls back whole and is mirrored at the next start)."""
        ...


@dataclass(frozen=True)
class MirroredSummary:
    """What the daemon logs about one mirrored commit."""

    commit: str
    entities: int  # entities changed (added, modified, removed, renamed)
    problems: int  # invalid files at that commit (their last good state stays mirrored)
    ms: float


SessionFactory = Callable[[Settings, DaemonLog], MirrorSession]


@dataclass
class _Link:
    """One mirrored branch: its lock session (which carries its writes) and its syncer."""

    settings: Settings
    conn: db.Connection | None = None
    lock: db.WriterLock | None = None
    syncer: Syncer | None = None

    def close(self) -> None:
        conn = self.conn
        if conn is not None and not conn.closed:
            with suppress(Exception):  # a dead connection cannot be closed more cleanly
                conn.close()  # ends the session, and with it the lock
        self.conn = self.lock = None
        self.syncer = None


class DbSession:
    """The mirrors through `maestro_git.mirror.db` (lock sessions, migrations) and
    `maestro_git.mirror.sync`, one per branch of `settings.mirrored_branches`.

    One connection per branch: the session that holds a mirror's writer lock is also the one
    its syncer writes through, so a session that dies takes the lock and the writes down
    together (a second connection could go on writing after its lock session was gone and
    another daemon took over). This process writes once it holds every branch's lock. Each
    syncer lives as long as its lock is held, keeping the last mirrored snapshot in memory,
    so a one-file commit re-parses one file. The search index follows the default branch
    and is updated as a sync listener; its failures are logged, never fatal.
    """

    def __init__(self, settings: Settings, log: DaemonLog) -> None:
        self.settings = settings
        self.log = log
        self._links = [_Link(settings.with_overrides(branch=b))
                       for b in settings.mirrored_branches]
        self._indexer: _Indexer | None = None
        self._on_commit: Callable[[MirroredSummary], None] | None = None
        self._last = 0.0

    def acquire(self) -> bool:
        url: str | None = None
        for link in self._links:
            if link.conn is None or link.conn.closed:
                link.close()
                url = url or db.database_url(self.settings)
                link.conn = db.connect(link.settings.with_overrides(database_url=url))
                link.lock = db.WriterLock(link.conn)
            assert link.lock is not None and link.conn is not None
            if link.lock.held:
                continue
            if not link.lock.acquire():
                return False
            # Only the writer migrates: a standby writes nothing, not even the schema.
            applied = db.migrate(link.conn)
            if applied:
                bound = db.mirror_of(link.conn)
                where = bound.schema if bound is not None else link.settings.branch
                self.log.info("migrated", f"applied migrations {', '.join(applied)} to "
                              f"{where}", migrations=applied)
            link.syncer = self._make_syncer(link)
        return True

    def _make_syncer(self, link: _Link) -> Syncer:
        assert link.conn is not None
        listeners: list[Listener] = [self._mirrored]
        if link.settings.branch == self.settings.branch:
            if self._indexer is None:
                self._indexer = _Indexer(self.settings, self.log)
            listeners.append(self._indexer)
        return Syncer(link.settings, link.conn, listeners=listeners)

    def _mirrored(self, mirrored: MirroredCommit) -> None:
        # The first listener: runs right after the commit's transaction, so `ms` is the time
        # since the previous commit was done (or since catch_up started).
        now = time.perf_counter()
        summary = MirroredSummary(mirrored.commit.id, len(mirrored.changes),
                                  len(mirrored.snapshot.invalid_paths),
                                  (now - self._last) * 1000)
        self._last = now
        if self._on_commit is not None:
            self._on_commit(summary)

    def catch_up(self, stop: threading.Event | None = None,
                 on_commit: Callable[[MirroredSummary], None] | None = None) -> int:
        self._on_commit = on_commit
        self._last = time.perf_counter()
        done = 0
        for link in self._links:
            if link.syncer is None:
                continue
            if stop is not None and stop.is_set():
                break
            done += self._catch_up_link(link, stop)
        return done

    def _catch_up_link(self, link: _Link, stop: threading.Event | None) -> int:
        assert link.syncer is not None
        if self._indexer is None or link.settings.branch != self.settings.branch:
            return link.syncer.catch_up(stop).commits
        # The index serves the head only: a catch-up over many commits (the first one, a
        # push, a restart after downtime) is indexed once, when it ends; a live commit is a
        # catch-up of one and reaches the indexer at once, as before.
        self._indexer.hold()
        try:
            return link.syncer.catch_up(stop).commits
        finally:
            self._indexer.release()

    def alive(self) -> bool:
        for link in self._links:
            conn = link.conn
            if conn is None or conn.closed:
                return False
            with db.translate_errors("checking the writer lock session"):
                db.ping(conn)
        return True

    def close(self, drain: float = 30.0) -> None:
        if self._indexer is not None:
            # An update waiting for another process's index lock gives up at once: stopping
            # never waits for someone else's rebuild (the index catches up next time).
            self._indexer.stopping.set()
            if not self._indexer.drain(timeout=drain):
                self.log.info("index", f"the search index update did not end within "
                              f"{drain:.1f} s; the index catches up at the next start")
            self._indexer.stopping.clear()
        for link in self._links:
            link.close()

    def cancel(self) -> None:
        for link in self._links:
            if link.conn is not None:
                db.cancel(link.conn)


class _Indexer:
    """A sync listener that keeps the Whoosh index in step from a thread of its own.

    The index is a rebuildable cache whose commit costs as much as the whole mirror
    transaction (its p95 is segment merging), so it stays off the mirror's critical path:
    mirrored commits are queued, and once no new one has arrived for `quiet` seconds (or the
    oldest has waited `max_delay`), their changes are applied in one Whoosh commit against
    the newest snapshot. A burst of commits (a push, the first catch-up) is one index update,
    and the next commit is mirrored without competing with the indexer. Failures are logged.
    """

    def __init__(self, settings: Settings, log: DaemonLog, quiet: float = 0.1,
                 max_delay: float = 1.0) -> None:
        from maestro_git.search.index import SearchIndex

        self.stopping = threading.Event()  # set while the session closes
        self.index = SearchIndex(settings, stop=self.stopping)
        self.log = log
        self.quiet = quiet
        self.max_delay = max_delay
        self.queue: queue.Queue[MirroredCommit | threading.Event] = queue.Queue()
        self._holding = False  # between `hold` and `release`
        self._held: MirroredCommit | None = None
        self._held_changes: list[Change] = []
        self._written: str | None = None  # the commit this indexer last wrote to the index
        self.thread = threading.Thread(target=self._work, daemon=True,
                                       name="maestro-daemon-indexer")
        self.thread.start()

    def __call__(self, mirrored: MirroredCommit) -> None:
        if self._holding:  # only the changes and the newest commit are kept, not each snapshot
            self._held_changes.extend(mirrored.changes)
            self._held = mirrored
            return
        self.queue.put(mirrored)

    def hold(self) -> None:
        """Keep what is mirrored from now on until `release` (called by the same thread)."""
        self._holding = True

    def release(self) -> None:
        """Queue everything mirrored since `hold` as one update, for the newest commit."""
        held, changes = self._held, self._held_changes
        self._holding, self._held, self._held_changes = False, None, []
        if held is not None:
            self.queue.put(dataclasses.replace(held, changes=changes))

    def _work(self) -> None:
        pending: list[MirroredCommit] = []
        first = last = 0.0
        while True:
            timeout = None
            if pending:
                timeout = max(0.0, min(last + self.quiet, first + self.max_delay)
                              - time.monotonic())
            try:
                item = self.queue.get(timeout=timeout)
            except queue.Empty:
                self._flush(pending)
                pending = []
                continue
            if isinstance(item, threading.Event):
                self._flush(pending)
                pending = []
                item.set()
                continue
            last = time.monotonic()
            if not pending:
                first = last
            pending.append(item)

    def _flush(self, pending: list[MirroredCommit]) -> None:
        if not pending:
            return
        # Changes in commit order, each applied against the newest snapshot: an entity added
        # then removed is deleted, one renamed then edited is written once under its new key.
        combined = dataclasses.replace(
            pending[-1], changes=coalesce_changes([c for m in pending for c in m.changes]))
        try:
            if self._written is not None and self.index.commit == self._written:
                self.index.update(combined)
            else:
                # The first write of this indexer, or the index moved under it: it may lag
                # (a daemon killed between a commit and its index update), so compare it
                # with the whole snapshot rather than apply only these commits' changes.
                snap = combined.snapshot
                if snap.commit != combined.commit.id:
                    snap = dataclasses.replace(snap, commit=combined.commit.id)
                self.index.ensure(snap)
            self._written = combined.commit.id
        except Exception as exc:  # a cache: log it; `maestro index` rebuilds it
            self.log.warning("index", f"search index not updated to "
                             f"{combined.commit.short_id}: {type(exc).__name__}: {exc}")

    def drain(self, timeout: float) -> bool:
        """Index everything queued so far now; False when it takes over `timeout`."""
        done = threading.Event()
        self.queue.put(done)
        return done.wait(timeout)
