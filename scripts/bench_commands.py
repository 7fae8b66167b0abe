"""Issue 15: whole `maestro` processes, each beside the floors it stands on, measured in the
same run, with the peak resident memory of each process.

Figures (`ctx.commands` chooses a subset; all by default):

- `check`: the command over the working tree, beside read + parse + validate in this process;
  target ≤ 1.2 × that.
- `head-sync`: `sync --head-only` into an empty database with no index, beside two floors:
  the mirror floor (parsing the head, then a bare COPY of the very rows that sync wrote into a
  fresh database of the same schema, the stored full-text columns computed by the server and
  the GIN indexes built after the load) and the index floor (`SearchIndex.rebuild` of a parsed
  snapshot, two writer processes); target ≤ 1.15 × max(mirror, index) + 1 s.
- `index`: `index rebuild`, beside parse + the index floor.
- `history`: `history` of the persona and of the set with the most versions, beside the
  path-limited walk (`Repository.history` in this process) and, when it is installed, the
  peer `git-history file` on the same file (`pip install git-history`; `--no-peer` skips it);
  target: ≥ 10× faster than the peer.
- `export`: `export --all` into an empty folder.
- `full-sync`: `sync` of the whole history into an empty database with no index, beside the
  library mirror alone (`mirror.sync.sync`, no index) plus one index rebuild (parse + index
  floor); target ≤ 1.2 × that.

Peak memory is the largest resident set of the process and the children it waited for
(`wait4`'s `ru_maxrss`), so a sync's index child counts. Fixed costs (an interpreter and its
imports) are in the whole-process figures and not in the floors: that is the point.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench_common import Context, Row, guarded, median, say, timed

from maestro_git.settings import Settings

SECTION = "commands"
FIGURES = ("check", "head-sync", "index", "history", "export", "full-sync")
HEAD_SYNC_RSS_MB = 1500.0  # issue 15: a 100,000-persona head sync stays under 1.5 GB


@dataclass(frozen=True)
class Run:
    """One finished process: wall seconds, peak resident MB, exit code, last stderr line,
    CPU seconds (user + system, its waited-for children included)."""

    seconds: float
    rss_mb: float
    code: int
    last_line: str
    cpu: float = float("nan")


def maestro_argv() -> list[str]:
    """How a user starts maestro from this environment: its console script, else -m."""
    script = Path(sys.executable).with_name("maestro")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "maestro_git"]


# A small process between the benchmark and the command: on Linux a child's peak RSS starts
# at its parent's size at the fork (exec records the old address space's peak), so a command
# forked from this large process would report this process's memory, not its own. The
# launcher is started without `site` (a few MB); the command it forks starts small.
_LAUNCHER = """
import os, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.Popen(sys.argv[1:], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(proc.pid, 0)
proc.returncode = os.waitstatus_to_exitcode(status)
print(time.perf_counter() - start, usage.ru_maxrss, proc.returncode,
      usage.ru_utime + usage.ru_stime)
"""


def run_process(argv: list[str], *, env: dict[str, str] | None = None,
                cwd: Path | None = None, timeout: float = 3600.0) -> Run:
    """Run `argv` to its end through the launcher; its wall time and the peak RSS of its
    process tree (`wait4`: the largest of the process and the children it waited for)."""
    done = subprocess.run([sys.executable, "-S", "-c", _LAUNCHER, *argv], env=env, cwd=cwd,
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout,
                          check=False)
    lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
    try:
        seconds, rss_kb, code, cpu = done.stdout.split()
    except ValueError:
        return Run(float("nan"), float("nan"), done.returncode or 1,
                   lines[-1] if lines else "the launcher failed", float("nan"))
    return Run(float(seconds), int(rss_kb) / 1024, int(code), lines[-1] if lines else "",
               float(cpu))


class Maestro:
    """`maestro --repo R ...` as its own process, with `DATABASE_URL` set or removed."""

    def __init__(self, repo: Path, database_url: str | None = None) -> None:
        self.repo = repo
        self.database_url = database_url

    def __call__(self, *args: str, database_url: str | None = None) -> Run:
        env = dict(os.environ)
        env.pop("MAESTRO_BRANCH", None)
        url = database_url or self.database_url
        if url:
            env["DATABASE_URL"] = url
        return run_process([*maestro_argv(), "--repo", str(self.repo), *args], env=env)


def _note(run: Run, extra: str = "") -> str:
    status = "exit 0" if run.code == 0 else f"exit {run.code}: {run.last_line[:120]}"
    return ", ".join(filter(None, [status, f"{run.cpu:.2f} s CPU", extra]))


def _usage(figure: str, run: Run, target: float | None = None) -> Iterator[Row]:
    """The process's peak RSS and its CPU seconds (what the scale curve compares on a busy
    machine, where wall time mostly measures the neighbours)."""
    yield Row(SECTION, f"{figure}: peak RSS", run.rss_mb, unit="MB", target=target)
    yield Row(SECTION, f"{figure}: CPU", run.cpu, note="user + system, children included")


def _best(runs: list[Run]) -> Run:
    """The median run by time (an odd count) or the faster of two."""
    ordered = sorted(runs, key=lambda r: r.seconds)
    return ordered[(len(ordered) - 1) // 2]


def run(ctx: Context) -> Iterator[Row]:
    wanted = ctx.shared.get("commands") or FIGURES
    yield from guarded(SECTION, "floors", _prepare(ctx))
    for name in FIGURES:
        if name in wanted:
            yield from guarded(SECTION, name, _FIGURES[name](ctx))


# -- floors, measured once and shared by the figures -------------------------------------------
def _prepare(ctx: Context) -> Iterator[Row]:
    """Parse the head in this process once (the floors' parse), and keep the snapshot."""
    from maestro_git.core.snapshot import build_snapshot
    from maestro_git.git.repo import GitRepo

    gen = ctx.repo
    say(f"commands: parsing the head in this process ({gen.personas} personas)")
    parse_s, snap = timed(lambda: build_snapshot(GitRepo(gen.path).files_at(gen.head),
                                                 ctx.settings, gen.head))
    ctx.shared["commands.snapshot"] = snap
    ctx.shared["commands.parse"] = parse_s
    yield Row(SECTION, "floor: read + parse the head (this process)", parse_s,
              note=f"{len(snap.problems)} problems")


def _index_floor(ctx: Context) -> float:
    """`SearchIndex.rebuild` of the parsed head, two writer processes (once per run)."""
    if "commands.index_floor" not in ctx.shared:
        from maestro_git.search.index import SearchIndex

        folder = ctx.workdir / "floor-index"
        settings = ctx.settings.with_overrides(index_dir=folder)
        say("commands: index floor (SearchIndex.rebuild of the parsed head)")
        with SearchIndex(settings) as index:
            seconds, _ = timed(lambda: index.rebuild(ctx.shared["commands.snapshot"]))
        shutil.rmtree(folder, ignore_errors=True)
        ctx.shared["commands.index_floor"] = seconds
    return float(ctx.shared["commands.index_floor"])


def _no_index(settings: Settings) -> None:
    shutil.rmtree(settings.state_dir, ignore_errors=True)  # the repository's .maestro/


# -- check -------------------------------------------------------------------------------------
def _check(ctx: Context) -> Iterator[Row]:
    from maestro_git.core.snapshot import build_snapshot
    from maestro_git.git.worktree import read_worktree

    if not ctx.repo.checked_out:
        yield Row(SECTION, "maestro check", None, note="not available: no working tree")
        return
    n = 1 if ctx.quick else 3
    say(f"commands: maestro check x {n}, and read + parse + validate in this process")
    maestro = Maestro(ctx.repo.path)
    runs = [maestro("check", "--format", "json") for _ in range(n)]
    floors = []
    for _ in range(n):
        seconds, _snap = timed(lambda: build_snapshot(read_worktree(ctx.repo.path),
                                                      ctx.settings))
        floors.append(seconds)
    floor = median(floors)
    best = _best(runs)
    yield Row(SECTION, f"maestro check (median of {n})", best.seconds, target=1.2 * floor,
              floor=f"{floor:.2f} s read+parse+validate", note=_note(best))
    yield from _usage("maestro check", best)


# -- sync --head-only --------------------------------------------------------------------------
def _head_sync(ctx: Context) -> Iterator[Row]:
    from maestro_git.mirror import db

    url = ctx.fresh_database()
    _no_index(ctx.settings)
    say("commands: maestro sync --head-only into an empty database, no index")
    done = Maestro(ctx.repo.path, url)("sync", "--head-only")
    index_floor = _index_floor(ctx)
    say("commands: mirror floor (a bare COPY of the same rows into a fresh database)")
    copy_s, rows = copy_floor(ctx.settings.with_overrides(database_url=url),
                              ctx.settings.with_overrides(database_url=ctx.fresh_database()),
                              db)
    mirror_floor = ctx.shared["commands.parse"] + copy_s
    target = 1.15 * max(mirror_floor, index_floor) + 1.0
    _no_index(ctx.settings)
    yield Row(SECTION, "floor: bare COPY of the head's rows, GIN after", copy_s,
              note=f"{rows:,} rows")
    yield Row(SECTION, "floor: index rebuild of the parsed head (2 processes)", index_floor)
    yield Row(SECTION, "maestro sync --head-only, empty database", done.seconds, target=target,
              floor=f"mirror {mirror_floor:.2f} s, index {index_floor:.2f} s",
              note=_note(done))
    yield from _usage("maestro sync --head-only", done,
               target=HEAD_SYNC_RSS_MB if ctx.repo.personas >= 100_000 else None)


def copy_floor(source: Settings, target: Settings, db: Any) -> tuple[float, int]:
    """Seconds to COPY every row `source`'s mirror holds into `target`'s freshly migrated
    mirror (same schema), generated columns left to the server, GIN indexes dropped first and
    built after, in one transaction; and the row count. Only the load is timed."""
    from psycopg import sql

    from maestro_git.mirror.bulk import drop_gin_indexes

    with db.connect(source) as src:
        db.migrate(src)  # binds and names the schema (already migrated: nothing to apply)
        order = _tables_in_fk_order(src)
        dumps: list[tuple[str, list[str], list[bytes]]] = []
        total = 0
        for table in order:
            cols = [r[0] for r in src.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = "
                "current_schema() AND table_name = %s AND is_generated = 'NEVER' "
                "ORDER BY ordinal_position", (table,)).fetchall()]
            count = src.execute(sql.SQL("SELECT count(*) FROM {}").format(
                sql.Identifier(table))).fetchone()
            if not cols or not count or not count[0]:
                continue
            total += int(count[0])
            chunks: list[bytes] = []
            with src.cursor() as cur, cur.copy(sql.SQL("COPY (SELECT {} FROM {}) TO STDOUT").format(
                    sql.SQL(", ").join(map(sql.Identifier, cols)),
                    sql.Identifier(table))) as copy:
                for chunk in copy:
                    chunks.append(bytes(chunk))
            dumps.append((table, cols, chunks))
    with db.connect(target) as dst:
        db.migrate(dst)
        seeded = {t for t, _, _ in dumps if (dst.execute(sql.SQL(
            "SELECT count(*) FROM {}").format(sql.Identifier(t))).fetchone() or (0,))[0]}
        start = time.perf_counter()
        with dst.transaction():
            gin = drop_gin_indexes(dst)
            for table, cols, chunks in dumps:
                if table in seeded:  # rows a migration writes (none today)
                    continue
                with dst.cursor() as cur, cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(
                        sql.Identifier(table),
                        sql.SQL(", ").join(map(sql.Identifier, cols)))) as copy:
                    for chunk in chunks:
                        copy.write(chunk)
            if gin:  # as `BulkLoad.rebuild_indexes`: no pending foreign-key checks at CREATE
                dst.execute("SET CONSTRAINTS ALL IMMEDIATE")
            for definition in gin:
                dst.execute(definition.encode("utf-8"))
        seconds = time.perf_counter() - start
    return seconds, total


def _tables_in_fk_order(conn: Any) -> list[str]:
    """The schema's tables, each after the tables its foreign keys point at."""
    tables = [r[0] for r in conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') "
        "AND NOT c.relispartition ORDER BY c.relname").fetchall()]
    deps: dict[str, set[str]] = {t: set() for t in tables}
    for child, parent in conn.execute(
            "SELECT c.relname, p.relname FROM pg_constraint k "
            "JOIN pg_class c ON c.oid = k.conrelid JOIN pg_class p ON p.oid = k.confrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE k.contype = 'f' AND n.nspname = current_schema()").fetchall():
        if child in deps and parent in deps and child != parent:
            deps[child].add(parent)
    ordered: list[str] = []
    while deps:
        ready = sorted(t for t, d in deps.items() if not d - set(ordered))
        if not ready:  # a cycle: leave the rest in name order
            ready = sorted(deps)
        for t in ready:
            ordered.append(t)
            deps.pop(t)
    return [t for t in ordered if t != "schema_migrations"]


# -- index rebuild -----------------------------------------------------------------------------
def _index(ctx: Context) -> Iterator[Row]:
    _no_index(ctx.settings)
    say("commands: maestro index rebuild")
    done = Maestro(ctx.repo.path)("index", "rebuild")
    floor = ctx.shared["commands.parse"] + _index_floor(ctx)
    _no_index(ctx.settings)
    yield Row(SECTION, "maestro index rebuild", done.seconds,
              floor=f"{floor:.2f} s parse+index", note=_note(done))
    yield from _usage("maestro index rebuild", done)


# -- history -----------------------------------------------------------------------------------
def hot_set(repo: Path) -> tuple[str, str, int]:
    """The persona set whose file changed in the most commits: (key, path, commits)."""
    out = subprocess.run(["git", "-C", str(repo), "log", "--format=", "--name-only",
                          "--", "persona_sets"], capture_output=True, text=True,
                         check=True).stdout
    counts = Counter(line for line in out.splitlines()
                     if line.endswith(".json") and (repo / line).is_file())  # at the head
    path, n = max(counts.items(), key=lambda kv: (kv[1], kv[0]))
    key = path.removeprefix("persona_sets/").removesuffix("/set.json").removesuffix(".json")
    return key, path, n


def peer_command(given: str | None = None) -> list[str] | None:
    """`git-history`: `given` (--peer), else from this environment or PATH (None: not
    installed)."""
    if given:
        return [given] if Path(given).is_file() else None
    local = Path(sys.executable).with_name("git-history")
    if local.is_file():
        return [str(local)]
    found = shutil.which("git-history")
    return [found] if found else None


def _history(ctx: Context) -> Iterator[Row]:
    from maestro_git.repo.repository import Repository

    gen = ctx.repo
    n = 1 if ctx.quick else 3
    set_key, set_path, set_commits = hot_set(gen.path)
    maestro = Maestro(gen.path)
    peer = None if ctx.shared.get("no_peer") else peer_command(ctx.shared.get("peer"))
    for what, key, path in (("persona", gen.hot_persona, _persona_path(gen.hot_persona)),
                            ("set", set_key, set_path)):
        say(f"commands: maestro history of the most-edited {what} {key} x {n}")
        runs = [maestro("history", key, "--format", "json") for _ in range(n)]
        versions: list[Any] = []

        def walk(key: str = key, versions: list[Any] = versions) -> None:
            versions[:] = Repository(ctx.settings).history(key)

        walks = []
        for _ in range(n):
            seconds, _ = timed(walk)
            walks.append(seconds)
        best = _best(runs)
        figure = f"maestro history, most-edited {what} ({len(versions)} versions)"
        yield Row(SECTION, f"{figure} (median of {n})", best.seconds,
                  floor=f"{median(walks) * 1000:.0f} ms path-limited walk", note=_note(best))
        yield from _usage(f"maestro history, {what}", best)
        if peer is None:
            reason = "--no-peer" if ctx.shared.get("no_peer") else \
                "git-history is not installed (pip install git-history)"
            yield Row(SECTION, f"git-history file, most-edited {what}", None,
                      note=f"not available: {reason}")
            continue
        say(f"commands: git-history file {path} x {n} (the peer)")
        peer_runs = []
        for i in range(n):
            out = ctx.workdir / f"git-history-{what}-{i}.db"
            argv = [*peer, "file", str(out), path, "--repo", str(gen.path),
                    "--branch", gen.branch]
            if what == "persona":  # Markdown, not JSON: one item per version
                argv += ["--convert", 'return [{"text": content.decode("utf-8")}]']
            else:  # one set object per version (the peer reads a JSON array of items)
                argv += ["--convert", "return [json.loads(content)]"]
            peer_runs.append(run_process(argv))
            out.unlink(missing_ok=True)
        peer_best = _best(peer_runs)
        yield Row(SECTION, f"git-history file, most-edited {what} (median of {n})",
                  peer_best.seconds, note=_note(peer_best, f"{set_commits} commits"
                                                if what == "set" else ""))
        yield Row(SECTION, f"speed-up of maestro history over git-history, {what}",
                  peer_best.seconds / best.seconds, unit="×", target=10.0,
                  higher_is_better=True)


def _persona_path(key: str) -> str:
    return f"personas/{key}.md"


# -- export --all ------------------------------------------------------------------------------
def _export(ctx: Context) -> Iterator[Row]:
    from maestro_git.ops.exporter import export_all

    dest = ctx.workdir / "export"
    say("commands: maestro export --all")
    done = Maestro(ctx.repo.path)("export", "--all", str(dest))
    files = sum(1 for p in dest.rglob("*") if p.is_file())
    shutil.rmtree(dest, ignore_errors=True)
    seconds, _ = timed(lambda: export_all(ctx.settings, dest))
    shutil.rmtree(dest, ignore_errors=True)
    yield Row(SECTION, f"maestro export --all ({files:,} files)", done.seconds,
              floor=f"{seconds:.2f} s export_all in this process", note=_note(done))
    yield from _usage("maestro export --all", done)


# -- full-history sync -------------------------------------------------------------------------
def _full_sync(ctx: Context) -> Iterator[Row]:
    from maestro_git.mirror.sync import sync

    gen = ctx.repo
    _no_index(ctx.settings)
    say(f"commands: maestro sync of the whole history ({gen.commits} commits), no index")
    done = Maestro(gen.path, ctx.fresh_database())("sync")
    _no_index(ctx.settings)
    say("commands: the library mirror alone (mirror.sync.sync, no index)")
    library_s, report = timed(lambda: sync(ctx.settings.with_overrides(
        database_url=ctx.fresh_database())))
    rebuild = ctx.shared["commands.parse"] + _index_floor(ctx)
    floor = library_s + rebuild
    yield Row(SECTION, f"floor: library mirror of {report.commits} commits, no index",
              library_s)
    yield Row(SECTION, "maestro sync, whole history, empty database", done.seconds,
              target=1.2 * floor, floor=f"{library_s:.2f} s mirror + {rebuild:.2f} s rebuild",
              note=_note(done))
    yield from _usage("maestro sync, whole history", done)


_FIGURES: dict[str, Callable[[Context], Iterator[Row]]] = {
    "check": _check, "head-sync": _head_sync, "index": _index, "history": _history,
    "export": _export, "full-sync": _full_sync,
}
