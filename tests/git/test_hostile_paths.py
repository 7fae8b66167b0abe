"""Nothing in a content folder is skipped silently: dot-named files and folders, symlinked
files and folders (followed never, outside the repository or in), and invisible characters
in names are reported, the same way from a working tree and from a commit."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from maestro_git.cli import main
from maestro_git.core.models import SourceFile
from maestro_git.core.snapshot import build_snapshot
from maestro_git.git.repo import GitRepo
from maestro_git.git.worktree import read_worktree
from maestro_git.settings import Settings
from tests.factories import GitRepoFactory, persona_md

S = Settings()
SET = '{"personas": [{"name": "Zed", "age": 30}]}\n'


def _found(sources: list[SourceFile]) -> set[tuple[str, str]]:
    return {(p.path, p.rule) for p in build_snapshot(sources, S).problems
            if p.rule != "missing-id"}


def _both(repo: GitRepoFactory) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    commit = repo.commit(message="hostile paths")
    tree = _found(list(read_worktree(repo.path)))
    git = _found(list(GitRepo(repo.path).files_at(commit)))
    return tree, git


def test_dot_names_and_symlinked_folders_are_reported_from_disk_and_from_git(
        git_repo: GitRepoFactory, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "stolen.md").write_text(persona_md("Stolen"), encoding="utf-8")
    git_repo.write({
        "personas/acme/ok.md": persona_md("Ok"),
        "persona_sets/..%2F..%2Fescape.json": SET,
        "personas/acme/.sneaky.md": persona_md("Sneaky"),
        "personas/acme/.env": "TOKEN=x\n",
        "personas/.shadow/p.md": persona_md("Shadow"),
        "persona_sets/.cache/notes.txt": "x\n",
        "personas/acme/.gitkeep": "",
    })
    os.symlink(outside, git_repo.path / "personas/evil")  # an owner folder leaving the repo
    os.symlink("acme", git_repo.path / "personas/alias")  # an owner folder inside it
    os.symlink("../personas", git_repo.path / "persona_sets/loop")  # a set folder
    tree, git = _both(git_repo)
    expected = {
        ("persona_sets/..%2F..%2Fescape.json", "invalid-name"),
        ("personas/acme/.sneaky.md", "invalid-name"),
        ("personas/acme/.env", "hidden-file"),
        ("personas/.shadow/p.md", "invalid-name"),
        ("persona_sets/.cache/notes.txt", "hidden-file"),
        ("personas/evil", "symlink-escape"),
        ("personas/alias", "symlink"),
        ("persona_sets/loop", "symlink"),
    }
    assert tree == expected
    assert git == expected
    snap = build_snapshot(read_worktree(git_repo.path), S)
    assert "evil/stolen" not in snap.personas and set(snap.personas) <= {
        "acme/ok", "acme/.sneaky", ".shadow/p"}


def test_editor_droppings_are_not_read_from_a_working_tree(git_repo: GitRepoFactory) -> None:
    git_repo.commit({"personas/acme/ok.md": persona_md("Ok")})
    for name in (".ok.md.swp", ".#ok.md", "ok.md~", ".DS_Store", "4913"):
        (git_repo.path / "personas/acme" / name).write_text("x", encoding="utf-8")
    assert [s.path for s in read_worktree(git_repo.path)] == ["personas/acme/ok.md"]


def test_a_content_folder_that_is_a_link_is_never_followed(git_repo: GitRepoFactory,
                                                           tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    (outside / "acme").mkdir(parents=True)
    (outside / "acme/stolen.md").write_text(persona_md("Stolen"), encoding="utf-8")
    git_repo.write({"templates/t.md": persona_md("T")})
    os.symlink(outside, git_repo.path / "personas")
    tree, git = _both(git_repo)
    assert ("personas", "symlink-escape") in tree
    assert ("personas", "symlink-escape") in git
    sources = list(read_worktree(git_repo.path))
    assert not any(s.path.startswith("personas/") for s in sources)
    # asked for by name through the link: the link is reported, the file is not read
    [link] = list(read_worktree(git_repo.path, [git_repo.path / "personas/acme/stolen.md"]))
    assert (link.path, link.is_symlink, link.data) == ("personas", True, b"")


@pytest.mark.parametrize("name", ["re\u200bviewer", "review\u202egnp", "a\u2060b"])
def test_hidden_characters_in_file_and_folder_names_are_found(name: str) -> None:
    paths = [f"personas/acme/{name}.md", f"personas/{name}/x.md",
             f"persona_sets/t/images/{name}.png"]
    sources = [SourceFile(path=p, data=persona_md("X").encode()) for p in paths]
    problems = [p for p in build_snapshot(sources, S).problems if p.rule == "hidden-unicode"]
    assert sorted(p.path for p in problems) == sorted(paths)
    assert all(p.message.startswith("the path has hidden Unicode character U+") for p in problems)


def test_check_reports_them_with_a_non_zero_exit(git_repo: GitRepoFactory, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    git_repo.write({"persona_sets/..%2F..%2Fescape.json": SET, "personas/acme/.env": "x"})
    os.symlink(tmp_path, git_repo.path / "personas/evil")
    assert main(["--repo", str(git_repo.path), "check"]) == 1
    out = capsys.readouterr().out
    assert "persona_sets/..%2F..%2Fescape.json:1: error invalid-name: " in out
    assert "personas/acme/.env:1: warning hidden-file: is hidden (the file '.env' starts " \
           "with a dot)" in out
    assert "personas/evil:1: error symlink-escape: " in out


def test_a_name_that_is_not_utf8_is_unstorable_text() -> None:
    path = "persona_sets/t/images/a\udcff.png"  # how pygit2 hands over the byte 0xFF
    [problem] = build_snapshot([SourceFile(path=path, data=b"\x89PNG")], S).problems
    assert (problem.rule, problem.message) == (
        "unstorable-text", "the path 'persona_sets/t/images/a\\xff.png' is not valid UTF-8: "
        "PostgreSQL cannot store it, and tools show it differently")
