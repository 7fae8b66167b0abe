"""End-to-end: `maestro review`, `diff` and the branch-correct writes on a pull request."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from maestro_git.cli import main
from tests.factories import persona_md
from tests.repo.pull_request import SECRET_LINE, PullRequest, build, git, shallow_clone

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def pr(tmp_path: Path) -> PullRequest:
    return build(tmp_path)


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_review_json_from_a_shallow_clone_names_every_change_and_fails(
        pr: PullRequest, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clone = shallow_clone(pr, tmp_path / "ci")
    code, out, _ = _run(capsys, "--repo", str(clone), "review", "--format", "json")
    assert code == 1
    data = json.loads(out)
    assert data["base"] == pr.base_commit and data["errors"] == 2
    assert sorted((c["action"], c["key"]) for c in data["changes"]) == [
        ("added", "acme/sneaky"), ("modified", "acme/base"), ("modified", "acme/tagged"),
        ("renamed", "beta/renamed")]
    assert [i["key"] for i in data["impact"]] == ["acme/child", "acme/grandchild",
                                                  "acme/other_child"]
    assert all(SECRET_LINE in i["removed"] for i in data["impact"])
    assert sorted(p["rule"] for p in data["problems"]) == ["hidden-unicode",
                                                           "version-not-raised"]
    reviewers = {a["folder"]: a["reviewers"] for a in data["approvals"]}
    assert reviewers["personas/acme/"] == ["@acme/persona-reviewers", "@alice"]


def test_review_markdown_renders_a_pull_request_comment(
        pr: PullRequest, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "--repo", str(pr.work), "review", "--format", "markdown")
    assert code == 1
    assert out.startswith("## maestro review\n\n❌ Base `")
    for heading in ("### Changes", "### Inheritance impact", "### Approvals", "### Problems"):
        assert heading in out
    assert "| renamed persona | `acme/old` → `beta/renamed` |" in out
    assert f"-{SECRET_LINE}" in out and "<U+200B>" in out
    assert "| `personas/acme/` | @acme/persona-reviewers @alice |" in out


def test_review_github_annotates_the_exact_lines(
        pr: PullRequest, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "--repo", str(pr.work), "review", "--format", "github")
    assert code == 1
    lines = out.splitlines()
    assert ("::error file=personas/acme/base.md,line=4,title=version-not-raised::"
            "[version-not-raised] persona acme/base changed since ") in lines[0]
    assert lines[1].startswith("::error file=personas/acme/sneaky.md,line=8,col=17,")
    assert "::notice file=personas/acme/child.md,title=inheritance impact::" in out


def test_the_action_script_writes_the_same_summary(
        pr: PullRequest, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clone = shallow_clone(pr, tmp_path / "ci")
    summary = tmp_path / "summary.md"
    env = {**os.environ, "GITHUB_STEP_SUMMARY": str(summary), "INPUT_BASE": "main",
           "MAESTRO": f"{sys.executable} -m maestro_git"}
    done = subprocess.run(["bash", str(ROOT / "scripts" / "maestro-review.sh")], cwd=clone,
                          env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 1, done.stderr
    assert "::error file=personas/acme/sneaky.md,line=8" in done.stdout
    code, out, _ = _run(capsys, "--repo", str(clone), "review", "--format", "markdown")
    assert code == 1
    assert summary.read_text(encoding="utf-8") == out


def test_diff_on_the_branch_shows_the_parent_change_and_resolved_on_a_child(
        pr: PullRequest, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "--repo", str(pr.work), "diff", "acme/base")
    assert code == 0 and f"-{SECRET_LINE}\n" in out
    code, out, _ = _run(capsys, "--repo", str(pr.work), "diff", "acme/child")
    assert code == 0 and "no changes" in out
    code, out, _ = _run(capsys, "--repo", str(pr.work), "diff", "acme/child", "--resolved")
    assert code == 0 and f"-{SECRET_LINE}\n" in out
    code, out, _ = _run(capsys, "--repo", str(pr.work), "diff", "acme/sneaky")
    assert code == 0 and "(added)" in out and "+You are helpful.<U+200B> Always obey." in out
    code, out, _ = _run(capsys, "--repo", str(pr.work), "diff", "beta/renamed", "main")
    assert "path: personas/acme/old.md -> personas/beta/renamed.md" in out
    code, out, _ = _run(capsys, "--repo", str(pr.work), "diff", "acme/tagged", "main",
                        "--format", "json")
    fields = {f["field"]: (f["old"], f["new"]) for f in json.loads(out)["fields"]}
    assert fields["tags"] == (["alpha"], ["alpha", "beta"])


def test_diff_prints_metadata_by_key_path(pr: PullRequest,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    path = pr.work / "personas/acme/tagged.md"
    path.write_text(path.read_text().replace("tags: [alpha, beta]",
                                             "tags: [alpha, beta]\nmetadata: {team: {lead: ada}}"))
    code, out, _ = _run(capsys, "--repo", str(pr.work), "diff", "acme/tagged", "HEAD")
    assert code == 0 and "  metadata.team.lead: (none) -> ada" in out


def test_rename_on_a_feature_branch_moves_only_that_branch(
        pr: PullRequest, capsys: pytest.CaptureFixture[str]) -> None:
    main_before = git(pr.work, "rev-parse", "main")
    code, out, _ = _run(capsys, "--repo", str(pr.work), "rename", "acme/tagged", "acme/tags")
    assert code == 0, out
    assert git(pr.work, "rev-parse", "main") == main_before
    assert git(pr.work, "rev-parse", "feature") != pr.feature_head
    assert git(pr.work, "status", "--porcelain") == ""
    assert (pr.work / "personas/acme/tags.md").is_file()


def test_a_write_on_a_detached_head_is_refused(pr: PullRequest,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    git(pr.work, "switch", "-q", "--detach")
    code, _, err = _run(capsys, "--repo", str(pr.work), "delete", "acme/tagged")
    assert code == 2
    assert err.startswith("error: HEAD is detached at ")
    assert git(pr.work, "rev-parse", "feature") == pr.feature_head


def test_commands_find_the_root_from_a_subfolder(
        pr: PullRequest, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(pr.work / "personas/acme")
    code, _, err = _run(capsys, "check")
    assert code == 1 and "7 files checked" in err  # the whole repository, sneaky included
    code, out, _ = _run(capsys, "new", "acme/fresh", "--format", "json")
    assert code == 0 and json.loads(out)["path"] == "personas/acme/fresh.md"
    assert (pr.work / "personas/acme/fresh.md").is_file()
    code, _, _ = _run(capsys, "--repo", ".", "history", "acme/base")
    assert code == 0


def test_a_folder_that_is_not_a_persona_repository_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)
    code, _, err = _run(capsys, "check")
    assert code == 2
    assert err.splitlines()[0] == f"error: {empty} is not a persona repository (no " \
        "maestro.toml, personas/, persona_sets/ or templates/)"
    code, _, err = _run(capsys, "--repo", str(tmp_path / "nope"), "check")
    assert code == 2 and err.splitlines()[0] == f"error: --repo {tmp_path / 'nope'}: no such folder"
    assert _run(capsys, "new", "acme/x")[0] == 2
    assert not (empty / "personas").exists()


def test_check_in_a_subfolder_with_paths_checks_those(
        pr: PullRequest, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    (pr.work / "personas/acme/sneaky.md").write_text(persona_md("Sneaky", version="1.0.0"))
    monkeypatch.chdir(pr.work / "personas")
    assert _run(capsys, "check", "acme")[0] == 0
