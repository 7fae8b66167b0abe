"""What every fault scenario shares: the `maestro` command as a real process, the daemon as a
real process with its log in a file, fresh databases, and reading the mirror back.

Rules of this module: every wait has a deadline (`wait_for`); processes are ended by their own
pid only; a database made here is dropped by whoever made it (`fresh_database`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

__all__ = [
    "MAESTRO",
    "CliResult",
    "DaemonProcess",
    "Deadline",
    "cursor",
    "fresh_database",
    "git",
    "maestro",
    "mirror_conn",
    "wait_for",
]

MAESTRO = [sys.executable, "-m", "maestro_git"]
# What a user would see: the package's own error handler prints one `error: ...` line.
TRACEBACK = "Traceback (most recent call last)"


class Deadline:
    """The soak's time budget: `left()` seconds remain, `passed` once it is spent."""

    def __init__(self, seconds: float | None) -> None:
        self.end = None if seconds is None else time.monotonic() + seconds

    def left(self) -> float:
        return float("inf") if self.end is None else self.end - time.monotonic()

    @property
    def passed(self) -> bool:
        return self.left() <= 0


def wait_for(predicate: Callable[[], object], timeout: float, what: str,
             interval: float = 0.01) -> float:
    """Poll `predicate` until true; return the seconds it took; `TimeoutError` after
    `timeout` seconds."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
    return time.monotonic() - start


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("DATABASE_URL", None)  # every command is given --database-url explicitly
    env["PYTHONWARNINGS"] = "default"  # a warning is shown, never fatal, in a user's run
    return env


@dataclass(frozen=True)
class CliResult:
    """One `maestro` command's outcome."""

    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def traceback(self) -> bool:
        return TRACEBACK in self.stdout or TRACEBACK in self.stderr

    @property
    def one_line_error(self) -> bool:
        """A refusal as the contract says: exit non-zero, no traceback, one `error: ...`
        line on stderr (after any log lines saying what was tried, before any `hint:`)."""
        errors = [x for x in self.stderr.splitlines() if x.startswith("error: ")]
        return self.code != 0 and not self.traceback and len(errors) == 1

    def json(self) -> Any:
        return json.loads(self.stdout)

    def brief(self) -> str:
        lines = [x for x in self.stderr.splitlines() if x.strip()]
        first = next((x for x in lines if x.startswith("error: ")), lines[0] if lines else "")
        return f"exit {self.code}" + (f": {first}" if first else "")


def maestro(repo: Path, url: str | None, *args: str, timeout: float = 120.0,
            preexec: Sequence[str] = ()) -> CliResult:
    """Run `maestro --repo REPO [--database-url URL] ARGS` as a process of its own.

    `preexec` is a command prefix (e.g. `unshare -m sh -c '...'`) the command runs under."""
    cmd = [*MAESTRO, "--repo", str(repo)]
    if url is not None:
        cmd += ["--database-url", url]
    cmd += list(args)
    start = time.monotonic()
    proc = subprocess.run([*preexec, *cmd], capture_output=True, text=True, timeout=timeout,
                          env=_child_env(), stdin=subprocess.DEVNULL)
    return CliResult(tuple(args), proc.returncode, proc.stdout, proc.stderr,
                     time.monotonic() - start)


def git(repo: Path, *args: str) -> str:
    """Run git in `repo`; return its stdout (stripped)."""
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


class DaemonProcess:
    """`maestro daemon` in a process of its own; stderr appended to `log` and read back."""

    def __init__(self, repo: Path, url: str, log: Path, *args: str,
                 preexec: Sequence[str] = ()) -> None:
        self.log = log
        log.touch()
        self.start_offset = log.stat().st_size
        self._fh = log.open("ab")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [*preexec, *MAESTRO, "--repo", str(repo), "--database-url", url, "daemon", *args],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._fh,
            env=_child_env())

    @property
    def text(self) -> str:
        with self.log.open("rb") as fh:
            fh.seek(self.start_offset)
            return fh.read().decode("utf-8", "replace")

    def has(self, needle: str) -> bool:
        return needle in self.text

    def count(self, needle: str) -> int:
        return self.text.count(needle)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def sigkill(self) -> None:
        if self.alive:
            self.proc.send_signal(signal.SIGKILL)
        self.wait(30)

    def sigterm(self, timeout: float = 15.0) -> tuple[int | None, float]:
        """SIGTERM; return (exit code or None if it did not stop, seconds to stop)."""
        start = time.monotonic()
        if self.alive:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code: int | None = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = None
        took = time.monotonic() - start
        if code is None:
            self.sigkill()
        self._fh.close()
        return code, took

    def wait(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        finally:
            if self.proc.poll() is not None:
                self._fh.close()

    def __enter__(self) -> DaemonProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sigkill()


def swap_dbname(url: str, dbname: str) -> str:
    params = conninfo_to_dict(url)
    params["dbname"] = dbname
    return make_conninfo(**params)


@contextmanager
def fresh_database(base: str) -> Iterator[str]:
    """A new empty database on `base`'s server, dropped (with its sessions) afterwards."""
    name = f"maestro_soak_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield swap_dbname(base, name)
    finally:
        with suppress(psycopg.Error), psycopg.connect(base, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))


def mirror_conn(url: str, branch: str = "main", connect_timeout: int = 5
                ) -> psycopg.Connection[Any]:
    """An autocommit connection with `search_path` set to the mirror of `branch` (as an SQL
    user would read it); the server's default path while there is none."""
    conn = psycopg.connect(url, autocommit=True, connect_timeout=connect_timeout)
    row = conn.execute("SELECT to_regclass('maestro.mirrors') IS NOT NULL").fetchone()
    if row == (True,):
        schemas = [r[0] for r in conn.execute(
            "SELECT schema_name FROM maestro.mirrors WHERE branch = %s", (branch,))]
        if len(schemas) == 1:
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schemas[0])))
    return conn


def cursor(url: str, branch: str = "main") -> str | None:
    """The mirror's last mirrored commit of `branch`; None before there is one or when the
    server cannot be reached."""
    try:
        with mirror_conn(url, branch, connect_timeout=2) as conn:
            if conn.execute("SELECT to_regclass('sync_state') IS NULL").fetchone() == (True,):
                return None
            row = conn.execute("SELECT commit FROM sync_state WHERE branch = %s",
                               (branch,)).fetchone()
            return None if row is None else str(row[0])
    except psycopg.OperationalError:
        return None
