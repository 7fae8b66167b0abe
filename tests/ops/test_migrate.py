"""Migrations off TheMaestro and the persona-set service, from real tables in a scratch
PostgreSQL database built from the seeds' schemas, with generated rows."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from maestro_git.cli import main
from maestro_git.errors import ConflictError
from maestro_git.ops.migrate import run_persona_sets, run_themaestro
from maestro_git.repo.repository import Repository
from maestro_git.settings import load_settings
from tests import conftest
from tests.factories import GitRepoFactory, mirror_sql

# TheMaestro's migration (story 8.1), in SQL: binary_id = uuid, :map = jsonb,
# {:array, :string} = varchar[], naive_datetime_usec = timestamp. `users` comes from its
# accounts epic: phx.gen.auth's columns plus a name.
THEMAESTRO_DDL = """
CREATE TABLE users (id uuid PRIMARY KEY, email varchar NOT NULL, name varchar,
                    hashed_password varchar, inserted_at timestamp, updated_at timestamp);
CREATE TABLE personas (
  id uuid PRIMARY KEY, name varchar NOT NULL, display_name varchar, description text,
  content text NOT NULL, version varchar NOT NULL DEFAULT '1.0.0',
  is_active boolean NOT NULL DEFAULT true,
  parent_persona_id uuid REFERENCES personas (id) ON DELETE SET NULL,
  user_id uuid REFERENCES users (id) ON DELETE CASCADE, metadata jsonb DEFAULT '{}',
  tags varchar[] DEFAULT '{}', content_hash varchar, size_bytes integer,
  last_applied_at timestamp, application_count integer DEFAULT 0,
  inserted_at timestamp NOT NULL, updated_at timestamp NOT NULL);
CREATE TABLE persona_versions (
  id uuid PRIMARY KEY, persona_id uuid NOT NULL REFERENCES personas (id) ON DELETE CASCADE,
  version varchar NOT NULL, content text NOT NULL, content_hash varchar,
  changes_summary text, created_by_user_id uuid REFERENCES users (id),
  metadata jsonb DEFAULT '{}', created_at timestamp NOT NULL);
CREATE TABLE persona_templates (
  id uuid PRIMARY KEY, name varchar NOT NULL, display_name varchar, description text,
  content text NOT NULL, category varchar, tags varchar[] DEFAULT '{}',
  is_system_template boolean DEFAULT false, popularity_score float DEFAULT 0.0,
  metadata jsonb DEFAULT '{}', inserted_at timestamp NOT NULL, updated_at timestamp NOT NULL);
CREATE UNIQUE INDEX ON personas (name, user_id);
CREATE UNIQUE INDEX ON persona_versions (persona_id, version);
"""

# The persona-set service's tables (persona-sets-storage-locations.md).
SERVICE_DDL = """
CREATE TABLE persona_sets (
  id serial PRIMARY KEY, name varchar, description text, rqe_scores json,
  diversity_score json, validation_scores json, generation_cycle integer, status varchar,
  created_at timestamp, updated_at timestamp);
CREATE TABLE personas (
  id serial PRIMARY KEY, persona_set_id integer REFERENCES persona_sets (id), name varchar,
  persona_data json, image_url varchar, image_prompt text, similarity_score json,
  validation_status varchar, created_at timestamp, updated_at timestamp);
"""

T0 = datetime(2025, 3, 1, 9, 30, 0, 123456)


@pytest.fixture
def foreign_url() -> Iterator[str]:
    """A second scratch database: the old system's."""
    yield from conftest._make_database(conftest._server_url())


def _uid(n: int) -> str:
    return str(uuid.UUID(int=n + 0x1000))


def _fill_themaestro(url: str) -> dict[str, Any]:
    """Users, personas (parents, a child older than its parent, a soft delete, non-ASCII),
    several versions each, and templates. Returns what the tests expect."""
    users = [(_uid(1), "ana@example.com", "Ana Lopez"), (_uid(2), "jose@example.org",
             "José Müller"), (_uid(3), "bot@example.net", None)]
    personas = [
        # id, name, user, parent, active, versions, app count
        (_uid(10), "base_assistant", 0, None, True, 3, 7),
        (_uid(11), "Python Reviewer", 0, _uid(10), True, 2, 0),
        (_uid(12), "legacy_bot", 1, None, False, 2, 2),
        (_uid(13), "écrivain", 1, None, True, 4, 0),
        (_uid(14), "early_child", 2, _uid(15), True, 1, 0),
        (_uid(15), "late_parent", 2, None, True, 2, 1),
    ]
    expected: dict[str, Any] = {"versions": {}, "content": {}}
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(THEMAESTRO_DDL)
        for uid, email, name in users:
            conn.execute("INSERT INTO users (id, email, name) VALUES (%s, %s, %s)",
                         (uid, email, name))
        for step, (pid, name, user, _parent, active, count, applied) in enumerate(personas):
            start = T0 + timedelta(days=3 if name == "late_parent" else 0, hours=step)
            contents = [f"# {name}\n\nYou are {name}, version {v + 1}. Ünïcödé ✓\n"
                        for v in range(count)]
            conn.execute(
                "INSERT INTO personas (id, name, display_name, description, content, version,"
                " is_active, user_id, metadata, tags, application_count, last_applied_at,"
                " inserted_at, updated_at) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                (pid, name, name.title(), f"The {name} persona", contents[-1],
                 f"1.{count - 1}.0", active, users[user][0], Jsonb({"category": "dev"}),
                 ["coding"], applied, start + timedelta(days=9) if applied else None,
                 start, start + timedelta(days=10)))
            rows = []
            for v in range(count):
                when = start + timedelta(hours=v, minutes=7)
                author = users[(user + v) % 3][0]
                conn.execute(
                    "INSERT INTO persona_versions (id, persona_id, version, content,"
                    " changes_summary, created_by_user_id, created_at)"
                    " VALUES (%s,%s,%s,%s,%s,%s,%s)",
                    (str(uuid.uuid4()), pid, f"1.{v}.0", contents[v],
                     "Initial version" if v == 0 else f"Edit {v}: tone", author, when))
                # git keeps whole seconds
                rows.append((f"1.{v}.0", when.replace(tzinfo=UTC, microsecond=0), author))
            expected["versions"][pid] = rows
            expected["content"][pid] = contents[-1]
        for pid, _name, _user, parent, *_ in personas:
            if parent:
                conn.execute("UPDATE personas SET parent_persona_id = %s WHERE id = %s",
                             (parent, pid))
        for n, (name, cat) in enumerate((("developer_assistant", "development"),
                                         ("creative_writer", "creative"))):
            conn.execute(
                "INSERT INTO persona_templates (id, name, display_name, description, content,"
                " category, tags, is_system_template, popularity_score, inserted_at,"
                " updated_at) VALUES (%s,%s,%s,%s,%s,%s,%s,true,0.5,%s,%s)",
                (_uid(50 + n), name, name.replace("_", " ").title(), f"A {name}",
                 f"# {name}\n\nYou are a {name}.\n", cat, [cat], T0, T0))
    expected["users"] = {u[0]: u for u in users}
    return expected


def test_themaestro_migrates_with_its_history_and_the_mirror_holds_the_same(
    git_repo: GitRepoFactory, foreign_url: str, database_url: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    expected = _fill_themaestro(foreign_url)
    settings = load_settings(git_repo.path, database_url=database_url, environ={})
    dry = run_themaestro(settings, foreign_url, dry_run=True)
    assert (dry.commits, dry.head, Repository(settings).head()) == (17, None, None)
    report = run_themaestro(settings, foreign_url)
    assert (report.personas, report.versions, report.inactive, report.templates,
            report.usage_rows, report.errors_at_head) == (6, 14, 1, 2, 3, 0)
    assert report.commits == 17  # 14 versions, 2 templates, the soft delete at updated_at
    repo = Repository(settings)
    keys = {"base_assistant": "ana/base_assistant", "Python Reviewer": "ana/python_reviewer",
            "legacy_bot": "jose/legacy_bot", "écrivain": "jose/ecrivain",
            "early_child": "bot/early_child", "late_parent": "bot/late_parent"}
    snap = repo.snapshot(repo.head())
    assert sorted(snap.personas) == sorted(keys.values())
    assert sorted(snap.templates) == ["creative_writer", "developer_assistant"]
    # `maestro history` reproduces the old version table: version, time and author.
    by_id = {p.id: p.key for p in snap.personas.values()}
    for pid, rows in expected["versions"].items():
        history = list(reversed(repo.history(by_id[pid])))
        assert [(v.version, v.time, v.author_email) for v in history[:len(rows)]] == [
            (ver, when, expected["users"][author][1]) for ver, when, author in rows]
    assert main(["--repo", str(git_repo.path), "history", "jose/legacy_bot",
                 "--format", "json"]) == 0
    table = json.loads(capsys.readouterr().out)
    # newest first: the soft delete (its owner), then versions 1.1.0 and 1.0.0
    assert [v["author_name"] for v in table] == ["José Müller", "bot", "José Müller"]
    assert snap.personas["jose/legacy_bot"].active is False
    assert snap.personas["ana/python_reviewer"].extends == "ana/base_assistant"
    assert snap.personas["bot/early_child"].extends == "bot/late_parent"
    # The mirror then holds the same content, every version, and the usage counters.
    assert main(["--repo", str(git_repo.path), "--database-url", database_url, "sync"]) == 0
    with mirror_sql(database_url) as conn:
        rows = dict(conn.execute("SELECT id::text, content FROM personas").fetchall())
        assert rows == expected["content"]
        versions = conn.execute("SELECT count(*) FROM persona_versions").fetchone()
        usage = dict(conn.execute("SELECT persona_id::text, application_count "
                                  "FROM persona_usage").fetchall())
    assert versions is not None and versions[0] >= 14
    assert usage == {_uid(10): 7, _uid(12): 2, _uid(15): 1}
    with pytest.raises(ConflictError, match="already exists on 'main'; a migration only adds"):
        run_themaestro(settings, foreign_url)


def test_a_users_file_names_the_authors(git_repo: GitRepoFactory, foreign_url: str,
                                        database_url: str, tmp_path: Path) -> None:
    _fill_themaestro(foreign_url)
    users = tmp_path / "users.txt"
    users.write_text(f"# id name <email>\n{_uid(3)} Robo Ter <robo@corp.example>\n")
    settings = load_settings(git_repo.path, database_url=database_url, environ={})
    report = run_themaestro(settings, foreign_url, users_file=users)
    assert "Robo Ter <robo@corp.example>" in report.authors


def _fill_service(url: str, static: Path, sets: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SERVICE_DDL)
        pid = 0
        for s in range(sets):
            created = T0 + timedelta(days=s)
            conn.execute(
                "INSERT INTO persona_sets (name, description, rqe_scores, diversity_score,"
                " validation_scores, generation_cycle, status, created_at, updated_at)"
                " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                (f"Clinic Booking {s}" if s else "Café Owners", "Research set",
                 Jsonb({"rqe_1": 3.2}), Jsonb({"entropy": 1.4}),
                 Jsonb({"flagged": 3, "pass_rate": 0.8}), 2, "validated", created,
                 created + timedelta(days=2)))
            for m in range(3):
                pid += 1
                (static / f"images/personas/persona_{pid}.png").write_bytes(b"\x89PNG%d" % pid)
                conn.execute(
                    "INSERT INTO personas (persona_set_id, name, persona_data, image_url,"
                    " image_prompt, similarity_score, validation_status, created_at,"
                    " updated_at) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                    (s + 1, f"Zoë {pid}", Jsonb({"name": f"Zoë {pid}", "age": 30 + m}),
                     f"/static/images/personas/persona_{pid}.png", "Portrait",
                     Jsonb({"overall": 0.9, "matches": 4}), "validated",
                     created + timedelta(hours=m // 2), created))


def test_persona_sets_migrate_with_members_images_and_their_dates(
    git_repo: GitRepoFactory, foreign_url: str, database_url: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    static = tmp_path / "static"
    (static / "images/personas").mkdir(parents=True)
    _fill_service(foreign_url, static, 2)
    repo_args = ["--repo", str(git_repo.path), "--database-url", database_url]
    assert main([*repo_args, "migrate", "persona-sets", "--from-url", foreign_url,
                 "--static", str(static), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["sets"], report["members"], report["images"], report["commits"],
            report["errors_at_head"]) == (2, 6, 6, 6, 0)
    settings = load_settings(git_repo.path, database_url=database_url, environ={})
    repo = Repository(settings)
    snap = repo.snapshot(repo.head())
    cafe = snap.sets["cafe_owners"]
    assert [m.image_url for m in cafe.members] == [f"images/persona_{n}.png" for n in (1, 2, 3)]
    assert (git_repo.path / "persona_sets/cafe_owners/images/persona_2.png").read_bytes() == \
        b"\x89PNG2"
    times = [v.time for v in reversed(repo.history("cafe_owners"))]
    assert times == [(T0 + d).replace(tzinfo=UTC, microsecond=0)
                     for d in (timedelta(0), timedelta(hours=1), timedelta(days=2))]
    assert main([*repo_args, "sync"]) == 0
    with mirror_sql(database_url) as conn:
        count = conn.execute("SELECT count(*) FROM persona_set_members").fetchone()
    assert count == (6,)


def test_a_dry_run_of_200_service_sets_plans_and_writes_nothing(
    git_repo: GitRepoFactory, foreign_url: str, tmp_path: Path
) -> None:
    static = tmp_path / "static"
    (static / "images/personas").mkdir(parents=True)
    _fill_service(foreign_url, static, 200)
    settings = load_settings(git_repo.path, environ={})
    report = run_persona_sets(settings, foreign_url, static=static, dry_run=True)
    assert (report.sets, report.members, report.images, report.head) == (200, 600, 600, None)
    assert Repository(settings).head() is None
