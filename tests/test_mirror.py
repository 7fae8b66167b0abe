"""apply_commit and the bulk first load against a real PostgreSQL."""

from __future__ import annotations

import uuid

from maestro_git import db, mirror, sync
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
    with db.connect(url) as conn:
        db.migrate(conn)
        before = {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes")}
    sync.sync(Settings(repo_path=git_repo.path, database_url=url))
    with db.connect(url) as conn:
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
    with db.connect(database_url) as conn:
        assert conn.execute("SELECT id::text FROM personas").fetchall() == [(new_id,)]
        assert conn.execute("SELECT count(*) FROM persona_versions WHERE persona_id = %s",
                            (new_id,)).fetchone() == (2,)
