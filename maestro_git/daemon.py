"""The sync daemon: watch the branch ref and the working tree; mirror commits, report edits.

The only module that imports watchdog. Rules of this module:

- File events are hints, never the truth. A ref event (`HEAD`, `packed-refs`,
  `refs/heads/<branch>` and its `.lock` rename) wakes the loop at once and `catch_up()` reads
  the real branch head; a periodic head check (`poll_interval`) catches any event the kernel
  dropped (a full inotify queue is only logged by watchdog).
- Ref changes are atomic, so they are acted on immediately. Working-tree events are batched:
  a path is validated once it has been quiet for `debounce` seconds, so bursts, editor atomic
  saves (write a temp file, rename it over the original: the move's destination counts) and
  `git checkout` become one pass. Working-tree edits are validated and reported, never
  mirrored.
- One writer per database: the writer holds a PostgreSQL advisory lock on a session of its
  own. A daemon that cannot take it is a standby: it validates and reports but never writes,
  and retries the lock every `lock_retry` seconds, so it takes over when the writer stops.
- The database going away is an input, not a crash: the daemon logs it, retries with
  exponential back-off (`backoff_initial` doubling up to `backoff_max`), re-takes the lock and
  catches up.
- Stopping is an input too: SIGTERM and SIGINT set the same stop event; the commit being
  mirrored finishes its transaction (one per commit, cursor inside) and the daemon exits 0.

The loop runs in the calling thread; watchdog's observer thread only records hints and wakes
it. `Daemon.run(stop)` returns when `stop` is set.
"""

from __future__ import annotations

import dataclasses
import json
import os
import queue
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, Protocol, TextIO

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch

from maestro_git import db
from maestro_git.errors import DatabaseError, GitError, LockHeldError, MaestroError
from maestro_git.formats import classify
from maestro_git.git import GitRepo, Identity
from maestro_git.models import Problem, SourceFile
from maestro_git.output import format_problems
from maestro_git.settings import Settings
from maestro_git.snapshot import Snapshot, build_snapshot, update_snapshot
from maestro_git.sync import Listener, MirroredCommit, Syncer
from maestro_git.worktree import CONTENT_DIRS, read_worktree

__all__ = [
    "Daemon",
    "DaemonLog",
    "DaemonOptions",
    "LatencyReport",
    "MirrorSession",
    "DbSession",
    "MirroredSummary",
    "SessionFactory",
    "measure_commit_latency",
    "run_once",
    "serve",
]

# Only these events matter; opened/closed-without-write events would make our own reads of
# the ref (pygit2 opens it on every head check) wake the loop forever.
_EVENT_FILTER: list[type[FileSystemEvent]] = [
    FileCreatedEvent, FileModifiedEvent, FileMovedEvent, FileDeletedEvent, FileClosedEvent,
    DirCreatedEvent, DirMovedEvent, DirDeletedEvent,
]
_GIT_TOP_FILES = frozenset({"HEAD", "packed-refs"})
# Editor droppings that look like content files (`.#a.md` emacs locks, `a.md~` backups).
_TEMP_SUFFIXES = ("~", ".swp", ".swx", ".tmp", ".bak")
# A batch this large (a checkout, a rebase) is cheaper to re-read as a whole.
_RESCAN_THRESHOLD = 500
_MAX_PROBLEM_LINES = 50


@dataclass(frozen=True)
class DaemonOptions:
    """Timing of the daemon, in seconds. The defaults suit an interactive repository."""

    poll_interval: float = 2.0  # periodic branch-head check (catches lost events)
    debounce: float = 0.1  # quiet period before a working-tree batch is validated
    lock_retry: float = 1.0  # how often a standby retries the writer lock
    backoff_initial: float = 0.5  # first retry after a database failure
    backoff_max: float = 10.0  # cap of the exponential back-off
    watch_worktree: bool = True  # validate and report working-tree edits


class DaemonLog:
    """Plain lines (`2024-05-01T12:00:00.123Z info  message`) or one JSON object per line.

    Every record has an `event` name (`mirrored`, `problem`, `standby`, ...), a level and a
    human message; JSON records carry the structured fields as well. Thread-safe.
    """

    def __init__(self, fmt: str = "text", stream: TextIO | None = None) -> None:
        if fmt not in ("text", "json"):
            raise ValueError(f"unknown log format {fmt!r}")
        self.fmt = fmt
        self.stream = stream if stream is not None else sys.stderr
        self._lock = threading.Lock()

    def emit(self, level: str, event: str, message: str, **fields: Any) -> None:
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        if self.fmt == "json":
            record = {"time": stamp, "level": level, "event": event, "message": message}
            record.update(fields)
            line = json.dumps(record, ensure_ascii=False, default=str)
        else:
            line = f"{stamp} {level:<7} {message}"
        with self._lock:
            try:
                self.stream.write(line + "\n")
                self.stream.flush()
            except (OSError, ValueError):  # a closed or broken stderr must not kill the daemon
                pass

    def info(self, event: str, message: str, **fields: Any) -> None:
        self.emit("info", event, message, **fields)

    def warning(self, event: str, message: str, **fields: Any) -> None:
        self.emit("warning", event, message, **fields)

    def error(self, event: str, message: str, **fields: Any) -> None:
        self.emit("error", event, message, **fields)


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

    def close(self) -> None:
        """Release the lock and close the connections; `acquire` may reconnect later."""
        ...


@dataclass(frozen=True)
class MirroredSummary:
    """What the daemon logs about one mirrored commit."""

    commit: str
    entities: int  # entities changed (added, modified, removed, renamed)
    problems: int  # invalid files at that commit (their last good state stays mirrored)
    ms: float


SessionFactory = Callable[[Settings, DaemonLog], MirrorSession]


class _Hints(FileSystemEventHandler):
    """Runs in watchdog's thread: turns events into hints for the loop, and wakes it."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def on_any_event(self, event: FileSystemEvent) -> None:
        try:
            paths = [os.fsdecode(event.src_path)]
            if isinstance(event, FileMovedEvent | DirMovedEvent) and event.dest_path:
                paths.append(os.fsdecode(event.dest_path))
            for path in paths:
                self.daemon._hint(path, event.is_directory)
        except Exception as exc:  # never kill watchdog's thread; the head check still runs
            self.daemon.log.error("watch", f"could not handle {event!r}: {exc}")


class Daemon:
    """Watch a repository; mirror its branch into PostgreSQL; report working-tree problems.

    `session_factory` makes the link to the mirror (see `MirrorSession`); the default,
    `DbSession`, uses `maestro_git.db` and `maestro_git.sync`. `run(stop)` blocks until `stop`
    is set.
    """

    def __init__(self, settings: Settings, options: DaemonOptions | None = None,
                 log: DaemonLog | None = None,
                 session_factory: SessionFactory | None = None) -> None:
        self.settings = settings
        self.options = options or DaemonOptions()
        self.log = log or DaemonLog()
        self._session_factory: SessionFactory = session_factory or DbSession
        self.git = GitRepo(settings.repo_path)
        self.root = self.git.path
        self.git_dir = Path(self.git.repo.path).resolve()
        self._branch_ref = f"refs/heads/{settings.branch}"
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._ref_hint = False
        self._pending: dict[str, float] = {}  # repo-relative path -> monotonic time of event
        self._rescan = False
        self._new_content_dirs: set[str] = set()
        self._observer: BaseObserver | None = None
        self._content_watches: dict[str, ObservedWatch] = {}
        self._session: MirrorSession | None = None
        self._writer = False  # holding the writer lock
        self._standby = False
        self._worktree: Snapshot | None = None
        self._backoff = 0.0
        self._next_db_attempt = 0.0
        self._next_head_check = 0.0
        self.mirrored = 0  # commits mirrored by this process (tests and the latency probe)

    # -- watchdog's thread ---------------------------------------------------------------
    def _hint(self, path: str, is_directory: bool) -> None:
        full = Path(path)
        try:
            rel_git = full.relative_to(self.git_dir).as_posix()
        except ValueError:
            rel_git = None
        if rel_git is not None:
            # git writes `<ref>.lock` and renames it over `<ref>`: only the rename's
            # destination says the ref moved (acting on the lock would read the old head).
            if rel_git in _GIT_TOP_FILES or rel_git == self._branch_ref:
                with self._lock:
                    self._ref_hint = True
                self._wake.set()
            return
        try:
            rel = full.relative_to(self.root).as_posix()
        except ValueError:
            return
        top = rel.split("/", 1)[0]
        if top not in CONTENT_DIRS:
            return
        with self._lock:
            if rel == top:
                self._new_content_dirs.add(top)
                self._rescan = True
            elif is_directory:
                self._rescan = True
            elif _is_temp(rel):
                return
            self._pending[rel] = time.monotonic()
        self._wake.set()

    # -- the loop ------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Watch and mirror until `stop` is set; then release the lock and return."""
        waker = threading.Thread(target=self._wake_on, args=(stop,), daemon=True,
                                 name="maestro-daemon-stop")
        waker.start()
        self.log.info("starting", f"watching {self.root} (branch {self.settings.branch})",
                      repo=str(self.root), branch=self.settings.branch)
        try:
            self._start_watching()
            if self.options.watch_worktree:
                try:
                    self._validate_all()
                except Exception as exc:  # advisory work: a bug here must not stop the mirror
                    self.log.error("validate", f"could not validate the working tree: "
                                   f"{type(exc).__name__}: {exc}")
            while not stop.is_set():
                self._step(stop)
                if stop.is_set():
                    break
                self._wake.wait(self._timeout())
                self._wake.clear()
        finally:
            self._stop_watching()
            self._drop_session()
            self._wake.set()
            self.log.info("stopped", "stopped", mirrored=self.mirrored)

    def _wake_on(self, stop: threading.Event) -> None:
        stop.wait()
        self._wake.set()

    def _timeout(self) -> float:
        now = time.monotonic()
        deadlines = [self._next_head_check]
        if not self._writer:
            deadlines.append(self._next_db_attempt)
        with self._lock:
            if self._pending:
                deadlines.append(max(self._pending.values()) + self.options.debounce)
        return max(0.0, min(deadlines) - now)

    def _step(self, stop: threading.Event) -> None:
        now = time.monotonic()
        if not self._writer and now >= self._next_db_attempt:
            self._try_lock(stop)
        with self._lock:
            ref_hint, self._ref_hint = self._ref_hint, False
        if ref_hint or now >= self._next_head_check:
            self._next_head_check = now + self.options.poll_interval
            # A ref hint goes straight to catch_up (which fails loudly on a dead session); a
            # periodic check first makes sure the session, and so the lock, is still ours.
            if self._writer and (ref_hint or self._session_alive()):
                self._catch_up(stop)
        if self.options.watch_worktree:
            self._watch_new_content_dirs()
            try:
                self._validate_quiet_paths()
            except Exception as exc:  # advisory work: a bug here must not stop the mirror
                self.log.error("validate", f"could not validate the working tree: "
                               f"{type(exc).__name__}: {exc}")

    # -- the writer role -----------------------------------------------------------------
    def _try_lock(self, stop: threading.Event) -> None:
        if self._session is None:
            self._session = self._session_factory(self.settings, self.log)
        try:
            holds = self._session.acquire()
        except DatabaseError as err:
            self._db_failed(err)
            return
        if self._backoff:
            self.log.info("database", "database reachable again")
        self._backoff = 0.0
        if not holds:
            if not self._standby:
                self.log.info("standby", "another daemon holds the writer lock; standing by "
                              "(validating only, not writing)")
            self._standby = True
            self._next_db_attempt = time.monotonic() + self.options.lock_retry
            return
        self.log.info("writer", "took over the writer lock; mirroring" if self._standby
                      else "holding the writer lock; mirroring")
        self._standby = False
        self._writer = True
        self._catch_up(stop)

    def _session_alive(self) -> bool:
        assert self._session is not None
        try:
            if self._session.alive():
                return True
        except DatabaseError:
            pass
        self._db_failed(DatabaseError("lost the database session (and with it the lock)"))
        return False

    def _catch_up(self, stop: threading.Event) -> None:
        assert self._session is not None
        try:
            self._session.catch_up(stop, self._log_mirrored)
        except DatabaseError as err:
            self._db_failed(err)
        except MaestroError as err:  # e.g. a git object that cannot be read: retry later
            self.log.error("sync", f"cannot mirror: {err.message}")
            self._db_failed(err)

    def _log_mirrored(self, s: MirroredSummary) -> None:
        self.mirrored += 1
        _log_mirrored(self.log, s)

    def _db_failed(self, err: MaestroError) -> None:
        self._drop_session()
        opts = self.options
        self._backoff = (opts.backoff_initial if self._backoff == 0.0
                         else min(self._backoff * 2, opts.backoff_max))
        self._next_db_attempt = time.monotonic() + self._backoff
        what = "database unavailable" if isinstance(err, DatabaseError) else "sync failed"
        self.log.warning("database", f"{what}: {err.message}; retrying in "
                         f"{self._backoff:.1f} s", retry_in=self._backoff)

    def _drop_session(self) -> None:
        self._writer = False
        if self._session is not None:
            with suppress(MaestroError):
                self._session.close()

    # -- the working tree ----------------------------------------------------------------
    def _start_watching(self) -> None:
        observer = Observer()
        hints = _Hints(self)
        observer.schedule(hints, str(self.git_dir), recursive=False, event_filter=_EVENT_FILTER)
        refs = self.git_dir / "refs" / "heads"
        refs.mkdir(parents=True, exist_ok=True)
        observer.schedule(hints, str(refs), recursive=True, event_filter=_EVENT_FILTER)
        if self.options.watch_worktree:
            # The root, not recursively: only to notice a content folder being created.
            observer.schedule(hints, str(self.root), recursive=False,
                              event_filter=[DirCreatedEvent, DirMovedEvent, DirDeletedEvent])
            for top in CONTENT_DIRS:
                if (self.root / top).is_dir():
                    self._content_watches[top] = observer.schedule(
                        hints, str(self.root / top), recursive=True, event_filter=_EVENT_FILTER)
        observer.start()
        self._observer = observer

    def _watch_new_content_dirs(self) -> None:
        with self._lock:
            tops, self._new_content_dirs = self._new_content_dirs, set()
        if self._observer is None:
            return
        for top in tops:
            # Created, deleted or moved: a watch on a folder that was removed is dead, so
            # always start over.
            old = self._content_watches.pop(top, None)
            if old is not None:
                with suppress(KeyError, OSError):
                    self._observer.unschedule(old)
            if (self.root / top).is_dir():
                self._content_watches[top] = self._observer.schedule(
                    _Hints(self), str(self.root / top), recursive=True,
                    event_filter=_EVENT_FILTER)

    def _stop_watching(self) -> None:
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            observer.join(timeout=5)

    def _validate_all(self) -> None:
        before = self._worktree
        self._worktree = build_snapshot(read_worktree(self.root), self.settings)
        if before is None:
            problems = self._worktree.problems
            self.log.info("worktree", f"working tree: {len(self._worktree.files)} file(s), "
                          f"{len(problems)} problem(s)", files=len(self._worktree.files),
                          problems=len(problems))
            self._report(problems)
        else:
            self._report_changes(before, self._worktree, set(self._worktree.files))

    def _validate_quiet_paths(self) -> None:
        now = time.monotonic()
        with self._lock:
            if not self._pending or now - max(self._pending.values()) < self.options.debounce:
                return
            batch, self._pending = set(self._pending), {}
            rescan, self._rescan = self._rescan, False
        if rescan or len(batch) > _RESCAN_THRESHOLD or self._worktree is None:
            self._validate_all()
            return
        changed: list[SourceFile] = []
        removed: list[str] = []
        for rel in sorted(batch):
            if classify(rel) is None:
                continue
            full = self.root / rel
            try:
                if full.is_symlink() or full.is_file():
                    changed.extend(read_worktree(self.root, [full]) if not full.is_symlink()
                                   else [SourceFile(path=rel, data=b"", is_symlink=True,
                                                    link_target=os.readlink(full))])
                else:
                    removed.append(rel)
            except OSError:  # gone between the event and the read: the next event says so
                removed.append(rel)
        if not changed and not removed:
            return
        before = self._worktree
        self._worktree = update_snapshot(before, changed, removed, self.settings)
        self._report_changes(before, self._worktree, {s.path for s in changed})

    def _report_changes(self, before: Snapshot, after: Snapshot, touched: set[str]) -> None:
        """Log the problems of the files just saved, problems that appeared or changed
        elsewhere (cross-file rules), and a line for each file whose errors are gone."""
        old = _by_path(before.problems)
        new = _by_path(after.problems)
        report: list[Problem] = []
        for path in sorted(set(old) | set(new) | touched):
            now_problems, was = new.get(path, ()), old.get(path, ())
            if now_problems and (path in touched or now_problems != was):
                report.extend(now_problems)
            if path in before.invalid_paths and path not in after.invalid_paths \
                    and path in after.files:
                self.log.info("clean", f"{path}: ok (no errors)", path=path)
        self._report(report)

    def _report(self, problems: Sequence[Problem]) -> None:
        for p in problems[:_MAX_PROBLEM_LINES]:
            self.emit_problem(p)
        if len(problems) > _MAX_PROBLEM_LINES:
            self.log.warning("problem", f"... and {len(problems) - _MAX_PROBLEM_LINES} more "
                             "(run 'maestro check')")

    def emit_problem(self, p: Problem) -> None:
        level = "error" if p.severity.value == "error" else "warning"
        self.log.emit(level, "problem", format_problems([p]), path=p.path, line=p.line,
                      column=p.column, rule=p.rule, severity=p.severity.value,
                      fix=p.fix)


def _log_mirrored(log: DaemonLog, s: MirroredSummary) -> None:
    refused = f", {s.problems} invalid file(s) kept at their last good state" if s.problems else ""
    log.info("mirrored", f"mirrored {s.commit[:7]}: {s.entities} "
             f"entit{'y' if s.entities == 1 else 'ies'} changed{refused} in {s.ms:.1f} ms",
             commit=s.commit, entities=s.entities, problems=s.problems, ms=round(s.ms, 2))


def _by_path(problems: Sequence[Problem]) -> dict[str, tuple[Problem, ...]]:
    out: dict[str, list[Problem]] = {}
    for p in problems:
        out.setdefault(p.path, []).append(p)
    return {k: tuple(v) for k, v in out.items()}


def _is_temp(rel: str) -> bool:
    name = rel.rsplit("/", 1)[-1]
    return name.startswith(".") or name.endswith(_TEMP_SUFFIXES)


# -- the default session: maestro_git.db + maestro_git.sync ----------------------------------
class DbSession:
    """The mirror through `maestro_git.db` (lock session, migrations) and `maestro_git.sync`.

    One connection: the session that holds the writer lock is also the one the syncer
    writes through, so a session that dies takes the lock and the writes down together (a
    second connection could go on writing after its lock session was gone and another
    daemon took over). The syncer lives as long as the lock is held, keeping the last
    mirrored snapshot in memory, so a one-file commit re-parses one file. The search index is
    updated as a sync listener; its failures are logged, never fatal (a rebuildable cache).
    """

    def __init__(self, settings: Settings, log: DaemonLog) -> None:
        self.settings = settings
        self.log = log
        self._url: str | None = None
        self._lock_conn: db.Connection | None = None
        self._lock: db.WriterLock | None = None
        self._syncer: Syncer | None = None
        self._indexer: _Indexer | None = None
        self._on_commit: Callable[[MirroredSummary], None] | None = None
        self._last = 0.0

    def acquire(self) -> bool:
        if self._lock_conn is None or self._lock_conn.closed:
            self.close()
            self._url = db.database_url(self.settings)
            self._lock_conn = db.connect(self._url)
            self._lock = db.WriterLock(self._lock_conn)
        assert self._lock is not None and self._lock_conn is not None
        if self._lock.held:
            return True
        if not self._lock.acquire():
            return False
        # Only the writer migrates: a standby writes nothing, not even the schema.
        applied = db.migrate(self._lock_conn)
        if applied:
            self.log.info("migrated", f"applied migrations {', '.join(applied)}",
                          migrations=applied)
        self._syncer = self._make_syncer(self._lock_conn)
        return True

    def _make_syncer(self, conn: db.Connection) -> Syncer:
        listeners: list[Listener] = [self._mirrored]
        if self._indexer is None:
            self._indexer = _Indexer(self.settings, self.log)
        listeners.append(self._indexer)
        return Syncer(self.settings, conn, listeners=listeners)

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
        if self._syncer is None:
            return 0
        self._on_commit = on_commit
        self._last = time.perf_counter()
        return self._syncer.catch_up(stop).commits

    def alive(self) -> bool:
        conn = self._lock_conn
        if conn is None or conn.closed:
            return False
        with db.translate_errors("checking the writer lock session"):
            conn.execute("SELECT 1")
        return True

    def close(self) -> None:
        if self._indexer is not None:
            self._indexer.drain(timeout=30.0)
        conn = self._lock_conn
        if conn is not None and not conn.closed:
            with suppress(Exception):  # a dead connection cannot be closed more cleanly
                conn.close()  # ends the session, and with it the lock
        self._lock_conn = self._lock = None
        self._syncer = None


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
        from maestro_git.index import SearchIndex

        self.index = SearchIndex(settings)
        self.log = log
        self.quiet = quiet
        self.max_delay = max_delay
        self.queue: queue.Queue[MirroredCommit | threading.Event] = queue.Queue()
        self.thread = threading.Thread(target=self._work, daemon=True,
                                       name="maestro-daemon-indexer")
        self.thread.start()

    def __call__(self, mirrored: MirroredCommit) -> None:
        self.queue.put(mirrored)

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
            pending[-1], changes=[c for m in pending for c in m.changes])
        try:
            self.index.update(combined)
        except Exception as exc:  # a cache: log it; `maestro index` rebuilds it
            self.log.warning("index", f"search index not updated to "
                             f"{combined.commit.short_id}: {type(exc).__name__}: {exc}")

    def drain(self, timeout: float) -> bool:
        """Index everything queued so far now; False when it takes over `timeout`."""
        done = threading.Event()
        self.queue.put(done)
        return done.wait(timeout)


# -- entry points for the CLI --------------------------------------------------------------
@contextmanager
def _signals_stop(stop: threading.Event) -> Iterator[None]:
    """SIGTERM and SIGINT both set `stop` (Ctrl-C and `kill` take the same path)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def serve(settings: Settings, options: DaemonOptions | None = None,
          log: DaemonLog | None = None) -> None:
    """Run the daemon in the foreground until SIGTERM or SIGINT."""
    stop = threading.Event()
    daemon = Daemon(settings, options, log)
    # The indexer thread is CPU-bound; a short switch interval lets the loop act on a ref
    # event without waiting up to 5 ms (the default) for the GIL.
    sys.setswitchinterval(0.0005)
    with _signals_stop(stop):
        daemon.run(stop)


def run_once(settings: Settings, log: DaemonLog | None = None) -> int:
    """Catch up once and return the number of commits mirrored (for cron).

    Raises `LockHeldError` when a daemon holds the writer lock, `DatabaseError` when the
    database cannot be reached.
    """
    log = log or DaemonLog()
    session = DbSession(settings, log)
    try:
        if not session.acquire():
            raise LockHeldError("another maestro daemon holds the writer lock of this database",
                                hint="it mirrors the branch already; nothing to do")
        return session.catch_up(None, lambda s: _log_mirrored(log, s))
    finally:
        session.close()


@dataclass(frozen=True)
class LatencyReport:
    """Commit-to-queryable latency of a running daemon, in milliseconds."""

    samples: tuple[float, ...]

    @property
    def median_ms(self) -> float:
        return statistics.median(self.samples) if self.samples else 0.0

    @property
    def p95_ms(self) -> float:
        return _percentile(self.samples, 0.95)


def measure_commit_latency(settings: Settings, n: int = 50,
                           make_commit: Callable[[int], str] | None = None, warmup: int = 3,
                           timeout: float = 30.0) -> LatencyReport:
    """Time `n` one-file commits from their ref update to their row in PostgreSQL.

    Starts `maestro daemon` in a subprocess (its own interpreter, as in production) on
    `settings.repo_path` and `settings.database_url`, waits until it has mirrored the current
    head, then for each i calls `make_commit(i)`, which must make one commit on the branch
    (updating the ref is its last step) and return its id, and polls the sync cursor (written
    in the same transaction as the rows) until it names that commit. The first `warmup`
    commits are not counted. The repository must have at least one commit.

    The default `make_commit` rewrites one persona, `personas/bench/latency.md`, with
    `GitRepo.write_commit` (an in-memory tree and a compare-and-swap ref update).
    """
    if not settings.database_url:
        raise DatabaseError("measure_commit_latency needs settings.database_url")
    if make_commit is None:
        make_commit = _one_file_committer(settings)
    conn = db.connect(settings.database_url)
    db.migrate(conn)  # the cursor table must exist before the daemon's first catch-up
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from maestro_git.cli import main; "
         "sys.exit(main(sys.argv[1:]))", "--repo", str(settings.repo_path),
         "--database-url", settings.database_url, "--branch", settings.branch, "daemon",
         "--log-format", "json"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        head = GitRepo(settings.repo_path).head(settings.branch)
        if head is None:
            raise GitError(f"branch {settings.branch} has no commit")
        _wait_cursor(conn, settings.branch, head, timeout, proc)
        samples: list[float] = []
        for i in range(n + warmup):
            commit = make_commit(i)
            start = time.perf_counter()
            _wait_cursor(conn, settings.branch, commit, timeout, proc)
            if i >= warmup:
                samples.append((time.perf_counter() - start) * 1000)
        return LatencyReport(tuple(samples))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        conn.close()


def _one_file_committer(settings: Settings) -> Callable[[int], str]:
    repo = GitRepo(settings.repo_path)
    who = Identity("maestro bench", "bench@example.invalid")

    def commit(i: int) -> str:
        body = (f"---\ndisplay_name: Latency probe\nversion: 1.0.{i}\ntags: [bench]\n---\n"
                f"# Latency probe\n\nYou answer latency question number {i}.\n")
        return repo.write_commit(settings.branch, repo.head(settings.branch),
                                 {"personas/bench/latency.md": body.encode()}, who, who,
                                 f"bench: latency probe {i}")

    return commit


def _wait_cursor(conn: db.Connection, branch: str, commit: str, timeout: float,
                 proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with db.translate_errors("reading the sync cursor"):
            row = conn.execute("SELECT commit FROM sync_state WHERE branch = %s",
                               (branch,)).fetchone()
        if row is not None and row[0] == commit:
            return
        if proc.poll() is not None:
            raise MaestroError(f"the daemon exited ({proc.returncode}) before mirroring "
                               f"{commit[:7]}")
        if time.monotonic() > deadline:
            raise MaestroError(f"commit {commit[:7]} was not mirrored within {timeout:.0f} s")
        time.sleep(0.0005)  # yield the CPU to the daemon and PostgreSQL (2 cores here)


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    k = max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))
    return ordered[k]

