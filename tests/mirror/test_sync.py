"""Mirroring git history into a real PostgreSQL: full history, renames, deletes, merges,
invalid commits, replay, rewritten history."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pygit2
import pytest

from maestro_git.errors import DatabaseError
from maestro_git.mirror import db, sync
from maestro_git.mirror.db import Connection
from maestro_git.mirror.sync import MirroredCommit, Syncer
from maestro_git.settings import Settings
from tests.factories import GitRepoFactory, persona_md

BASE_ID = str(uuid.UUID(int=1))
CHILD_ID = str(uuid.UUID(int=2))
SET_JSON = '{"name": "Team", "personas": [{"name": "Ann", "age": 30}], ' \
           '"metadata": {"status": "generated"}}'


@pytest.fixture(params=["server", "embedded"])
def any_url(request: pytest.FixtureRequest) -> str:
    """The core mirror tests run on DATABASE_URL's server and on the embedded one."""
    name = "database_url" if request.param == "server" else "embedded_database_url"
    return str(request.getfixturevalue(name))


def _settings(repo: GitRepoFactory, url: str) -> Settings:
    return Settings(repo_path=repo.path, database_url=url)


def _conn(settings: Settings) -> Connection:
    """A connection bound to the settings' mirror, migrated."""
    conn = db.connect(settings)
    db.migrate(conn)
    return conn


def _rows(conn: Connection, query: str, *args: Any) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in conn.execute(query, args)]


def _history(repo: GitRepoFactory) -> dict[str, str]:
    commits = {}
    commits["c1"] = repo.commit({
        "personas/acme/base.md": persona_md("Base", id=BASE_ID, body="# Base\n\nYou help.\n"),
        "templates/writer.md": persona_md("Writer", body="# Writer\n\nYou write.\n"),
    }, "add base")
    commits["c2"] = repo.commit({
        "personas/acme/child.md": persona_md("Child", id=CHILD_ID, extends="acme/base",
                                             body="## Extra\n\nAlso review.\n"),
        "persona_sets/team.json": SET_JSON,
    }, "add child and set")
    commits["c3"] = repo.commit({
        "personas/acme/base.md": persona_md("Base", id=BASE_ID, version="1.1.0",
                                            body="# Base\n\nYou help kindly.\n"),
    }, "edit base")
    commits["c4"] = repo.commit({"personas/acme/child.md": None,
                                 "personas/acme/kid.md": persona_md(
                                     "Child", id=CHILD_ID, extends="acme/base",
                                     body="## Extra\n\nAlso review.\n")}, "rename child")
    commits["c5"] = repo.commit({"templates/writer.md": None}, "drop template")
    return commits


def test_full_history_mirror_equals_git(git_repo: GitRepoFactory, any_url: str) -> None:
    commits = _history(git_repo)
    report = sync.sync(_settings(git_repo, any_url))
    assert report.commits == 5
    with _conn(_settings(git_repo, any_url)) as conn:
        assert _rows(conn, "SELECT key, id::text FROM personas ORDER BY key") == [
            ("acme/base", BASE_ID), ("acme/kid", CHILD_ID)]
        assert _rows(conn, "SELECT count(*) FROM persona_templates") == [(0,)]
        assert _rows(conn, "SELECT key, member_count FROM persona_sets") == [("team", 1)]
        versions = _rows(conn, "SELECT key, commit, action FROM persona_versions "
                               "ORDER BY committed_at, id")
        assert sorted(versions) == sorted([
            ("acme/base", commits["c1"], "created"), ("acme/child", commits["c2"], "created"),
            ("acme/base", commits["c3"], "updated"), ("acme/kid", commits["c4"], "renamed")])
        events = _rows(conn, "SELECT commit, action, kind, key FROM audit_events")
        assert (commits["c5"], "deleted", "template", "writer") in events
        assert (commits["c4"], "renamed", "persona", "acme/kid") in events
        assert _rows(conn, "SELECT commit FROM sync_state") == [(commits["c5"],)]
        resolved = _rows(conn, "SELECT resolved_content FROM personas WHERE key = 'acme/kid'")
    assert "You help kindly." in resolved[0][0] and "Also review." in resolved[0][0]


def test_parent_edit_rewrites_descendants_resolved_content(git_repo: GitRepoFactory,
                                                           database_url: str) -> None:
    _history(git_repo)
    settings = _settings(git_repo, database_url)
    sync.sync(settings)
    git_repo.commit({"personas/acme/base.md": persona_md(
        "Base", id=BASE_ID, version="1.2.0", body="# Base\n\nYou help loudly.\n")}, "again")
    sync.sync(settings)
    with _conn(_settings(git_repo, database_url)) as conn:
        (text,), = _rows(conn, "SELECT resolved_content FROM personas WHERE key='acme/kid'")
        (parent,), = _rows(conn, "SELECT count(*) FROM personas c JOIN personas p "
                                 "ON c.parent_id = p.id WHERE c.key = 'acme/kid'")
    assert "You help loudly." in text
    assert parent == 1


def test_rename_without_id_keeps_row_id_and_history(git_repo: GitRepoFactory,
                                                    database_url: str) -> None:
    body = "# Plain\n\nYou are plain. " + "Long enough text to be detected as a rename. " * 5
    git_repo.commit({"personas/acme/plain.md": persona_md("Plain", body=body)}, "add")
    settings = _settings(git_repo, database_url)
    sync.sync(settings)
    with _conn(_settings(git_repo, database_url)) as conn:
        (before,), = _rows(conn, "SELECT id FROM personas")
    git_repo.commit({"personas/acme/plain.md": None,
                     "personas/acme/simple.md": persona_md("Plain", body=body)}, "move")
    sync.sync(settings)
    with _conn(_settings(git_repo, database_url)) as conn:
        assert _rows(conn, "SELECT id, key FROM personas") == [(before, "acme/simple")]
        assert _rows(conn, "SELECT action FROM persona_versions WHERE persona_id = %s "
                           "ORDER BY id", before) == [("created",), ("renamed",)]


def test_merge_commit_arrives_as_one_commit(git_repo: GitRepoFactory,
                                            database_url: str) -> None:
    c1 = git_repo.commit({"personas/acme/base.md": persona_md("Base", id=BASE_ID)}, "base")
    repo = git_repo.repo
    repo.branches.local.create("feature", repo[c1])
    sig = pygit2.Signature("Feat", "feat@example.com")
    blob = repo.create_blob(persona_md("Side", id=CHILD_ID).encode())
    builder = repo.TreeBuilder(repo[c1].tree)
    personas = repo.TreeBuilder(repo[c1].tree["personas"])
    acme = repo.TreeBuilder(repo[c1].tree["personas/acme"])
    acme.insert("side.md", blob, pygit2.enums.FileMode.BLOB)
    personas.insert("acme", acme.write(), pygit2.enums.FileMode.TREE)
    builder.insert("personas", personas.write(), pygit2.enums.FileMode.TREE)
    side = repo.create_commit("refs/heads/feature", sig, sig, "side", builder.write(), [c1])
    c2 = git_repo.commit({"templates/t.md": persona_md("T")}, "main work")
    index = repo.merge_commits(c2, side)
    merge = repo.create_commit("refs/heads/main", sig, sig, "merge feature",
                               index.write_tree(repo), [c2, side])
    repo.checkout_head(strategy=pygit2.enums.CheckoutStrategy.FORCE)
    report = sync.sync(_settings(git_repo, database_url))
    assert report.commits == 3  # c1, c2, merge: the side commit arrives inside the merge
    with _conn(_settings(git_repo, database_url)) as conn:
        assert _rows(conn, "SELECT key, commit FROM persona_versions WHERE key = 'acme/side'"
                     ) == [("acme/side", str(merge))]


def test_invalid_commit_keeps_last_good_state_until_fixed(git_repo: GitRepoFactory,
                                                          any_url: str) -> None:
    good = persona_md("Base", id=BASE_ID, body="# Base\n\nGood body.\n")
    git_repo.commit({"personas/acme/base.md": good}, "good")
    bad = git_repo.commit({"personas/acme/base.md": "---\nid: [oops\n---\n# Broken\n",
                           "personas/acme/new.md": "---\ntags: {\n---\nx\n"}, "break")
    settings = _settings(git_repo, any_url)
    report = sync.sync(settings)
    assert report.errors == 2
    with _conn(_settings(git_repo, any_url)) as conn:
        assert _rows(conn, "SELECT key, content FROM personas") == [
            ("acme/base", "# Base\n\nGood body.\n")]
        errors = _rows(conn, "SELECT path, commit, rule FROM sync_errors ORDER BY path")
        assert [(p, c) for p, c, _ in errors] == [("personas/acme/base.md", bad),
                                                  ("personas/acme/new.md", bad)]
        assert errors[0][2] == "yaml-syntax"
    git_repo.commit({"personas/acme/base.md": good.replace("Good", "Fixed"),
                     "personas/acme/new.md": None}, "fix")
    sync.sync(settings)
    with _conn(_settings(git_repo, any_url)) as conn:
        assert _rows(conn, "SELECT content FROM personas") == [("# Base\n\nFixed body.\n",)]
        assert _rows(conn, "SELECT count(*) FROM sync_errors") == [(0,)]


def test_replaying_a_commit_changes_nothing(git_repo: GitRepoFactory, any_url: str) -> None:
    _history(git_repo)
    settings = _settings(git_repo, any_url)
    mirrored: list[MirroredCommit] = []
    with _conn(_settings(git_repo, any_url)) as conn, Syncer(settings, conn, [mirrored.append]) as syncer:
        syncer.catch_up()
        tables = ["personas", "persona_versions", "persona_sets", "persona_set_members",
                  "persona_templates", "audit_events", "sync_state", "sync_errors"]

        def state() -> dict[str, list[tuple[Any, ...]]]:
            return {t: _rows(conn, f"SELECT xmin::text, * FROM {t} ORDER BY 2")  # noqa: S608
                    for t in tables}

        before = state()
        last = mirrored[-1]
        from maestro_git.mirror import apply as mirror

        result = mirror.apply_commit(
            conn, last.commit, last.changes, last.snapshot, last.snapshot, last.events,
            {}, branch=settings.branch, ids=syncer._state.ids if syncer._state else {})
        assert result.rows == 0 and result.versions == 0 and result.audit_events == 0
        again = syncer.catch_up()
        assert again.commits == 0
        assert state() == before


def test_force_push_to_older_head_reconciles_without_duplicate_versions(
        git_repo: GitRepoFactory, any_url: str) -> None:
    commits = _history(git_repo)
    settings = _settings(git_repo, any_url)
    sync.sync(settings)
    git_repo.repo.references["refs/heads/main"].set_target(commits["c3"])
    report = sync.sync(settings)
    assert report.rewritten is True
    with _conn(_settings(git_repo, any_url)) as conn:
        assert _rows(conn, "SELECT key FROM personas ORDER BY key") == [
            ("acme/base",), ("acme/child",)]
        assert _rows(conn, "SELECT count(*) FROM persona_templates") == [(1,)]
        versions = _rows(conn, "SELECT key, commit FROM persona_versions")
        assert len(versions) == len(set(versions)) == 3
        assert {c for _, c in versions} <= {commits["c1"], commits["c2"], commits["c3"]}
        assert _rows(conn, "SELECT kind, key FROM audit_events WHERE action = "
                           "'history_rewritten'") == [("repository", "main")]
        assert _rows(conn, "SELECT commit FROM sync_state") == [(commits["c3"],)]


def test_force_push_with_new_commits_mirrors_them(git_repo: GitRepoFactory,
                                                  database_url: str) -> None:
    commits = _history(git_repo)
    settings = _settings(git_repo, database_url)
    sync.sync(settings)
    git_repo.repo.references["refs/heads/main"].set_target(commits["c2"])
    git_repo.repo.checkout_head(strategy=pygit2.enums.CheckoutStrategy.FORCE)
    new = git_repo.commit({"personas/acme/other.md": persona_md("Other")}, "new work")
    report = sync.sync(settings)
    assert report.rewritten and report.commits == 1
    with _conn(_settings(git_repo, database_url)) as conn:
        assert _rows(conn, "SELECT key FROM personas ORDER BY key") == [
            ("acme/base",), ("acme/child",), ("acme/other",)]
        assert _rows(conn, "SELECT key FROM persona_versions WHERE commit = %s", new) == [
            ("acme/other",)]
        (text,), = _rows(conn, "SELECT content FROM personas WHERE key = 'acme/base'")
    assert "You help.\n" in text


def test_head_only_mirrors_just_the_tree(git_repo: GitRepoFactory, database_url: str) -> None:
    commits = _history(git_repo)
    report = sync.sync(_settings(git_repo, database_url), head_only=True)
    assert report.commits == 1
    with _conn(_settings(git_repo, database_url)) as conn:
        assert _rows(conn, "SELECT DISTINCT commit FROM persona_versions") == [
            (commits["c5"],)]
        assert _rows(conn, "SELECT count(*) FROM personas") == [(2,)]


def test_listener_failure_does_not_stop_the_sync(git_repo: GitRepoFactory,
                                                 database_url: str) -> None:
    _history(git_repo)
    seen: list[str] = []

    def broken(m: MirroredCommit) -> None:
        raise RuntimeError("boom")

    report = sync.sync(_settings(git_repo, database_url),
                       listeners=[broken, lambda m: seen.append(m.commit.id)])
    assert report.commits == 5 and len(seen) == 5


def test_syncer_picks_up_new_commits_incrementally(git_repo: GitRepoFactory,
                                                   database_url: str) -> None:
    _history(git_repo)
    settings = _settings(git_repo, database_url)
    with _conn(_settings(git_repo, database_url)) as conn, Syncer(settings, conn) as syncer:
        syncer.catch_up()
        c6 = git_repo.commit({"personas/acme/base.md": persona_md(
            "Base", id=BASE_ID, version="2.0.0", body="# Base\n\nNew.\n")}, "six")
        report = syncer.catch_up()
        assert report.commits == 1 and report.steps[0].entities == 1
        assert _rows(conn, "SELECT commit FROM personas WHERE key='acme/base'") == [(c6,)]


def test_empty_branch_mirrors_nothing(tmp_path: Path, database_url: str) -> None:
    repo = GitRepoFactory.create(tmp_path / "empty")
    assert sync.sync(_settings(repo, database_url)).head is None


def test_failed_commit_is_retried_from_the_state_before_it(git_repo: GitRepoFactory,
                                                           database_url: str) -> None:
    """The syncer patches its id maps in place; a commit whose transaction fails must not
    leave them half-patched (here: the deleted persona's 'deleted' version would be lost)."""
    git_repo.commit({"personas/acme/gone.md": persona_md("Gone"),
                     "personas/acme/stay.md": persona_md("Stay")}, "add")
    settings = _settings(git_repo, database_url)
    with _conn(_settings(git_repo, database_url)) as conn, Syncer(settings, conn) as syncer:
        syncer.catch_up()
        deleted = git_repo.commit({"personas/acme/gone.md": None}, "delete")
        conn.execute("CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
                     "$$ BEGIN RAISE EXCEPTION 'refused'; END $$")
        conn.execute("CREATE TRIGGER refuse BEFORE INSERT ON audit_events "
                     "FOR EACH ROW EXECUTE FUNCTION refuse()")
        with pytest.raises(DatabaseError, match="refused"):
            syncer.catch_up()
        conn.execute("DROP TRIGGER refuse ON audit_events")
        assert syncer.catch_up().commits == 1
        assert _rows(conn, "SELECT key, action FROM persona_versions WHERE commit = %s",
                     deleted) == [("acme/gone", "deleted")]
        assert _rows(conn, "SELECT key FROM personas") == [("acme/stay",)]


def test_a_whole_tree_parse_reports_its_files(git_repo: GitRepoFactory, database_url: str,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A first load reports (parsed, total) as the head's files parse, ending at the tree's
    file count; the next commit is read incrementally and reports nothing."""
    monkeypatch.setattr(sync, "FILE_PROGRESS_STEP", 2)
    git_repo.commit({**{f"personas/acme/p{i}.md": persona_md(f"P{i}") for i in range(5)},
                     "persona_sets/panel.json": '{"name": "Panel", "personas": []}',
                     "personas/acme/notes.txt": "not a persona"}, "seven files")
    settings = _settings(git_repo, database_url)
    seen: list[tuple[int, int]] = []
    sync.sync(settings, head_only=True, files=lambda done, total: seen.append((done, total)))
    assert seen == [(2, 7), (4, 7), (6, 7), (7, 7)]
    git_repo.commit({"personas/acme/p0.md": persona_md("P0 again")}, "one edit")
    seen.clear()
    sync.sync(settings, files=lambda done, total: seen.append((done, total)))
    assert seen == []


def test_a_pipelined_commit_counts_what_it_wrote(git_repo: GitRepoFactory, database_url: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """An incremental commit's statements go through one pipeline; its ApplyResult counts
    must still be the rows, versions and events it wrote (read once the pipeline synced)."""
    from maestro_git.mirror import apply as mirror

    results: list[mirror.ApplyResult] = []
    real = mirror.apply_commit

    def recording(*args: Any, **kwargs: Any) -> mirror.ApplyResult:
        results.append(real(*args, **kwargs))
        return results[-1]

    monkeypatch.setattr(mirror, "apply_commit", recording)
    git_repo.commit({"personas/acme/a.md": persona_md("A"), "personas/acme/b.md": persona_md("B")})
    settings = _settings(git_repo, database_url)
    sync.sync(settings)
    git_repo.commit({"personas/acme/a.md": persona_md("A", version="1.0.1"),
                     "personas/acme/b.md": None,  # C is not like B: no rename
                     "personas/acme/c.md": persona_md("C", body="# C\n\n" + "Counts rows. " * 40)})
    sync.sync(settings)
    last = results[-1]
    assert (last.rows, last.versions, last.audit_events) == (3, 3, 3)
    assert last.notifications == 3
