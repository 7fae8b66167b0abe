"""Backing up and restoring the usage counters git cannot hold."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from maestro_git.errors import UsageError
from maestro_git.mirror import db
from maestro_git.mirror.query import record_application
from maestro_git.mirror.sync import sync
from maestro_git.ops.backup import create_backup, read_backup, restore_usage, write_backup
from maestro_git.settings import Settings, load_settings
from tests.factories import GitRepoFactory, persona_md

PID = "3a1c7f0e-5d0b-4f37-9c1e-0c0ffee00001"


def _settings(repo: GitRepoFactory, url: str) -> Settings:
    return load_settings(repo.path, database_url=url, environ={})


def _recreate(url: str) -> None:
    """Drop the test's database and create it empty again (a lost database)."""
    params = conninfo_to_dict(url)
    name = str(params.pop("dbname"))
    with psycopg.connect(make_conninfo(**params, dbname="postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def _usage(conn: db.Connection) -> dict[str, int]:
    return {str(r[0]): r[1] for r in conn.execute(
        "SELECT p.key, u.application_count FROM persona_usage u "
        "JOIN personas p ON p.id = u.persona_id")}


@pytest.fixture
def mirrored(git_repo: GitRepoFactory, database_url: str) -> Settings:
    git_repo.commit({"personas/acme/a.md": persona_md(id=PID),
                     "personas/acme/b.md": persona_md("B")}, "two personas")
    settings = _settings(git_repo, database_url)
    sync(settings)
    return settings


def test_backup_drop_database_sync_restore_brings_back_the_usage_counts(
    mirrored: Settings, database_url: str, tmp_path: Path
) -> None:
    with db.connect(mirrored) as conn:
        for _ in range(3):
            record_application(conn, "acme/a")
        record_application(conn, "acme/b")
        backup = create_backup(mirrored, conn)
    file = tmp_path / "usage.json"
    write_backup(file, backup)
    assert {p.key for p in backup.personas} == {"acme/a", "acme/b"}
    assert backup.head is not None
    _recreate(database_url)
    sync(mirrored)
    with db.connect(mirrored) as conn:
        assert _usage(conn) == {}
        report = restore_usage(mirrored, conn, read_backup(file))
        assert _usage(conn) == {"acme/a": 3, "acme/b": 1}
    assert report.restored == 2 and report.verify.ok and report.head_known
    assert report.orphaned == ()


def test_restore_keeps_the_larger_count_and_the_later_time(mirrored: Settings,
                                                           tmp_path: Path) -> None:
    with db.connect(mirrored) as conn:
        record_application(conn, "acme/a")
        backup = create_backup(mirrored, conn)
        for _ in range(4):
            record_application(conn, "acme/a")
        later = conn.execute("SELECT last_applied_at FROM persona_usage").fetchone()
        restore_usage(mirrored, conn, backup)
        restore_usage(mirrored, conn, backup)  # idempotent
        assert _usage(conn) == {"acme/a": 5}
        assert conn.execute("SELECT last_applied_at FROM persona_usage").fetchone() == later


def test_a_usage_row_follows_its_key_when_the_id_changed(mirrored: Settings) -> None:
    with db.connect(mirrored) as conn:
        record_application(conn, "acme/b")
        backup = create_backup(mirrored, conn)
        conn.execute("DELETE FROM persona_usage")
    moved = backup.model_copy(update={"usage": tuple(
        u.model_copy(update={"persona_id": "00000000-0000-4000-8000-000000000000"})
        for u in backup.usage)})
    with db.connect(mirrored) as conn:
        report = restore_usage(mirrored, conn, moved)
        assert _usage(conn) == {"acme/b": 1}
    assert report.remapped == 1


def test_restore_reports_drift_when_the_mirror_is_behind(mirrored: Settings,
                                                         git_repo: GitRepoFactory) -> None:
    with db.connect(mirrored) as conn:
        backup = create_backup(mirrored, conn)
    git_repo.commit({"personas/acme/c.md": persona_md("C")}, "c")
    with db.connect(mirrored) as conn:
        report = restore_usage(mirrored, conn, backup)
    assert not report.verify.ok
    assert {d.problem for d in report.verify.drift} >= {"behind", "missing"}


def test_a_file_that_is_not_a_backup_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "x.json"
    bad.write_text('{"personas": []}')
    with pytest.raises(UsageError, match="not a maestro backup"):
        read_backup(bad)
    bad.write_text('{"format": "maestro-backup", "version": 1, "branch": "main"}')
    with pytest.raises(UsageError, match="created_at"):
        read_backup(bad)


def test_the_backup_file_round_trips(mirrored: Settings, tmp_path: Path) -> None:
    with db.connect(mirrored) as conn:
        record_application(conn, "acme/a")
        backup = create_backup(mirrored, conn)
    write_backup(tmp_path / "b.json", backup)
    again = read_backup(tmp_path / "b.json")
    assert again == backup
    assert again.usage[0].last_applied_at is not None
    assert again.usage[0].last_applied_at <= datetime.now(UTC)


def test_the_erasure_register_travels_with_the_backup(git_repo: GitRepoFactory,
                                                       database_url: str,
                                                       tmp_path: Path) -> None:
    """A database mirrored again from git shows an erased identity; restoring the backup
    brings back the register, which pseudonymises those rows (once: restoring twice changes
    nothing) and keeps doing so for the commits mirrored after it."""
    from maestro_git.core.subject import DataSubject, pseudonym
    from maestro_git.ops.gdpr import erase_subject

    jane, bob = ("Jane Doe", "jane@example.com"), ("Bob Roe", "bob@example.com")
    git_repo.commit({"personas/acme/a.md": persona_md("A")}, "a", author=jane)
    git_repo.commit({"personas/acme/b.md": persona_md("B")}, "b", author=bob)
    settings = _settings(git_repo, database_url)
    sync(settings)
    subject = DataSubject.of(jane[1], name=jane[0])
    with db.connect(settings) as conn:
        erase_subject(settings, conn, subject)
        backup = create_backup(settings, conn)
    write_backup(tmp_path / "b.json", backup)
    assert len(backup.erasures) == 1 and "jane" not in backup.model_dump_json().lower()

    _recreate(database_url)
    sync(settings)

    def identities() -> set[tuple[str, str]]:
        with db.connect(settings) as conn:
            return {(str(r[0]), str(r[1])) for r in conn.execute(
                "SELECT author_name, author_email FROM persona_versions UNION "
                "SELECT actor_name, actor_email FROM audit_events")}

    assert jane in identities()  # git still names her: a new mirror shows her again
    with db.connect(settings) as conn:
        first = restore_usage(settings, conn, read_backup(tmp_path / "b.json"))
        again = restore_usage(settings, conn, read_backup(tmp_path / "b.json"))
    assert first.erasures_added == 1 and first.pseudonymised == 2  # a version, an event
    assert (again.erasures_added, again.pseudonymised) == (0, 0)
    git_repo.commit({"personas/acme/c.md": persona_md("C")}, "c", author=jane)
    sync(settings)
    found = identities()
    assert jane not in found and pseudonym(subject) in found and bob in found


def test_a_version_1_backup_without_a_register_is_still_read(mirrored: Settings,
                                                            tmp_path: Path) -> None:
    with db.connect(mirrored) as conn:
        backup = create_backup(mirrored, conn)
    old = backup.model_dump(mode="json", exclude={"erasures"}) | {"version": 1}
    (tmp_path / "old.json").write_text(json.dumps(old))
    again = read_backup(tmp_path / "old.json")
    assert again.version == 1 and again.erasures == () and again.usage == backup.usage
