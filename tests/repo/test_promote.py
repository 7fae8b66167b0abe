"""`maestro promote`: a branch as a deployment label, moved by a commit; main never moves."""

from __future__ import annotations

import json
import time

import pygit2
import pytest

from maestro_git.cli import main
from maestro_git.client import Client
from maestro_git.mirror import sync
from maestro_git.settings import Settings
from tests.factories import GitRepoFactory, mirror_sql, persona_md

PARENT = persona_md("Base", body="# Base\n\n## Safety\n\nNever share secrets.\n",
                    version="1.0.0")


def _child(text: str, version: str) -> str:
    return persona_md("Child", body=f"# Child\n\n{text}\n", version=version,
                      extends="acme/base")


def _run(repo: GitRepoFactory, capsys: pytest.CaptureFixture[str], *args: str
         ) -> tuple[int, str, str]:
    code = main(["--repo", str(repo.path), *args])
    out, err = capsys.readouterr()
    return code, out, err


def _setup(repo: GitRepoFactory) -> tuple[str, str]:
    """main and production at one commit, then main edits the parent and the child."""
    first = repo.commit({"personas/acme/base.md": PARENT,
                         "personas/acme/child.md": _child("Be brief.", "1.0.0")}, "create")
    repo.repo.branches.local.create("production", repo.repo[first])
    second = repo.commit({
        "personas/acme/base.md": PARENT.replace("Never share secrets.",
                                                "Never share secrets or keys.")
                                       .replace("1.0.0", "1.1.0"),
        "personas/acme/child.md": _child("Be brief and kind.", "1.1.0")}, "edit")
    return first, second


def _branch_file(repo: GitRepoFactory, branch: str, path: str) -> bytes:
    commit = repo.repo.branches.local[branch].peel(pygit2.Commit)
    return (commit.tree / path).data


def test_promote_moves_only_the_target_and_carries_the_parents(
        git_repo: GitRepoFactory, capsys: pytest.CaptureFixture[str]) -> None:
    _, second = _setup(git_repo)
    code, out, err = _run(git_repo, capsys, "promote", "acme/child", "--from", "main",
                          "--to", "production", "--format", "json")
    assert code == 0, err
    result = json.loads(out)
    assert result["branch"] == "production" and result["version"] == "1.1.0"
    assert git_repo.head() == second  # main did not move
    prod = git_repo.repo.branches.local["production"].peel(pygit2.Commit)
    assert str(prod.id) == result["commit"]
    assert "Maestro-Action: promoted" in prod.message
    # the parent's edit rides along: the child's effective instruction needs it
    for path in ("personas/acme/child.md", "personas/acme/base.md"):
        assert _branch_file(git_repo, "production", path) == _branch_file(git_repo, "main", path)
    # promoting again is refused with a one-line reason, never an empty commit
    code, _, err = _run(git_repo, capsys, "promote", "acme/child", "--from", "main",
                        "--to", "production")
    assert code != 0 and "already equals 'main'" in err
    code, _, err = _run(git_repo, capsys, "promote", "acme/child", "--from", "main",
                        "--to", "staging")
    assert code != 0 and "branch 'staging' does not exist" in err


def test_promote_then_rollback_on_production_is_the_labels_history_in_the_mirror(
        git_repo: GitRepoFactory, database_url: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    _, second = _setup(git_repo)
    prod = Settings(repo_path=git_repo.path, database_url=database_url, branch="production")
    sync.sync(prod)
    with Client(database_url, settings=prod) as client:
        assert "Be brief.\n" in client.get("acme/child").content
        assert _run(git_repo, capsys, "promote", "acme/child", "--from", "main",
                    "--to", "production")[0] == 0
        sync.sync(prod)
        deadline = time.monotonic() + 1.0
        while "kind" not in client.get("acme/child").content:
            assert time.monotonic() < deadline, "the client did not see the promotion"
            time.sleep(0.02)
        code, _, err = _run(git_repo, capsys, "--branch", "production", "rollback",
                            "acme/child", "--to", "1.0.0")
        assert code == 0, err
        sync.sync(prod)
        deadline = time.monotonic() + 1.0
        while "kind" in client.get("acme/child").content:
            assert time.monotonic() < deadline, "the client did not see the rollback"
            time.sleep(0.02)
    assert git_repo.head() == second  # main untouched throughout
    code, out, _ = _run(git_repo, capsys, "--branch", "production", "history", "acme/child",
                        "--format", "json")
    actions = [v["action"] for v in json.loads(out)]
    assert actions[:2] == ["rolled_back", "promoted"]
    with mirror_sql(database_url, "production") as conn:
        rows = conn.execute("SELECT action FROM audit_events WHERE key = 'acme/child' "
                            "ORDER BY id").fetchall()
    assert [r[0] for r in rows] == ["created", "promoted", "rolled_back"]
