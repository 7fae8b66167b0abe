"""What every benchmark section shares: the result row, the run context, timing helpers.

A section is a module `bench_<name>.py` with `run(ctx: Context) -> list[Row]`. It measures
real library calls with `time.perf_counter`, repeats what is fast and reports median/p95, and
returns a row saying `not available: <reason>` when the module it measures is missing —
never a made-up figure.
"""

from __future__ import annotations

import statistics
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthetic import GeneratedRepo

from maestro_git.settings import Settings

SCRATCH_BRANCH = "bench-scratch"  # writes go here, so the cached repository's main never moves


@dataclass(frozen=True)
class Row:
    """One figure. `value` is in `unit`; `target` (same unit) is an upper bound unless
    `higher_is_better`. `ok` is None when there is no target to judge against."""

    section: str
    figure: str
    value: float | None
    unit: str = "s"
    target: float | None = None
    floor: str = ""
    note: str = ""
    higher_is_better: bool = False

    @property
    def ok(self) -> bool | None:
        if self.value is None or self.target is None:
            return None
        return self.value >= self.target if self.higher_is_better else self.value <= self.target

    def as_dict(self) -> dict[str, Any]:
        return {"section": self.section, "figure": self.figure, "value": self.value,
                "unit": self.unit, "target": self.target, "floor": self.floor,
                "ok": self.ok, "note": self.note, "higher_is_better": self.higher_is_better}


def unavailable(section: str, figure: str, reason: str) -> Row:
    return Row(section, figure, None, note=f"not available: {reason}")


def fmt_value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "s":
        return f"{value:.2f} s" if value >= 0.1 else f"{value * 1000:.1f} ms"
    if unit == "ms":
        return f"{value:.1f} ms"
    if unit == "us":
        return f"{value:.1f} µs"
    if unit == "MB":
        return f"{value:,.0f} MB"
    if unit == "×":
        return f"{value:.1f}×"
    if unit.endswith("/s"):
        return f"{value:,.0f} {unit}"
    return f"{value:g} {unit}".strip()


@dataclass
class Context:
    """What sections get: the generated repository, settings for it, scratch space."""

    repo: GeneratedRepo
    settings: Settings
    workdir: Path  # scratch space outside the repository, removed after the run
    server_url: Callable[[], str]  # a PostgreSQL server URL (DATABASE_URL or embedded)
    quick: bool = False  # fewer repetitions (tests, smoke runs)
    databases: list[str] = field(default_factory=list)
    shared: dict[str, Any] = field(default_factory=dict)  # e.g. a mirrored database's URL

    @property
    def scale(self) -> float:
        """This repository's size relative to the 10k-persona one DESIGN.md's floors are for;
        bulk targets and floors are scaled by it (latency targets are not)."""
        return self.repo.personas / 10_000

    def floor(self, seconds_at_10k: float, what: str = "") -> str:
        """A DESIGN.md floor, scaled to this repository when it is not the 10k one."""
        value = seconds_at_10k * self.scale
        text = fmt_value(value, "s")
        if self.repo.personas != 10_000:
            text += " (scaled)"
        return f"{text} {what}".strip()

    def fresh_database(self) -> str:
        """A new empty database on the server; dropped when the run ends."""
        from psycopg import sql
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        from maestro_git.mirror import db

        base = self.server_url()
        name = f"maestro_bench_{uuid.uuid4().hex[:10]}"
        with db.connect(base) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self.databases.append(name)
        params = conninfo_to_dict(base)
        params["dbname"] = name
        return make_conninfo("", **params)

    def drop_databases(self) -> None:
        if not self.databases:
            return
        from psycopg import sql

        from maestro_git.mirror import db

        with db.connect(self.server_url()) as conn:
            for name in self.databases:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(name)))
        self.databases.clear()


def guarded(section: str, figure: str,
            rows: Iterable[Row] | Callable[[], Iterable[Row]]) -> Iterator[Row]:
    """`rows` (or what calling `rows` returns), and a `failed: <reason>` row if producing
    them raises (traceback on stderr), so one broken step does not hide the figures of the
    next. Pass a callable when the step is a plain function returning a list: it must be
    called inside the guard."""
    try:
        yield from (rows() if callable(rows) else rows)
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        yield Row(section, figure, None, note=f"failed: {type(exc).__name__}: {exc}"[:200])


def say(message: str) -> None:
    """A progress line on stderr."""
    print(f"bench: {message}", file=sys.stderr, flush=True)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def repeat(fn: Callable[[], Any], n: int, warmup: int = 0) -> list[float]:
    """Seconds of `n` calls of `fn` after `warmup` uncounted ones."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def median(values: list[float]) -> float:
    return statistics.median(values)


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(0.95 * (len(ordered) - 1))))]


@contextmanager
def scratch_branch(repo: GeneratedRepo) -> Iterator[str]:
    """A branch at the generated head for sections that commit; deleted afterwards."""
    import pygit2  # scripts may use pygit2; the package keeps it in git.py and synthetic.py

    git = pygit2.Repository(str(repo.path))
    ref = f"refs/heads/{SCRATCH_BRANCH}"
    git.references.create(ref, pygit2.Oid(hex=repo.head), force=True)
    try:
        yield SCRATCH_BRANCH
    finally:
        git.references.delete(ref)
