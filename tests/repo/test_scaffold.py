"""scaffold: init, new and fmt on real working trees."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from maestro_git.core.formats import split_frontmatter
from maestro_git.core.inherit import resolve
from maestro_git.core.models import Severity
from maestro_git.core.snapshot import Snapshot, build_snapshot
from maestro_git.errors import NotFoundError, UsageError
from maestro_git.git.worktree import read_worktree
from maestro_git.repo.scaffold import (
    DEFAULT_CONFIG,
    builtin_templates,
    find_template,
    format_files,
    init_repository,
    list_templates,
    new_persona,
)
from maestro_git.settings import Settings, load_settings
from tests.factories import GitRepoFactory, persona_md


def _snapshot(root: Path) -> Snapshot:
    return build_snapshot(read_worktree(root), Settings(repo_path=root))


def _errors(snap: Snapshot) -> list[str]:
    return [f"{p.location()} {p.rule}: {p.message}" for p in snap.problems
            if p.severity is Severity.ERROR]


FIXED_ID = "2f1c0000-0000-4000-8000-000000000001"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    init_repository(tmp_path / "repo")
    return tmp_path / "repo"


def test_init_produces_a_repository_that_checks_clean(tmp_path: Path) -> None:
    result = init_repository(tmp_path / "new")
    root = tmp_path / "new"
    assert (root / "personas").is_dir() and (root / "persona_sets").is_dir()
    assert sorted(p.stem for p in (root / "templates").glob("*.md")) == sorted(
        builtin_templates())
    assert ".maestro/" in (root / ".gitignore").read_text().splitlines()
    assert (root / "maestro.toml").read_text() == DEFAULT_CONFIG
    assert "maestro.toml" in result.created and result.git_initialized
    assert (root / ".git").is_dir()
    snap = _snapshot(root)
    assert len(snap.templates) == len(builtin_templates())
    assert _errors(snap) == []


def test_default_config_spells_out_the_defaults(tmp_path: Path) -> None:
    (tmp_path / "maestro.toml").write_text(DEFAULT_CONFIG)
    loaded = load_settings(tmp_path, environ={})
    assert loaded == Settings(repo_path=tmp_path.resolve(), index_dir=Path(".maestro/index"))


def test_init_twice_adds_nothing_and_keeps_edits(repo: Path) -> None:
    (repo / "maestro.toml").write_text("[sync]\nbranch = 'trunk'\n")
    (repo / "templates" / "code_reviewer.md").write_text("edited")
    again = init_repository(repo)
    assert again.created == ()
    assert (repo / "maestro.toml").read_text() == "[sync]\nbranch = 'trunk'\n"
    assert (repo / "templates" / "code_reviewer.md").read_text() == "edited"


def test_init_appends_to_an_existing_gitignore(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text("node_modules/")
    init_repository(tmp_path)
    assert (tmp_path / ".gitignore").read_text() == "node_modules/\n.maestro/\n"


def test_init_knows_a_git_repository(git_repo: GitRepoFactory) -> None:
    assert not init_repository(git_repo.path).git_initialized


def test_init_refuses_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(UsageError):
        init_repository(tmp_path / "f")


@pytest.mark.parametrize("template", sorted(builtin_templates()))
def test_new_from_every_template_validates_clean(repo: Path, template: str) -> None:
    path = new_persona(repo, f"acme/my_{template}", template=template)
    assert path == repo / "personas" / "acme" / f"my_{template}.md"
    snap = _snapshot(repo)
    assert _errors(snap) == []
    persona = snap.personas[f"acme/my_{template}"]
    tpl = find_template(repo, template)
    assert persona.body == tpl.body
    assert persona.version == "1.0.0" and persona.id and len(persona.id) == 36
    assert persona.tags == tpl.tags and persona.description == tpl.description
    assert persona.metadata == {"category": tpl.category, "template": template}


def test_new_without_template_writes_a_valid_skeleton(repo: Path) -> None:
    new_persona(repo, "acme/release_bot", tags=["release"], new_id=FIXED_ID)
    text = (repo / "personas/acme/release_bot.md").read_text()
    assert text.startswith(f'---\nid: {FIXED_ID}\ndisplay_name: Release Bot\nversion: "1.0.0"\n'
                           "tags: [release]\n---\n# Release Bot\n\nYou are Release Bot.")
    assert _errors(_snapshot(repo)) == []


def test_new_ids_are_unique(repo: Path) -> None:
    ids = {_snapshot_id(repo, new_persona(repo, f"acme/p{i}")) for i in range(3)}
    assert len(ids) == 3


def _snapshot_id(root: Path, path: Path) -> str:
    yaml_text = split_frontmatter(path.read_text())[0] or ""
    return next(line for line in yaml_text.splitlines() if line.startswith("id:"))


def test_new_with_extends_resolves_through_the_parent(repo: Path) -> None:
    new_persona(repo, "platform/base", description="Base")
    new_persona(repo, "acme/child", template="code_reviewer", extends="platform/base")
    snap = _snapshot(repo)
    assert _errors(snap) == []
    assert resolve("acme/child", snap.personas).chain == ("platform/base", "acme/child")


@pytest.mark.parametrize(("key", "kwargs", "error", "message"), [
    ("acme", {}, UsageError, "'acme' is not a persona key"),
    ("Acme/x", {}, UsageError, "owner 'Acme' must be 1-100 characters of a-z, 0-9, _ and -"),
    ("acme/My Bot", {}, UsageError, "name 'My Bot' must be 1-100 characters"),
    ("acme/x", {"template": "nope"}, NotFoundError, "no template named 'nope'"),
    ("acme/x", {"extends": "platform/missing"}, NotFoundError,
     "parent persona 'platform/missing' does not exist"),
])
def test_new_refuses_bad_input(repo: Path, key: str, kwargs: dict[str, str],
                               error: type[Exception], message: str) -> None:
    with pytest.raises(error) as info:
        new_persona(repo, key, **kwargs)  # type: ignore[arg-type]
    assert str(info.value).startswith(message)
    assert not (repo / "personas" / "acme" / "x.md").exists()


def test_new_refuses_an_existing_key(repo: Path) -> None:
    new_persona(repo, "acme/x", description="first")
    before = (repo / "personas/acme/x.md").read_bytes()
    with pytest.raises(UsageError, match="persona acme/x already exists"):
        new_persona(repo, "acme/x", description="second")
    assert (repo / "personas/acme/x.md").read_bytes() == before


def test_repository_template_overrides_the_builtin_one(repo: Path) -> None:
    (repo / "templates" / "code_reviewer.md").write_text(
        "---\ndisplay_name: Ours\ncategory: qa\n---\n# Ours\n\nYou are ours.\n")
    (repo / "templates" / "house_style.md").write_text("---\n---\n# House\n\nYou are house.\n")
    entries = {e.template.name: e for e in list_templates(repo)}
    assert entries["code_reviewer"].source == "repository"
    assert entries["code_reviewer"].template.display_name == "Ours"
    assert entries["house_style"].source == "repository"
    assert entries["data_scientist"].source == "repository"  # init copied it
    (repo / "templates" / "data_scientist.md").unlink()
    assert {e.template.name: e.source for e in list_templates(repo)}["data_scientist"] \
        == "builtin"
    new_persona(repo, "acme/x", template="code_reviewer")
    assert (repo / "personas/acme/x.md").read_text().endswith("# Ours\n\nYou are ours.\n")


def test_format_files_assigns_missing_ids_and_is_idempotent(repo: Path) -> None:
    commented = ("---\n# reviewed\ndisplay_name: A  # shown in the UI\n"
                 "tags: [x]\nversion: 1.0\n---\n# A\n\nYou are A.\n")
    (repo / "personas/acme").mkdir(parents=True)
    (repo / "personas/acme/a.md").write_text(commented)
    (repo / "personas/acme/b.md").write_text(persona_md("B", id=FIXED_ID))
    report = format_files(repo)
    assert [c.path for c in report.changes] == ["personas/acme/a.md"]
    assert report.checked == 2 + len(builtin_templates())
    text = (repo / "personas/acme/a.md").read_text()
    assert text.replace(text.splitlines()[1] + "\n", "", 1) == commented.replace(
        "version: 1.0", 'version: "1.0.0"')
    assert text.splitlines()[1].startswith("id: ")
    assert format_files(repo).changes == ()
    assert _errors(_snapshot(repo)) == []


def test_format_check_mode_writes_nothing(repo: Path) -> None:
    (repo / "personas/acme").mkdir(parents=True)
    (repo / "personas/acme/a.md").write_text("---\ndisplay_name: A\n---\nYou are A.\n")
    report = format_files(repo, check=True)
    assert [c.path for c in report.changed] == ["personas/acme/a.md"] and not report.written
    assert (repo / "personas/acme/a.md").read_text() == "---\ndisplay_name: A\n---\nYou are A.\n"


def test_format_reports_unreadable_files_and_leaves_them(repo: Path) -> None:
    (repo / "personas/acme").mkdir(parents=True)
    (repo / "personas/acme/bad.md").write_text("---\ndisplay_name: [x\n---\nbody\n")
    report = format_files(repo, [repo / "personas"])
    assert report.checked == 1
    assert [c.path for c in report.failed] == ["personas/acme/bad.md"]
    assert report.failed[0].error is not None
    assert report.failed[0].error.startswith("frontmatter is not valid YAML")
    assert (repo / "personas/acme/bad.md").read_text() == "---\ndisplay_name: [x\n---\nbody\n"


def test_format_never_writes_through_a_symlink(repo: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.md"
    outside.write_text("---\ndisplay_name: O\n---\nYou are O.\n")
    (repo / "personas/acme").mkdir(parents=True)
    os.symlink(outside, repo / "personas/acme/link.md")
    report = format_files(repo)
    assert report.changes == ()
    assert outside.read_text() == "---\ndisplay_name: O\n---\nYou are O.\n"


def test_format_refuses_paths_outside_the_repository(repo: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="outside the repository"):
        format_files(repo, [tmp_path])


def test_new_extends_writes_a_child_that_adds_to_its_parent(tmp_path: Path) -> None:
    from maestro_git.repo.scaffold import init_repository as init_repo
    from maestro_git.repo.scaffold import new_persona as make

    init_repo(tmp_path)
    make(tmp_path, "acme/base")
    make(tmp_path, "acme/kid", extends="acme/base")
    snap = build_snapshot(read_worktree(tmp_path), Settings(repo_path=tmp_path))
    parent, kid = snap.personas["acme/base"], snap.personas["acme/kid"]
    effective = resolve("acme/kid", snap.personas).body
    assert effective.startswith(parent.body.rstrip("\n"))  # nothing of the parent replaced
    assert effective.endswith(kid.body) and kid.body.startswith("## Kid\n")
    assert not [p for p in snap.problems if p.path == kid.path]
