"""Connections, migrations and the writer lock against a real PostgreSQL."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg
import pytest

from maestro_git.errors import DatabaseError, LockHeldError
from maestro_git.mirror import db
from maestro_git.settings import Settings


def test_migrate_applies_every_migration_once_and_records_it(database_url: str) -> None:
    with db.connect(database_url) as conn:
        first = db.migrate(conn)
        second = db.migrate(conn)
        recorded = db.applied_migrations(conn)
        tables = {r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")}
    assert first == [v for v, _ in db.available_migrations()]
    assert first[0] == "0001_init"
    assert second == []
    assert recorded == first
    assert {"personas", "persona_versions", "persona_sets", "persona_set_members",
            "persona_templates", "audit_events", "sync_state", "sync_errors",
            "persona_usage", "current_personas", "latest_versions",
            "set_members"} <= tables


def test_concurrent_migrate_callers_apply_each_migration_once(database_url: str) -> None:
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with db.connect(database_url) as conn:
                results.append(db.migrate(conn))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    applied = [v for r in results for v in r]
    assert sorted(applied) == [v for v, _ in db.available_migrations()]


def test_schema_has_the_seed_indexes(database_url: str) -> None:
    with db.connect(database_url) as conn:
        db.migrate(conn)
        defs = {r[0]: r[1] for r in conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'personas'")}
    gin = [d for d in defs.values() if "USING gin" in d]
    assert any("(tags)" in d for d in gin)
    assert any("search_vector" in d for d in gin)
    assert any("(owner)" in d for d in defs.values())
    assert any("(active)" in d for d in defs.values())
    assert any("(updated_at)" in d for d in defs.values())


def test_writer_lock_admits_one_session(database_url: str) -> None:
    with db.connect(database_url) as a, db.connect(database_url) as b:
        assert db.writer_lock(a) is True
        assert db.writer_lock(b) is False
        with pytest.raises(LockHeldError):
            db.WriterLock(b).require()
        a.close()  # a crashed writer releases the lock with its session (asynchronously)
        deadline = time.monotonic() + 10
        while not db.writer_lock(b) and time.monotonic() < deadline:
            b.execute("SELECT pg_sleep(0.05)")
        assert db.WriterLock(b).acquire() is True


def test_unreachable_server_is_a_database_error_with_a_hint() -> None:
    with pytest.raises(DatabaseError) as info:
        db.connect("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")
    assert "cannot connect to PostgreSQL" in info.value.message
    assert info.value.hint


def test_configured_url_is_used_as_is(tmp_path: Path) -> None:
    settings = Settings(repo_path=tmp_path, database_url="postgresql://u@h/db")
    assert db.database_url(settings) == "postgresql://u@h/db"


def test_redact_hides_the_password() -> None:
    assert "secret" not in db.redact("postgresql://u:secret@h:5432/db")
    assert db.redact("postgresql://u@h/db") == "postgresql://u@h/db"


def test_embedded_data_dir_is_outside_the_work_tree_and_per_repository(
        tmp_path: Path) -> None:
    a = db.embedded_data_dir(Settings(repo_path=tmp_path / "a"))
    b = db.embedded_data_dir(Settings(repo_path=tmp_path / "b"))
    assert a != b
    assert tmp_path not in a.parents


def test_listen_connection_receives_notifications(database_url: str) -> None:
    listener = db.listen_connection(database_url)
    try:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("SELECT pg_notify(%s, 'hello')", (db.NOTIFY_CHANNEL,))
        got = [n.payload for n in listener.notifies(timeout=5, stop_after=1)]
    finally:
        listener.close()
    assert got == ["hello"]


def test_unix_socket_connections_get_a_send_buffer_a_bulk_copy_can_stream_through(
        embedded_database_url: str) -> None:
    """The embedded server is reached over a Unix socket, whose default send buffer starved
    the server during a first load's COPY; `connect` widens it (up to what the kernel
    allows) and reports it."""
    import socket

    wmem_max = int(Path("/proc/sys/net/core/wmem_max").read_text())
    with db.connect(embedded_database_url) as conn:
        sock = socket.socket(fileno=conn.pgconn.socket)
        try:
            assert sock.family == socket.AF_UNIX
            effective = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        finally:
            sock.detach()  # the connection owns the descriptor
        assert effective >= min(db.UNIX_SEND_BUFFER, wmem_max)
        assert db.widen_send_buffer(conn) == effective
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_a_failed_pipelined_transaction_reports_only_the_real_error(
        database_url: str) -> None:
    # psycopg logs "error ignored terminating <psycopg.Pipeline ...>" on stderr (no logging
    # configured: Python's last-resort handler) before the real error reaches the user.
    import subprocess
    import sys

    script = (
        "import psycopg, sys\n"
        "import maestro_git.mirror.db\n"
        "conn = psycopg.connect(sys.argv[1], autocommit=True)\n"
        "try:\n"
        "    with conn.pipeline(), conn.transaction():\n"
        "        conn.execute(\"SELECT 'a\\\\u0000'::jsonb\")\n"
        "        conn.execute('SELECT 1')\n"
        "        raise RuntimeError('the block failed')\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__)\n")
    done = subprocess.run([sys.executable, "-c", script, database_url], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "error ignored terminating" not in done.stderr
    assert done.stdout.strip() in ("RuntimeError", "DataError", "InvalidTextRepresentation",
                                   "UntranslatableCharacter")
