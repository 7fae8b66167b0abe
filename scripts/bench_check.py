"""Issue 2: `maestro check` over the whole generated repository (working tree)."""

from __future__ import annotations

import subprocess
import sys

from bench_common import Context, Row, median, repeat, say, timed

from maestro_git.core.snapshot import build_snapshot
from maestro_git.git.worktree import read_worktree

SECTION = "check"
TARGET_10K = 3.0  # issue 2: "a few seconds" for 10,000 personas


def run(ctx: Context) -> list[Row]:
    if not ctx.repo.checked_out:
        return [Row(SECTION, "maestro check", None, note="not available: no working tree")]
    root = ctx.repo.path
    say(f"check: maestro check over {ctx.repo.personas} personas")
    codes: list[int] = []
    failures: list[str] = []

    def cli_check() -> None:  # a process of its own, as a user or CI runs it
        done = subprocess.run(
            [sys.executable, "-c", "import sys; from maestro_git.cli import main; "
             "sys.exit(main(sys.argv[1:]))", "--repo", str(root), "check", "--format", "json"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
        codes.append(done.returncode)
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines()
            failures.append(lines[-1] if lines else f"exit {done.returncode}")

    n = 1 if ctx.quick else 3
    cli_times = repeat(cli_check, n)
    read_s, sources = timed(lambda: list(read_worktree(root)))
    snap_s, snap = timed(lambda: build_snapshot(sources, ctx.settings))
    note = "exit 0" if set(codes) == {0} else f"exit codes {codes}: {failures[0]}"
    return [
        Row(SECTION, f"maestro check, {ctx.repo.personas} personas, own process (median of {n})",
            median(cli_times), target=TARGET_10K * ctx.scale,
            floor=ctx.floor(0.27 + 0.77 + 0.05, "read+parse+pydantic"), note=note),
        Row(SECTION, "read the working tree", read_s, note=f"{len(sources)} files"),
        Row(SECTION, "parse + validate (build_snapshot)", snap_s,
            floor=ctx.floor(0.77 + 0.05, "parse+pydantic"),
            note=f"{len(snap.problems)} problems"),
    ]
