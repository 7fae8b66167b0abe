"""The mirror commands end to end: db, sync, verify, rebuild."""

from __future__ import annotations

import json

import pytest

from maestro_git.cli import main
from tests.factories import GitRepoFactory, persona_md


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("command", [["db", "--help"], ["db", "url", "--help"],
                                     ["db", "status", "--help"], ["db", "migrate", "--help"],
                                     ["db", "stop", "--help"], ["sync", "--help"],
                                     ["verify", "--help"], ["rebuild", "--help"]])
def test_every_mirror_command_has_help(capsys: pytest.CaptureFixture[str],
                                       command: list[str]) -> None:
    code, out, _ = _run(capsys, *command)
    assert code == 0 and "Usage:" in out


def test_sync_verify_and_rebuild_from_the_command_line(
        git_repo: GitRepoFactory, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    git_repo.commit({"personas/acme/a.md": persona_md("A")}, "one")
    git_repo.commit({"personas/acme/b.md": persona_md("B")}, "two")
    base = ["--repo", str(git_repo.path), "--database-url", database_url]
    code, out, _ = _run(capsys, *base, "sync", "--no-index", "--format", "json")
    assert code == 0
    report = json.loads(out)
    assert report["commits"] == 2 and report["head"] == git_repo.head()

    code, out, _ = _run(capsys, *base, "verify", "--format", "json")
    assert code == 0 and json.loads(out)["ok"] is True

    code, out, _ = _run(capsys, *base, "db", "status", "--format", "json")
    status = json.loads(out)
    assert status["cursors"] == {"main": git_repo.head()} and status["personas"] == 2

    git_repo.commit({"personas/acme/c.md": persona_md("C")}, "three")
    code, out, _ = _run(capsys, *base, "verify")
    assert code == 1 and "behind" in out and "acme/c" in out

    code, out, _ = _run(capsys, *base, "rebuild", "--no-index")
    assert code == 0 and "mirrored 3 commits" in out


def test_db_url_lands_in_the_branchs_mirror_and_server_prints_the_configured_url(
        git_repo: GitRepoFactory, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import psycopg

    git_repo.commit({"personas/acme/a.md": persona_md("A")}, "one")
    base = ["--repo", str(git_repo.path), "--database-url", database_url]
    code, out, _ = _run(capsys, *base, "db", "url", "--server")
    assert code == 0 and out.strip() == database_url

    # before any sync: the URL already reaches a migrated (empty) mirror
    code, out, _ = _run(capsys, *base, "db", "url")
    assert code == 0 and out.strip() != database_url
    with psycopg.connect(out.strip()) as conn:
        assert conn.execute("SELECT count(*) FROM current_personas").fetchone() == (0,)

    assert _run(capsys, *base, "sync", "--no-index")[0] == 0
    code, status, _ = _run(capsys, *base, "db", "status", "--format", "json")
    schema = json.loads(status)["schema"]
    with psycopg.connect(out.strip()) as conn:
        assert conn.execute("SHOW search_path").fetchone() == (schema,)
        assert conn.execute("SELECT key FROM current_personas").fetchall() == [("acme/a",)]


@pytest.mark.parametrize(("url", "expected"), [
    ("postgresql://u@h:5/d", "postgresql://u@h:5/d?options=-c%20search_path%3Dm_x"),
    ("postgresql://u@h/d?connect_timeout=3",
     "postgresql://u@h/d?connect_timeout=3&options=-c%20search_path%3Dm_x"),
    ("postgresql://u@h/d?options=-c%20statement_timeout%3D5s",
     "postgresql://u@h/d?options=-c%20statement_timeout%3D5s%20-c%20search_path%3Dm_x"),
])
def test_with_search_path_keeps_a_uri_a_uri_and_other_options(url: str, expected: str) -> None:
    from psycopg.conninfo import conninfo_to_dict

    from maestro_git.mirror.db import with_search_path

    assert with_search_path(url, "m_x") == expected
    assert conninfo_to_dict(expected)["options"].endswith("-c search_path=m_x")


def test_with_search_path_on_a_keyword_string() -> None:
    from psycopg.conninfo import conninfo_to_dict

    from maestro_git.mirror.db import with_search_path

    params = conninfo_to_dict(with_search_path("host=h dbname=d", "m_x"))
    assert params == {"host": "h", "dbname": "d", "options": "-c search_path=m_x"}


def test_unreachable_database_is_one_line_and_exit_6(
        git_repo: GitRepoFactory, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "--repo", str(git_repo.path), "--database-url",
                        "postgresql://x@127.0.0.1:1/none?connect_timeout=2", "sync")
    assert code == 6
    assert err.startswith("error: cannot connect to PostgreSQL") and "Traceback" not in err


def test_sync_exits_7_while_a_daemon_holds_the_writer_lock(
        git_repo: GitRepoFactory, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from maestro_git.mirror import db
    from maestro_git.settings import Settings

    git_repo.commit({"personas/acme/a.md": persona_md("A")}, "one")
    with db.connect(Settings(repo_path=git_repo.path, database_url=database_url)) as holder:
        assert db.writer_lock(holder)  # the lock of this repository's mirror of main
        code, _, err = _run(capsys, "--repo", str(git_repo.path), "--database-url",
                            database_url, "sync", "--no-index")
    assert code == 7 and "error:" in err


def test_sync_names_the_files_invalid_at_the_head_only(
    git_repo: GitRepoFactory, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--repo", str(git_repo.path), "--database-url", database_url, "sync", "--no-index"]
    git_repo.commit({"personas/acme/a.md": persona_md()}, "add a")
    git_repo.commit({"personas/acme/a.md": "---\ntags: [unclosed\n---\nbody\n"}, "break a")
    assert main(args) == 0
    assert "1 invalid file kept at the last good state: personas/acme/a.md" in (
        capsys.readouterr().out)
    rebuild = [*args[:-2], "rebuild", "--no-index"]  # rebuild says it too
    assert main(rebuild) == 0
    assert "1 invalid file kept at the last good state: personas/acme/a.md" in (
        capsys.readouterr().out)
    git_repo.commit({"personas/acme/a.md": persona_md(version="1.0.1")}, "fix a")
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.startswith("mirrored 1 commit, 1 change;") and "invalid" not in out


def test_sync_verify_and_db_status_cover_every_configured_branch(
        git_repo: GitRepoFactory, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    git_repo.commit({"maestro.toml": '[sync]\nbranches = ["main", "production"]\n',
                     "personas/acme/a.md": persona_md("A")}, "one")
    git_repo.repo.references.create("refs/heads/production", git_repo.repo.head.target)
    git_repo.commit({"personas/acme/b.md": persona_md("B")}, "main only")
    base = ["--repo", str(git_repo.path), "--database-url", database_url]
    code, out, _ = _run(capsys, *base, "sync", "--no-index")
    assert code == 0
    assert [line.split(":")[0] for line in out.splitlines()] == ["main", "production"]
    code, out, _ = _run(capsys, *base, "verify", "--format", "json")
    docs = json.loads(out)
    assert code == 0 and [(d["branch"], d["ok"], d["checked"]) for d in docs] == [
        ("main", True, 2), ("production", True, 1)]
    code, out, _ = _run(capsys, *base, "--branch", "production", "db", "status",
                        "--format", "json")
    status = json.loads(out)
    production = str(git_repo.repo.references["refs/heads/production"].target)
    assert code == 0 and status["cursors"] == {"production": production}
    assert sorted((m["branch"], m["personas"], m["current"]) for m in status["mirrors"]) == [
        ("main", 2, False), ("production", 1, True)]
    code, out, _ = _run(capsys, *base, "--branch", "production", "list", "--format", "json")
    assert code == 0 and "acme/b" not in out and "acme/a" in out
