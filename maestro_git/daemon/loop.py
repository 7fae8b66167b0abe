"""The sync daemon: watch the branch ref and the working tree; mirror commits, report edits.

The only module that imports watchdog. Rules of this module:

- Every branch of `settings.mirrored_branches` (`[sync] branches`) is watched and mirrored,
  each into its own mirror (schema), with its own writer lock; the working tree is validated
  once, whatever branch is checked out.
- File events are hints, never the truth. A ref event (`HEAD`, `packed-refs`,
  `refs/heads/<branch>` of a mirrored branch, and its `.lock` rename) wakes the loop at once and `catch_up()` reads
  the real branch head; a periodic head check (`poll_interval`) catches any event the kernel
  dropped (a full inotify queue is only logged by watchdog).
- Ref changes are atomic, so they are acted on immediately. Working-tree events are batched:
  a path is validated once it has been quiet for `debounce` seconds, so bursts, editor atomic
  saves (write a temp file, rename it over the original: the move's destination counts) and
  `git checkout` become one pass. Working-tree edits are validated and reported, never
  mirrored.
- One writer per mirror: the writer holds each mirror's PostgreSQL advisory lock on a session
  of its own, and writes once it holds them all. A daemon that cannot take one is a standby: it validates and reports but never writes,
  and retries the lock every `lock_retry` seconds, so it takes over when the writer stops.
- The database going away is an input, not a crash: the daemon logs it, retries with
  exponential back-off (`backoff_initial` doubling up to `backoff_max`), re-takes the lock and
  catches up.
- Stopping is an input too: SIGTERM and SIGINT set the same stop event; the commit being
  mirrored finishes its transaction (one per commit, cursor inside) and the daemon exits 0.
  Stopping is bounded: a statement still running `stop_cancel_after` seconds later is
  cancelled (its transaction rolls back whole; the commit is mirrored at the next start),
  queued search-index updates get `stop_index_drain` seconds (the index catches up at the
  next start), and the foreground daemon (`serve`) exits 0 at `stop_deadline` whatever is
  still running: as safe as the SIGKILLs the fault suite deals out, and within a second.

The loop runs in the calling thread; watchdog's observer thread only records hints and wakes
it. `Daemon.run(stop)` returns when `stop` is set.

Beside it: `daemon_session` (the mirror link: writer lock, syncer, batched index updates),
`daemon_log` (the log lines) and `latency` (the benchmark's commit-to-queryable probe); their
public names are re-exported here.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

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

from maestro_git.core.formats import classify
from maestro_git.core.models import Problem, SourceFile
from maestro_git.core.snapshot import Snapshot, build_snapshot, update_snapshot
from maestro_git.daemon.log import DaemonLog
from maestro_git.daemon.session import (
    DbSession,
    MirroredSummary,
    MirrorSession,
    SessionFactory,
)
from maestro_git.errors import DatabaseError, LockHeldError, MaestroError
from maestro_git.git.repo import GitRepo
from maestro_git.git.worktree import CONTENT_DIRS, is_editor_temp, read_worktree
from maestro_git.mirror.sync import MirrorDataError
from maestro_git.output import format_problems
from maestro_git.settings import Settings

__all__ = [
    "Daemon",
    "DaemonLog",
    "DaemonOptions",
    "MirrorSession",
    "DbSession",
    "MirroredSummary",
    "SessionFactory",
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
    # Cap of the exponential back-off: a database back from an outage of any length is used
    # again within this (the fault suite bounds the catch-up at 5 s; with a 10 s cap an
    # 8 s outage took 7.9 s to catch up). A connection attempt every 2 s costs nothing.
    backoff_max: float = 2.0
    watch_worktree: bool = True  # validate and report working-tree edits
    stop_cancel_after: float = 0.3  # after SIGTERM: cancel the statement still running
    stop_index_drain: float = 0.3  # after SIGTERM: time left to queued index updates
    stop_deadline: float = 0.9  # after SIGTERM: the foreground daemon exits regardless


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
    `DbSession`, uses `maestro_git.mirror.db` and `maestro_git.mirror.sync`. `run(stop)` blocks until `stop`
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
        self._branch_refs = {f"refs/heads/{b}" for b in settings.mirrored_branches}
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._ref_hint = False
        self._pending: dict[str, float] = {}  # repo-relative path -> monotonic time of event
        self._rescan = False
        self._new_content_dirs: set[str] = set()
        self._observer: BaseObserver | None = None
        self._content_watches: dict[str, ObservedWatch] = {}
        self._session: MirrorSession | None = None
        self._stop: threading.Event | None = None  # the event `run` watches
        self._stopped = threading.Event()  # set when `run` has returned
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
            if rel_git in _GIT_TOP_FILES or rel_git in self._branch_refs:
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
        self._stop = stop
        self._stopped.clear()
        waker = threading.Thread(target=self._wake_on, args=(stop,), daemon=True,
                                 name="maestro-daemon-stop")
        waker.start()
        branches = self.settings.mirrored_branches
        label = "branches" if len(branches) > 1 else "branch"
        self.log.info("starting", f"watching {self.root} ({label} {', '.join(branches)})",
                      repo=str(self.root), branch=self.settings.branch,
                      branches=list(branches))
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
            self._stopped.set()

    def _wake_on(self, stop: threading.Event) -> None:
        stop.wait()
        self._wake.set()
        if self._stopped.wait(self.options.stop_cancel_after):
            return
        session = self._session
        if session is not None:  # a long statement (a first load, a slow server): stop it
            with suppress(Exception):
                session.cancel()

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
        except MirrorDataError as err:  # not an outage: the commit's data, until it changes
            self.log.error("sync", f"cannot mirror: {err.message}")
            self._db_failed(err)
        except DatabaseError as err:
            if stop.is_set():  # cancelled by a stop (`_wake_on`): rolled back, not an outage
                self.log.info("stopping", "the commit in flight was cancelled and rolled "
                              "back; it is mirrored at the next start")
                self._drop_session()
                return
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
        outage = isinstance(err, DatabaseError) and not isinstance(err, MirrorDataError)
        what = "database unavailable" if outage else "sync failed"
        self.log.warning("database", f"{what}: {err.message}; retrying in "
                         f"{self._backoff:.1f} s", retry_in=self._backoff)

    def _drop_session(self) -> None:
        self._writer = False
        if self._session is not None:
            stopping = self._stop is not None and self._stop.is_set()
            with suppress(MaestroError):
                self._session.close(self.options.stop_index_drain if stopping else 30.0)

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
            if classify(rel) is None and rel.split("/", 1)[0] not in CONTENT_DIRS:
                continue  # outside the content folders (misplaced files inside are reported)
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
    # Editor droppings and maestro's own `.name.XXXX.tmp` are skipped; any other dotfile in
    # a content folder is reported on save (`hidden-file`), as `check` and a rescan do.
    name = rel.rsplit("/", 1)[-1]
    return is_editor_temp(name) or name.endswith(_TEMP_SUFFIXES)


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
    done = threading.Event()
    threading.Thread(target=_exit_when_stuck, args=(stop, done, daemon), daemon=True,
                     name="maestro-daemon-deadline").start()
    with _signals_stop(stop):
        daemon.run(stop)
    done.set()


def _exit_when_stuck(stop: threading.Event, done: threading.Event, daemon: Daemon) -> None:
    """The foreground daemon's stop deadline: `stop_deadline` seconds after the stop, exit 0
    whatever still runs (a transaction in flight rolls back with the connection, the index
    heals, as after any kill; see the module's docstring)."""
    stop.wait()
    deadline = daemon.options.stop_deadline
    if done.wait(deadline):
        return
    daemon.log.warning("stopped", f"stopping took over {deadline:.1f} s; exiting now (what was "
                       "in flight rolls back and is mirrored at the next start)",
                       mirrored=daemon.mirrored)
    sys.stdout.flush()
    os._exit(0)


def run_once(settings: Settings, log: DaemonLog | None = None) -> int:
    """Catch up once and return the number of commits mirrored (for cron).

    Raises `LockHeldError` when a daemon holds the writer lock, `DatabaseError` when the
    database cannot be reached.
    """
    log = log or DaemonLog()
    session = DbSession(settings, log)
    try:
        if not session.acquire():
            raise LockHeldError("another maestro daemon holds the writer lock of this mirror",
                                hint="it mirrors the branch already; nothing to do")
        return session.catch_up(None, lambda s: _log_mirrored(log, s))
    finally:
        session.close()


