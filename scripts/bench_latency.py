"""Commit-to-queryable alone, for the scale curve: mirror the head (library, head only) on a
scratch branch, then time one-file commits with a daemon running (as the mirror section does
after its full-history mirror, which the scale curve does not wait for)."""

from __future__ import annotations

from collections.abc import Iterator

from bench_common import Context, Row, say, scratch_branch
from bench_mirror import _daemon_latency


def run(ctx: Context) -> Iterator[Row]:
    from maestro_git.mirror.sync import sync

    with scratch_branch(ctx.repo) as branch:
        settings = ctx.settings.with_overrides(branch=branch, database_url=ctx.fresh_database())
        say("latency: mirroring the head of the scratch branch")
        sync(settings, head_only=True)
        for row in _daemon_latency(ctx, settings):
            yield Row("latency", row.figure, row.value, unit=row.unit, target=row.target,
                      floor=row.floor, note=row.note)
