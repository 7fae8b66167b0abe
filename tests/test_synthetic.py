"""The synthetic repository generator: deterministic, realistic history, valid content."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pygit2
import pytest

from maestro_git.core.snapshot import build_snapshot
from maestro_git.git.repo import GitRepo
from maestro_git.git.worktree import read_worktree
from maestro_git.settings import Settings
from scripts.synthetic import GeneratedRepo, generate_repository

SMALL = {"personas": 50, "sets": 5, "commits": 60}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> GeneratedRepo:
    return generate_repository(tmp_path_factory.mktemp("synthetic") / "repo", **SMALL, seed=7,
                               invalid_commits=True)


def _walk(path: Path, head: str) -> list[pygit2.Commit]:
    repo = pygit2.Repository(str(path))
    return list(repo.walk(pygit2.Oid(hex=head), pygit2.enums.SortMode.TOPOLOGICAL))


def _version(data: bytes) -> tuple[int, ...]:
    for line in data.decode().splitlines():
        if line.startswith("version:"):
            return tuple(int(x) for x in line.split('"')[1].split("."))
    raise AssertionError("no version line")


def test_same_seed_gives_the_same_head_and_another_seed_does_not(tmp_path: Path) -> None:
    first = generate_repository(tmp_path / "a", **SMALL, seed=3, checkout=False)
    again = generate_repository(tmp_path / "b", **SMALL, seed=3, checkout=False)
    other = generate_repository(tmp_path / "c", **SMALL, seed=4, checkout=False)
    tree = [pygit2.Repository(str(g.path))[g.head].peel(pygit2.Tree).id
            for g in (first, again, other)]
    assert first.head == again.head
    assert tree[0] == tree[1] != tree[2]


def test_sizes_are_exactly_as_asked(generated: GeneratedRepo) -> None:
    snap = build_snapshot(GitRepo(generated.path).files_at(generated.head),
                          Settings(repo_path=generated.path))
    assert (len(snap.personas), len(snap.sets), len(snap.templates)) == (50, 5, 4)
    assert (generated.personas, generated.sets, generated.commits) == (50, 5, 60)
    assert len(_walk(generated.path, generated.head)) == 60


def test_every_file_at_the_head_validates_clean(generated: GeneratedRepo) -> None:
    snap = build_snapshot(read_worktree(generated.path), Settings(repo_path=generated.path))
    assert len(snap.personas) == 50
    assert snap.problems == ()
    ids = [p.id for p in snap.personas.values()]
    assert all(ids) and len(set(ids)) == len(ids)


def test_history_has_merges_renames_moves_deletes_and_adds(generated: GeneratedRepo) -> None:
    git = GitRepo(generated.path)
    merges = renames = moves = deletes = 0
    for commit in _walk(generated.path, generated.head):
        if len(commit.parents) == 2:
            merges += 1
        if len(commit.parents) != 1:
            continue
        delta = git.changed_files(str(commit.parent_ids[0]), str(commit.id))
        for old, new in delta.renames.items():
            renames += 1
            moves += old.split("/")[1] != new.split("/")[1]
            old_id = git.read_file(str(commit.parent_ids[0]), old)
            new_id = git.read_file(str(commit.id), new)
            assert old_id is not None and new_id is not None
            assert old_id.splitlines()[1] == new_id.splitlines()[1]  # the `id:` line survives
        deletes += sum(1 for p in delta.removed if p not in delta.renames)
    assert merges >= 1 and merges == generated.merges
    assert renames >= 1 and moves >= 1 and deletes >= 1
    assert generated.adds >= 1


def test_a_version_is_raised_on_every_edit(generated: GeneratedRepo) -> None:
    git = GitRepo(generated.path)
    checked = 0
    for commit in _walk(generated.path, generated.head):
        if len(commit.parents) != 1 or str(commit.id) in generated.invalid_commits:
            continue
        parent = str(commit.parent_ids[0])
        if parent in generated.invalid_commits:
            parent = str(pygit2.Repository(str(generated.path))[parent].parent_ids[0])
        for src in git.changed_files(parent, str(commit.id)).changed:
            before = git.read_file(parent, src.path)
            if src.path.endswith(".md") and before is not None:
                assert _version(src.data) > _version(before), (commit.id, src.path)
                checked += 1
    assert checked >= 20


def test_extends_chains_are_acyclic_and_at_most_four_deep(generated: GeneratedRepo) -> None:
    snap = build_snapshot(read_worktree(generated.path), Settings(repo_path=generated.path))
    depths = []
    for persona in snap.personas.values():
        depth, current = 0, persona
        while current.extends is not None:
            depth += 1
            assert depth <= 4, persona.key
            current = snap.personas[current.extends]
        depths.append(depth)
    assert max(depths) >= 1


def test_invalid_commits_are_broken_and_the_next_commit_fixes_them(
        generated: GeneratedRepo) -> None:
    git = GitRepo(generated.path)
    settings = Settings(repo_path=generated.path)
    children = {str(c.parent_ids[0]): str(c.id) for c in _walk(generated.path, generated.head)
                if c.parents}
    assert generated.invalid_commits
    for broken in generated.invalid_commits:
        assert not build_snapshot(git.files_at(broken), settings).ok
        assert build_snapshot(git.files_at(children[broken]), settings).ok


def test_persona_sets_have_the_persona_set_service_shape(generated: GeneratedRepo) -> None:
    for name in generated.sample_sets:
        doc = json.loads((generated.path / "persona_sets" / name / "set.json").read_text())
        member = doc["personas"][0]
        assert {"name", "age", "occupation", "image_url", "image_prompt"} <= member.keys()
        meta = doc["metadata"]
        assert {"rqe_scores", "diversity_score", "validation_scores",
                "generation_cycle"} <= meta.keys()
        assert meta["status"] in ("generated", "expanded", "validated")


def test_hot_persona_collects_many_versions(tmp_path: Path) -> None:
    gen = generate_repository(tmp_path / "r", personas=200, sets=2, commits=200,
                              checkout=False)
    assert gen.hot_persona_versions >= 5
    assert gen.hot_persona in {k for k in gen.sample_personas} | {gen.hot_persona}
    assert not any((gen.path / "personas").glob("*"))  # checkout=False: no working tree


@pytest.mark.skipif(shutil.which("git") is None, reason="needs the git command")
def test_git_itself_accepts_the_written_pack(generated: GeneratedRepo) -> None:
    fsck = subprocess.run(["git", "-C", str(generated.path), "fsck", "--strict"],
                          capture_output=True, text=True, check=False)
    assert fsck.returncode == 0, fsck.stderr
    status = subprocess.run(["git", "-C", str(generated.path), "status", "--porcelain"],
                            capture_output=True, text=True, check=True)
    assert status.stdout == ""


def test_refuses_a_folder_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "x").write_text("occupied")
    with pytest.raises(ValueError, match="not empty"):
        generate_repository(tmp_path, personas=5, sets=0, commits=3)


@pytest.mark.slow
def test_bench_reports_the_check_and_git_sections_on_a_small_repository(tmp_path: Path) -> None:
    script = Path(__file__).resolve().parent.parent / "scripts" / "bench.py"
    args = ["--personas", "40", "--sets", "2", "--commits", "20", "--only", "check,git",
            "--quick", "--format", "json", "--keep", str(tmp_path)]
    run = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True,
                         check=False, timeout=120)
    assert run.returncode == 0, run.stderr
    rows = json.loads(run.stdout)["rows"]
    for prefix in ("synthetic repository", "maestro check", "snapshot: tree read",
                   "history of one persona", "one write commit"):
        assert any(r["figure"].startswith(prefix) for r in rows), (prefix, rows)
    check = next(r for r in rows if r["figure"].startswith("maestro check"))
    assert check["value"] > 0 and check["note"] == "exit 0"
    assert all(r["value"] is not None for r in rows), rows
    again = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True,
                           check=False, timeout=120)
    assert "reusing the generated repository" in again.stderr
