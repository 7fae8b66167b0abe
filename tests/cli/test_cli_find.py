"""`maestro search`, `maestro sets`, `maestro index` end to end on real repositories."""

from __future__ import annotations

import json
import os

import pytest

from maestro_git.cli import main
from maestro_git.mirror.sync import sync
from maestro_git.settings import Settings
from tests.factories import GitRepoFactory
from tests.search.test_index import FILES


def run(capsys: pytest.CaptureFixture[str], repo: GitRepoFactory, *args: str
        ) -> tuple[int, str, str]:
    code = main(["--repo", str(repo.path), *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def repo(git_repo: GitRepoFactory) -> GitRepoFactory:
    git_repo.commit(FILES)
    return git_repo


@pytest.fixture
def mirrored(repo: GitRepoFactory, database_url: str) -> tuple[GitRepoFactory, str]:
    sync(Settings(repo_path=repo.path, database_url=database_url))
    return repo, database_url


def test_search_builds_the_index_and_prints_a_table(
        capsys: pytest.CaptureFixture[str], repo: GitRepoFactory) -> None:
    code, out, _ = run(capsys, repo, "search", "tag:coding")
    assert code == 0
    assert out.splitlines()[0].split() == ["KIND", "KEY", "SCORE", "SNIPPET"]
    assert "acme/code_reviewer" in out
    assert (repo.path / ".maestro" / "index").is_dir()


def test_search_json_names_the_set_of_a_member(
        capsys: pytest.CaptureFixture[str], repo: GitRepoFactory) -> None:
    code, out, _ = run(capsys, repo, "search", "nurse in her 50s", "--format", "json",
                       "--limit", "1")
    assert code == 0
    hits = json.loads(out)
    assert len(hits) == 1
    assert (hits[0]["kind"], hits[0]["key"], hits[0]["member"]) == (
        "set_member", "clinic", "Maria Lopez")


def test_malformed_query_is_one_line_exit_8(
        capsys: pytest.CaptureFixture[str], repo: GitRepoFactory) -> None:
    code, out, err = run(capsys, repo, "search", "colour:blue")
    assert code == 8
    assert err.splitlines()[0] == "error: unknown field 'colour' in the query"
    assert "Traceback" not in err and out == ""


def test_search_rebuilds_a_corrupted_index(
        capsys: pytest.CaptureFixture[str], repo: GitRepoFactory) -> None:
    assert run(capsys, repo, "index", "rebuild")[0] == 0
    index_dir = repo.path / ".maestro" / "index"
    for seg in index_dir.glob("*.seg"):
        os.truncate(seg, seg.stat().st_size // 3)
    code, out, _ = run(capsys, repo, "index", "status", "--format", "json")
    assert code == 0 and json.loads(out)["healthy"] is False
    code, out, _ = run(capsys, repo, "search", "analyst")
    assert code == 0 and "globex/analyst" in out
    code, out, _ = run(capsys, repo, "index", "status", "--format", "json")
    status = json.loads(out)
    assert status["healthy"] and status["current"] and status["commit"] == repo.head()


def test_search_catches_up_with_a_new_commit(
        capsys: pytest.CaptureFixture[str], repo: GitRepoFactory) -> None:
    run(capsys, repo, "index", "rebuild")
    repo.commit({"templates/research_assistant.md": None})
    code, out, _ = run(capsys, repo, "index", "status")
    assert "stale" in out
    code, out, err = run(capsys, repo, "search", "category:research")
    assert code == 0 and out == "" and "no matches" in err


def test_postgres_backend_finds_the_same(
        capsys: pytest.CaptureFixture[str], mirrored: tuple[GitRepoFactory, str]) -> None:
    repo, url = mirrored
    code, out, _ = run(capsys, repo, "--database-url", url, "search", "quarterly revenue",
                       "--backend", "postgres", "--format", "json")
    assert code == 0
    assert [h["key"] for h in json.loads(out)] == ["globex/analyst"]


def test_sets_list_and_show(capsys: pytest.CaptureFixture[str],
                            mirrored: tuple[GitRepoFactory, str]) -> None:
    repo, url = mirrored
    code, out, _ = run(capsys, repo, "--database-url", url, "sets", "list")
    assert code == 0 and "clinic" in out and "validated" in out
    code, out, _ = run(capsys, repo, "--database-url", url, "sets", "show", "clinic",
                       "--format", "json")
    detail = json.loads(out)
    assert [m["name"] for m in detail["members"]] == ["Maria Lopez", "Tom Berg"]
    code, out, _ = run(capsys, repo, "--database-url", url, "sets", "show", "clinic")
    assert "Maria Lopez" in out and "occupation=surgeon" in out
    code, _, err = run(capsys, repo, "--database-url", url, "sets", "show", "nope")
    assert code == 3 and err.startswith("error: no persona set 'nope'")


@pytest.mark.parametrize("command", [["search"], ["sets"], ["sets", "list"], ["sets", "show"],
                                     ["index"], ["index", "rebuild"], ["index", "status"]])
def test_every_command_has_help(capsys: pytest.CaptureFixture[str], repo: GitRepoFactory,
                                command: list[str]) -> None:
    code, out, _ = run(capsys, repo, *command, "--help")
    assert code == 0 and "Usage:" in out
