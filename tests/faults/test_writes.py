"""Library writes under faults: a human committing with git meanwhile, many writers at once.

Each test fails on the code before issue 17: the index was read outside git's `index.lock`
and written after the branch had moved, so a human `git commit` could commit a stale index
entry (reverting the library's write) and the library could drop the human's staged change;
writers to different personas gave up after 20 lost compare-and-swaps; a conflict named the
branch head rather than the commit that changed the persona.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from maestro_git.errors import ConflictError
from maestro_git.repo.repository import Repository
from maestro_git.settings import Settings
from tests.factories import GitRepoFactory, persona_md
from tests.faults.race import concurrent_writers, human_commit_race


def test_human_commit_race(tmp_path: Path) -> None:
    counts = human_commit_race(tmp_path, rounds=30)
    assert counts.rounds == 30
    assert (counts.library_reverted, counts.human_undone, counts.status_dirty,
            counts.library_refused) == (0, 0, 0, 0), counts.errors
    assert counts.human_commits == 30 and counts.library_writes == 30


def test_concurrent_writers_to_different_personas(tmp_path: Path) -> None:
    counts = concurrent_writers(tmp_path, writers=8, writes=10)
    assert (counts.accepted, counts.refused, counts.missing, counts.reverted,
            counts.status_dirty) == (80, 0, 0, 0, 0), counts.errors


@pytest.mark.slow
def test_concurrent_writer_processes_to_different_personas(tmp_path: Path) -> None:
    counts = concurrent_writers(tmp_path, writers=4, writes=5, processes=True)
    assert (counts.accepted, counts.refused, counts.missing, counts.reverted,
            counts.status_dirty) == (20, 0, 0, 0, 0), counts.errors


def test_a_conflict_names_the_commit_that_changed_the_persona(
        git_repo: GitRepoFactory) -> None:
    seed = git_repo.commit({
        "personas/acme/base.md": persona_md("Base", body="# Base\n\nBe kind.\n",
                                            version="1.0.0"),
        "personas/acme/other.md": persona_md("Other", version="1.0.0")}, "seed")
    repo = Repository(Settings(repo_path=git_repo.path))
    winner = repo.update("acme/base", body="# Base\n\nWinner.\n", base=seed,
                         author="Win <win@example.com>")
    later = repo.update("acme/other", body="# Other\n\nLater.\n",
                        author="Late <late@example.com>")
    with pytest.raises(ConflictError) as caught:
        repo.update("acme/base", body="# Base\n\nLoser.\n", base=seed)
    assert caught.value.message.startswith(
        f"acme/base was changed by commit {winner[:7]} (Win: Update acme/base to 1.0.1)")
    assert later[:7] not in caught.value.message
    assert repo.head() == later
