"""The speed paths are one bounded, version-guarded module installed explicitly."""

from __future__ import annotations

import gc
import logging
import os
import subprocess
import sys
import threading

import pytest

from maestro_git.search import speedups
from maestro_git.settings import Settings
from tests.factories import GitRepoFactory
from tests.search.test_index import FILES, _keys, _snapshot


def test_importing_the_search_modules_patches_nothing() -> None:
    code = ("import maestro_git.search.index, maestro_git.search.engine\n"
            "from whoosh.codec.whoosh3 import W3LeafMatcher\n"
            "from maestro_git.search import speedups\n"
            "assert W3LeafMatcher.skip_to.__module__.startswith('whoosh'), 'patched on import'\n"
            "assert not speedups.enabled()\n"
            "speedups.install()\n"
            "assert W3LeafMatcher.skip_to.__module__.startswith('maestro_git')\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_another_whoosh_version_switches_them_off_with_a_log_line(
        git_repo: GitRepoFactory, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    from whoosh.codec.whoosh3 import W3LeafMatcher

    from maestro_git.search.index import SearchIndex

    speedups.switch_off()
    monkeypatch.setattr(speedups, "_installed_version", lambda: "2.7.6")
    with caplog.at_level(logging.WARNING, logger="maestro_git.search.speedups"):
        assert speedups.switch_on() is False
    assert "pinned to whoosh-reloaded 2.7.5, this is 2.7.6" in caplog.text
    assert not speedups.enabled()
    assert W3LeafMatcher.skip_to.__module__.startswith("whoosh")
    git_repo.commit(FILES)
    ix = SearchIndex(Settings(repo_path=git_repo.path))  # installs: still off, plain Whoosh
    ix.rebuild(_snapshot(git_repo))
    assert not list(ix.path.glob("*.wsa"))  # Whoosh's own writer: no posting arrays
    assert _keys(ix.search("tag:coding")) == ["acme/code_reviewer"]
    assert _keys(ix.search("quarterly")) == ["globex/analyst"]


@pytest.mark.usefixtures("speedups_on")
def test_a_rebuild_from_a_threaded_process_neither_forks_nor_stops_the_collector(
        git_repo: GitRepoFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    import maestro_git.search.index as index_module
    from maestro_git.search.index import SearchIndex

    def refuse(*args: object) -> None:
        raise AssertionError("forked or disabled the collector in a threaded process")

    monkeypatch.setattr(index_module, "MULTIPROCESS_MIN_DOCS", 1)
    monkeypatch.setattr(os, "fork", refuse)
    monkeypatch.setattr(gc, "disable", refuse)
    git_repo.commit(FILES)
    stop = threading.Event()
    other = threading.Thread(target=stop.wait, daemon=True)  # as the daemon's observer is
    other.start()
    try:
        ix = SearchIndex(Settings(repo_path=git_repo.path), procs=2)
        ix.rebuild(_snapshot(git_repo))
    finally:
        stop.set()
    assert ix.status().segments == 2  # both parts written by child interpreters
    assert _keys(ix.search("quarterly")) == ["globex/analyst"]
    assert not list(ix.path.glob(".part-*"))
