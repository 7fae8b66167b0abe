"""The two locks a library write takes: maestro's writers' lock, then git's own `index.lock`.

`writers_lock` lets one maestro writer (thread or process) at a time plan and commit in a
repository. Writers of different personas then never lose a compare-and-swap to each other,
so none of them is ever refused for contention; only a program outside maestro (`git commit`,
a push into the repository) can still move the branch under a write, which retries on the
new head. A thread waits on an in-process lock first, so only one thread per process polls
the file lock (`flock`, released by the kernel if the process dies).

`IndexLock` is git's protocol for the index: create `.git/index.lock` with
`O_CREAT|O_EXCL` (git's `git add`, `git commit`, `git checkout` and libgit2 all do), read the
index while holding it, put the new index in place by a rename, then release the lock. (git
writes the new index into the lock file and renames that; maestro renames a private copy and
removes the lock a moment later, which readers cannot tell apart, for the reason in
`IndexLock`.) Holding it across the branch update and the index update is what `git commit
-a` does; it makes the index change together with the branch for every program that follows
the protocol, so a concurrent `git add` is never lost and a concurrent `git commit` never
reads an index from before the library's commit on a branch from after it. git itself does
not wait for this lock (it exits with "index.lock: File exists"); maestro waits for it, up to
a deadline, as for a ref lock.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import random
import shutil
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pygit2

from maestro_git.errors import ConflictError

__all__ = ["IndexLock", "LockTimeout", "writers_lock"]

LINGER_SECONDS = 0.005  # see IndexLock
_THREAD_LOCKS: dict[str, threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


_EMPTY_HEADER = b"DIRC" + struct.pack(">II", 2, 0)
_EMPTY_INDEX = _EMPTY_HEADER + hashlib.sha1(_EMPTY_HEADER).digest()  # what `git init` lacks


class LockTimeout(ConflictError):
    """A lock stayed held past the write's deadline."""


def _thread_lock(key: str) -> threading.Lock:
    with _THREAD_LOCKS_GUARD:
        return _THREAD_LOCKS.setdefault(key, threading.Lock())


def _pause(waited: int) -> None:
    time.sleep(random.uniform(0.0005, min(0.002 * (1 + waited), 0.02)))


@contextmanager
def writers_lock(git_dir: Path, deadline: float) -> Iterator[None]:
    """Hold maestro's writers' lock of the repository at `git_dir` until the block ends;
    `LockTimeout` when another writer still holds it at `deadline` (a `time.monotonic()`)."""
    path = git_dir / "maestro-write.lock"
    inner = _thread_lock(str(path.resolve()))
    if not inner.acquire(timeout=max(0.0, deadline - time.monotonic())):
        raise LockTimeout("another maestro write in this process took too long",
                          hint="try again")
    try:
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            waited = 0
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EINTR):
                        raise
                if time.monotonic() > deadline:
                    raise LockTimeout("another maestro write (another process) took too long",
                                      hint="try again")
                waited += 1
                _pause(waited)
            yield
        finally:
            os.close(fd)  # releases the flock
    finally:
        inner.release()


class IndexLock:
    """`.git/index.lock`, held the way git holds it (see the module docstring).

    `index` is the current index, read under the lock, as a standalone `pygit2.Index` on a
    private copy beside it. `commit()` writes that copy, renames it over `.git/index`, and
    only then, `LINGER_SECONDS` later, removes the lock. The linger is for `git commit`,
    which reads the index *before* it takes the lock and writes its copy back under it: one
    that read the old index just before the rename still finds the lock held, and exits
    ("index.lock: File exists") instead of writing the old entries back over the library's
    (its user runs it again, and then it reads the new index). Leaving the block without
    `commit()` removes the lock and changes nothing.
    """

    def __init__(self, git_dir: Path, deadline: float) -> None:
        self.path = git_dir / "index"
        self.lock = git_dir / "index.lock"
        self.copy = git_dir / f"maestro-index-{os.getpid()}-{threading.get_ident()}"
        self.deadline = deadline
        self._held = False
        self._linger = False
        self._written = False
        self._stamp: tuple[int, int] | None = None
        self.index: pygit2.Index | None = None

    def __enter__(self) -> IndexLock:
        waited = 0
        while True:
            try:
                fd = os.open(self.lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                break
            except FileExistsError:
                if time.monotonic() > self.deadline:
                    raise LockTimeout(
                        "the git index stayed locked (.git/index.lock exists)",
                        hint="if no git command is running, remove .git/index.lock") from None
                waited += 1
                _pause(waited)
        os.close(fd)
        self._held = True
        try:
            if self.path.is_file():
                st = self.path.stat()
                self._stamp = (st.st_atime_ns, st.st_mtime_ns)
                shutil.copyfile(self.path, self.copy)
            else:  # no index yet (nothing was ever staged): start from an empty one
                self.copy.write_bytes(_EMPTY_INDEX)
            self.index = pygit2.Index(str(self.copy))
        except BaseException:
            self._release()
            raise
        return self

    def write(self) -> None:
        """Write `index` into its private copy, ready for `commit()` to put in place."""
        assert self.index is not None and self._held
        self.index.write()
        self._written = True

    def commit(self) -> None:
        """Put `index` in place over `.git/index` (written first unless `write()` just did;
        may be called again after more changes); the lock goes `LINGER_SECONDS` later, when
        the block ends."""
        assert self.index is not None and self._held
        if not self._written:
            self.index.write()
        self._written = False
        if self._stamp is not None:
            # git trusts an entry's stat data only when the file's mtime is older than the
            # index file's: keep the old index's mtime, so an entry that was "racily clean"
            # stays re-checked (git smudges such entries when it writes; a standalone libgit2
            # index does not). Without this, an edit of the same size within the same second
            # as an entry's stat goes unseen by the next `git add`.
            os.utime(self.copy, ns=self._stamp)
        os.replace(self.copy, self.path)
        self._linger = True

    def _release(self) -> None:
        self.index = None
        self.copy.unlink(missing_ok=True)
        if self._held:
            self._held = False
            self.lock.unlink(missing_ok=True)

    def __exit__(self, *exc: object) -> None:
        if self._linger:
            time.sleep(LINGER_SECONDS)
        self._release()
