"""The owner boundary: a token for `acme` never reads a `platform` row, through any route,
list, search or the event stream; and PostgreSQL itself enforces it (row-level security)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
import threading
import time
from typing import Any

import httpx
import psycopg
import pytest

from maestro_git.server.webhooks import verify
from tests.factories import mirror_sql
from tests.server.conftest import SECRET, Api, start_server, stop_server, wait_for


def _platform_routes(api: Api) -> list[tuple[str, str]]:
    history = api.client("both").get("/api/v1/personas/platform/base_assistant/history").json()
    commit = history["versions"][0]["commit"]
    base = "/api/v1/personas/platform/base_assistant"
    return [("GET", base), ("GET", base + "?resolved=true"), ("GET", base + "?branch=main"),
            ("GET", base + "?version=" + str(history["versions"][0]["version"])),
            ("GET", base + "?commit=" + commit), ("GET", base + "/history"),
            ("GET", base + "/diff"), ("GET", base + "/diff?resolved=true"),
            ("POST", base + "/applications"),
            ("GET", "/api/v1/personas/platform/incident_commander"),
            ("GET", "/api/v1/sets/platform_internal"),
            ("GET", "/api/v1/personas/platform_internal/download"),
            ("GET", "/api/v1/sets/platform_internal/images/x.png"),
            ("GET", "/static/images/personas/platform_internal/x.png"),
            ("GET", "/api/v1/sets/platform_internal/members/0/image"),
            ("GET", "/static/images/personas/persona_2.png")]


def test_every_platform_route_is_a_404_for_an_acme_token(api: Api) -> None:
    both, acme = api.client("both"), api.client("acme")
    for method, path in _platform_routes(api):
        if method == "GET" and "/x.png" not in path:
            assert both.request(method, path).status_code == 200, path
        answer = acme.request(method, path)
        assert answer.status_code == 404, (path, answer.status_code, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"


def _keys(items: list[dict[str, Any]], field: str = "key") -> set[str]:
    return {str(i[field]) for i in items}


def test_lists_and_searches_never_show_a_platform_row_to_acme(api: Api) -> None:
    acme, both = api.client("acme"), api.client("both")
    listed = acme.get("/api/v1/personas", params={"limit": 1000}).json()["items"]
    assert listed and all(p["owner"] == "acme" for p in listed)
    assert acme.get("/api/v1/personas", params={"owner": "platform"}).json()["items"] == []
    assert acme.get("/api/v1/personas",
                    params={"parent": "platform/base_assistant"}).json()["items"]  # acme's own
    sets = _keys(acme.get("/api/v1/sets").json()["items"])
    assert "platform_internal" not in sets and "clinic_booking_research" in sets
    assert "platform_internal" in _keys(both.get("/api/v1/sets").json()["items"])
    assert "platform_internal" not in _keys(acme.get("/api/v1/personas/sets").json(), "id")
    available = acme.get("/api/v1/personas/available-persona-sets").json()["available_sets"]
    assert "platform_internal" not in _keys(available, "name")
    audit = acme.get("/api/v1/audit", params={"limit": 1000}).json()["items"]
    assert audit and not any(e["key"].startswith("platform/") or e["key"] == "platform_internal"
                             for e in audit)
    assert acme.get("/api/v1/audit", params={"key": "platform/base_assistant"}).json()[
        "items"] == []
    for backend in ("postgres", "auto"):
        for q in ("platform", "incident", "assistant", "Ines Duarte", "pilots"):
            mine = acme.get("/api/v1/search", params={"q": q, "backend": backend,
                                                      "limit": 100}).json()["items"]
            assert not any(h["key"].startswith("platform/") or h["key"] == "platform_internal"
                           for h in mine), (backend, q, mine)
        everyone = both.get("/api/v1/search", params={"q": "incident", "backend": backend})
        assert any(h["key"] == "platform/incident_commander"
                   for h in everyone.json()["items"]), backend


class Stream:
    """An SSE subscriber in a thread, collecting (event, data) pairs."""

    def __init__(self, api: Api, who: str, last_id: str | None = None) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.ids: list[str] = []
        self.ready = threading.Event()
        headers = {"Authorization": f"Bearer {api.tokens[who]}"}
        if last_id is not None:
            headers["Last-Event-ID"] = last_id
        self.client = httpx.Client(base_url=api.base, timeout=httpx.Timeout(5.0, read=60.0),
                                   headers=headers)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(10)

    def _run(self) -> None:
        try:
            with self.client.stream("GET", "/api/v1/events") as answer:
                assert answer.headers["content-type"].startswith("text/event-stream")
                event = ""
                for line in answer.iter_lines():
                    if line.startswith(": connected"):
                        self.ready.set()
                    elif line.startswith("id: "):
                        self.ids.append(line[4:])
                    elif line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: "):
                        self.events.append((event, json.loads(line[6:])))
        except (httpx.HTTPError, RuntimeError):
            pass

    def seen_keys(self) -> set[str]:
        return {str(data.get("key")) for _, data in self.events}

    def close(self) -> None:
        self.client.close()


def _edit(api: Api, path: str, line: str) -> None:
    full = api.repo.path / path
    api.repo.commit({path: full.read_text(encoding="utf-8") + f"\n{line}\n"},
                    message=f"edit {path}")
    api.sync()


def test_the_event_stream_carries_only_the_tokens_owners(api: Api) -> None:
    acme, both = Stream(api, "acme"), Stream(api, "both")
    try:
        _edit(api, "personas/platform/incident_commander.md", "Page the on-call lead first.")
        _edit(api, "personas/acme/data_analyst.md", "Prefer window functions.")
        wait_for(lambda: "acme/data_analyst" in acme.seen_keys() and
                 "acme/data_analyst" in both.seen_keys(), timeout=15)
        assert "platform/incident_commander" in both.seen_keys()
        assert not any(k.startswith("platform/") for k in acme.seen_keys())
        updated = [d for e, d in acme.events if d.get("key") == "acme/data_analyst"]
        assert updated[0]["action"] == "updated" and len(updated[0]["commit"]) == 40
        # the server's cache heard the same notification: the next read is the new content
        fresh = api.client("acme").get("/api/v1/personas/acme/data_analyst").json()
        assert "Prefer window functions." in fresh["content"]
    finally:
        acme.close()
        both.close()


def test_row_level_security_holds_in_sql(api: Api) -> None:
    with mirror_sql(api.database_url) as conn:
        owners = {r[0] for r in conn.execute("SELECT DISTINCT owner FROM personas")}
        assert owners == {"acme", "platform"}  # the table owner is not filtered
        with conn.transaction():
            conn.execute("SET LOCAL ROLE maestro_reader")
            assert conn.execute("SELECT count(*) FROM personas").fetchone() == (0,)
            conn.execute("SELECT set_config('maestro.owners', 'acme', true)")
            seen = {r[0] for r in conn.execute("SELECT DISTINCT owner FROM current_personas")}
            assert seen == {"acme"}
            versions = {r[0].split("/")[0] for r in conn.execute(
                "SELECT key FROM persona_versions")}
            assert versions == {"acme"}
            sets = {r[0] for r in conn.execute("SELECT key FROM persona_sets")}
            assert "platform_internal" not in sets and "clinic_booking_research" in sets
            members = {r[0] for r in conn.execute("SELECT set_key FROM set_members")}
            assert "platform_internal" not in members
            assert conn.execute("SELECT count(*) FROM audit_events WHERE kind = 'persona' "
                                "AND key LIKE 'platform/%'").fetchone() == (0,)
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("SELECT * FROM api_tokens")
        with conn.transaction():
            conn.execute("SET LOCAL ROLE maestro_reader")
            conn.execute("SELECT set_config('maestro.owners', '*', true)")
            seen = {r[0] for r in conn.execute("SELECT DISTINCT owner FROM personas")}
            assert seen == {"acme", "platform"}
        views = conn.execute(
            "SELECT c.relname, c.reloptions FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE c.relkind = 'v' "
            "AND n.nspname = current_schema()").fetchall()
        assert views and all("security_invoker=true" in (opts or []) for _, opts in views), \
            views


def test_every_table_the_reader_may_read_is_scoped_or_shared(api: Api) -> None:
    shared = {"persona_templates", "sync_state"}
    with mirror_sql(api.database_url) as conn:
        rows = conn.execute(
            "SELECT c.relname, c.relrowsecurity FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND n.nspname = current_schema() "
            "AND has_table_privilege('maestro_reader', c.oid, 'SELECT')").fetchall()
    readable = {name: rls for name, rls in rows}
    assert "personas" in readable
    assert {name for name, rls in readable.items() if not rls} <= shared


def test_a_public_server_reads_every_owner_without_a_token(api: Api) -> None:
    base, proc = start_server(api.repo.path, api.database_url, "--public")
    try:
        answer = httpx.get(base + "/api/v1/personas/platform/base_assistant")
        assert answer.status_code == 200
        assert answer.headers["cache-control"] == "public, no-cache"
        scoped = httpx.get(base + "/api/v1/personas/platform/base_assistant",
                           headers={"Authorization": f"Bearer {api.tokens['acme']}"})
        assert scoped.status_code == 404
    finally:
        stop_server(proc)


def test_each_mirrored_commit_reaches_webhooks_signed_and_a_failing_one_is_retried(
        api: Api) -> None:
    ok, failing = api.receivers["ok"], api.receivers["failing"]
    _edit(api, "personas/acme/developer_assistant.md", "Mention the style guide.")
    commit = api.repo.head()
    headers, body = wait_for(lambda: next(
        (r for r in ok.requests if json.loads(r[1])["commit"] == commit), None), timeout=15)
    payload = json.loads(body)
    assert payload["type"] == "maestro.commit"
    assert {"action": "updated", "kind": "persona", "key": "acme/developer_assistant",
            "commit": commit} in payload["events"]
    stamp, signature = headers["X-Maestro-Timestamp"], headers["X-Maestro-Signature"]
    expected = hmac.new(SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256)
    assert signature == "sha256=" + expected.hexdigest()
    assert verify(SECRET, stamp, body, signature)
    assert not verify(SECRET, stamp, body + b" ", signature)
    assert not verify(SECRET, str(int(time.time()) - 3600), body, signature)
    wait_for(lambda: any(json.loads(r[1])["commit"] == commit for r in failing.requests))

    def outcomes() -> dict[str, str]:
        with mirror_sql(api.database_url) as conn:
            return dict(conn.execute(
                "SELECT url, status || ':' || attempts || ':' || coalesce(last_status_code, 0) "
                "FROM webhook_deliveries WHERE commit = %s AND attempts > 0",
                (commit,)).fetchall())

    rows = wait_for(lambda: found if len(found := outcomes()) == 2 else None)
    with mirror_sql(api.database_url) as conn:
        cursor = conn.execute("SELECT commit FROM sync_state").fetchone()
    assert rows[ok.url] == "delivered:1:200"
    assert rows[failing.url].startswith("pending:") and rows[failing.url].endswith(":500")
    assert cursor == (commit,)  # the mirror went on regardless
    # the log, as `maestro webhooks` shows it
    env = {**os.environ, "DATABASE_URL": api.database_url}
    listed = subprocess.run(
        [sys.executable, "-m", "maestro_git", "--repo", str(api.repo.path), "webhooks",
         "--status", "delivered", "--format", "json"], capture_output=True, text=True,
        env=env, timeout=60)
    assert listed.returncode == 0, listed.stderr
    delivered = [r for r in json.loads(listed.stdout) if r["commit"] == commit]
    assert [(r["url"], r["attempts"], r["last_status_code"]) for r in delivered] == [
        (ok.url, 1, 200)]
    table = subprocess.run(
        [sys.executable, "-m", "maestro_git", "--repo", str(api.repo.path), "webhooks"],
        capture_output=True, text=True, env=env, timeout=60)
    assert table.returncode == 0 and failing.url in table.stdout and "pending" in table.stdout


def test_a_reconnecting_subscriber_gets_what_it_missed_by_last_event_id(api: Api) -> None:
    first = Stream(api, "acme")
    try:
        _edit(api, "personas/acme/data_analyst.md", "Name the table you read.")
        wait_for(lambda: "acme/data_analyst" in first.seen_keys(), timeout=15)
        last = first.ids[-1]
    finally:
        first.close()
    # offline: two more changes, one the token may not read
    _edit(api, "personas/acme/data_analyst.md", "Quote the query you ran.")
    _edit(api, "personas/platform/incident_commander.md", "Write the timeline as you go.")
    again = Stream(api, "acme", last_id=last)
    try:
        wait_for(lambda: any(d.get("key") == "acme/data_analyst" for _, d in again.events),
                 timeout=15)
        replayed = [(e, d.get("key")) for e, d in again.events]
        assert replayed[0] == ("updated", "acme/data_analyst")
        assert not any(str(k).startswith("platform/") for _, k in replayed)
        assert again.ids[0].split(".")[0] == last.split(".")[0]
        assert int(again.ids[0].split(".")[1]) > int(last.split(".")[1])
    finally:
        again.close()
    # an id this server process never gave: flush, do not trust the gap
    stranger = Stream(api, "acme", last_id="0000.5")
    try:
        wait_for(lambda: bool(stranger.events), timeout=15)
        assert stranger.events[0] == ("reloaded", {"action": "reloaded", "kind": "repository",
                                                   "key": "*"})
    finally:
        stranger.close()
