"""Issue 3: reading a commit, one persona's history, one write commit."""

from __future__ import annotations

from bench_common import Context, Row, median, p95, repeat, say, scratch_branch, timed

from maestro_git.core.snapshot import build_snapshot
from maestro_git.git.repo import GitRepo

SECTION = "git"


def run(ctx: Context) -> list[Row]:
    gen = ctx.repo
    rows: list[Row] = []
    n = 1 if ctx.quick else 3
    say(f"git: tree read and snapshot of a {gen.personas}-persona commit")
    sources: list[object] = []

    def read() -> None:
        sources[:] = list(GitRepo(gen.path).files_at(gen.head))  # a fresh handle: cold cache

    read_times = repeat(read, n)
    rows.append(Row(SECTION, f"snapshot: tree read, {len(sources)} files (median of {n})",
                    median(read_times), target=1.0 * ctx.scale,
                    floor=ctx.floor(0.27, "subtree walk")))
    parse_s, snap = timed(lambda: build_snapshot(sources, ctx.settings, gen.head))  # type: ignore[arg-type]
    rows.append(Row(SECTION, "snapshot: parse + validate", parse_s,
                    floor=ctx.floor(0.77 + 0.05, "parse+pydantic"),
                    note=f"{len(snap.problems)} problems"))
    try:
        from maestro_git.repo.repository import Repository
    except ImportError as exc:
        rows.append(Row(SECTION, "history / write commit", None,
                        note=f"not available: {exc}"))
        return rows

    say(f"git: history of {gen.hot_persona} across {gen.commits} commits")
    versions: list[object] = []

    def history() -> None:
        versions[:] = Repository(ctx.settings).history(gen.hot_persona)

    hist_times = repeat(history, n)
    rows.append(Row(SECTION, f"history of one persona across {gen.commits} commits "
                    f"(median of {n})", median(hist_times),
                    target=1.9 * gen.commits / 2000,
                    floor="1.9 s to diff every commit" if gen.commits == 2000 else "",
                    note=f"{len(versions)} versions"))

    writes = 3 if ctx.quick else 15
    say(f"git: {writes} write commits (Repository.update) on a scratch branch")
    with scratch_branch(gen) as branch:
        repo = Repository(ctx.settings.with_overrides(
            branch=branch, author_name="Bench", author_email="bench@example.invalid"))
        keys = list(gen.sample_personas)
        counter = iter(range(10**6))

        def write() -> None:
            i = next(counter)
            repo.update(keys[i % len(keys)], fields={"description": f"Benchmark edit {i}"})

        repo.snapshot()  # the first write would otherwise pay for the whole snapshot
        times = repeat(write, writes, warmup=1)
    rows.append(Row(SECTION, f"one write commit, Repository.update: median of {writes}",
                    median(times) * 1000, unit="ms"))
    rows.append(Row(SECTION, "one write commit: p95", p95(times) * 1000, unit="ms"))
    return rows
