"""apply_commit and the bulk first load against a real PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from maestro_git.core.models import (
    AuditEvent,
    CommitInfo,
    Persona,
    PersonaSet,
    PersonaSetMember,
    Template,
)
from maestro_git.mirror import apply as mirror
from maestro_git.mirror import bulk as mirror_bulk
from maestro_git.mirror import db, sync, verify
from maestro_git.mirror import tables as mirror_tables
from maestro_git.settings import Settings
from tests.factories import GitRepoFactory, persona_md


def test_bulk_first_load_rebuilds_the_full_text_indexes(git_repo: GitRepoFactory,
                                                        embedded_database_url: str) -> None:
    url = embedded_database_url
    files = {f"personas/team/p{i:03d}.md": persona_md(
        f"P{i}", id=str(uuid.UUID(int=i + 1)), tags=["ops"],
        body=f"# P{i}\n\nYou reconcile ledgers number {i}.\n") for i in range(60)}
    files["persona_sets/crew.json"] = '{"personas": [{"name": "Zed", "bio": "sailor"}]}'
    git_repo.commit(files, "many")
    with db.connect(_at(git_repo, url)) as conn:
        db.migrate(conn)
        before = {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes")}
    sync.sync(Settings(repo_path=git_repo.path, database_url=url))
    with db.connect(_at(git_repo, url)) as conn:
        after = {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes")}
        hits = conn.execute("SELECT count(*) FROM personas WHERE search_vector @@ "
                            "to_tsquery('english', 'ledgers')").fetchone()
        members = conn.execute("SELECT count(*) FROM persona_set_members WHERE "
                               "search_vector @@ to_tsquery('english', 'sailor')").fetchone()
        tags = conn.execute("SELECT count(*) FROM personas WHERE tags @> ARRAY['ops']"
                            ).fetchone()
        versions = conn.execute("SELECT count(*) FROM persona_versions").fetchone()
    assert after == before  # every GIN index dropped for the load is back
    assert hits == (60,) and tags == (60,) and versions == (60,) and members == (1,)


def _at(repo: GitRepoFactory, url: str) -> Settings:
    """Settings that bind a connection to this repository's mirror."""
    return Settings(repo_path=repo.path, database_url=url)


def _persona_rows(git_repo: GitRepoFactory, url: str) -> list[tuple[object, ...]]:
    with db.connect(_at(git_repo, url)) as conn:
        return conn.execute(
            "SELECT key, id, parent_id, content_hash, resolved_hash, search_vector::text "
            "FROM personas ORDER BY key").fetchall()


def test_streamed_first_load_holds_what_a_row_by_row_load_holds(
        git_repo: GitRepoFactory, database_url: str, embedded_database_url: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    kept: set[str] = set()
    keep = mirror_bulk.BulkLoad.keep_streamed

    def spy(self: mirror_bulk.BulkLoad, *args: Any) -> set[str]:
        result = keep(self, *args)
        kept.update(result)
        return result

    monkeypatch.setattr(mirror_bulk.BulkLoad, "keep_streamed", spy)
    # Rows stream while files parse, before cross-file rules run: a shared id (an error only
    # cross-file rules see), a chain whose files parse child first, a child streamed under a
    # parent the finished validation refuses, and plain personas.
    shared = str(uuid.uuid4())
    git_repo.commit({
        "personas/acme/a.md": persona_md("A", id=shared, body="# A\n\nYou audit.\n"),
        "personas/acme/b.md": persona_md("B", id=shared, body="# B\n\nYou build.\n"),
        "personas/acme/c.md": persona_md("C", extends="zed/root",
                                         body="# C\n\nYou check.\n"),
        "personas/zed/root.md": persona_md("Root", body="Stay safe.\n\n# Root\n\nYou care.\n"),
        "personas/zed/plain.md": persona_md("Plain", tags=["ops"]),
        "personas/acme/grand.md": persona_md("G", extends="acme/c",
                                             body="## Style\n\nBe terse.\n"),
        "personas/zed/kid.md": persona_md("Kid", extends="acme/a", body="# Kid\n\nYou play.\n"),
    }, "first")
    bulk_url, rowwise_url = embedded_database_url, database_url
    for url in (bulk_url, rowwise_url):
        with db.connect(_at(git_repo, url)) as conn:
            db.migrate(conn)
    with db.connect(_at(git_repo, rowwise_url)) as conn:  # not empty: mirrored row by row, no streaming
        conn.execute("INSERT INTO audit_events (commit, action, kind, key, actor_name, "
                     "actor_email, occurred_at, message) VALUES ('0', 'created', 'persona', "
                     "'x/y', 'n', 'e', now(), 'm')")
    for url in (bulk_url, rowwise_url):
        sync.sync(Settings(repo_path=git_repo.path, database_url=url))
    rows = _persona_rows(git_repo, bulk_url)
    assert rows == _persona_rows(git_repo, rowwise_url)
    # a and b refused; kid kept with its own body, no parent row
    assert [r[0] for r in rows] == ["acme/c", "acme/grand", "zed/kid", "zed/plain", "zed/root"]
    with db.connect(_at(git_repo, bulk_url)) as conn:
        errors = {r[0] for r in conn.execute("SELECT path FROM sync_errors WHERE rule = "
                                             "'duplicate-id'")}
        versions = conn.execute("SELECT count(*) FROM persona_versions").fetchone()
        report = verify.verify(Settings(repo_path=git_repo.path, database_url=bulk_url), conn)
    assert errors == {"personas/acme/a.md", "personas/acme/b.md"}
    with db.connect(_at(git_repo, bulk_url)) as conn:
        grand = conn.execute("SELECT resolved_content FROM personas WHERE key = 'acme/grand'"
                             ).fetchone()
    assert grand is not None and grand[0] == (
        "Stay safe.\n\n# C\n\nYou check.\n\n## Style\n\nBe terse.\n")  # composed: blank line
    assert versions == (5,) and report.ok
    assert kept == {"acme/c", "acme/grand", "zed/plain", "zed/root"}  # kid: re-copied


def test_persona_uuid_prefers_frontmatter_id_else_key() -> None:
    fixed = str(uuid.uuid4())
    assert str(mirror.persona_uuid("acme/a", fixed)) == fixed
    assert mirror.persona_uuid("acme/a", None) == mirror.persona_uuid("acme/a", "not-a-uuid")
    assert mirror.persona_uuid("acme/a", None) != mirror.persona_uuid("acme/b", None)


def test_adding_an_id_later_keeps_the_history(git_repo: GitRepoFactory,
                                              database_url: str) -> None:
    settings = Settings(repo_path=git_repo.path, database_url=database_url)
    git_repo.commit({"personas/acme/a.md": persona_md("A")}, "no id")
    sync.sync(settings)
    new_id = str(uuid.uuid4())
    git_repo.commit({"personas/acme/a.md": persona_md("A", id=new_id)}, "fmt adds id")
    sync.sync(settings)
    with db.connect(_at(git_repo, database_url)) as conn:
        assert conn.execute("SELECT id::text FROM personas").fetchall() == [(new_id,)]
        assert conn.execute("SELECT count(*) FROM persona_versions WHERE persona_id = %s",
                            (new_id,)).fetchone() == (2,)


def test_upsert_keeps_key_and_created_at_and_updates_only_a_changed_row() -> None:
    text = mirror_tables.upsert("t", ("k", "a", "h", "created_at"), key="k",
                                keep=("created_at",), changed=("h", "a"), returning="k")
    assert text.as_string(None) == (
        'INSERT INTO "t" ("k", "a", "h", "created_at") VALUES (%s, %s, %s, %s) '
        'ON CONFLICT ("k") DO UPDATE SET "a" = excluded."a", "h" = excluded."h" '
        'WHERE "t"."h" IS DISTINCT FROM excluded."h" OR "t"."a" IS DISTINCT FROM excluded."a" '
        'RETURNING "k"')
    insert = mirror_tables.insert("t", ("a", "b"), skip_duplicates_of="t_once")
    assert insert.as_string(None) == (
        'INSERT INTO "t" ("a", "b") VALUES (%s, %s) ON CONFLICT ON CONSTRAINT "t_once" DO NOTHING')


def test_row_builders_match_their_tables_columns() -> None:
    info = CommitInfo("c" * 40, (), "Ann", "ann@x", "Ann", "ann@x",
                      datetime(2024, 1, 1, tzinfo=UTC), "msg")
    persona = Persona(owner="acme", name="a", path="personas/acme/a.md", display_name="A",
                      description="d", body="# A\n", content_hash="h", size_bytes=4)
    template = Template(name="t", path="templates/t.md", body="# T\n", content_hash="h",
                        size_bytes=4)
    pset = PersonaSet(name="crew", path="persona_sets/crew.json", content_hash="h",
                      size_bytes=2, members=(PersonaSetMember(name="Zed", persona_data={}),
                                             PersonaSetMember(name="Zed", persona_data={})))
    event = AuditEvent(commit=info.id, action="created", kind="persona", key="acme/a",
                       actor_name="Ann", actor_email="ann@x", time=info.time, message="msg")
    pid = uuid.uuid4()
    t = mirror_tables
    assert len(t.persona_row(persona, pid, None, "# A\n", info)) == len(t.PERSONA_COLUMNS)
    assert len(t.template_row(template, info, False)) == len(t.TEMPLATE_COLUMNS)
    assert len(t.set_row(pset, info)) == len(t.SET_COLUMNS)
    assert [len(r) for r in t.member_rows(pset)] == [len(t.MEMBER_COLUMNS)]  # first Zed only
    assert len(t.version_row(pid, "acme/a", persona, "created", info)) == len(t.VERSION_COLUMNS)
    assert len(t.deleted_version_row(pid, "acme/a", "p.md", info)) == len(t.VERSION_COLUMNS)
    assert len(t.event_row(event)) == len(t.EVENT_COLUMNS)
