"""Writes as commits: validation first, compare-and-swap, retries, conflicts, working tree."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

import pygit2
import pytest

from maestro_git.core.writeback import set_fields
from maestro_git.errors import ConflictError, NotFoundError, UsageError, ValidationFailed
from maestro_git.git.repo import Identity
from maestro_git.repo.repository import Repository
from maestro_git.settings import Settings
from tests.factories import DEFAULT_AUTHOR, GitRepoFactory, persona_md

BODY = "# Reviewer\n\nYou review code. Point at the line and explain the fix.\n"


def _repo(factory: GitRepoFactory, **settings: object) -> Repository:
    return Repository(Settings(repo_path=factory.path, **settings))  # type: ignore[arg-type]


def _seed(factory: GitRepoFactory) -> str:
    return factory.commit({"personas/acme/base.md": persona_md(
        "Base", body="# Base\n\nBe kind.\n", id="5d0c7a52-0d7c-4b8e-9a57-0a9f58b8d001",
        version="1.0.0")}, "seed")


def _clean(factory: GitRepoFactory) -> bool:
    flags = factory.repo.status()
    return not {p: f for p, f in flags.items() if f != pygit2.enums.FileStatus.IGNORED}


def test_create_commits_with_the_acting_user_as_author(git_repo: GitRepoFactory) -> None:
    seed = _seed(git_repo)
    repo = _repo(git_repo)
    commit = repo.create("acme/reviewer", BODY, {"display_name": "Reviewer"},
                         author="Ada Lovelace <ada@example.com>")
    info = repo.git.commit_info(commit)
    assert info.parents == (seed,)
    assert (info.author_name, info.author_email) == ("Ada Lovelace", "ada@example.com")
    assert info.committer_name == DEFAULT_AUTHOR[0]  # git config of the repository
    assert info.message == "Create acme/reviewer"
    persona = repo.snapshot().personas["acme/reviewer"]
    assert persona.version == "1.0.0" and persona.id and persona.body == BODY


def test_author_falls_back_to_settings_then_git_config(git_repo: GitRepoFactory) -> None:
    _seed(git_repo)
    configured = _repo(git_repo, author_name="Bot", author_email="bot@example.com")
    first = configured.create("acme/one", BODY)
    assert configured.git.commit_info(first).author_name == "Bot"
    second = _repo(git_repo).create("acme/two", BODY)
    assert _repo(git_repo).git.commit_info(second).author_email == DEFAULT_AUTHOR[1]


def test_invalid_write_is_refused_and_nothing_is_committed(git_repo: GitRepoFactory) -> None:
    seed = _seed(git_repo)
    repo = _repo(git_repo)
    with pytest.raises(ValidationFailed) as caught:
        repo.create("acme/orphan", BODY, {"extends": "acme/nobody"})
    assert [p.rule for p in caught.value.problems] == ["missing-parent"]
    assert "acme/orphan: the write would not validate" in caught.value.message
    assert repo.head() == seed
    assert not (git_repo.path / "personas/acme/orphan.md").exists()


def test_deleting_a_parent_is_refused_while_a_child_extends_it(
        git_repo: GitRepoFactory) -> None:
    _seed(git_repo)
    repo = _repo(git_repo)
    repo.create("acme/kid", BODY, {"extends": "acme/base"})
    head = repo.head()
    with pytest.raises(ValidationFailed) as caught:
        repo.delete("acme/base")
    assert caught.value.problems[0].path == "personas/acme/kid.md"
    assert repo.head() == head


def test_update_raises_the_patch_version_and_keeps_other_bytes(
        git_repo: GitRepoFactory) -> None:
    _seed(git_repo)
    repo = _repo(git_repo)
    before = (git_repo.path / "personas/acme/base.md").read_bytes()
    commit = repo.update("acme/base", fields={"description": "The base"})
    after = repo.git.read_file(commit, "personas/acme/base.md")
    assert after == set_fields(before, {"description": "The base", "version": "1.0.1"})
    assert repo.git.commit_info(commit).message == "Update acme/base to 1.0.1"
    with pytest.raises(UsageError, match="nothing to change"):
        repo.update("acme/base", fields={"description": "The base"}, remove=())


def test_rename_moves_the_file_and_repoints_children(git_repo: GitRepoFactory) -> None:
    _seed(git_repo)
    repo = _repo(git_repo)
    repo.create("acme/kid", BODY, {"extends": "acme/base"})
    commit = repo.rename("acme/base", "beta/base")
    snap = repo.snapshot()
    assert "acme/base" not in snap.personas
    assert snap.personas["beta/base"].id == "5d0c7a52-0d7c-4b8e-9a57-0a9f58b8d001"
    assert snap.personas["acme/kid"].extends == "beta/base"
    assert snap.personas["acme/kid"].version == "1.0.1"
    assert snap.ok
    assert [v.commit for v in repo.history("beta/base")][0] == commit
    assert not (git_repo.path / "personas/acme/base.md").exists()
    assert (git_repo.path / "personas/beta/base.md").exists()
    assert _clean(git_repo)


def test_writes_keep_the_working_tree_and_index_clean(git_repo: GitRepoFactory) -> None:
    _seed(git_repo)
    repo = _repo(git_repo)
    repo.create("acme/reviewer", BODY)
    repo.update("acme/reviewer", body=BODY + "More.\n")
    repo.delete("acme/reviewer")
    assert not (git_repo.path / "personas/acme/reviewer.md").exists()
    assert _clean(git_repo)


def test_write_refuses_a_file_with_uncommitted_changes(git_repo: GitRepoFactory) -> None:
    seed = _seed(git_repo)
    git_repo.write({"personas/acme/base.md": persona_md("Edited by hand")})
    with pytest.raises(ConflictError, match="personas/acme/base.md has uncommitted changes"):
        _repo(git_repo).update("acme/base", body="new\n")
    assert _repo(git_repo).head() == seed
    assert b"Edited by hand" in (git_repo.path / "personas/acme/base.md").read_bytes()


def test_write_to_another_file_replays_on_the_new_head(git_repo: GitRepoFactory) -> None:
    seed = _seed(git_repo)
    first = _repo(git_repo).create("acme/one", BODY, base=seed)
    second = _repo(git_repo).create("acme/two", BODY, base=seed)  # started before `first`
    repo = _repo(git_repo)
    assert repo.git.commit_info(second).parents == (first,)
    assert {"acme/one", "acme/two", "acme/base"} <= set(repo.snapshot().personas)


def test_stale_write_to_the_same_persona_is_a_conflict(git_repo: GitRepoFactory) -> None:
    seed = _seed(git_repo)
    winner = _repo(git_repo).update("acme/base", body="Winner.\n", base=seed,
                                    author="Win <win@example.com>")
    with pytest.raises(ConflictError) as caught:
        _repo(git_repo).update("acme/base", body="Loser.\n", base=seed)
    assert caught.value.message.startswith(
        f"acme/base was changed by commit {winner[:7]} (Win: Update acme/base to 1.0.1)")
    assert "nothing was committed" in (caught.value.hint or "")
    assert _repo(git_repo).head() == winner


def _race(repo: Repository, barrier: threading.Barrier, results: list[str],
          action: str, key: str, base: str | None) -> None:
    barrier.wait()
    try:
        if action == "create":
            repo.create(key, BODY, base=base)
        else:
            repo.update(key, body=f"{key} {threading.get_ident()}\n", base=base)
        results.append("ok")
    except ConflictError:
        results.append("conflict")


def test_two_threads_writing_different_personas_both_land(git_repo: GitRepoFactory) -> None:
    seed = _seed(git_repo)
    repo = _repo(git_repo)  # shared: each thread gets its own pygit2 handle
    barrier = threading.Barrier(2)
    results: list[str] = []
    threads = [threading.Thread(target=_race, args=(repo, barrier, results, "create",
                                                    f"acme/t{i}", seed)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert results == ["ok", "ok"]
    assert {"acme/t0", "acme/t1"} <= set(_repo(git_repo).snapshot().personas)
    assert len(repo.git.first_parent_chain(seed, repo.head() or "")) == 2
    assert _clean(git_repo)


def test_two_threads_on_the_same_persona_give_one_success_one_conflict(
        git_repo: GitRepoFactory) -> None:
    seed = _seed(git_repo)
    barrier = threading.Barrier(2)
    results: list[str] = []
    threads = [threading.Thread(target=_race, args=(_repo(git_repo), barrier, results,
                                                    "update", "acme/base", seed))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(results) == ["conflict", "ok"]
    assert len(_repo(git_repo).git.first_parent_chain(seed, _repo(git_repo).head() or "")) == 1


def _process_writer(path: str, key: str, action: str, base: str | None,
                    start: multiprocessing.synchronize.Event,
                    results: multiprocessing.queues.Queue[str]) -> None:
    repo = Repository(Settings(repo_path=Path(path)))
    start.wait(30)
    try:
        for i in range(3 if action == "create" else 1):
            if action == "create":
                repo.create(f"{key}{i}", BODY, base=base)
            else:
                repo.update(key, body=f"{key} from {multiprocessing.current_process().pid}\n",
                            base=base)
        results.put("ok")
    except ConflictError:
        results.put("conflict")
    except Exception as exc:  # reported to the test instead of dying silently
        results.put(f"error: {exc!r}")


def _run_processes(factory: GitRepoFactory, jobs: list[tuple[str, str, str | None]]
                   ) -> list[str]:
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    results = ctx.Queue()
    procs = [ctx.Process(target=_process_writer,
                         args=(str(factory.path), key, action, base, start, results))
             for key, action, base in jobs]
    for p in procs:
        p.start()
    start.set()
    out = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return out


@pytest.mark.slow
def test_two_processes_writing_different_personas_both_land(git_repo: GitRepoFactory) -> None:
    seed = _seed(git_repo)
    results = _run_processes(git_repo, [("acme/p", "create", None),
                                        ("beta/q", "create", seed)])
    assert results == ["ok", "ok"]
    repo = _repo(git_repo)
    assert {f"acme/p{i}" for i in range(3)} | {f"beta/q{i}" for i in range(3)} <= set(
        repo.snapshot().personas)
    assert len(repo.git.first_parent_chain(seed, repo.head() or "")) == 6
    assert _clean(git_repo)


@pytest.mark.slow
def test_two_processes_on_the_same_persona_give_one_success_one_conflict(
        git_repo: GitRepoFactory) -> None:
    seed = _seed(git_repo)
    results = _run_processes(git_repo, [("acme/base", "update", seed),
                                        ("acme/base", "update", seed)])
    assert sorted(results) == ["conflict", "ok"]
    repo = _repo(git_repo)
    assert len(repo.git.first_parent_chain(seed, repo.head() or "")) == 1


def test_rollback_restores_bytes_exactly_and_adds_a_commit(git_repo: GitRepoFactory) -> None:
    _seed(git_repo)
    repo = _repo(git_repo)
    first = repo.create("acme/reviewer", BODY, {"display_name": "Reviewer",
                                                "tags": ["review"]})
    original = repo.git.read_file(first, "personas/acme/reviewer.md")
    assert original is not None
    repo.update("acme/reviewer", body="Something else entirely.\n",
                fields={"tags": ["other"], "description": "changed"})
    head = repo.head()
    commit = repo.rollback("acme/reviewer", first)
    restored = repo.git.read_file(commit, "personas/acme/reviewer.md")
    assert restored == set_fields(original, {"version": "1.0.2"})  # only the version moves
    info = repo.git.commit_info(commit)
    assert info.parents == (head,)
    assert f"Rollback to version 1.0.0 (commit {first[:7]})" in info.message
    versions = repo.history("acme/reviewer")
    assert [(v.action, v.version) for v in versions] == [
        ("rolled_back", "1.0.2"), ("updated", "1.0.1"), ("created", "1.0.0")]
    assert _clean(git_repo)


def test_rollback_by_semver_version(git_repo: GitRepoFactory) -> None:
    _seed(git_repo)
    repo = _repo(git_repo)
    repo.update("acme/base", body="Two.\n", fields={"version": "2.0.0"})
    repo.update("acme/base", body="Three.\n", fields={"version": "3.0.0"})
    repo.rollback("acme/base", "2.0.0")
    persona = repo.snapshot().personas["acme/base"]
    assert (persona.body, persona.version) == ("Two.\n", "3.0.1")
    with pytest.raises(UsageError, match="already has the content of version 2.0.0"):
        repo.rollback("acme/base", "2.0.0")
    with pytest.raises(NotFoundError, match="'9.9.9' is neither a version"):
        repo.rollback("acme/base", "9.9.9")


def test_rollback_restores_a_deleted_persona(git_repo: GitRepoFactory) -> None:
    _seed(git_repo)
    repo = _repo(git_repo)
    created = repo.create("acme/gone", BODY)
    repo.delete("acme/gone")
    repo.rollback("acme/gone", created)
    persona = repo.snapshot().personas["acme/gone"]
    assert (persona.body, persona.version) == (BODY, "1.0.1")
    assert (git_repo.path / "personas/acme/gone.md").exists()
    deleted_at = repo.history("acme/gone")[1].commit
    with pytest.raises(NotFoundError, match=f"acme/gone was deleted at {deleted_at}"):
        repo.rollback("acme/gone", deleted_at)


def test_writes_work_in_a_bare_repository(tmp_path: Path) -> None:
    bare = pygit2.init_repository(str(tmp_path / "bare.git"), bare=True, initial_head="main")
    repo = Repository(Settings(repo_path=Path(bare.path), author_name="A",
                               author_email="a@example.com"))
    first = repo.create("acme/one", BODY)
    assert repo.git.commit_info(first).parents == ()
    repo.update("acme/one", body="Two.\n", author=Identity("B", "b@example.com"))
    assert repo.snapshot().personas["acme/one"].body == "Two.\n"


def test_a_write_waits_for_another_writers_ref_lock(git_repo: GitRepoFactory) -> None:
    seed = _seed(git_repo)
    lock = git_repo.path / ".git/refs/heads/main.lock"
    lock.write_text("held\n")
    release = threading.Timer(0.3, lock.unlink)
    release.start()
    try:
        commit = _repo(git_repo).create("acme/late", BODY)
    finally:
        release.join()
    assert _repo(git_repo).git.commit_info(commit).parents == (seed,)
