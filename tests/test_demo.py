"""`make demo` as a new user runs it: scripts/demo.py end to end on a clone of this
repository (its own personas and history), against a database of its own."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_make_demo_runs_every_step_and_serves_one_answer(tmp_path: Path,
                                                         database_url: str) -> None:
    clone = tmp_path / "maestro-git"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    # the demo as it is in this working tree, over the committed personas and history
    shutil.copy2(ROOT / "scripts" / "demo.py", clone / "scripts" / "demo.py")
    env = {**os.environ, "DATABASE_URL": database_url}
    result = subprocess.run([sys.executable, str(clone / "scripts" / "demo.py")], cwd=clone,
                            env=env, capture_output=True, text=True, timeout=600, check=False)
    out = result.stdout
    assert result.returncode == 0, f"demo failed:\n{out[-3000:]}\n{result.stderr[-3000:]}"
    assert out.rstrip().endswith("demo: done")
    # the SQL step read the mirror's views through the URL `maestro db url` printed
    assert "FROM current_personas" in out and " personas  " in out
    assert "queries: 1 cache hits: 1" in out
    assert '"key": "acme/python_reviewer"' in out
    assert "platform/base_assistant  ->  404" in out or "->  403" in out
