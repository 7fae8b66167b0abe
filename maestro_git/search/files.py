"""The search index's files outside Whoosh: the writer lock file beside the index, and the
file handles Whoosh leaks when a damaged segment fails to load.

Rules of this module: no whoosh; one writer at a time across processes and threads (fcntl
`flock` on a lock file, waited for up to a timeout, then `SearchError`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import gc
import os
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

from maestro_git.errors import SearchError

__all__ = ["WriteLock", "collect_leaked_files", "leaks_ignored"]


def collect_leaked_files() -> None:
    """Whoosh leaves files open when a damaged segment fails to load; close them now, quietly,
    rather than as ResourceWarnings at some later garbage collection."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


@contextlib.contextmanager
def leaks_ignored() -> Iterator[None]:
    """Around code that may meet a damaged index: its leaked files are closed quietly."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        yield


class WriteLock:
    """An exclusive lock file beside the index (fcntl), shared by processes and threads.

    A waiting writer gives up when `stop` is set (the daemon's stop event: SIGTERM never
    waits for another process's rebuild), or after `timeout` seconds."""

    def __init__(self, path: Path, timeout: float, *, stop: threading.Event | None = None
                 ) -> None:
        self.path = path
        self.timeout = timeout
        self.stop = stop
        self._fd: int | None = None

    def __enter__(self) -> WriteLock:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise SearchError(f"cannot open the search index lock {self.path.name}: "
                              f"{exc.strerror or type(exc).__name__}",
                              hint="make the folder writable, then try again") from None
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                stopped = self.stop is not None and self.stop.is_set()
                if exc.errno not in (errno.EAGAIN, errno.EACCES) or stopped or \
                        time.monotonic() > deadline:
                    os.close(fd)
                    if stopped:
                        raise SearchError("stopped while waiting for another process "
                                          "writing the search index") from None
                    raise SearchError("another process is writing the search index",
                                      hint="wait for it, or stop the other maestro daemon"
                                      ) from None
                if self.stop is not None:
                    self.stop.wait(0.01)
                else:
                    time.sleep(0.01)
        self._fd = fd
        return self

    @staticmethod
    @contextlib.contextmanager
    def try_hold(path: Path) -> Iterator[bool]:
        """Hold the lock at `path` if nobody does (True), without waiting; False if it is
        held or cannot be opened."""
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            yield False
            return
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
