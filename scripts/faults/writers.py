"""The human-commit race and the concurrent writers, through the drivers of the write-race
fix (`tests/faults/race.py`: `human_commit_race`, `concurrent_writers`), which return counts.
While that module is not there, the section says so instead of guessing."""

from __future__ import annotations

import time
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

__all__ = ["run_writers"]


def run_writers(workdir: Path, rounds: int, writers: int, writes: int, seed: int
                ) -> dict[str, Any]:
    """{"available": bool, "race": counts, "writers": counts, "ok": bool, ...}."""
    try:
        from tests.faults import race
    except ImportError as exc:
        return {"available": False, "reason": f"not available: {exc}", "ok": True}
    out: dict[str, Any] = {"available": True}
    started = time.monotonic()
    try:
        counts = race.human_commit_race(workdir / "race", rounds=rounds, seed=seed)
        out["race"] = _plain(counts)
        out["race_failures"] = counts.failures
        began = time.monotonic()
        out["race_seconds"] = round(began - started, 1)
        many = race.concurrent_writers(workdir / "writers", writers=writers, writes=writes)
        out["writers"] = _plain(many)
        out["writers_failures"] = many.failures
        out["writers_seconds"] = round(time.monotonic() - began, 1)
        out["ok"] = counts.failures == 0 and many.failures == 0
    except Exception as exc:  # the section reports; the other sections still run
        out["error"] = f"{type(exc).__name__}: {exc}"
        out["ok"] = False
    return out


def _plain(counts: Any) -> dict[str, Any]:
    data = asdict(counts) if is_dataclass(counts) else dict(vars(counts))
    data["errors"] = list(data.get("errors", []))[:5]
    return data
