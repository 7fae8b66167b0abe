"""verify finds drift between the mirror and git; rebuild recreates it and keeps usage."""

from __future__ import annotations

import uuid

from maestro_git.mirror import db, sync
from maestro_git.mirror.verify import rebuild, verify
from maestro_git.settings import Settings
from tests.factories import GitRepoFactory, persona_md

PID = str(uuid.UUID(int=7))


def _mirrored(git_repo: GitRepoFactory, url: str) -> Settings:
    git_repo.commit({"personas/acme/a.md": persona_md("A", id=PID),
                     "personas/acme/b.md": persona_md("B"),
                     "templates/t.md": persona_md("T")}, "content")
    settings = Settings(repo_path=git_repo.path, database_url=url)
    sync.sync(settings)
    return settings


def test_fresh_mirror_verifies_clean(git_repo: GitRepoFactory, database_url: str) -> None:
    settings = _mirrored(git_repo, database_url)
    with db.connect(settings) as conn:
        report = verify(settings, conn)
    assert report.ok and report.checked == 3


def test_verify_detects_a_tampered_row_a_missing_and_an_extra_one(
        git_repo: GitRepoFactory, database_url: str) -> None:
    settings = _mirrored(git_repo, database_url)
    with db.connect(settings) as conn:
        conn.execute("UPDATE personas SET content_hash = 'x' WHERE key = 'acme/a'")
        conn.execute("DELETE FROM personas WHERE key = 'acme/b'")
        conn.execute("UPDATE persona_templates SET name = 'ghost', path = 'templates/ghost.md'")
        report = verify(settings, conn)
    found = {(d.problem, d.kind, d.key) for d in report.drift}
    assert found == {("hash_mismatch", "persona", "acme/a"), ("missing", "persona", "acme/b"),
                     ("extra", "template", "ghost"), ("missing", "template", "t")}


def test_verify_reports_a_mirror_behind_the_head(git_repo: GitRepoFactory,
                                                 database_url: str) -> None:
    settings = _mirrored(git_repo, database_url)
    git_repo.commit({"personas/acme/c.md": persona_md("C")}, "more")
    with db.connect(settings) as conn:
        report = verify(settings, conn)
    assert {(d.problem, d.key) for d in report.drift} == {("behind", "main"),
                                                          ("missing", "acme/c")}


def test_invalid_file_at_head_is_not_drift(git_repo: GitRepoFactory,
                                           database_url: str) -> None:
    settings = _mirrored(git_repo, database_url)
    git_repo.commit({"personas/acme/a.md": "---\nid: [\n---\nbroken\n"}, "break")
    sync.sync(settings)
    with db.connect(settings) as conn:
        assert verify(settings, conn).ok


def test_rebuild_recreates_the_mirror_and_keeps_usage(git_repo: GitRepoFactory,
                                                      database_url: str) -> None:
    settings = _mirrored(git_repo, database_url)
    with db.connect(settings) as conn:
        conn.execute("INSERT INTO persona_usage VALUES (%s, 42, now())", (PID,))
        conn.execute("UPDATE personas SET content = 'tampered'")
        report = rebuild(settings, conn)
        assert report.commits == 1
        assert conn.execute("SELECT application_count FROM current_personas WHERE id = %s",
                            (PID,)).fetchone() == (42,)
        assert conn.execute("SELECT count(*) FROM personas WHERE content = 'tampered'"
                            ).fetchone() == (0,)
        assert verify(settings, conn).ok
