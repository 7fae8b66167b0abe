"""End-to-end: `maestro history/diff/rollback/log/review/rename/delete` on real repositories."""

from __future__ import annotations

import json

import pytest

from maestro_git.cli import main
from tests.factories import GitRepoFactory, persona_md

UUID = "7a3c1d8e-2f4b-4c6a-9e1d-0b5f7a2c3d4e"


def _run(factory: GitRepoFactory, capsys: pytest.CaptureFixture[str], *args: str
         ) -> tuple[int, str, str]:
    code = main(["--repo", str(factory.path), *args])
    out, err = capsys.readouterr()
    return code, out, err


def _two_versions(factory: GitRepoFactory) -> tuple[str, str]:
    a = factory.commit({"personas/acme/rev.md": persona_md(
        "Reviewer", body="# Reviewer\n\nBe kind.\n", id=UUID, version="1.0.0")}, "create")
    b = factory.commit({"personas/acme/rev.md": persona_md(
        "Reviewer", body="# Reviewer\n\nBe brief.\n", id=UUID, version="1.1.0")}, "edit")
    return a, b


def test_history_prints_a_table_and_json(git_repo: GitRepoFactory,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    a, b = _two_versions(git_repo)
    code, out, _ = _run(git_repo, capsys, "history", "acme/rev")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["COMMIT", "DATE", "VERSION", "ACTION", "KEY", "AUTHOR",
                                "MESSAGE"]
    assert lines[1].startswith(b[:7]) and "1.1.0" in lines[1] and "updated" in lines[1]
    code, out, _ = _run(git_repo, capsys, "history", "acme/rev", "--format", "json")
    data = json.loads(out)
    assert [(v["commit"], v["action"], v["version"]) for v in data] == [
        (b, "updated", "1.1.0"), (a, "created", "1.0.0")]


def test_diff_prints_fields_and_the_body_diff(git_repo: GitRepoFactory,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    a, b = _two_versions(git_repo)
    code, out, _ = _run(git_repo, capsys, "diff", "acme/rev", "1.0.0", "1.1.0")
    assert code == 0
    assert out.splitlines()[:2] == [f"acme/rev: {a[:7]} -> {b[:7]}",
                                    "  version: 1.0.0 -> 1.1.0"]
    assert "-Be kind.\n+Be brief.\n" in out
    code, out, _ = _run(git_repo, capsys, "diff", "acme/rev", "--format", "json")
    assert json.loads(out)["fields"] == [{"field": "version", "old": "1.0.0", "new": "1.1.0"}]


def test_rollback_writes_a_commit_and_reports_it(git_repo: GitRepoFactory,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    a, _ = _two_versions(git_repo)
    code, out, _ = _run(git_repo, capsys, "rollback", "acme/rev", "--to", "1.0.0",
                        "--author", "Ada <ada@example.com>", "--format", "json")
    assert code == 0
    result = json.loads(out)
    assert result["version"] == "1.1.1"
    assert result["commit"] == git_repo.head()
    assert "Be kind." in (git_repo.path / "personas/acme/rev.md").read_text()
    code, out, _ = _run(git_repo, capsys, "log", "acme/rev", "--format", "json")
    events = json.loads(out)
    assert [(e["action"], e["actor_name"]) for e in events][0] == ("rolled_back", "Ada")
    assert f"Rollback to version 1.0.0 (commit {a[:7]})" in events[0]["message"]


def test_log_filters_by_author_and_since(git_repo: GitRepoFactory,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    git_repo.commit({"personas/acme/a.md": persona_md("A")}, "a",
                    author=("Old Timer", "old@example.com"), time=1_600_000_000)
    git_repo.commit({"personas/acme/b.md": persona_md("B")}, "b",
                    author=("New Comer", "new@example.com"), time=1_800_000_000)
    code, out, _ = _run(git_repo, capsys, "log", "--author", "comer")
    assert code == 0
    assert "acme/b" in out and "acme/a" not in out
    code, out, _ = _run(git_repo, capsys, "log", "--since", "2025-01-01", "--format", "json")
    assert [e["key"] for e in json.loads(out)] == ["acme/b"]


def test_review_fails_when_a_changed_persona_keeps_its_version(
        git_repo: GitRepoFactory, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = _two_versions(git_repo)
    git_repo.write({"personas/acme/rev.md": persona_md(
        "Reviewer", body="# Reviewer\n\nBe terse.\n", id=UUID, version="1.1.0")})
    code, out, err = _run(git_repo, capsys, "review")
    assert code == 1
    assert "personas/acme/rev.md:4: error version-not-raised: persona acme/rev changed" in out
    assert f"reviewed against {b[:7]}, 1 errors" in err
    code, out, _ = _run(git_repo, capsys, "review", "--against", a, "--format", "github")
    assert code == 0 and out == ""
    git_repo.write({"personas/acme/rev.md": persona_md(
        "Reviewer", body="# Reviewer\n\nBe terse.\n", id=UUID, version="1.2.0")})
    assert _run(git_repo, capsys, "review", "--format", "json")[0] == 0


def test_rename_and_delete_commit_in_one_step(git_repo: GitRepoFactory,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    _two_versions(git_repo)
    code, out, _ = _run(git_repo, capsys, "rename", "acme/rev", "beta/rev")
    assert code == 0 and out.startswith("renamed acme/rev to beta/rev in ")
    assert (git_repo.path / "personas/beta/rev.md").exists()
    code, out, _ = _run(git_repo, capsys, "delete", "beta/rev", "--format", "json")
    assert code == 0 and json.loads(out)["commit"] == git_repo.head()
    assert not (git_repo.path / "personas/beta/rev.md").exists()


def test_errors_are_one_line_with_an_exit_code(git_repo: GitRepoFactory,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    _two_versions(git_repo)
    code, out, err = _run(git_repo, capsys, "history", "acme/nobody")
    assert code == 3 and out == ""
    assert err.splitlines()[0] == "error: 'acme/nobody' has no history on main"
    code, _, err = _run(git_repo, capsys, "rollback", "acme/rev", "--to", "7.7.7")
    assert code == 3 and "'7.7.7' is neither a version of acme/rev nor a revision" in err
    git_repo.write({"personas/acme/rev.md": "edited by hand\n"})
    code, _, err = _run(git_repo, capsys, "delete", "acme/rev")
    assert code == 5 and "uncommitted changes" in err


@pytest.mark.parametrize("command", ["history", "diff", "rollback", "log", "review",
                                     "rename", "delete"])
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command, "--help"]) == 0
    assert "Usage: maestro " + command in capsys.readouterr().out
