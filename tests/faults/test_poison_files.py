"""One committed file must never stop the mirror: `sync`, `rebuild` and the daemon each get
past a commit holding text or numbers PostgreSQL cannot store, record why in `sync_errors`,
and mirror the commits after it. Real git repositories and a real PostgreSQL.

Each case runs twice: with the validation rules on (`check` refuses the file first) and with
them turned off in `[rules]`, so the database itself refuses the data and the mirror's own
safety net (`mirror.sync`, rule `unstorable-text`) is what gets past it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import psycopg
import pytest

from maestro_git.daemon.loop import Daemon, DaemonLog, DaemonOptions
from maestro_git.mirror import db
from maestro_git.mirror import sync as mirror_sync
from maestro_git.mirror.verify import rebuild, verify
from maestro_git.settings import Settings
from tests.factories import GitRepoFactory, persona_md

POISON = {  # path -> text that parses but that PostgreSQL cannot store as written
    "personas/acme/nul.md": '---\ndisplay_name: "nul \\0 here"\n---\n# Nul\n\nYou are x.\n',
    "templates/nul_key.md": '---\n"k\\x00": 1\n---\n# T\n\nYou are x.\n',
    "persona_sets/nul.json": '{"personas": [{"name": "Zed", "bio": "a\\u0000b"}]}',
    "persona_sets/lone.json": '{"personas": [{"name": "Zed", "\\udb40": "lone key"}]}',
    "persona_sets/lone_value.json": '{"personas": [{"name": "Zed\\udc49"}]}',
    "persona_sets/inf.json": '{"personas": [{"name": "Zed", "score": 1e400}]}',
    "persona_sets/big_int.json": '{"personas": [{"name": "Zed", "n": ' + "9" * 400 + "}]}",
}
RULES_OFF = {"unstorable-text": "off", "number-out-of-range": "off"}
NUMBERS = {"persona_sets/inf.json", "persona_sets/big_int.json"}


def _settings(repo: GitRepoFactory, url: str, rules_off: bool) -> Settings:
    return Settings(repo_path=repo.path, database_url=url,
                    rule_severity=RULES_OFF if rules_off else {})


def _keys(settings: Settings) -> set[str]:
    with db.connect(settings) as conn:
        return {r[0] for r in conn.execute("SELECT key FROM personas")}


def _has(settings: Settings, key: str) -> bool:
    """Whether the daemon's mirror holds `key` yet (False before it has migrated)."""
    try:
        return key in _keys(settings)
    except psycopg.Error:
        return False


def _errors(settings: Settings) -> dict[str, set[str]]:
    with db.connect(settings) as conn:
        rows = conn.execute("SELECT path, rule FROM sync_errors").fetchall()
    out: dict[str, set[str]] = {}
    for path, rule in rows:
        out.setdefault(path, set()).add(rule)
    return out


def _expected_errors(rules_off: bool) -> dict[str, set[str]]:
    if not rules_off:
        return {p: {"number-out-of-range" if p in NUMBERS else "unstorable-text"}
                for p in POISON}
    # The rules off: numbers out of range are read as null (never an infinity), so nothing
    # is refused for them; the text is refused by PostgreSQL, and recorded as such.
    return {p: {"unstorable-text"} for p in POISON if p not in NUMBERS}


def _history(repo: GitRepoFactory) -> None:
    repo.commit({"personas/acme/a.md": persona_md("A")}, "good")
    repo.commit({**POISON, "personas/acme/b.md": persona_md("B")}, "poison")
    repo.commit({"personas/acme/c.md": persona_md("C")}, "after")


@pytest.mark.parametrize("rules_off", [False, True], ids=["rules-on", "rules-off"])
def test_sync_gets_past_a_poisoned_commit(git_repo: GitRepoFactory, database_url: str,
                                          rules_off: bool) -> None:
    settings = _settings(git_repo, database_url, rules_off)
    git_repo.commit({"personas/acme/a.md": persona_md("A")}, "good")
    mirror_sync.sync(settings)  # incremental from here on
    git_repo.commit({**POISON, "personas/acme/b.md": persona_md("B")}, "poison")
    git_repo.commit({"personas/acme/c.md": persona_md("C")}, "after")
    report = mirror_sync.sync(settings)
    assert report.commits == 2
    keys = _keys(settings)
    assert {"acme/a", "acme/c"} <= keys and "acme/nul" not in keys
    assert _errors(settings) == _expected_errors(rules_off)
    git_repo.commit({"personas/acme/d.md": persona_md("D")}, "later")
    mirror_sync.sync(settings)
    assert "acme/d" in _keys(settings)
    with db.connect(settings) as conn:
        assert verify(settings, conn).ok


@pytest.mark.parametrize("rules_off", [False, True], ids=["rules-on", "rules-off"])
def test_a_first_sync_and_a_rebuild_get_past_a_poisoned_history(
        git_repo: GitRepoFactory, database_url: str, rules_off: bool) -> None:
    settings = _settings(git_repo, database_url, rules_off)
    _history(git_repo)
    mirror_sync.sync(settings)  # the whole history from an empty database (COPY load)
    assert {"acme/a", "acme/c"} <= _keys(settings)
    assert _errors(settings) == _expected_errors(rules_off)
    with db.connect(settings) as conn:
        report = rebuild(settings, conn)
    assert report.commits == 3
    assert {"acme/a", "acme/c"} <= _keys(settings)
    assert _errors(settings) == _expected_errors(rules_off)
    with db.connect(settings) as conn:
        report = rebuild(settings, conn, head_only=True)
    assert {"acme/a", "acme/c"} <= _keys(settings)
    assert _errors(settings) == _expected_errors(rules_off)


def _wait_for(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.05)


class _Lines:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.text = ""

    def write(self, text: str) -> int:
        with self._lock:
            self.text += text
        return len(text)

    def flush(self) -> None:
        pass


@pytest.mark.parametrize("rules_off", [False, True], ids=["rules-on", "rules-off"])
def test_the_daemon_gets_past_a_poisoned_commit_and_mirrors_the_next(
        git_repo: GitRepoFactory, database_url: str, rules_off: bool) -> None:
    settings = _settings(git_repo, database_url, rules_off)
    git_repo.commit({"personas/acme/a.md": persona_md("A")}, "good")
    out = _Lines()
    options = DaemonOptions(poll_interval=0.3, debounce=0.05, lock_retry=0.2,
                            backoff_initial=0.1, backoff_max=0.5)
    daemon = Daemon(settings, options, DaemonLog("text", out))
    stop = threading.Event()
    thread = threading.Thread(target=daemon.run, args=(stop,), daemon=True)
    thread.start()
    try:
        _wait_for(lambda: _has(settings, "acme/a"), 30, "the first commit")
        git_repo.commit({**POISON, "personas/acme/b.md": persona_md("B")}, "poison")
        git_repo.commit({"personas/acme/c.md": persona_md("C")}, "after")
        _wait_for(lambda: _has(settings, "acme/c"), 30, "the commit after the poison")
        git_repo.commit({"personas/acme/d.md": persona_md("D")}, "later")
        _wait_for(lambda: _has(settings, "acme/d"), 30, "a later commit")
        assert thread.is_alive()
    finally:
        stop.set()
        thread.join(timeout=15)
    assert not thread.is_alive(), "the daemon did not stop"
    assert _errors(settings) == _expected_errors(rules_off)
    assert "database unavailable" not in out.text
    assert "Traceback" not in out.text


def test_a_file_name_that_is_not_utf8_is_recorded_not_fatal(git_repo: GitRepoFactory,
                                                            database_url: str) -> None:
    """git names may be any bytes; pygit2 hands them over as surrogate escapes, which
    PostgreSQL cannot store: the mirror records the error and moves on."""
    import os

    settings = _settings(git_repo, database_url, False)
    git_repo.commit({"personas/acme/a.md": persona_md("A")}, "good")
    mirror_sync.sync(settings)
    folder = os.fsencode(git_repo.path / "personas/acme")
    with open(folder + b"/b\xff.md", "wb") as fh:
        fh.write(persona_md("B").encode())
    git_repo.commit({"personas/acme/c.md": persona_md("C")}, "a name that is not UTF-8")
    report = mirror_sync.sync(settings)
    assert report.commits == 1
    assert "acme/c" in _keys(settings)
    errors = _errors(settings)
    assert errors["personas/acme/b\\xff.md"] >= {"unstorable-text", "invalid-name"}
    git_repo.commit({"personas/acme/d.md": persona_md("D")}, "later")
    mirror_sync.sync(settings)
    assert "acme/d" in _keys(settings)
