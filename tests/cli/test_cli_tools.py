"""`maestro import` of a project folder and `maestro export --target`, through `cli.main`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from maestro_git.cli import main
from tests.factories import GitRepoFactory

AGENT = ("---\nname: code-reviewer\ndescription: Reviews code\ntools: Read, Grep\n---\n"
         "You review code.\n")


def test_import_a_project_folder_then_export_and_check_it(
    git_repo: GitRepoFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = tmp_path / "app"
    (project / ".claude/agents").mkdir(parents=True)
    (project / ".claude/agents/code-reviewer.md").write_text(AGENT)
    (project / "package.json").write_text("{}")
    repo = ["--repo", str(git_repo.path)]
    assert main([*repo, "import", str(project), "--owner", "acme", "--commit"]) == 0
    out = capsys.readouterr().out
    assert "-> personas/acme/code-reviewer.md" in out
    assert f"skipped {project.as_posix()}/package.json: JSON that is not a persona set" in out
    consumer = tmp_path / "consumer"
    assert main([*repo, "export", "--target", "claude", str(consumer)]) == 0
    assert "claude-agent: 1 written, 0 unchanged, 0 removed" in capsys.readouterr().out
    assert main([*repo, "export", "--target", "claude", str(consumer), "--check"]) == 0
    capsys.readouterr()
    (consumer / ".claude/agents/code-reviewer.md").write_text(AGENT)  # hand-edited: stale
    assert main([*repo, "export", "--target", "claude", str(consumer), "--check",
                 "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["stale"] == [".claude/agents/code-reviewer.md"]


def test_export_target_refuses_an_unknown_tool_with_the_list(
    git_repo: GitRepoFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--repo", str(git_repo.path), "export", "--target", "vim",
                 str(tmp_path)]) != 0
    assert "unknown target 'vim'" in capsys.readouterr().err
