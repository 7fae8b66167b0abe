"""Agent-tool files in and out: folder import finds what a user has, export renders into a
consuming repository idempotently, and the round trips are byte-identical."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from maestro_git.core import tools
from maestro_git.errors import ConflictError, UsageError
from maestro_git.ops.exporter import export_target
from maestro_git.ops.importer import import_paths
from maestro_git.settings import Settings, load_settings
from tests.core.test_tools import REAL
from tests.factories import GitRepoFactory

# The formats one consuming repository holds at most one file of.
SINGLE = {f.id for f in tools.FORMATS.values() if f.single is not None}


def _settings(repo: GitRepoFactory) -> Settings:
    return load_settings(repo.path, environ={})


def _project(root: Path, files: dict[str, str | bytes]) -> Path:
    for rel, data in files.items():
        full = root / rel
        full.parent.mkdir(parents=True, exist_ok=True)
        full.write_bytes(data.encode() if isinstance(data, str) else data)
    return root


def test_folder_import_reads_exactly_the_instruction_files_and_notes_the_rest(
    git_repo: GitRepoFactory, tmp_path: Path
) -> None:
    chosen = [".claude/agents/code-reviewer.md", ".cursor/rules/frontend/typescript.mdc",
              ".github/agents/readme-creator.agent.md", ".github/copilot-instructions.md",
              ".github/instructions/typescript.instructions.md", "AGENTS.md"]
    project = _project(tmp_path / "app", {
        **{p: REAL[p] for p in chosen},
        "README.md": "# App\n", "docs/guide.md": "# Guide\n",
        "package.json": '{"name": "app", "version": "1.0.0"}',
        ".cursor/rules/old.md": "ignored by Cursor\n",
        "node_modules/x/AGENTS.md": "vendored\n",
    })
    result = import_paths(_settings(git_repo), [project], owner="acme")
    assert sorted(i.path for i in result.items) == [
        "personas/acme/agents.md", "personas/acme/code-reviewer.md",
        "personas/acme/copilot-instructions.md", "personas/acme/readme-creator.md",
        "personas/acme/typescript-copilot.md", "personas/acme/typescript.md"]
    assert sorted(i.source for i in result.items) == sorted((project / p).as_posix()
                                                            for p in chosen)
    assert sorted((Path(p).relative_to(project).as_posix(), why)
                  for p, why in result.skipped) == [
        (".cursor/rules/old.md", "Cursor ignores .md files in .cursor/rules (rules are .mdc)"),
        ("README.md", "not an instruction file of a known tool (name it explicitly to "
                      "import it)"),
        ("docs/guide.md", "not an instruction file of a known tool (name it explicitly to "
                          "import it)"),
        ("package.json", "JSON that is not a persona set"),
    ]
    reviewer = (git_repo.path / "personas/acme/code-reviewer.md").read_text()
    assert "model: inherit\ntools: [Read, Grep, Glob, Bash]\n" in reviewer
    assert "metadata:\n  claude: {permissionMode: plan, color: blue}\n" in reviewer


def test_a_readme_named_explicitly_is_imported(git_repo: GitRepoFactory, tmp_path: Path
                                               ) -> None:
    project = _project(tmp_path / "bot", {"README.md": "# Bot\n\nYou are a bot.\n"})
    result = import_paths(_settings(git_repo), [project / "README.md"], owner="acme")
    assert [i.key for i in result.items] == ["acme/bot"]


@pytest.mark.parametrize("path", sorted(REAL))
def test_import_then_export_gives_back_the_file_byte_for_byte(
    git_repo: GitRepoFactory, tmp_path: Path, path: str
) -> None:
    fmt = tools.detect(path)
    assert fmt is not None
    project = _project(tmp_path / "in", {path: REAL[path]})
    result = import_paths(_settings(git_repo), [project / path], owner="acme")
    key = result.items[0].key
    git_repo.commit(message="import")
    out = tmp_path / "out"
    first = export_target(_settings(git_repo), fmt.id, out, keys=[key])
    assert first.written == (fmt.path_for(key.split("/")[1]),)
    exported = (out / first.written[0]).read_bytes()
    stripped, named = tools.strip_generated(exported.decode())
    assert named == key
    assert stripped.encode() == REAL[path].encode()
    assert f"at {git_repo.head()[:12]};" in exported.decode()
    # ... and export -> import -> export again, in another repository: the same bytes (only
    # the commit named in the generated-by line is that repository's).
    other = GitRepoFactory.create(tmp_path / "other")
    import_paths(load_settings(other.path, environ={}), [out / first.written[0]],
                 owner="acme", name=key.split("/")[1])
    other.commit(message="import the export")
    again = tmp_path / "again"
    second = export_target(load_settings(other.path, environ={}), fmt.id, again, keys=[key])
    data = (again / second.written[0]).read_bytes()
    assert data == exported.replace(git_repo.head()[:12].encode(), other.head()[:12].encode())


def _persona(body: str = "# Reviewer\n\nYou review code.\n", **extra: str) -> str:
    lines = "".join(f"{k}: {v}\n" for k, v in extra.items())
    return f"---\ndescription: Reviews code\n{lines}---\n{body}"


def test_export_is_idempotent_removes_what_it_generated_and_check_sees_staleness(
    git_repo: GitRepoFactory, tmp_path: Path
) -> None:
    git_repo.commit({"personas/acme/reviewer.md": _persona(model="sonnet"),
                     "personas/acme/writer.md": _persona("# W\n\nYou write.\n"),
                     "personas/acme/old.md": _persona(active="false")})
    settings = _settings(git_repo)
    out = tmp_path / "app"
    first = export_target(settings, "claude", out)
    assert first.written == (".claude/agents/reviewer.md", ".claude/agents/writer.md")
    (out / ".claude/agents/mine.md").write_text("---\ndescription: hand written\n---\nx\n")
    git_repo.commit({"README.md": "unrelated change\n"})
    again = export_target(_settings(git_repo), "claude", out)
    assert (again.written, again.stale, again.removed) == ((), (), ())
    assert export_target(settings, "claude", out, check=True).stale == ()
    git_repo.commit({"personas/acme/writer.md": None,
                     "personas/acme/reviewer.md": _persona(model="opus")})
    check = export_target(_settings(git_repo), "claude", out, check=True)
    assert check.stale == (".claude/agents/reviewer.md", ".claude/agents/writer.md")
    assert (out / ".claude/agents/writer.md").exists()
    done = export_target(_settings(git_repo), "claude", out)
    assert (done.written, done.removed) == ((".claude/agents/reviewer.md",),
                                            (".claude/agents/writer.md",))
    assert (out / ".claude/agents/mine.md").exists()
    assert "model: opus\n" in (out / ".claude/agents/reviewer.md").read_text()


def test_export_resolves_inheritance_and_refuses_a_hand_written_file(
    git_repo: GitRepoFactory, tmp_path: Path
) -> None:
    git_repo.commit({"personas/acme/base.md": _persona("# Base\n\nYou are careful.\n"),
                     "personas/acme/child.md": _persona("## Extra\n\nAlso kind.\n",
                                                        extends="acme/base")})
    out = tmp_path / "app"
    export_target(_settings(git_repo), "agents-md", out, keys=["acme/child"])
    text = (out / "AGENTS.md").read_text()
    assert "You are careful." in text and "Also kind." in text
    with pytest.raises(UsageError, match="AGENTS.md holds one persona; 2 are selected"):
        export_target(_settings(git_repo), "agents-md", out)
    (out / "GEMINI.md").write_text("# mine\n")
    with pytest.raises(ConflictError, match="GEMINI.md exists and was not generated"):
        export_target(_settings(git_repo), "gemini", out, keys=["acme/base"])


def test_a_persona_the_tool_would_drop_is_not_written_and_says_why(
    git_repo: GitRepoFactory, tmp_path: Path
) -> None:
    git_repo.commit({"personas/acme/a.md": "---\nmetadata:\n  claude:\n    hooks: []\n---\n"
                                           "# A\n\nYou are a.\n"})
    result = export_target(_settings(git_repo), "claude", tmp_path / "app")
    assert result.written == ()
    assert [(p.rule, p.message) for p in result.problems] == [
        ("tool-required-key", "acme/a: no 'description': a Claude Code subagent without it "
                              "is ignored by the tool"),
        ("tool-dropped-file", "acme/a: 'hooks: []' is not a mapping of hook events: Claude "
                              "Code silently drops the whole agent")]


def test_import_static_copies_each_image_and_rewrites_its_url(
    git_repo: GitRepoFactory, tmp_path: Path
) -> None:
    service = tmp_path / "pep-be"
    doc = {"name": "Clinic", "personas": [
        {"name": "Ana", "image_url": "/static/images/personas/persona_1.png"},
        {"name": "Zoë", "image_url": "/static/images/personas/persona_2.png", "age": 40}],
        "metadata": {"validation_scores": {"flagged": 3}, "status": "validated"}}
    text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    _project(service, {"default_personas_clinic.json": text,
                       "static/images/personas/persona_1.png": b"\x89PNG1",
                       "static/images/personas/persona_2.png": b"\x89PNG2"})
    result = import_paths(_settings(git_repo), [service / "default_personas_clinic.json"],
                          static=service / "static")
    assert [(i.key, sorted(i.assets)) for i in result.items] == [
        ("clinic", ["persona_sets/clinic/images/persona_1.png",
                    "persona_sets/clinic/images/persona_2.png"])]
    written = (git_repo.path / "persona_sets/clinic/set.json").read_text()
    assert written == text.replace("/static/images/personas/", "images/")
    assert (git_repo.path / "persona_sets/clinic/images/persona_2.png").read_bytes() == b"\x89PNG2"
    assert [p for p in result.problems if p.severity != "info"] == []


def test_claude_rules_and_the_import_chains_of_claude_md_on_import(
    git_repo: GitRepoFactory, tmp_path: Path
) -> None:
    project = _project(tmp_path / "app", {
        ".claude/rules/frontend/react.md": REAL[".claude/rules/frontend/react.md"],
        ".claude/rules/style.md": "# Style\n\nUse ruff.\n",
        ".claude/rules/old.mdc": "---\nglobs: x\n---\nold\n",
        "CLAUDE.md": "# Memory\n\n@docs/a.md\n\n@docs/gone.md\n",
        "docs/a.md": "@b.md\n", "docs/b.md": "@a.md\n",
    })
    result = import_paths(_settings(git_repo), [project], owner="acme")
    assert sorted(i.key for i in result.items) == ["acme/claude", "acme/react", "acme/style"]
    assert [(Path(p).relative_to(project).as_posix(), why) for p, why in result.skipped
            if ".claude" in p] == [(".claude/rules/old.mdc",
                                    "Claude Code reads only .md files in .claude/rules")]
    react = (git_repo.path / "personas/acme/react.md").read_text()
    assert "metadata:\n  claude:\n    paths: [src/**/*.tsx, tests/**/*.tsx]\n" in react \
        or "claude: {paths: [" in react
    chains = [(p.rule, p.message) for p in result.problems
              if p.rule in ("tool-import-cycle", "tool-import-missing")
              and p.severity.value == "warning"]
    assert chains == [
        ("tool-import-cycle", "the @imports loop: CLAUDE.md → docs/a.md → docs/b.md → "
                              "docs/a.md; Claude Code stops at the file it has already read"),
        ("tool-import-missing", "@docs/gone.md in CLAUDE.md names no file (docs/gone.md); "
                                "Claude Code loads nothing for it")]


def test_export_to_claude_md_follows_the_imports_through_the_consuming_repository(
    git_repo: GitRepoFactory, tmp_path: Path
) -> None:
    git_repo.commit({"personas/acme/memory.md": _persona("# Memory\n\n@docs/1.md\n")})
    out = _project(tmp_path / "app", {
        **{f"docs/{i}.md": f"@{i + 1}.md\n" for i in range(1, 6)}, "docs/6.md": "deep\n"})
    for check in (True, False):
        result = export_target(_settings(git_repo), "claude-md", out, keys=["acme/memory"],
                               check=check)
        assert [(p.rule, p.path) for p in result.problems] == [
            ("tool-import-depth", "CLAUDE.md")]
        assert "docs/6.md is never loaded" in result.problems[0].message
    assert (out / "CLAUDE.md").is_file()
