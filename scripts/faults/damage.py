"""Every kind of damage to `.maestro/` against the real `maestro` commands: each index file
truncated, emptied, filled with garbage or deleted; the index folder or `.maestro` deleted or
made a file; a stale lock file, a lock held by another process, build folders a killed
rebuild left; an unwritable folder; a full disk (alone and with a damaged index).

For each case and each command (`search`, `index status`, `sync`, `daemon`) the damage is
applied afresh to a healthy index at the branch head, then the command runs as a process of
its own. A command passes when it succeeds or refuses with one line (`error: ...`, non-zero
exit); any traceback fails the case. `sync` and the daemon must mirror a new commit whatever
the damage (the mirror goes on) and the daemon must stop on SIGTERM. A case is `healed` when
`search` answered with the right hit, `refused` when it said why in one line.

How the damage that needs the kernel is made (the soak runs as root here, and root ignores
file modes): each command runs in a private mount namespace (`unshare -m`), so nothing is
left mounted when it ends, whatever happens to it:
- unwritable: `.maestro` bind-mounted read-only over itself (as a non-root user, without
  mount rights: `chmod 0555` instead);
- full disk: `.maestro` copied onto a tmpfs just big enough, the rest of it filled, and that
  bind-mounted over `.maestro` (without mount rights: `prlimit --fsize`, RLIMIT_FSIZE, so
  writes past a small size fail with EFBIG; Python ignores SIGXFSZ).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from scripts.faults.common import (
    TRACEBACK,
    CliResult,
    DaemonProcess,
    Deadline,
    cursor,
    fresh_database,
    maestro,
    mirror_conn,
    wait_for,
)
from scripts.faults.stream import Stream

__all__ = ["CASES", "SHORT_CASES", "DamageFigures", "run_damage"]

STOP_LIMIT = 1.0  # seconds from SIGTERM to exit (the bound)

_DAMAGE: dict[str, Callable[[Path], None]] = {
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: max(1, p.stat().st_size // 2)]),
    "emptied": lambda p: p.write_bytes(b""),
    "garbage": lambda p: p.write_bytes(os.urandom(max(64, p.stat().st_size))),
    "deleted": lambda p: p.unlink(),
}
_FILES = {"toc": "_MAIN_*.toc", "seg": "*.seg", "wsa": "*.wsa", "WRITELOCK": "MAIN_WRITELOCK"}


class NotApplicable(Exception):
    """This case cannot be made here (e.g. no posting arrays with the speed paths off)."""


def _index_file(state: Path, kind: str) -> Path:
    found = sorted((state / "index").glob(_FILES[kind]))
    if not found:
        raise NotApplicable(f"no {_FILES[kind]} in the index")
    return found[0]


def _file_damage(kind: str, how: str) -> Callable[[Path], None]:
    return lambda state: _DAMAGE[how](_index_file(state, kind))


def _as_file(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    path.write_text("a file where a folder goes\n", encoding="utf-8")


def _leftovers(state: Path) -> None:
    for name in ("index.build-deadbeef", "index.old-deadbeef"):
        (state / name).mkdir()
        (state / name / "MAIN_x.seg").write_bytes(b"half written")


@dataclass(frozen=True)
class Case:
    name: str
    damage: Callable[[Path], None] = lambda state: None  # applied to `.maestro`
    mount: str = ""  # "" | "readonly" | "full": made in the command's mount namespace
    hold_lock: bool = False  # another process holds the index writer lock meanwhile


def _cases() -> list[Case]:
    cases = [Case(f"{kind} {how}", _file_damage(kind, how))
             for kind in _FILES for how in _DAMAGE]
    cases += [
        Case("index folder deleted", lambda s: shutil.rmtree(s / "index")),
        Case(".maestro deleted", shutil.rmtree),
        Case("index folder is a file", lambda s: _as_file(s / "index")),
        Case(".maestro is a file", _as_file),
        Case("stale lock file", lambda s: (s / "index.lock").write_text("12345\n")),
        Case("lock held by another process", hold_lock=True),
        Case("leftover build folders", _leftovers),
        Case("unwritable folder", mount="readonly"),
        Case("unwritable folder, garbage toc", _file_damage("toc", "garbage"),
             mount="readonly"),
        Case("full disk", mount="full"),
        Case("full disk, garbage toc", _file_damage("toc", "garbage"), mount="full"),
    ]
    return cases


CASES = _cases()
# The short run (CI): each kind of damage once, on a different index file each.
SHORT_CASES = ["toc garbage", "seg truncated", "wsa emptied", "WRITELOCK deleted",
               ".maestro is a file", "stale lock file", "lock held by another process",
               "leftover build folders", "unwritable folder, garbage toc",
               "full disk, garbage toc"]


@dataclass
class CaseResult:
    case: str
    outcome: str = ""  # healed | refused | tracebacked | failed | n/a
    commands: dict[str, str] = field(default_factory=dict)  # command -> what it did
    mirror_went_on: bool = False
    stop_s: float | None = None
    detail: str = ""


@dataclass
class DamageFigures:
    cases: list[CaseResult] = field(default_factory=list)
    full_disk_method: str = ""
    unwritable_method: str = ""
    healed: int = 0
    refused: int = 0
    tracebacked: int = 0
    failed: int = 0
    not_applicable: int = 0
    mirror_stopped: int = 0  # cases where sync or the daemon did not mirror the new commit
    stop_max_s: float = 0.0  # slowest SIGTERM-to-exit of the daemon over the cases
    reader_max_s: float = 0.0  # slowest search while another process held the writer lock
    stopped_early: bool = False
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return (self.tracebacked == 0 and self.failed == 0 and self.mirror_stopped == 0
                and self.stop_max_s <= STOP_LIMIT and bool(self.cases)
                and not self.stopped_early)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


# -- making the damage the kernel has to make ------------------------------------------------
def _can_mount(workdir: Path) -> bool:
    probe = workdir / "mount-probe"
    probe.mkdir(exist_ok=True)
    try:
        done = subprocess.run(["unshare", "-m", "sh", "-c",
                               'mount -t tmpfs -o size=64k tmpfs "$0"', str(probe)],
                              capture_output=True, timeout=10)
        return done.returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False
    finally:
        shutil.rmtree(probe, ignore_errors=True)


_READONLY = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'
# A tmpfs the size of the index plus a little, the index copied on, the rest filled up.
_FULL = ('S="$SOAK_STAGE" && mount -t tmpfs -o size="$SOAK_SIZE" tmpfs "$S" && '
         'cp -a "$0"/. "$S"/ && { dd if=/dev/zero of="$S/.filler" bs=4096 2>/dev/null; '
         'true; } && mount --bind "$S" "$0" && exec "$@"')


class _Kernel:
    """How this machine lets the soak make an unwritable folder and a full disk."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.mount = _can_mount(workdir)
        self.root = os.geteuid() == 0

    @property
    def readonly_method(self) -> str:
        if self.mount:
            return "read-only bind mount in a private mount namespace"
        return "chmod 0555 (not root)" if not self.root else "not simulated (root, no mount)"

    @property
    def full_method(self) -> str:
        return ("tmpfs sized to the index, filled, in a private mount namespace" if self.mount
                else "RLIMIT_FSIZE 16 KiB (prlimit --fsize)")

    @contextmanager
    def applied(self, case: Case, state: Path) -> Iterator[list[str]]:
        """The command prefix that makes `case.mount` around one command."""
        if case.mount == "readonly":
            if self.mount:
                yield ["unshare", "-m", "sh", "-c", _READONLY, str(state)]
            elif not self.root:
                os.chmod(state, 0o555)
                try:
                    yield []
                finally:
                    os.chmod(state, 0o755)
            else:
                raise NotApplicable("root without mount rights cannot make a folder unwritable")
        elif case.mount == "full":
            if self.mount:
                stage = self.workdir / "full-disk-stage"
                stage.mkdir(exist_ok=True)
                size = sum(p.stat().st_size for p in state.rglob("*") if p.is_file())
                os.environ["SOAK_STAGE"] = str(stage)
                os.environ["SOAK_SIZE"] = str(size + 64 * 1024)
                try:
                    yield ["unshare", "-m", "sh", "-c", _FULL, str(state)]
                finally:
                    os.environ.pop("SOAK_STAGE", None)
                    os.environ.pop("SOAK_SIZE", None)
            else:
                yield ["prlimit", f"--fsize={16 * 1024}"]
        else:
            yield []


@contextmanager
def _held_lock(state: Path, hold: bool) -> Iterator[None]:
    if not hold:
        yield
        return
    fd = os.open(state / "index.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # as a rebuild in another process would
    try:
        yield
    finally:
        os.close(fd)


# -- one case -----------------------------------------------------------------------------
class _Bench:
    """The repository, its database and a healthy `.maestro` to restore before each command."""

    def __init__(self, workdir: Path, url: str, stream: Stream, kernel: _Kernel) -> None:
        self.workdir, self.url, self.stream, self.kernel = workdir, url, stream, kernel
        self.state = stream.path / ".maestro"
        self.pristine = workdir / "pristine-maestro"
        self.daemon_log = workdir / "damage-daemon.log"
        self.query = ("", "")  # (persona key, search words) known at the head

    def baseline(self) -> None:
        """Mirror the next commit and build its index afresh (one bulk-written segment, as
        after a rebuild); keep that healthy `.maestro`."""
        shutil.rmtree(self.pristine, ignore_errors=True)
        self.restore_clean()
        self.stream.advance()
        done = maestro(self.stream.path, self.url, "sync")
        if done.code != 0 or done.traceback:
            raise RuntimeError(f"baseline sync failed: {done.brief()}")
        shutil.copytree(self.state, self.pristine, symlinks=True)
        with mirror_conn(self.url) as conn:
            row = conn.execute("SELECT key, name FROM personas ORDER BY key LIMIT 1").fetchone()
        self.query = (row[0], row[1])

    def restore_clean(self) -> None:
        if self.state.is_dir() and not self.state.is_symlink():
            shutil.rmtree(self.state)
        elif self.state.exists():
            self.state.unlink()
        if self.pristine.exists():
            shutil.copytree(self.pristine, self.state, symlinks=True)

    def damaged(self, case: Case) -> None:
        self.restore_clean()
        case.damage(self.state)


def _judge(result: CliResult, what: str) -> tuple[str, bool]:
    """(what happened, passed): success, or a refusal in one line."""
    if result.traceback:
        return f"TRACEBACK: {result.stderr.strip().splitlines()[-1][:160]}", False
    if result.code == 0:
        return "ok", True
    if result.one_line_error:
        return f"refused: {result.brief()}", True
    return f"failed: {result.brief()}", False


def _run_case(bench: _Bench, case: Case) -> CaseResult:
    res = CaseResult(case.name)
    passed = True
    healed = False
    mirrored = True
    key, words = bench.query

    # search: a reader; answers from the index, healing it when it can
    bench.damaged(case)
    with _held_lock(bench.state, case.hold_lock), bench.kernel.applied(case, bench.state) as pre:
        search = maestro(bench.stream.path, bench.url, "search", words, "--format", "json",
                         preexec=pre)
    said, ok = _judge(search, "search")
    if search.code == 0 and not search.traceback:
        hits = [h.get("key") for h in search.json()]
        healed = key in hits
        said = f"ok, {len(hits)} hit(s)" + ("" if healed else f", {key} missing")
        ok = healed
    res.commands["search"] = f"{said} ({search.seconds:.2f} s)"
    passed &= ok
    if case.name == "leftover build folders" and any(bench.state.glob("index.build-*")):
        res.detail = "build folders left"
        passed = False

    # index status: never raises
    bench.damaged(case)
    with _held_lock(bench.state, case.hold_lock), bench.kernel.applied(case, bench.state) as pre:
        status = maestro(bench.stream.path, bench.url, "index", "status", "--format", "json",
                         preexec=pre)
    said, ok = _judge(status, "index status")
    if status.code == 0 and not status.traceback:
        info = status.json()
        said = "healthy" if info.get("healthy") else f"unhealthy: {info.get('reason')}"
    res.commands["index status"] = said
    passed &= ok

    # sync: the mirror goes on (a writer waiting for the holder of the lock waits by design)
    if not case.hold_lock:
        bench.damaged(case)
        head = bench.stream.advance()
        with bench.kernel.applied(case, bench.state) as pre:
            sync = maestro(bench.stream.path, bench.url, "sync", preexec=pre)
        said, ok = _judge(sync, "sync")
        went_on = cursor(bench.url) == head
        if sync.code != 0 or not went_on:
            ok = False
            said += "" if went_on else ", the commit was not mirrored"
        warned = [x for x in sync.stderr.splitlines() if "search index" in x]
        res.commands["sync"] = said + (f" ({warned[0].strip()[:120]})" if warned else "")
        passed &= ok
        mirrored &= went_on

    # the daemon: mirrors a new commit despite the damage, stops on SIGTERM within a second
    bench.damaged(case)
    with _held_lock(bench.state, case.hold_lock), bench.kernel.applied(case, bench.state) as pre:
        proc = DaemonProcess(bench.stream.path, bench.url, bench.daemon_log,
                             "--poll-interval", "0.2", preexec=pre)
        try:
            wait_for(lambda: proc.has("holding the writer lock") or not proc.alive, 30,
                     "the daemon to take the writer lock")
            head = bench.stream.advance()
            wait_for(lambda: cursor(bench.url) == head or not proc.alive, 30,
                     "the daemon to mirror the new commit")
        except TimeoutError:
            pass
        went_on = cursor(bench.url) == bench.stream.head
        code, took = proc.sigterm()
    text = proc.text
    res.stop_s = round(took, 3)
    said = f"exit {code} {took:.2f} s after SIGTERM"
    ok = code == 0 and went_on and TRACEBACK not in text
    if TRACEBACK in text:
        said = "TRACEBACK in its log: " + text.strip().splitlines()[-1][:160]
    elif not went_on:
        said += ", the commit was not mirrored"
    res.commands["daemon"] = said
    passed &= ok
    mirrored &= went_on
    res.mirror_went_on = mirrored

    everything = " ".join(res.commands.values())
    if "TRACEBACK" in everything:
        res.outcome = "tracebacked"
    elif not passed:
        res.outcome = "failed"
    else:
        res.outcome = "healed" if healed else "refused"
    return res


def run_damage(workdir: Path, base_url: str, seed: int, budget: Deadline,
               names: list[str] | None = None, log=print) -> DamageFigures:
    """Every case of `CASES` (or those named), on a fresh database of `base_url`'s server."""
    started = time.monotonic()
    fig = DamageFigures()
    kernel = _Kernel(workdir)
    fig.full_disk_method, fig.unwritable_method = kernel.full_method, kernel.readonly_method
    cases = [c for c in CASES if names is None or c.name in names]
    stream = Stream(workdir / "damage-repo", 4 * len(cases) + 4, seed)
    with fresh_database(base_url) as url:
        bench = _Bench(workdir, url, stream, kernel)
        for case in cases:
            if budget.passed:
                fig.stopped_early = True
                break
            bench.baseline()
            try:
                res = _run_case(bench, case)
            except NotApplicable as why:
                res = CaseResult(case.name, "n/a", detail=str(why))
            fig.cases.append(res)
            log(f"  {case.name}: {res.outcome}"
                + (f" ({res.detail})" if res.detail else ""))
        bench.restore_clean()
    for res in fig.cases:
        if res.outcome == "healed":
            fig.healed += 1
        elif res.outcome == "refused":
            fig.refused += 1
        elif res.outcome == "tracebacked":
            fig.tracebacked += 1
        elif res.outcome == "n/a":
            fig.not_applicable += 1
        else:
            fig.failed += 1
        if res.outcome != "n/a" and not res.mirror_went_on:
            fig.mirror_stopped += 1
        if res.stop_s is not None:
            fig.stop_max_s = max(fig.stop_max_s, res.stop_s)
        if res.case == "lock held by another process":
            seconds = res.commands.get("search", "").rsplit("(", 1)[-1].rstrip(" s)")
            fig.reader_max_s = float(seconds) if seconds.replace(".", "").isdigit() else 0.0
    fig.seconds = round(time.monotonic() - started, 1)
    return fig
