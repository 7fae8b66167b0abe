"""Queries over the mirror against a real PostgreSQL, with rows written as the mirror would."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from maestro_git.errors import NotFoundError, UsageError
from maestro_git.mirror import db, query
from maestro_git.mirror.query import PersonaFilters

T0 = datetime(2024, 1, 1, tzinfo=UTC)

PERSONAS = [
    # key, display, description, tags, active, parent, content, days after T0
    ("acme/base", "Base Assistant", "Shared rules", ["base"], True, None,
     "You are careful and polite.", 0),
    ("acme/code_reviewer", "Code Reviewer", "Reviews pull requests", ["coding", "review"], True,
     "acme/base", "You review code for correctness, tests and style.", 5),
    ("acme/story_writer", "Story Writer", "Writes fiction", ["writing"], False, None,
     "You write fiction. Ask a reviewer when a plot is unclear.", 10),
    ("globex/analyst", "Business Analyst", "Turns data into decisions", ["business", "coding"],
     True, None, "You produce quarterly revenue forecasts.", 20),
]


MIGRATIONS = Path(__file__).resolve().parents[2] / "maestro_git" / "migrations"


def apply_schema(conn: psycopg.Connection) -> None:
    """The mirror's migrations, applied in order (as `db.migrate` does)."""
    for path in sorted(MIGRATIONS.glob("*.sql")):
        conn.execute(path.read_text(encoding="utf-8"))  # type: ignore[arg-type]


def seed(conn: psycopg.Connection) -> dict[str, uuid.UUID]:
    """Schema plus a few personas, versions, a template and a set with scored members."""
    apply_schema(conn)
    ids: dict[str, uuid.UUID] = {}
    with conn.transaction():
        for key, display, desc, tags, active, parent, content, days in PERSONAS:
            pid = uuid.uuid4()
            ids[key] = pid
            owner, name = key.split("/")
            when = T0 + timedelta(days=days)
            conn.execute(
                "INSERT INTO personas (id, key, owner, name, path, display_name, description,"
                " content, resolved_content, version, parent_key, tags, active, metadata,"
                " content_hash, resolved_hash, size_bytes, commit, created_at, updated_at)"
                " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,'1.0.0',%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                (pid, key, owner, name, f"personas/{key}.md", display, desc, content,
                 ("You are careful and polite.\n\n" + content) if parent else content,
                 parent, tags, active, json.dumps({"team": owner}), f"h-{key}", f"r-{key}",
                 len(content), f"c{days}", when, when))
            for n, action in enumerate(("created", "updated")):
                conn.execute(
                    "INSERT INTO persona_versions (persona_id, key, path, commit, action,"
                    " version, content, content_hash, author_name, author_email,"
                    " committed_at, message) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,'Ann',"
                    " 'ann@example.com',%s,%s)",
                    (pid, key, f"personas/{key}.md", f"c{days}-{n}", action, f"1.{n}.0",
                     content, f"h{n}", when + timedelta(hours=n), f"{action} {key}"))
        conn.execute(
            "INSERT INTO persona_templates (name, path, display_name, description, content,"
            " category, tags, content_hash, size_bytes, commit, created_at, updated_at)"
            " VALUES ('research_assistant', 'templates/research_assistant.md',"
            " 'Research Assistant', 'Evidence first', 'You cite peer-reviewed sources.',"
            " 'research', '{research}', 'ht', 10, 'c0', %s, %s)", (T0, T0))
        conn.execute(
            "INSERT INTO persona_sets (key, path, name, description, status, generation_cycle,"
            " member_count, rqe_scores, content_hash, size_bytes, commit, created_at,"
            " updated_at) VALUES ('clinic', 'persona_sets/clinic.json', 'Clinic staff',"
            " 'People of a clinic', 'validated', 2, 2, %s, 'hs', 10, 'c0', %s, %s)",
            (json.dumps({"overall": 0.82}), T0, T0))
        for pos, (name, data, score) in enumerate([
            ("Maria Lopez", {"age": 54, "occupation": "nurse",
                             "bio": "Works night shifts on the cardiology ward"}, 0.91),
            ("Tom Berg", {"age": 31, "occupation": "surgeon", "bio": "Trains residents"}, 0.77),
        ]):
            conn.execute(
                "INSERT INTO persona_set_members (set_key, position, name, persona_data,"
                " similarity_score, validation_status) VALUES ('clinic', %s, %s, %s, %s,"
                " 'passed')", (pos, name, json.dumps({"name": name, **data}), json.dumps(score)))
    return ids


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    with db.connect(database_url) as connection:
        seed(connection)
        yield connection


def test_list_filters_by_tag_owner_active_and_parent(conn: psycopg.Connection) -> None:
    def keys(**kw: object) -> list[str]:
        return [r.key for r in query.list_personas(conn, PersonaFilters(**kw))]  # type: ignore[arg-type]

    assert keys() == [p[0] for p in PERSONAS]
    assert keys(tags=("coding",)) == ["acme/code_reviewer", "globex/analyst"]
    assert keys(tags=("coding", "review")) == ["acme/code_reviewer"]
    assert keys(owner="globex") == ["globex/analyst"]
    assert keys(active=False) == ["acme/story_writer"]
    assert keys(parent="acme/base") == ["acme/code_reviewer"]
    assert keys(updated_since=T0 + timedelta(days=7)) == ["acme/story_writer", "globex/analyst"]
    assert keys(extra={"team": "globex"}) == ["globex/analyst"]
    assert keys(text="review") == ["acme/code_reviewer"]


def test_list_sorts_and_pages(conn: psycopg.Connection) -> None:
    newest = query.list_personas(conn, PersonaFilters(sort="updated", limit=2))
    assert [r.key for r in newest] == ["globex/analyst", "acme/story_writer"]
    page2 = query.list_personas(conn, PersonaFilters(sort="updated", limit=2, offset=2))
    assert [r.key for r in page2] == ["acme/code_reviewer", "acme/base"]
    with pytest.raises(UsageError, match="unknown sort"):
        query.list_personas(conn, PersonaFilters(sort="colour"))


def test_get_persona_returns_content_and_resolved_content(conn: psycopg.Connection) -> None:
    row = query.get_persona(conn, "acme/code_reviewer")
    assert row.content.startswith("You review code")
    assert row.resolved_content.startswith("You are careful and polite.")
    assert row.tags == ["coding", "review"] and row.application_count == 0
    with pytest.raises(NotFoundError, match="no persona 'acme/nobody'"):
        query.get_persona(conn, "acme/nobody")


def test_history_is_newest_first(conn: psycopg.Connection) -> None:
    versions = query.history(conn, "acme/code_reviewer")
    assert [v.action for v in versions] == ["updated", "created"]
    assert versions[0].version == "1.1.0"
    with pytest.raises(NotFoundError):
        query.history(conn, "acme/nobody")


def test_sets_list_and_show_members_with_scores(conn: psycopg.Connection) -> None:
    sets = query.list_sets(conn)
    assert [(s.key, s.member_count, s.status) for s in sets] == [("clinic", 2, "validated")]
    assert sets[0].rqe_scores == {"overall": 0.82}
    detail = query.get_set(conn, "clinic")
    assert [(m.name, m.similarity_score) for m in detail.members] == [
        ("Maria Lopez", 0.91), ("Tom Berg", 0.77)]
    assert detail.members[0].persona_data["occupation"] == "nurse"
    assert query.list_sets(conn, status="generated") == []
    with pytest.raises(NotFoundError):
        query.get_set(conn, "nope")


def test_postgres_search_finds_names_content_and_set_members(conn: psycopg.Connection) -> None:
    hits = query.search(conn, "reviewer")
    assert hits[0].key == "acme/code_reviewer"
    assert [h.key for h in query.search(conn, '"quarterly revenue"')] == ["globex/analyst"]
    nurse = query.search(conn, "nurse")
    assert [(h.kind, h.key, h.member) for h in nurse] == [("set_member", "clinic", "Maria Lopez")]
    assert "**nurse**" in nurse[0].snippet
    template = query.search(conn, "peer-reviewed sources")
    assert template[0].kind == "template"
    assert query.search(conn, "zebra") == []


def test_record_application_counts_and_notifies(conn: psycopg.Connection,
                                                database_url: str) -> None:
    listener = db.listen_connection(database_url)
    try:
        first = query.record_application(conn, "globex/analyst")
        second = query.record_application(conn, "globex/analyst")
        assert (first.application_count, second.application_count) == (1, 2)
        assert second.last_applied_at >= first.last_applied_at
        row = query.get_persona(conn, "globex/analyst")
        assert row.application_count == 2 and row.last_applied_at == second.last_applied_at
        payloads = [json.loads(n.payload) for n in listener.notifies(timeout=2.0, stop_after=2)]
        assert payloads[0] == {"action": "applied", "kind": "persona", "key": "globex/analyst",
                               "commit": "c20"}
    finally:
        listener.close()
    with pytest.raises(NotFoundError):
        query.record_application(conn, "acme/nobody")
    by_usage = query.list_personas(conn, PersonaFilters(sort="applied", limit=1))
    assert by_usage[0].key == "globex/analyst"
