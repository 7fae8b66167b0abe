"""`maestro list` / `maestro show` read the mirror when it is there, else the working tree."""

from __future__ import annotations

import json

import pytest

from maestro_git.cli import main
from maestro_git.mirror.query import PersonaFilters
from maestro_git.mirror.sync import sync
from maestro_git.ops.listing import list_personas
from maestro_git.settings import load_settings
from tests.factories import GitRepoFactory, persona_md


@pytest.fixture
def repo(git_repo: GitRepoFactory) -> GitRepoFactory:
    git_repo.commit({
        "personas/acme/base.md": persona_md("Base", tags=["core"]),
        "personas/acme/child.md": persona_md("Child", extends="acme/base",
                                             tags=["core", "python"]),
        "personas/beta/other.md": persona_md("Other", active=False),
    }, "three personas")
    return git_repo


def test_without_a_database_list_reads_the_working_tree(repo: GitRepoFactory) -> None:
    settings = load_settings(repo.path, environ={})
    used, rows = list_personas(settings, PersonaFilters(tags=("python",)))
    assert used == "worktree"
    assert [r["key"] for r in rows] == ["acme/child"]


def test_after_sync_list_reads_the_mirror_and_sees_only_committed_state(
    repo: GitRepoFactory, database_url: str
) -> None:
    settings = load_settings(repo.path, database_url=database_url, environ={})
    sync(settings)
    repo.write({"personas/acme/uncommitted.md": persona_md("Draft")})
    used, rows = list_personas(settings, PersonaFilters(active=True))
    assert used == "mirror"
    assert [r["key"] for r in rows] == ["acme/base", "acme/child"]
    used, rows = list_personas(settings, PersonaFilters(active=True), source="worktree")
    assert [r["key"] for r in rows] == ["acme/base", "acme/child", "acme/uncommitted"]


def test_show_resolved_from_the_mirror_composes_the_parent(
    repo: GitRepoFactory, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = load_settings(repo.path, database_url=database_url, environ={})
    sync(settings)
    args = ["--repo", str(repo.path), "--database-url", database_url]
    assert main([*args, "show", "acme/child", "--resolved", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["source"] == "mirror"
    assert data["parent_key"] == "acme/base"
    assert "You are a helpful assistant" in data["resolved"]["body"]
    assert main([*args, "show", "acme/child", "--resolved", "--format", "html"]) == 0
    html = capsys.readouterr().out
    assert html.startswith("<") and "You are a helpful assistant" in html


def test_mirror_only_filters_on_the_working_tree_are_a_usage_error(
    repo: GitRepoFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--repo", str(repo.path), "list", "--source", "worktree", "--sort", "applied"])
    assert code == 2
    assert "need the mirror" in capsys.readouterr().err


def test_source_mirror_fails_clearly_when_the_database_is_unreachable(
    repo: GitRepoFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "postgresql://postgres@127.0.0.1:1/none?connect_timeout=2"
    code = main(["--repo", str(repo.path), "--database-url", url, "list", "--source", "mirror"])
    assert code == 6
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
