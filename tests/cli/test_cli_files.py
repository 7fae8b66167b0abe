"""The working-tree commands end to end through `maestro_git.cli.main`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from maestro_git.cli import main
from maestro_git.repo.scaffold import builtin_templates, init_repository, new_persona
from tests.factories import persona_md

COMMANDS = ["init", "new", "check", "fmt", "show", "list", "templates"]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    init_repository(root)
    new_persona(root, "platform/base", description="The base", tags=["base"])
    new_persona(root, "acme/dev", template="developer_assistant", extends="platform/base")
    new_persona(root, "acme/reviewer", template="code_reviewer", extends="acme/dev",
                tags=["python", "review"])
    return root


def run(repo: Path, *args: str) -> int:
    return main(["--repo", str(repo), *args])


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_explains_itself(command: str, capsys: pytest.CaptureFixture[str]
                                       ) -> None:
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Usage: maestro {command}")
    assert "Example:" in out


def test_init_scaffolds_and_initializes_git(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", str(tmp_path / "p")]) == 0
    captured = capsys.readouterr()
    assert "created maestro.toml" in captured.out
    assert "initialized a git repository (branch main)" in captured.out
    assert main(["init", str(tmp_path / "p"), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["created"] == [] and data["git_initialized"] is False


def test_init_on_a_file_is_a_usage_error(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "f").write_text("")
    assert main(["init", str(tmp_path / "f")]) == 2
    assert "is a file" in capsys.readouterr().err


def test_new_creates_the_file_and_check_passes(repo: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert run(repo, "new", "acme/writer", "--template", "technical_writer",
               "--tag", "docs", "--display-name", "Docs Writer") == 0
    assert capsys.readouterr().out == "created personas/acme/writer.md\n"
    text = (repo / "personas/acme/writer.md").read_text()
    assert "display_name: Docs Writer\n" in text and "tags: [docs]\n" in text
    assert run(repo, "check") == 0


def test_new_refuses_an_existing_key_with_exit_2(repo: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert run(repo, "new", "acme/dev") == 2
    err = capsys.readouterr().err
    assert err.splitlines()[0] == "error: persona acme/dev already exists (personas/acme/dev.md)"


def test_new_with_unknown_template_exits_3_and_lists_templates(
        repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(repo, "new", "acme/x", "-t", "nope", "--format", "json") == 3
    err = capsys.readouterr().err
    assert "error: no template named 'nope'" in err and "code_reviewer" in err


def test_check_formats_and_exit_codes(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(repo, "check", "--format", "json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["errors"] == 0 and report["files"] == 3 + len(builtin_templates())
    (repo / "personas/acme/broken.md").write_text("---\ndisplay_name: [x\n---\nbody\n")
    assert run(repo, "check") == 1
    captured = capsys.readouterr()
    assert captured.out.startswith("personas/acme/broken.md:")
    assert "error yaml-syntax" in captured.out and "1 errors" in captured.err
    assert run(repo, "check", "--format", "github") == 1
    assert capsys.readouterr().out.startswith("::error file=personas/acme/broken.md,line=")
    assert run(repo, "check", str(repo / "templates")) == 0


def test_fmt_check_fails_until_fmt_has_run(repo: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    original = persona_md("Tmp", version="1.0.0").replace("---\n", "---\n# keep me\n", 1)
    (repo / "personas/acme/tmp.md").write_text(original)
    assert run(repo, "fmt", "--check") == 1
    out = capsys.readouterr().out
    assert out.startswith("personas/acme/tmp.md: would change: assigned id ")
    assert (repo / "personas/acme/tmp.md").read_text() == original
    assert run(repo, "fmt", "--format", "json") == 0
    report = json.loads(capsys.readouterr().out)
    assert [c["path"] for c in report["changed"]] == ["personas/acme/tmp.md"]
    lines = (repo / "personas/acme/tmp.md").read_text().splitlines()
    # the id goes first, above the comment block heading the first key
    assert lines[0] == "---" and lines[1].startswith("id: ") and lines[2] == "# keep me"
    assert "\n".join(lines[:1] + lines[2:]) + "\n" == original
    assert run(repo, "fmt", "--check") == 0


def test_fmt_exits_1_on_an_unreadable_file(repo: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    (repo / "personas/acme/bad.md").write_text("---\n- a\n---\nbody\n")
    assert run(repo, "fmt") == 1
    assert "personas/acme/bad.md: error: frontmatter must be a mapping" in (
        capsys.readouterr().err)


def test_show_prints_the_file_or_the_resolved_instruction(
        repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(repo, "show", "acme/reviewer") == 0
    assert capsys.readouterr().out == (repo / "personas/acme/reviewer.md").read_text()
    assert run(repo, "show", "acme/reviewer", "--resolved") == 0
    body = capsys.readouterr().out
    assert not body.startswith("---")
    assert "## Communication Style" in body and "## Expertise Areas" in body
    assert body.startswith("# Code Reviewer Persona")


def test_show_json_has_the_record_and_the_chain(repo: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert run(repo, "show", "acme/reviewer", "--resolved", "--format", "json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["kind"] == "persona" and data["key"] == "acme/reviewer"
    assert data["extends"] == "acme/dev" and data["tags"] == ["python", "review"]
    assert data["resolved"]["chain"] == ["platform/base", "acme/dev", "acme/reviewer"]
    assert run(repo, "show", "code_reviewer", "--format", "json") == 0
    assert json.loads(capsys.readouterr().out)["category"] == "development"


def test_show_html_is_sanitised_and_keeps_the_markdown_structure(
        repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(repo, "show", "acme/reviewer", "--resolved", "--format", "html") == 0
    html = capsys.readouterr().out
    assert html.startswith("<h1>Code Reviewer Persona</h1>") and "<h2>" in html
    assert run(repo, "show", "code_reviewer", "--format", "html") == 0
    assert "<h1>" in capsys.readouterr().out


def test_render_html_drops_scripts_handlers_and_script_urls() -> None:
    from maestro_git.core.render import render_html

    html = render_html("# T\n\n> quoted\n\n```python\nx = '<b>'\n```\n\n"
                       "<script>alert(1)</script>\n\n<img src=x onerror=alert(1)> "
                       "<a href=\"javascript:alert(1)\">x</a> <https://example.com>\n")
    assert "<script" not in html and "onerror" not in html and "javascript:" not in html
    assert "<blockquote>" in html and '<code class="language-python">' in html
    assert "x = '&lt;b&gt;'" in html or "x = &#x27;&lt;b&gt;&#x27;" in html
    assert '<a href="https://example.com" rel="noopener noreferrer">' in html


def test_show_errors(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(repo, "show", "acme/nobody") == 3
    assert capsys.readouterr().err.startswith("error: no persona, template or persona set")
    assert run(repo, "show", "code_reviewer", "--resolved") == 2
    assert capsys.readouterr().err == (
        "error: 'code_reviewer' is not a persona: only personas have an extends chain\n")
    (repo / "personas/acme/loop.md").write_text(persona_md("Loop", extends="acme/loop"))
    assert run(repo, "show", "acme/loop", "--resolved") == 1
    assert capsys.readouterr().err.startswith("error: cannot resolve 'acme/loop'")
    (repo / "personas/acme/bad.md").write_text("---\n- a\n---\nbody\n")
    assert run(repo, "show", "acme/bad") == 1
    assert "run 'maestro check personas/acme/bad.md'" in capsys.readouterr().err


def test_list_filters_by_owner_and_tag(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(repo, "list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["KEY", "VERSION", "ACTIVE"]
    assert [line.split()[0] for line in lines[1:]] == [
        "acme/dev", "acme/reviewer", "platform/base"]
    assert run(repo, "list", "--owner", "acme", "--tag", "python", "--format", "json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["key"] for r in rows] == ["acme/reviewer"]
    assert rows[0]["extends"] == "acme/dev" and rows[0]["path"] == "personas/acme/reviewer.md"
    assert run(repo, "list", "--tag", "python", "--tag", "nope") == 0
    captured = capsys.readouterr()
    assert captured.out == "" and "no personas match" in captured.err


def test_templates_lists_repository_and_builtin_templates(
        repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (repo / "templates/data_scientist.md").unlink()
    assert run(repo, "templates", "--format", "json") == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == set(builtin_templates())
    assert rows["data_scientist"]["source"] == "builtin"
    assert rows["code_reviewer"]["source"] == "repository"
    assert run(repo, "templates") == 0
    assert capsys.readouterr().out.startswith("NAME")


def test_check_warns_when_a_child_wipes_its_parents_sections_with_placeholders(
        repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The last wave's `new --extends` wrote the blank scaffold: its title, principles and
    # style sections replaced acme/reviewer's real ones in the effective instruction.
    (repo / "personas/acme/child.md").write_text(persona_md(
        "Child", extends="acme/reviewer",
        body="# Child\n\nYou are Child. Describe here who you are.\n\n"
             "## Core Principles\n- Be accurate, and say so when you are not sure\n"))
    assert run(repo, "check", "--format", "json") == 0  # a warning, not an error
    report = json.loads(capsys.readouterr().out)
    found = [p for p in report["problems"] if p["rule"] == "placeholder-override"]
    assert {p["path"] for p in found} == {"personas/acme/child.md"}
    assert any("'## Core Principles' replaces acme/reviewer's with placeholder text"
               in p["message"] for p in found)
    text = (repo / "personas/acme/child.md").read_text().splitlines()
    assert all(text[p["line"] - 1].startswith("#") for p in found)


def test_new_extends_writes_a_child_that_check_does_not_warn_about(
        repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(repo, "new", "acme/child2", "--extends", "acme/reviewer") == 0
    capsys.readouterr()
    assert run(repo, "check", "--format", "json") == 0
    report = json.loads(capsys.readouterr().out)
    assert [p for p in report["problems"] if p["rule"] == "placeholder-override"] == []
