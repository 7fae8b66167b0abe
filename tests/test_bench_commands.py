"""`scripts/bench.py --only commands` (issue 15): whole `maestro` processes beside their
floors, on a tiny generated repository; a smoke test, not a measurement."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import _server_url

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "bench.py"


def _bench(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": _server_url()}
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--personas", "50", "--sets", "3", "--commits", "20",
         "--only", "commands", "--quick", "--no-peer", "--keep", str(tmp_path), *args],
        capture_output=True, text=True, check=False, timeout=300, env=env)


def test_the_commands_section_times_every_whole_command_with_its_floor_and_memory(
        tmp_path: Path) -> None:
    run = _bench(tmp_path, "--format", "json")
    assert run.returncode == 0, run.stderr
    rows = {r["figure"]: r for r in json.loads(run.stdout)["rows"]}
    for figure in ("maestro check (median of 1)", "maestro sync --head-only, empty database",
                   "maestro index rebuild", "maestro sync, whole history, empty database"):
        assert rows[figure]["value"] > 0, rows[figure]
        assert rows[figure]["note"].startswith("exit 0, ") and " s CPU" in rows[figure]["note"]
        assert rows[figure]["floor"], rows[figure]
        # each process's own peak, not the benchmark's (a fork inherits the parent's)
        assert 10 < rows[f"{figure.split(' (')[0].split(', empty')[0]}: peak RSS"]["value"] < 1000
    assert any(f.startswith("maestro export --all") for f in rows)
    assert sum(f.startswith("maestro history, most-edited") for f in rows) == 2
    assert rows["git-history file, most-edited set"]["note"] == "not available: --no-peer"
    failed = [r for r in rows.values() if r["note"].startswith("failed")]
    assert not failed, failed
    for name in ("floor: bare COPY of the head's rows, GIN after",
                 "floor: index rebuild of the parsed head (2 processes)"):
        assert rows[name]["value"] > 0


def test_a_subset_of_commands_prints_its_table(tmp_path: Path) -> None:
    run = _bench(tmp_path, "--commands", "check,history")
    assert run.returncode == 0, run.stderr
    figures = [line.split("  ")[1] for line in run.stdout.splitlines()[1:] if "  " in line]
    assert run.stdout.splitlines()[0].split() == ["SECTION", "FIGURE", "VALUE", "TARGET",
                                                  "FLOOR", "OK?"]
    assert any("maestro check" in f for f in figures)
    assert not any("sync" in line for line in run.stdout.splitlines())
