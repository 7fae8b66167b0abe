"""The sync daemon: ref events mirror at once, working-tree edits are reported, one writer,
outages survived, signals obeyed. Real git repositories, a real PostgreSQL, real processes."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from maestro_git.daemon import Daemon, DaemonLog, DaemonOptions
from maestro_git.settings import Settings
from tests.factories import GitRepoFactory, persona_md

FAST = DaemonOptions(poll_interval=0.5, debounce=0.05, lock_retry=0.2, backoff_initial=0.1,
                     backoff_max=0.5)


def wait_for(predicate: Callable[[], object], timeout: float = 10.0, what: str = "") -> None:
    """Poll `predicate` until it is true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(0.01)


class Lines:
    """A thread-safe text stream that keeps what the daemon logs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buf = ""

    def write(self, text: str) -> int:
        with self._lock:
            self._buf += text
        return len(text)

    def flush(self) -> None:
        pass

    @property
    def lines(self) -> list[str]:
        with self._lock:
            return self._buf.splitlines()

    def records(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.lines]

    def has(self, needle: str) -> bool:
        return any(needle in line for line in self.lines)


@contextmanager
def running(settings: Settings, options: DaemonOptions = FAST, writer_factory=None,
            log_format: str = "text") -> Iterator[tuple[Daemon, Lines]]:
    """A daemon running in a thread; stopped (and joined) on exit."""
    out = Lines()
    daemon = Daemon(settings, options, DaemonLog(log_format, out), writer_factory)
    stop = threading.Event()
    thread = threading.Thread(target=daemon.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_for(lambda: out.has("working tree:") or not options.watch_worktree,
                 what="the daemon to start")
        yield daemon, out
    finally:
        stop.set()
        thread.join(timeout=10)
        assert not thread.is_alive(), "the daemon did not stop"


def _standby(settings: Settings, log: DaemonLog) -> None:
    return None


def test_broken_yaml_edit_is_reported_with_file_and_rule(git_repo: GitRepoFactory) -> None:
    git_repo.commit({"personas/acme/helper.md": persona_md("Helper")})
    settings = Settings(repo_path=git_repo.path)
    with running(settings, writer_factory=_standby) as (_, out):
        git_repo.write({"personas/acme/helper.md": "---\ndisplay_name: [unclosed\n---\nBody\n"})
        wait_for(lambda: out.has("personas/acme/helper.md"), what="the problem line")
        line = next(x for x in out.lines if "personas/acme/helper.md" in x)
        assert "error yaml-syntax:" in line
        git_repo.write({"personas/acme/helper.md": persona_md("Helper again")})
        wait_for(lambda: out.has("personas/acme/helper.md: ok"), what="the clean line")


def test_atomic_save_is_validated_once_at_its_destination(git_repo: GitRepoFactory) -> None:
    git_repo.commit({"personas/acme/helper.md": persona_md("Helper")})
    settings = Settings(repo_path=git_repo.path)
    with running(settings, writer_factory=_standby, log_format="json") as (_, out):
        # An editor's save: write a temp file, then rename it over the original.
        tmp = git_repo.path / "personas/acme/.helper.md.swp"
        tmp.write_text("---\ndisplay_name: [unclosed\n---\nBody\n", encoding="utf-8")
        tmp.replace(git_repo.path / "personas/acme/helper.md")
        wait_for(lambda: any(r.get("event") == "problem" for r in out.records()),
                 what="the problem record")
        problems = [r for r in out.records() if r.get("event") == "problem"]
        assert {(r["path"], r["rule"]) for r in problems} == {
            ("personas/acme/helper.md", "yaml-syntax")}
        assert len(problems) == 1
