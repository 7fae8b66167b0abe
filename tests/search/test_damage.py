"""Every kind of damage to `.maestro/` is rebuilt or refused with a one-line reason."""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from maestro_git.core.snapshot import diff_snapshots
from maestro_git.errors import SearchError
from maestro_git.search import speedups
from maestro_git.search.index import SearchIndex
from maestro_git.settings import Settings
from tests.factories import GitRepoFactory, persona_md
from tests.search.test_index import FILES, FakeMirrored, _keys, _snapshot

DAMAGE: dict[str, Callable[[Path], None]] = {
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: max(1, p.stat().st_size // 2)]),
    "emptied": lambda p: p.write_bytes(b""),
    "garbage": lambda p: p.write_bytes(os.urandom(max(64, p.stat().st_size))),
    "deleted": lambda p: p.unlink(),
}
FILE_KINDS = ["toc", "seg", "wsa", "WRITELOCK"]


def _file(ix: SearchIndex, kind: str) -> Path:
    pattern = {"toc": "_MAIN_*.toc", "seg": "*.seg", "wsa": "*.wsa",
               "WRITELOCK": "MAIN_WRITELOCK"}[kind]
    found = sorted(ix.path.glob(pattern))
    if not found and kind == "wsa" and not speedups.enabled():
        pytest.skip("plain Whoosh writes no posting arrays")
    assert found, f"no {pattern} in the index"
    return found[0]


def _built(repo: GitRepoFactory) -> SearchIndex:
    repo.commit(FILES)
    ix = SearchIndex(Settings(repo_path=repo.path))
    ix.rebuild(_snapshot(repo))
    ix.close()
    return ix


def _one_line(err: SearchError) -> None:
    assert "\n" not in err.message and "Traceback" not in err.message


@pytest.mark.parametrize("damage", sorted(DAMAGE))
@pytest.mark.parametrize("kind", FILE_KINDS)
def test_each_damaged_index_file_is_rebuilt_or_refused_in_one_line(
        git_repo: GitRepoFactory, kind: str, damage: str) -> None:
    ix = _built(git_repo)
    DAMAGE[damage](_file(ix, kind))
    plain = SearchIndex(Settings(repo_path=git_repo.path))  # no source: may only refuse
    status = plain.status()  # never raises
    assert status.healthy or status.reason
    try:
        hits = plain.search("quarterly")
        assert _keys(hits) == ["globex/analyst"]
    except SearchError as err:
        _one_line(err)
    plain.close()
    healing = SearchIndex(Settings(repo_path=git_repo.path), source=lambda: _snapshot(git_repo))
    assert _keys(healing.search("quarterly")) == ["globex/analyst"]
    assert _keys(healing.search("tag:coding")) == ["acme/code_reviewer"]
    healing.close()
    fresh = SearchIndex(Settings(repo_path=git_repo.path))
    fresh.ensure(lambda: _snapshot(git_repo))
    assert fresh.status().healthy
    assert _keys(fresh.search("quarterly")) == ["globex/analyst"]
    fresh.close()


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_sync_listener_on_a_damaged_toc_rebuilds(git_repo: GitRepoFactory,
                                                  damage: str) -> None:
    ix = _built(git_repo)
    before = _snapshot(git_repo)
    DAMAGE[damage](_file(ix, "toc"))
    git_repo.commit({"personas/acme/poet.md": persona_md("Poet", body="# Poet\n\nhaiku\n")})
    after = _snapshot(git_repo)
    listener = SearchIndex(Settings(repo_path=git_repo.path))
    listener.update(FakeMirrored(git_repo.head(), diff_snapshots(before, after), after))
    assert _keys(listener.search("haiku")) == ["acme/poet"]
    assert listener.commit == git_repo.head()


def test_a_stale_lock_file_does_not_block_a_writer(git_repo: GitRepoFactory) -> None:
    ix = _built(git_repo)
    lock = ix.path.parent / (ix.path.name + ".lock")
    lock.write_text("12345\n")  # left by a killed process: nobody holds it
    ix.rebuild(_snapshot(git_repo))
    assert ix.status().healthy


def test_leftover_build_folders_of_a_killed_rebuild_are_removed_at_next_open(
        git_repo: GitRepoFactory) -> None:
    ix = _built(git_repo)
    leftover = ix.path.parent / f"{ix.path.name}.build-deadbeef"
    old = ix.path.parent / f"{ix.path.name}.old-deadbeef"
    for folder in (leftover, old):
        folder.mkdir()
        (folder / "MAIN_x.seg").write_bytes(b"half written")
    again = SearchIndex(Settings(repo_path=git_repo.path))
    assert _keys(again.search("quarterly")) == ["globex/analyst"]
    assert not leftover.exists() and not old.exists()


def test_a_build_folder_in_use_by_a_live_rebuild_is_kept(git_repo: GitRepoFactory) -> None:
    ix = _built(git_repo)
    lock = ix.path.parent / (ix.path.name + ".lock")
    building = ix.path.parent / f"{ix.path.name}.build-cafebabe"
    building.mkdir()
    fd = os.open(lock, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # another process is rebuilding
    try:
        again = SearchIndex(Settings(repo_path=git_repo.path))
        assert _keys(again.search("quarterly")) == ["globex/analyst"]  # readers never wait
        assert building.exists()
    finally:
        os.close(fd)


def test_readers_never_wait_for_a_writers_lock(git_repo: GitRepoFactory) -> None:
    ix = _built(git_repo)
    lock = ix.path.parent / (ix.path.name + ".lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        reader = SearchIndex(Settings(repo_path=git_repo.path),
                             source=lambda: _snapshot(git_repo))
        started = time.monotonic()
        assert _keys(reader.search("quarterly")) == ["globex/analyst"]
        assert reader.status().healthy
        assert time.monotonic() - started < 2.0
    finally:
        os.close(fd)


def test_a_writer_waiting_for_the_lock_stops_when_asked(git_repo: GitRepoFactory) -> None:
    ix = _built(git_repo)
    lock = ix.path.parent / (ix.path.name + ".lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    stop = threading.Event()
    waiting = SearchIndex(Settings(repo_path=git_repo.path), writer_timeout=60.0, stop=stop)
    threading.Timer(0.2, stop.set).start()
    started = time.monotonic()
    try:
        with pytest.raises(SearchError, match="stopped while waiting"):
            waiting.rebuild(_snapshot(git_repo))
    finally:
        os.close(fd)
    assert time.monotonic() - started < 1.2


def test_maestro_as_a_file_is_refused_in_one_line(git_repo: GitRepoFactory) -> None:
    git_repo.commit(FILES)
    settings = Settings(repo_path=git_repo.path)
    shutil.rmtree(settings.resolved_index_dir.parent, ignore_errors=True)
    settings.resolved_index_dir.parent.write_text("not a folder\n")
    ix = SearchIndex(settings, source=lambda: _snapshot(git_repo))
    with pytest.raises(SearchError) as err:
        ix.search("quarterly")
    _one_line(err.value)
    assert "is not a folder" in err.value.message
    assert not ix.status().healthy
    with pytest.raises(SearchError):
        ix.rebuild(_snapshot(git_repo))


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES, errno.EROFS])
def test_a_full_disk_or_unwritable_folder_is_refused_in_one_line(
        git_repo: GitRepoFactory, monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    """Root ignores permissions and no tmpfs can be mounted here: writes are made to fail."""
    ix = _built(git_repo)
    from whoosh.filedb import filestore

    def failing(self: object, name: str, **kwargs: object) -> None:
        raise OSError(code, os.strerror(code), name)

    monkeypatch.setattr(filestore.FileStorage, "create_file", failing)
    with pytest.raises(SearchError) as err:
        ix.rebuild(_snapshot(git_repo))
    _one_line(err.value)
    assert os.strerror(code) in err.value.message
    assert not list(ix.path.parent.glob("index.build-*"))  # nothing left behind
    monkeypatch.undo()
    assert _keys(ix.search("quarterly")) == ["globex/analyst"]  # the old index still serves


def test_sigterm_stops_the_daemon_within_a_second_while_another_process_holds_the_lock(
        git_repo: GitRepoFactory, database_url: str, tmp_path: Path) -> None:
    import signal

    from tests.daemon.test_daemon import DaemonProcess, cursor, wait_for

    git_repo.commit(FILES)
    settings = Settings(repo_path=git_repo.path)
    lock = settings.resolved_index_dir.parent / (settings.resolved_index_dir.name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # another process is writing the index
    proc = DaemonProcess(git_repo.path, database_url, tmp_path / "daemon.log")
    try:
        wait_for(lambda: cursor(database_url) == git_repo.head(), timeout=30,
                 what="the initial catch-up")
        time.sleep(0.5)  # the indexer is now waiting for the lock
        started = time.monotonic()
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        # Within a second on an idle machine (the update waiting for the lock gives up at
        # once); the margin is for a loaded CI machine. Before: 30 s, the lock's timeout.
        assert time.monotonic() - started < 3.0
    finally:
        proc.kill()
        os.close(fd)
    assert proc.has("stopped")
    assert not proc.has("Traceback")


def test_sync_and_search_with_maestro_as_a_file_say_so_in_one_line(
        git_repo: GitRepoFactory, database_url: str, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    from maestro_git.cli import main

    git_repo.commit(FILES)
    (git_repo.path / ".maestro").write_text("a file where the folder goes\n")
    code = main(["--repo", str(git_repo.path), "--database-url", database_url, "sync"])
    out, err = capsys.readouterr()
    assert code == 0  # the mirror went on
    assert "Traceback" not in out + err + caplog.text
    assert ".maestro is not a folder" in caplog.text
    code = main(["--repo", str(git_repo.path), "search", "quarterly"])
    out, err = capsys.readouterr()
    assert code == 8
    assert err.splitlines()[0] == ("error: .maestro is not a folder, so the search index "
                                   "cannot be kept in it")
    assert "Traceback" not in err


def test_a_rebuild_stops_when_asked_and_keeps_the_old_index(git_repo: GitRepoFactory) -> None:
    """The daemon's indexer rebuilding a damaged index must not hold up SIGTERM."""
    ix = _built(git_repo)
    before = ix.commit
    stop = threading.Event()
    stop.set()  # the daemon is stopping
    stopping = SearchIndex(Settings(repo_path=git_repo.path), stop=stop)
    with pytest.raises(SearchError, match="stopped while rebuilding the search index") as err:
        stopping.rebuild(_snapshot(git_repo))
    _one_line(err.value)
    assert not list(ix.path.parent.glob("index.build-*"))
    again = SearchIndex(Settings(repo_path=git_repo.path))
    assert again.commit == before
    assert _keys(again.search("quarterly")) == ["globex/analyst"]


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_the_commit_of_a_damaged_index_is_unknown_rather_than_an_error(
        git_repo: GitRepoFactory, damage: str) -> None:
    ix = _built(git_repo)
    DAMAGE[damage](_file(ix, "seg"))
    assert SearchIndex(Settings(repo_path=git_repo.path)).commit is None  # before: EOFError…
