"""`maestro sync` with the search index: a catch-up over many commits writes the index once,
for the head it ends on; a large first load indexes in a child process alongside the mirror."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from maestro_git.ops import sync as ops_sync
from maestro_git.search.index import SearchIndex
from maestro_git.settings import Settings
from tests.factories import GitRepoFactory, persona_md


def _generation(index_dir: Path) -> int:
    """The Whoosh TOC generation: one more for every commit written to the index."""
    gens = [int(m.group(1)) for p in index_dir.iterdir()
            if (m := re.fullmatch(r"_MAIN_(\d+)\.toc", p.name))]
    assert gens, f"no index in {index_dir}"
    return max(gens)


def _settings(repo: GitRepoFactory, url: str) -> Settings:
    return Settings(repo_path=repo.path, database_url=url)


def test_twenty_commit_catch_up_writes_the_index_once_at_the_head(
        git_repo: GitRepoFactory, database_url: str) -> None:
    git_repo.commit({"personas/acme/p0.md": persona_md("P0", description="first")})
    settings = _settings(git_repo, database_url)
    ops_sync.sync_and_index(settings)
    index_dir = settings.resolved_index_dir
    before = _generation(index_dir)
    with SearchIndex(settings) as index:
        segments_before = index.status().segments
    for i in range(1, 21):
        git_repo.commit({f"personas/acme/p{i}.md": persona_md(f"P{i}", description=f"zebra{i}"),
                         "personas/acme/p0.md": persona_md("P0", description=f"edit {i}")},
                        message=f"commit {i}")
    report = ops_sync.sync_and_index(settings)
    assert report.commits == 20
    assert _generation(index_dir) == before + 1  # one Whoosh commit for twenty git commits
    with SearchIndex(settings) as index:
        status = index.status()
        assert status.commit == git_repo.head()
        assert status.segments == segments_before + 1
        assert [h.key for h in index.search("zebra20")] == ["acme/p20"]
        assert [h.key for h in index.search('"edit 20"')] == ["acme/p0"]
        assert index.search('"edit 19"') == []


def test_no_index_leaves_the_index_alone(git_repo: GitRepoFactory, database_url: str) -> None:
    git_repo.commit({"personas/acme/p0.md": persona_md("P0")})
    settings = _settings(git_repo, database_url)
    ops_sync.sync_and_index(settings, index=False)
    assert not SearchIndex(settings).exists()


def test_large_first_load_indexes_the_head_in_a_child(
        git_repo: GitRepoFactory, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ops_sync, "OVERLAP_MIN_FILES", 1)  # a small head takes the same path
    git_repo.commit({f"personas/acme/p{i}.md": persona_md(f"P{i}", description=f"giraffe{i}")
                     for i in range(5)})
    git_repo.commit({"personas/acme/p1.md": None})
    settings = _settings(git_repo, database_url)
    report = ops_sync.sync_and_index(settings)
    assert report.commits == 2
    with SearchIndex(settings) as index:
        assert index.status().commit == git_repo.head()
        assert index.search("giraffe1") == []
        assert [h.key for h in index.search("giraffe4")] == ["acme/p4"]
        assert _generation(settings.resolved_index_dir) == 1  # the child's rebuild, only


def test_the_mirror_state_wins_over_an_invalid_head_file(
        git_repo: GitRepoFactory, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ops_sync, "OVERLAP_MIN_FILES", 1)
    git_repo.commit({"personas/acme/p0.md": persona_md("P0", description="okapi")})
    git_repo.commit({"personas/acme/p0.md": "---\ndisplay_name: [broken\n---\nbody\n"})
    settings = _settings(git_repo, database_url)
    ops_sync.sync_and_index(settings)  # the child indexes the head, where p0 is invalid
    with SearchIndex(settings) as index:  # the mirror keeps p0's last good state: so does the index
        assert [h.key for h in index.search("okapi")] == ["acme/p0"]
        assert index.status().commit == git_repo.head()


def test_sync_after_a_sync_without_the_index_brings_the_whole_index_to_the_head(
        git_repo: GitRepoFactory, database_url: str) -> None:
    settings = _settings(git_repo, database_url)
    git_repo.commit({".gitignore": ".maestro/\n",
                     "personas/acme/helper.md": persona_md("Helper")})
    ops_sync.sync_and_index(settings)  # mirror and index at the first commit
    git_repo.commit({"personas/acme/lynx.md": persona_md("Lynx", description="lynx")})
    ops_sync.sync_and_index(settings, index=False)  # or an index update that failed
    head = git_repo.commit({"personas/acme/ibex.md": persona_md("Ibex", description="ibex")})
    ops_sync.sync_and_index(settings)
    index = SearchIndex(settings)
    assert index.commit == head
    assert [h.key for h in index.search("ibex")] == ["acme/ibex"]
    assert [h.key for h in index.search("lynx")] == ["acme/lynx"]  # before: missing
