"""Issue 5: Whoosh rebuild, incremental update, search latency, `Client.get` cached/uncached.
Issue 15: search p50/p95 on both backends over one fixed query set (`PARITY_QUERIES`: words,
phrases, fields, booleans, prefixes), the same queries in the same language on each."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from bench_common import Context, Row, guarded, median, p95, say, timed

SECTION = "search"
QUERIES = (  # a fixed set: words, phrases, fields, names, words that match little
    "security", "code reviewer", '"edge cases"', "tags:coding", "owner:acme",
    "translator german", "regulatory constraints", "sql expert", "nurse Berlin",
    "accessibility", "migration paths", "rigorous researcher", "plain language",
    "tags:gdpr privacy", '"test coverage gaps"', "story editor", "cite sources",
    "stakeholders risks", "onboarding", "financial analyst")
# Issue 15's fixed set, run on both backends: words, phrases and fields (the README's example
# first), a boolean, a prefix and a range; p95 target 20 ms on each.
PARITY_QUERIES = (
    "tag:coding review", "security", "code reviewer", '"edge cases"', "owner:acme",
    "tags:gdpr privacy", '"test coverage gaps"', "plain language", "kind:template research",
    "title:analyst", "status:validated", "review*", "accessibility OR onboarding",
    "financial analyst NOT owner:acme", "age:[50 TO 59] nurse", "set:clinic")
PARITY_TARGET_MS = 20.0


def run(ctx: Context) -> Iterator[Row]:
    try:
        from maestro_git.search.index import SearchIndex
    except ImportError as exc:
        yield Row(SECTION, "search", None, note=f"not available: {exc}")
        return
    from maestro_git.core.snapshot import build_snapshot
    from maestro_git.git.repo import GitRepo

    gen = ctx.repo
    settings = ctx.settings.with_overrides(index_dir=ctx.workdir / "index")
    snap = build_snapshot(GitRepo(gen.path).files_at(gen.head), settings, gen.head)
    index = SearchIndex(settings)

    say(f"search: Whoosh rebuild of {gen.personas} personas and {gen.sets} sets")
    seconds, docs = timed(lambda: index.rebuild(snap))
    yield Row(SECTION, f"index rebuild: {docs:,} documents", seconds,
              target=1.2 * 6.1 * ctx.scale, floor=ctx.floor(6.1, "procs=2 multisegment"))
    try:
        yield from guarded(SECTION, "incremental update", lambda: _incremental(ctx, index, snap))
        yield from guarded(SECTION, "search latency", lambda: _queries(ctx, index))
        yield from guarded(SECTION, "search latency, fixed set (whoosh)",
                           lambda: _fixed_set(ctx, "whoosh", lambda q: index.search(q)))
    finally:
        index.close()
    yield from guarded(SECTION, "Client.get", lambda: _client(ctx))
    yield from guarded(SECTION, "search latency, fixed set (postgres)", lambda: _postgres(ctx))


def _incremental(ctx: Context, index: object, snap: object) -> list[Row]:
    from maestro_git.core.models import SourceFile
    from maestro_git.core.snapshot import Snapshot, diff_snapshots, update_snapshot
    from maestro_git.search.index import SearchIndex

    assert isinstance(index, SearchIndex) and isinstance(snap, Snapshot)
    n, warmup = (10, 2) if ctx.quick else (50, 3)
    say(f"search: {n} incremental updates of one persona each")
    keys = list(ctx.repo.sample_personas)
    samples: list[float] = []
    current = snap
    for i in range(n + warmup):
        persona = current.personas[keys[i % len(keys)]]
        source = SourceFile(path=persona.path, data=_file_bytes(ctx, persona.path)
                            + f"\n- Benchmark note {i}.\n".encode())
        new = update_snapshot(current, [source], [], ctx.settings, commit=f"{i + 1:040x}")
        changes = diff_snapshots(current, new)
        start = time.perf_counter()
        index.apply(changes, new)
        if i >= warmup:
            samples.append((time.perf_counter() - start) * 1000)
        current = new
    index.wait_for_merge(timeout=60)
    return [
        Row(SECTION, f"incremental update, one commit: median of {n}", median(samples),
            unit="ms", target=30.0, floor="11.2 ms Whoosh update+commit"),
        Row(SECTION, f"incremental update, one commit: p95 of {n}", p95(samples), unit="ms",
            target=80.0, floor="59.2 ms"),
    ]


def _file_bytes(ctx: Context, path: str) -> bytes:
    from maestro_git.git.repo import GitRepo

    data = GitRepo(ctx.repo.path).read_file(ctx.repo.head, path)
    assert data is not None
    return data


def _queries(ctx: Context, index: object) -> list[Row]:
    from maestro_git.errors import SearchError
    from maestro_git.search.index import SearchIndex

    assert isinstance(index, SearchIndex)
    reps = 2 if ctx.quick else 5
    say(f"search: {len(QUERIES)} queries x {reps}")
    samples: list[float] = []
    first: list[float] = []  # each query's first run: its words' scores not cached yet
    failed: list[str] = []
    hits = 0
    for q in QUERIES:
        try:
            start = time.perf_counter()
            hits += len(index.search(q))  # warms the searcher and the query's words
            first.append((time.perf_counter() - start) * 1000)
        except SearchError as err:
            failed.append(f"{q}: {err.message}")
            continue
        for _ in range(reps):
            start = time.perf_counter()
            index.search(q)
            samples.append((time.perf_counter() - start) * 1000)
    note = f"{hits} hits" + (f"; refused: {'; '.join(failed)}" if failed else "")
    if not samples:
        return [Row(SECTION, "search latency", None, note=f"not available: {note}")]
    return [
        Row(SECTION, f"search, {len(QUERIES)} fixed queries: median", median(samples),
            unit="ms", target=10.0, note=note),
        Row(SECTION, f"search, {len(QUERIES)} fixed queries: p95", p95(samples), unit="ms"),
        Row(SECTION, f"search, first run of each of the {len(first)} queries: median",
            median(first), unit="ms", note="word scores computed, not cached"),
        Row(SECTION, f"search, first run of each of the {len(first)} queries: p95",
            p95(first), unit="ms"),
    ]


def _fixed_set(ctx: Context, backend: str, search: Callable[[str], object]) -> list[Row]:
    """p50/p95 of every run of `PARITY_QUERIES` (first runs included: nothing is warmed)."""
    from maestro_git.errors import SearchError

    reps = 2 if ctx.quick else 5
    say(f"search ({backend}): {len(PARITY_QUERIES)} fixed queries x {reps + 1}")
    samples: list[float] = []
    failed: list[str] = []
    for q in PARITY_QUERIES:
        for _ in range(reps + 1):
            start = time.perf_counter()
            try:
                search(q)
            except SearchError as err:
                failed.append(f"{q}: {err.message}")
                break
            samples.append((time.perf_counter() - start) * 1000)
    note = f"refused: {'; '.join(failed)}" if failed else "first runs included"
    if not samples:
        return [Row(SECTION, f"search ({backend}) fixed set", None, note=note)]
    n = len(samples)
    return [
        Row(SECTION, f"search ({backend}), fixed set of {len(PARITY_QUERIES)}: median of {n}",
            median(samples), unit="ms", note=note),
        Row(SECTION, f"search ({backend}), fixed set of {len(PARITY_QUERIES)}: p95 of {n}",
            p95(samples), unit="ms", target=PARITY_TARGET_MS),
    ]


def _mirrored_url(ctx: Context) -> str:
    url = ctx.shared.get("mirrored_url")
    if url is None:
        from maestro_git.mirror.sync import sync

        url = ctx.fresh_database()
        say("search: mirroring the head")
        sync(ctx.settings.with_overrides(database_url=url), head_only=True)
        ctx.shared["mirrored_url"] = url
    return str(url)


def _postgres(ctx: Context) -> list[Row]:
    from maestro_git.mirror import db, query

    url = _mirrored_url(ctx)
    with db.connect(ctx.settings.with_overrides(database_url=url)) as conn:
        conn.execute("ANALYZE")
        return _fixed_set(ctx, "postgres", lambda q: query.search(conn, q))


def _client(ctx: Context) -> list[Row]:
    try:
        from maestro_git.client import Client
    except ImportError as exc:
        return [Row(SECTION, "Client.get", None, note=f"not available: {exc}")]
    url = _mirrored_url(ctx)
    say("search: Client.get cached and uncached")
    client = Client(url, settings=ctx.settings)
    try:
        keys = list(ctx.repo.sample_personas)
        uncached: list[float] = []
        for _ in range(3 if ctx.quick else 10):
            for key in keys:
                client.clear_cache()
                start = time.perf_counter()
                client.get(key)
                uncached.append((time.perf_counter() - start) * 1e6)
        cached: list[float] = []
        client.get(keys[0])
        for _ in range(2000):
            start = time.perf_counter()
            client.get(keys[0])
            cached.append((time.perf_counter() - start) * 1e6)
        listening = client.listening
    finally:
        client.close()
    note = "" if listening else "NOTIFY listener was not up: cache unused"
    return [
        Row(SECTION, "Client.get cached: median of 2000", median(cached), unit="us",
            target=20.0, note=note),
        Row(SECTION, f"Client.get uncached: median of {len(uncached)}", median(uncached) / 1000,
            unit="ms", target=1.0),
        Row(SECTION, "Client.get uncached: p95", p95(uncached) / 1000, unit="ms"),
    ]
