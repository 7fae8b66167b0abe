"""NOTIFY payloads and hooks after each mirrored commit."""

from __future__ import annotations

import json
import logging
import sys
import uuid
from pathlib import Path

import pytest

from maestro_git.mirror import db, events, sync
from maestro_git.settings import Settings
from tests.factories import GitRepoFactory, persona_md

CALLS: list[dict[str, str]] = []


def record_hook(payload: dict[str, str]) -> None:
    CALLS.append(payload)


def failing_hook(payload: dict[str, str]) -> None:
    raise RuntimeError("hook is broken")


def test_sync_notifies_listeners_once_per_changed_entity(git_repo: GitRepoFactory,
                                                         database_url: str) -> None:
    commit = git_repo.commit({"personas/acme/a.md": persona_md("A", id=str(uuid.uuid4())),
                              "templates/t.md": persona_md("T")}, "two files")
    listener = db.listen_connection(database_url)
    try:
        report = sync.sync(Settings(repo_path=git_repo.path, database_url=database_url))
        got = [json.loads(n.payload) for n in listener.notifies(timeout=5, stop_after=2)]
    finally:
        listener.close()
    assert {(p.pop("schema"), p.pop("branch")) for p in got} == {(report.schema, "main")}
    assert sorted(got, key=lambda p: p["kind"]) == [
        {"action": "created", "kind": "persona", "key": "acme/a", "commit": commit},
        {"action": "created", "kind": "template", "key": "t", "commit": commit}]


def test_a_commit_with_many_events_sends_one_reloaded_notification(
        git_repo: GitRepoFactory, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events, "NOTIFY_MAX_EVENTS", 2)
    commit = git_repo.commit({f"personas/acme/p{i}.md": persona_md(f"P{i}") for i in range(3)},
                             "three personas")
    listener = db.listen_connection(database_url)
    try:
        report = sync.sync(Settings(repo_path=git_repo.path, database_url=database_url))
        got = [json.loads(n.payload) for n in listener.notifies(timeout=2)]
    finally:
        listener.close()
    assert {(p.pop("schema"), p.pop("branch")) for p in got} == {(report.schema, "main")}
    assert got == [{"action": "reloaded", "kind": "repository", "key": "*", "commit": commit,
                    "count": 3}]


def test_payload_stays_under_the_notify_limit() -> None:
    event = events.EntityEvent("updated", "persona", "k" * 20000, "c" * 40)
    assert len(event.to_json().encode()) < 8000


def test_shell_hook_gets_event_json_lines_on_stdin(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    settings = Settings(repo_path=tmp_path, hook_commands=(f"cat > {out}",))
    evs = [events.EntityEvent("created", "persona", "acme/a", "abc"),
           events.EntityEvent("deleted", "template", "t", "abc")]
    assert events.run_hooks(settings, evs) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines == [e.payload() for e in evs]


def test_failing_hooks_are_logged_and_never_raise(tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(repo_path=tmp_path, hook_commands=("exit 3",),
                        hook_entry_points=("tests.mirror.test_events:failing_hook",
                                           "no.such.module:fn", "unknown-hook-name"))
    with caplog.at_level(logging.WARNING, logger="maestro_git.mirror.events"):
        failures = events.run_hooks(settings, [events.EntityEvent("created", "persona", "k",
                                                                  "c")])
    assert failures == 4
    assert "exited 3" in caplog.text


def test_hanging_hook_is_cut_off_by_the_timeout(tmp_path: Path) -> None:
    settings = Settings(repo_path=tmp_path, hook_commands=(f"{sys.executable} -c "
                                                           "'import time; time.sleep(30)'",))
    failures = events.run_hooks(settings, [events.EntityEvent("created", "persona", "k", "c")],
                                timeout=0.5)
    assert failures == 1


def test_failing_hook_does_not_block_the_mirror(git_repo: GitRepoFactory,
                                                database_url: str) -> None:
    CALLS.clear()
    git_repo.commit({"personas/acme/a.md": persona_md("A")}, "one")
    settings = Settings(repo_path=git_repo.path, database_url=database_url,
                        hook_commands=("exit 1",),
                        hook_entry_points=("tests.mirror.test_events:failing_hook",
                                           "tests.mirror.test_events:record_hook"))
    report = sync.sync(settings)
    assert report.commits == 1
    assert [c["key"] for c in CALLS] == ["acme/a"]
    with db.connect(settings) as conn:
        assert conn.execute("SELECT count(*) FROM personas").fetchone() == (1,)
