"""The property-based tests (`@given`, which Hypothesis marks `hypothesis`) of `tests/core`,
run again with many more examples: the `soak` settings profile registered in
`tests/conftest.py` (its example count from MAESTRO_SOAK_EXAMPLES) and a fixed seed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["run_properties"]

ROOT = Path(__file__).resolve().parents[2]


def run_properties(examples: int, seed: int, timeout: float) -> dict[str, Any]:
    env = dict(os.environ, MAESTRO_SOAK_EXAMPLES=str(examples))
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/core",
           "-m", "hypothesis", "--hypothesis-profile", "soak", f"--hypothesis-seed={seed}"]
    started = time.monotonic()
    try:
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"examples": examples, "seed": seed, "ok": False,
                "error": f"timed out after {timeout:.0f} s"}
    tail = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|error|errors|deselected)",
                                               tail)}
    return {
        "command": " ".join(["MAESTRO_SOAK_EXAMPLES=" + str(examples), "python", *cmd[1:]]),
        "examples": examples, "seed": seed, "passed": counts.get("passed", 0),
        "failed": counts.get("failed", 0) + counts.get("error", 0) + counts.get("errors", 0),
        "tracebacks": 0 if done.returncode in (0, 5) else done.stdout.count("Traceback"),
        "summary": tail, "seconds": round(time.monotonic() - started, 1),
        "ok": done.returncode == 0 and counts.get("passed", 0) > 0,
    }
