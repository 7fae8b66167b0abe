"""Progress of long commands (`index rebuild`, `export --all`): the shared callback of
`maestro_git.output`, the library calls that report through it, and the lines a terminal
shows."""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys
import time
from pathlib import Path

import pytest

from maestro_git.ops.exporter import export_all
from maestro_git.output import progress_callback
from maestro_git.search import speedups
from maestro_git.search.index import SearchIndex
from maestro_git.settings import Settings
from tests.factories import GitRepoFactory, persona_md
from tests.search.test_index import FILES, _snapshot


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_callback_draws_one_line_per_stage_on_a_terminal_and_nothing_elsewhere() -> None:
    term = Terminal()
    with progress_callback("indexing", term) as advance:
        for done in (0, 2, 5):
            advance(done, 5)
        advance(1, 3)  # a second stage after the first reached its total
    assert term.getvalue() == ("\rindexing  0/5\rindexing  2/5\rindexing  5/5\n"
                               "\rindexing  1/3\n")
    plain = io.StringIO()
    with progress_callback("indexing", plain) as advance:
        advance(1, 2)
    assert plain.getvalue() == ""


@pytest.mark.parametrize("fast", [True, False], ids=["speedups", "plain-whoosh"])
def test_a_rebuild_reports_its_documents_up_to_the_count_it_returns(
        git_repo: GitRepoFactory, fast: bool) -> None:
    git_repo.commit(FILES)
    calls: list[tuple[int, int]] = []
    was = speedups.enabled()
    (speedups.switch_on if fast else speedups.switch_off)()
    try:
        with SearchIndex(Settings(repo_path=git_repo.path)) as ix:
            count = ix.rebuild(_snapshot(git_repo), progress=lambda d, t: calls.append((d, t)))
    finally:
        (speedups.switch_on if was else speedups.switch_off)()
    assert calls[0] == (0, count)
    assert calls[-1] == (count, count)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_export_all_reports_every_record(git_repo: GitRepoFactory, tmp_path: Path) -> None:
    git_repo.commit({f"personas/acme/p{i:03}.md": persona_md(f"P {i}") for i in range(450)})
    calls: list[tuple[int, int]] = []
    result = export_all(Settings(repo_path=git_repo.path), tmp_path / "out",
                        progress=lambda d, t: calls.append((d, t)))
    assert len(result.written) == 450
    assert calls == [(0, 450), (200, 450), (400, 450), (450, 450)]


def _on_a_terminal(args: list[str], cwd: Path) -> tuple[int, str]:
    """Run `maestro ARGS` with stderr on a pseudo-terminal; its exit code and stderr."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "maestro_git", *args], cwd=cwd,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            data = os.read(master, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(timeout=max(1.0, deadline - time.monotonic())), \
        b"".join(chunks).decode("utf-8", "replace")


def test_index_rebuild_and_export_all_show_progress_on_a_terminal(
        git_repo: GitRepoFactory, tmp_path: Path) -> None:
    git_repo.commit(FILES)
    code, err = _on_a_terminal(["--repo", str(git_repo.path), "index", "rebuild"], tmp_path)
    assert code == 0, err
    assert "indexing  0/7" in err and "indexing  7/7" in err  # 5 files, 2 set members
    code, err = _on_a_terminal(["--repo", str(git_repo.path), "export", "--all",
                                str(tmp_path / "out")], tmp_path)
    assert code == 0, err
    assert "exporting  5/5" in err
