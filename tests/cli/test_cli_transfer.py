"""The import, export, backup and restore commands, end to end through `cli.main`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from maestro_git.cli import main
from tests.factories import GitRepoFactory, persona_md

BODY = "# Helper\n\nYou help with the shell.\n"


def test_import_writes_a_persona_and_export_prints_its_body(
    git_repo: GitRepoFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "AGENTS.md"
    src.write_text(BODY)
    repo = ["--repo", str(git_repo.path)]
    assert main([*repo, "import", str(src), "--owner", "acme", "--name", "helper"]) == 0
    assert "personas/acme/helper.md" in capsys.readouterr().out
    assert main([*repo, "export", "acme/helper"]) == 0
    assert capsys.readouterr().out == BODY
    out = tmp_path / "exported.json"
    assert main([*repo, "export", "acme/helper", "--format", "json", "-o", str(out)]) == 0
    assert json.loads(out.read_text())["key"] == "acme/helper"


def test_a_refused_import_exits_1_with_the_rule_and_no_traceback(
    git_repo: GitRepoFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "GEMINI.md"
    src.write_text("# G\n\nHidden\u200b text.\n")
    assert main(["--repo", str(git_repo.path), "import", str(src), "--owner", "acme"]) == 1
    err = capsys.readouterr().err
    assert "hidden-unicode" in err and "Traceback" not in err
    assert not (git_repo.path / "personas").exists()


def test_import_dry_run_json_lists_the_plan(
    git_repo: GitRepoFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "default_personas_set1.json"
    src.write_text('{"personas": [{"name": "Ana"}]}')
    assert main(["--repo", str(git_repo.path), "import", str(src), "--dry-run",
                 "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["written"] is False
    assert doc["items"][0]["path"] == "persona_sets/set1/set.json"


def test_export_without_key_or_all_is_a_usage_error(
    git_repo: GitRepoFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--repo", str(git_repo.path), "export"]) == 2
    assert "export needs a KEY" in capsys.readouterr().err


def test_backup_and_restore_commands(git_repo: GitRepoFactory, database_url: str,
                                     tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    git_repo.commit({"personas/acme/a.md": persona_md()}, "a")
    base = ["--repo", str(git_repo.path), "--database-url", database_url]
    assert main([*base, "sync", "--no-index"]) == 0
    from maestro_git.mirror import db
    from maestro_git.mirror.query import record_application
    from maestro_git.settings import Settings

    settings = Settings(repo_path=git_repo.path, database_url=database_url)

    with db.connect(settings) as conn:
        record_application(conn, "acme/a")
        record_application(conn, "acme/a")
    file = tmp_path / "usage.json"
    capsys.readouterr()
    assert main([*base, "backup", str(file)]) == 0
    assert "backed up 1 usage rows" in capsys.readouterr().out
    with db.connect(settings) as conn:
        conn.execute("DELETE FROM persona_usage")
    assert main([*base, "restore", str(file), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["restored"] == 1 and doc["ok"] is True
    with db.connect(settings) as conn:
        row = conn.execute("SELECT application_count FROM persona_usage").fetchone()
    assert row == (2,)


def test_export_all_then_import_carries_a_sets_local_image(
    git_repo: GitRepoFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    git_repo.commit({
        "persona_sets/pictured/set.json":
            '{"name": "Pictured", "personas": [{"name": "Ana", "image_url": "images/ana.png"}]}',
        "persona_sets/pictured/images/ana.png": b"\x89PNG\r\n\x1a\n"}, "set")
    bundle = tmp_path / "bundle"
    assert main(["--repo", str(git_repo.path), "export", "--all", str(bundle)]) == 0
    other = GitRepoFactory.create(tmp_path / "other")
    assert main(["--repo", str(other.path), "import", str(bundle)]) == 0
    assert "persona_sets/pictured/set.json" in capsys.readouterr().out
    assert (other.path / "persona_sets/pictured/images/ana.png").read_bytes() == (
        b"\x89PNG\r\n\x1a\n")
    assert main(["--repo", str(other.path), "check"]) == 0
