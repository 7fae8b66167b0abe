"""Daemon SIGKILLs over a commit stream: the real `maestro daemon` process is killed at random
points while a committer moves the branch; each time a new one is started. At the end one
daemon catches up and is stopped with SIGTERM, and the mirror must be exact: `maestro verify`
clean, every version row equal to a clean replay of the same history into a fresh database
(none lost, none duplicated), every persona's versions equal to git's history of its file,
the search index at the head, no build folder left beside it, and no traceback in any log.

Kill points, drawn from one seeded `random.Random`:
- `starting`: at a uniform time in the first half second (imports, migrations, the lock,
  the first catch-up);
- `writer`: a uniform time (< 0.3 s) after the daemon logs that it holds the writer lock;
- `mirroring`: at once after its n-th `mirrored` line (n in 1..3), so the next commit's
  transaction or the index update is in flight.
"""

from __future__ import annotations

import random
import threading
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
    git,
    maestro,
    mirror_conn,
    wait_for,
)
from scripts.faults.stream import Stream

__all__ = ["KillFigures", "run_kills", "compare_mirrors"]

MODES = ("starting", "writer", "mirroring")
VERSION_ROWS = ("SELECT key, path, commit, action, content_hash, version FROM persona_versions "
                "ORDER BY 1, 3, 4")
MIRROR_ROWS = {
    "personas": "SELECT key, content_hash, version, commit FROM personas ORDER BY key",
    "templates": "SELECT name, content_hash, commit FROM persona_templates ORDER BY name",
    "persona_sets": "SELECT key, content_hash, commit FROM persona_sets ORDER BY key",
    "audit_events": "SELECT commit, kind, key, action FROM audit_events ORDER BY 1, 2, 3, 4",
    "sync_state": "SELECT branch, commit FROM sync_state",
}


@dataclass
class KillFigures:
    kills_asked: int = 0
    kills_done: int = 0
    kill_points: dict[str, int] = field(default_factory=lambda: dict.fromkeys(MODES, 0))
    killed_while_behind: int = 0  # the cursor was behind the branch at the kill
    commits: int = 0  # ref moves in the stream
    mirrored_lines: int = 0  # `mirrored` log lines over every daemon run
    final_catch_up_s: float = 0.0
    sigterm_exit: int | None = None
    sigterm_stop_s: float = 0.0
    verify_exit: int | None = None
    verify_ok: bool = False
    version_rows: int = 0
    versions_lost: int = 0  # rows of a clean replay missing from the soaked mirror
    versions_extra: int = 0  # rows of the soaked mirror a clean replay does not have
    versions_duplicated: int = 0  # (persona, commit) pairs stored more than once
    other_rows_differing: int = 0  # personas/templates/sets/audit/cursor rows unlike the replay
    git_versions: int = 0  # (persona file, commit) pairs git's first-parent diffs name
    git_versions_differing: int = 0  # pairs in git's list or the mirror's, not both
    index_at_head: bool = False
    leftover_build_folders: int = 0
    tracebacks: int = 0
    stopped_early: bool = False  # the time budget ran out before every kill
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (not self.problems and self.verify_ok and self.versions_lost == 0
                and self.versions_extra == 0 and self.versions_duplicated == 0
                and self.other_rows_differing == 0 and self.git_versions_differing == 0
                and self.index_at_head and self.leftover_build_folders == 0
                and self.tracebacks == 0 and self.sigterm_exit == 0)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


class _Committer(threading.Thread):
    """Moves the branch towards `target`, one commit at a time, at jittered intervals."""

    def __init__(self, stream: Stream, rng: random.Random, gap: float) -> None:
        super().__init__(daemon=True, name="soak-committer")
        self.stream, self.rng, self.gap = stream, rng, gap
        self.target = 0
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                if self.stream.pos < self.target:
                    self.stream.advance()
                    self.stop.wait(self.rng.uniform(0, self.gap))
                else:
                    self.stop.wait(0.01)
        except BaseException as exc:  # reported by the scenario, not lost in a thread
            self.error = exc


def _kill_once(proc: DaemonProcess, mode: str, rng: random.Random) -> None:
    """Wait for the chosen kill point (each with a deadline), then SIGKILL."""
    try:
        if mode == "starting":
            time.sleep(rng.uniform(0, 0.5))
        elif mode == "writer":
            wait_for(lambda: proc.has("holding the writer lock") or not proc.alive, 20,
                     "the writer lock")
            time.sleep(rng.uniform(0, 0.3))
        else:
            n = rng.randint(1, 3)
            wait_for(lambda: proc.count("mirrored ") >= n or not proc.alive, 5,
                     f"{n} mirrored commit(s)", interval=0.002)
    except TimeoutError:
        pass  # nothing more to mirror: killed where it stands
    proc.sigkill()


def run_kills(workdir: Path, base_url: str, kills: int, commits: int, seed: int,
              budget: Deadline, log=print) -> KillFigures:
    """The SIGKILL scenario on a fresh database of `base_url`'s server."""
    started = time.monotonic()
    fig = KillFigures(kills_asked=kills, commits=commits)
    rng = random.Random(seed)
    stream = Stream(workdir / "kills-repo", commits, seed)
    daemon_log = workdir / "kills-daemon.log"
    with fresh_database(base_url) as url:
        committer = _Committer(stream, random.Random(seed + 1), gap=0.05)
        committer.start()
        try:
            for i in range(kills):
                if budget.passed:
                    fig.stopped_early = True
                    break
                committer.target = round((i + 1) * stream.last / max(1, kills))
                mode = rng.choice(MODES)
                proc = DaemonProcess(stream.path, url, daemon_log, "--poll-interval", "0.2")
                _kill_once(proc, mode, rng)
                fig.kills_done += 1
                fig.kill_points[mode] += 1
                if cursor(url) != stream.head:
                    fig.killed_while_behind += 1
                if (i + 1) % max(1, kills // 10) == 0:
                    log(f"  kills: {i + 1}/{kills}, branch at commit {stream.pos + 1}/"
                        f"{commits}, mirror at {_position(stream, cursor(url))}")
        finally:
            committer.stop.set()
            committer.join(10)
        if committer.error is not None:
            fig.problems.append(f"committer failed: {committer.error}")
        stream.move(stream.last)
        _final_run(fig, stream, url, daemon_log)
        _check_mirror(fig, stream, url, base_url)
    text = daemon_log.read_text(encoding="utf-8", errors="replace")
    fig.tracebacks = text.count(TRACEBACK)
    fig.mirrored_lines = text.count("mirrored ")
    folder = stream.path / ".maestro"
    fig.leftover_build_folders = len([*folder.glob("index.build-*"),
                                      *folder.glob("index.old-*")])
    fig.seconds = round(time.monotonic() - started, 1)
    return fig


def _position(stream: Stream, commit: str | None) -> str:
    if commit is None:
        return "nothing"
    try:
        return f"commit {stream.commits.index(commit) + 1}"
    except ValueError:
        return commit[:7]


def _final_run(fig: KillFigures, stream: Stream, url: str, daemon_log: Path) -> None:
    from maestro_git.search.index import SearchIndex
    from maestro_git.settings import Settings

    settings = Settings(repo_path=stream.path)
    proc = DaemonProcess(stream.path, url, daemon_log, "--poll-interval", "0.2")
    try:
        start = time.monotonic()
        wait_for(lambda: cursor(url) == stream.head, 300, "the final catch-up", 0.05)

        def index_at_head() -> bool:
            with SearchIndex(settings) as ix:
                return ix.commit == stream.head
        wait_for(index_at_head, 120, "the search index to reach the head", 0.1)
        fig.final_catch_up_s = round(time.monotonic() - start, 2)
        fig.index_at_head = True
    except TimeoutError as exc:
        fig.problems.append(str(exc))
    finally:
        fig.sigterm_exit, took = proc.sigterm()
        fig.sigterm_stop_s = round(took, 2)


def _rows(url: str) -> dict[str, list[tuple[Any, ...]]]:
    with mirror_conn(url) as conn:
        out = {name: conn.execute(q).fetchall() for name, q in MIRROR_ROWS.items()}
        out["versions"] = conn.execute(VERSION_ROWS).fetchall()
        out["duplicates"] = conn.execute(
            "SELECT persona_id, commit FROM persona_versions GROUP BY 1, 2 "
            "HAVING count(*) > 1").fetchall()
    return out


def compare_mirrors(soaked: str, clean: str) -> dict[str, int]:
    """Row differences between two mirrors of the same history."""
    a, b = _rows(soaked), _rows(clean)
    va, vb = set(a["versions"]), set(b["versions"])
    return {
        "version_rows": len(a["versions"]),
        "lost": len(vb - va),
        "extra": len(va - vb) + (len(a["versions"]) - len(va)),
        "duplicated": len(a["duplicates"]),
        "other": sum(len(set(a[k]) ^ set(b[k])) for k in MIRROR_ROWS),
    }


def _check_mirror(fig: KillFigures, stream: Stream, url: str, base_url: str) -> None:
    verify = maestro(stream.path, url, "verify", "--format", "json")
    fig.verify_exit = verify.code
    fig.verify_ok = verify.code == 0 and not verify.traceback
    if not fig.verify_ok:
        fig.problems.append(f"verify: {verify.brief()} {verify.stdout[:300]}")
    with fresh_database(base_url) as clean:
        replay = maestro(stream.path, clean, "sync", "--no-index")
        if replay.code != 0:
            fig.problems.append(f"clean replay: {replay.brief()}")
            return
        diff = compare_mirrors(url, clean)
    fig.version_rows = diff["version_rows"]
    fig.versions_lost, fig.versions_extra = diff["lost"], diff["extra"]
    fig.versions_duplicated, fig.other_rows_differing = diff["duplicated"], diff["other"]
    fig.git_versions, fig.git_versions_differing = _against_git(stream, url)


def _against_git(stream: Stream, url: str) -> tuple[int, int]:
    """The versions git names, compared with the mirror's: every (persona file, commit) a
    first-parent commit of the stream added, changed, renamed or deleted (`git diff-tree`
    against its first parent), except in the commits the generator broke on purpose (an
    invalid file is not mirrored), must be exactly the mirror's version rows, and the other
    way round.

    First parent, as the mirror records history: a merge commit is the version of what it
    brought in (`maestro history` instead names the side branch's commit)."""
    expected: set[tuple[str, str]] = set()
    for i, commit in enumerate(stream.commits):
        if commit in stream.broken:
            continue
        args = ["diff-tree", "-r", "--name-only", "--no-commit-id", "-M"]
        args += ["--root", commit] if i == 0 else [f"{commit}^1", commit]
        expected |= {(path, commit) for path in git(stream.path, *args).splitlines()
                     if path.startswith("personas/") and path.endswith(".md")}
    with mirror_conn(url) as conn:
        stored = {(p, c) for p, c in conn.execute("SELECT path, commit FROM persona_versions")}
    return len(expected), len(expected ^ stored)
