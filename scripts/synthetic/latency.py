"""Commit-to-queryable latency of a running daemon (the benchmark's probe).

Not part of the daemon itself: it starts `maestro daemon` in a process of its own, makes
one-file commits and times each until the sync cursor in PostgreSQL names it.
"""

from __future__ import annotations

import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from maestro_git.errors import DatabaseError, GitError, MaestroError
from maestro_git.git.repo import GitRepo, Identity
from maestro_git.mirror import db
from maestro_git.settings import Settings

__all__ = ["LatencyReport", "measure_commit_latency"]


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
    conn = db.connect(settings)  # bound to the branch's mirror, as the daemon will be
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
