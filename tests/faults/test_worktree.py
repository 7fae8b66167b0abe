"""A library write beside a human's work in the same checkout: git's index lock, what the
human staged, their edits to the persona being written, and writers of one persona."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest

from maestro_git.errors import ConflictError
from maestro_git.repo import writes
from maestro_git.repo.repository import Repository
from maestro_git.settings import Settings
from tests.factories import GitRepoFactory, persona_md
from tests.faults.race import _git_env

BASE = "personas/acme/base.md"
OTHER = "personas/acme/other.md"


def _git(path: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(path), *args], capture_output=True, text=True,
                          env=_git_env(), check=True).stdout


def _seed(factory: GitRepoFactory) -> str:
    return factory.commit({BASE: persona_md("Base", body="# Base\n\nBe kind.\n",
                                            version="1.0.0"),
                           OTHER: persona_md("Other", version="1.0.0")}, "seed")


def _repo(factory: GitRepoFactory) -> Repository:
    return Repository(Settings(repo_path=factory.path))


def test_what_the_human_staged_stays_staged_and_their_edits_stay(
        git_repo: GitRepoFactory) -> None:
    _seed(git_repo)
    staged = persona_md("Other", body="# Other\n\nStaged by a human.\n", version="1.0.1")
    git_repo.write({OTHER: staged})
    _git(git_repo.path, "add", OTHER)
    git_repo.write({OTHER: staged + "\nAnd still being typed.\n",
                    "personas/acme/draft.md": "untracked\n"})
    commit = _repo(git_repo).update("acme/base", body="# Base\n\nFrom the library.\n")
    assert _git(git_repo.path, "rev-parse", "HEAD").strip() == commit
    assert _git(git_repo.path, "status", "--porcelain").splitlines() == [
        f"MM {OTHER}", "?? personas/acme/draft.md"]
    assert _git(git_repo.path, "show", f":{OTHER}") == staged
    assert b"And still being typed." in (git_repo.path / OTHER).read_bytes()
    assert _git(git_repo.path, "diff", "--quiet", "HEAD", "--", BASE) == ""
    _git(git_repo.path, "commit", "-q", "-m", "human")  # commits only what the human staged
    assert b"From the library." in (git_repo.repo.revparse_single(f"HEAD:{BASE}").data)


def test_a_staged_edit_of_the_persona_is_refused(git_repo: GitRepoFactory) -> None:
    seed = _seed(git_repo)
    original = (git_repo.path / BASE).read_bytes()
    git_repo.write({BASE: persona_md("Base", body="# Base\n\nStaged.\n", version="1.0.1")})
    _git(git_repo.path, "add", BASE)
    git_repo.write({BASE: original})  # the file on disk is as committed; the index is not
    with pytest.raises(ConflictError,
                       match=f"^{BASE} has uncommitted changes in the working tree$"):
        _repo(git_repo).update("acme/base", body="# Base\n\nLibrary.\n")
    assert _repo(git_repo).head() == seed
    assert "Staged." in _git(git_repo.path, "show", f":{BASE}")
    assert not (git_repo.path / ".git/index.lock").exists()


def test_a_write_waits_for_a_git_command_holding_the_index_lock(
        git_repo: GitRepoFactory) -> None:
    seed = _seed(git_repo)
    lock = git_repo.path / ".git/index.lock"
    lock.write_bytes(b"")
    release = threading.Timer(0.3, lock.unlink)
    release.start()
    try:
        commit = _repo(git_repo).update("acme/base", body="# Base\n\nLate.\n")
    finally:
        release.join()
    assert _repo(git_repo).git.commit_info(commit).parents == (seed,)
    assert _git(git_repo.path, "status", "--porcelain") == ""


def test_a_stale_index_lock_is_reported_after_the_deadline(
        git_repo: GitRepoFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    seed = _seed(git_repo)
    (git_repo.path / ".git/index.lock").write_bytes(b"")
    monkeypatch.setattr(writes, "WRITE_DEADLINE_SECONDS", 0.2)
    with pytest.raises(ConflictError, match=r"the git index stayed locked \(.git/index.lock "
                                            r"exists\)") as caught:
        _repo(git_repo).update("acme/base", body="# Base\n\nNever.\n")
    assert "remove .git/index.lock" in (caught.value.hint or "")
    assert _repo(git_repo).head() == seed
    assert (git_repo.path / BASE).read_bytes().count(b"Never") == 0


def test_threads_writing_one_persona_without_a_base_all_land(
        git_repo: GitRepoFactory) -> None:
    seed = _seed(git_repo)
    repo = _repo(git_repo)
    barrier = threading.Barrier(4)
    errors: list[str] = []

    def write(k: int) -> None:
        barrier.wait(10)
        for j in range(5):
            try:
                repo.update("acme/base", fields={"description": f"writer {k} write {j}"})
            except ConflictError as exc:  # was "has uncommitted changes" or a conflict
                errors.append(str(exc))

    threads = [threading.Thread(target=write, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert len(repo.git.first_parent_chain(seed, repo.head() or "")) == 20
    assert repo.snapshot().personas["acme/base"].version == "1.0.20"
    assert _git(git_repo.path, "status", "--porcelain") == ""
