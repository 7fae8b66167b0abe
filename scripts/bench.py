"""`make bench`: generate a synthetic persona repository once, time the library on it, print
a table `section | figure | value | target | floor | ok?` (or JSON).

    .venv/bin/python scripts/bench.py [--personas N] [--sets M] [--commits C] [--seed S]
        [--only check,git,mirror,search,serve,commands] [--commands check,head-sync,...]
        [--no-peer] [--format table|json] [--output FILE] [--keep DIR] [--quick]

The repository is cached by its parameters (in DIR with --keep, else in the system's temp
folder under maestro-bench/), so a rerun starts measuring at once. Sections that write
commit on a scratch branch, never on the cached branch. The database is $DATABASE_URL's
server when set, else the embedded PostgreSQL; every measurement gets a fresh database,
dropped at the end. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import time
import traceback
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import Context, Row, fmt_value, say  # noqa: E402
from synthetic import GENERATOR_VERSION, GeneratedRepo, generate_repository  # noqa: E402

from maestro_git.output import table  # noqa: E402
from maestro_git.settings import Settings  # noqa: E402

SECTIONS = ("check", "git", "mirror", "search", "serve", "commands", "latency")
COMMANDS = ("check", "head-sync", "index", "history", "export", "full-sync")  # bench_commands


def _parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--personas", type=int, default=10_000)
    ap.add_argument("--sets", type=int, default=200)
    ap.add_argument("--commits", type=int, default=2_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", default=",".join(s for s in SECTIONS if s != "latency"),
                    help="comma-separated sections: " + ", ".join(SECTIONS))
    ap.add_argument("--format", choices=("table", "json"), default="table")
    ap.add_argument("--output", type=Path, help="also write the JSON report to this file")
    ap.add_argument("--keep", type=Path, help="keep the generated repository in this folder")
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (smoke runs)")
    ap.add_argument("--scale", metavar="N,N,...",
                    help="the scale curve: repositories of N personas each (sets and commits "
                         "scaled alike), e.g. 1000,10000,100000")
    ap.add_argument("--commands", default=",".join(COMMANDS),
                    help="whole commands the commands section times: " + ", ".join(COMMANDS))
    ap.add_argument("--peer", metavar="PATH",
                    help="the `git-history` program (default: beside this Python, else on PATH)")
    ap.add_argument("--no-peer", action="store_true",
                    help="do not time the peer `git-history file` beside `maestro history`")
    args = ap.parse_args(argv)
    args.scale = [int(n) for n in args.scale.split(",")] if args.scale else []
    args.commands = [s.strip() for s in args.commands.split(",") if s.strip()]
    if set(args.commands) - set(COMMANDS):
        ap.error(f"unknown command figure(s): {', '.join(sorted(set(args.commands) - set(COMMANDS)))}")
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(args.only) - set(SECTIONS)
    if unknown:
        ap.error(f"unknown section(s): {', '.join(sorted(unknown))}")
    return args


def cached_repository(root: Path, personas: int, sets: int, commits: int,
                      seed: int) -> tuple[GeneratedRepo, float | None]:
    """The generated repository for these parameters: reused when its stamp matches the
    branch head, else generated afresh. Returns it and the generation time (None: reused)."""
    key = f"p{personas}-s{sets}-c{commits}-seed{seed}-g{GENERATOR_VERSION}"
    folder = root / key
    stamp = folder / "stamp.json"
    repo_dir = folder / "repo"
    if stamp.is_file():
        data = json.loads(stamp.read_text())
        data["path"] = Path(data["path"])
        data["invalid_commits"] = tuple(data["invalid_commits"])
        data["sample_personas"] = tuple(data["sample_personas"])
        data["sample_sets"] = tuple(data["sample_sets"])
        cached = GeneratedRepo(**data)
        ref = repo_dir / ".git" / "refs" / "heads" / cached.branch
        if ref.is_file() and ref.read_text().strip() == cached.head:
            return cached, None
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    say(f"generating {personas} personas, {sets} sets, {commits} commits (seed {seed})")
    start = time.perf_counter()
    gen = generate_repository(repo_dir, personas=personas, sets=sets, commits=commits,
                              seed=seed)
    elapsed = time.perf_counter() - start
    stamp.write_text(json.dumps({k: (str(v) if isinstance(v, Path) else v)
                                 for k, v in asdict(gen).items()}))
    return gen, elapsed


def _server_url(settings: Settings, started: list[bool]) -> Any:
    url_cache: list[str] = []

    def get() -> str:
        if not url_cache:
            env = os.environ.get("DATABASE_URL")
            if env:
                url_cache.append(env)
            else:
                from maestro_git.mirror import db

                say("starting the embedded PostgreSQL (DATABASE_URL is not set)")
                started.append(not db.embedded_running(settings))
                url_cache.append(db.database_url(settings))
        return url_cache[0]

    return get


def render_table(rows: list[Row]) -> str:
    out = []
    for r in rows:
        ok = {True: "yes", False: "NO", None: ""}[r.ok]
        value = fmt_value(r.value, r.unit) if r.value is not None else r.note
        target = ""
        if r.target is not None:
            target = ("≥ " if r.higher_is_better else "≤ ") + fmt_value(r.target, r.unit)
        note = r.note if r.value is not None else ""
        out.append({"section": r.section, "figure": r.figure + (f" [{note}]" if note else ""),
                    "value": value, "target": target, "floor": r.floor, "ok?": ok})
    return table(out, ["section", "figure", "value", "target", "floor", "ok?"], max_width=90)


def measure(args: argparse.Namespace, personas: int, sets: int, commits: int,
            sections: list[str], commands: list[str], quick: bool) -> tuple[GeneratedRepo,
                                                                           list[Row]]:
    """Generate (or reuse) one repository and run `sections` on it; its rows."""
    cache_root = args.keep or Path(tempfile.gettempdir()) / "maestro-bench"
    gen, gen_seconds = cached_repository(cache_root.resolve(), personas, sets, commits,
                                         args.seed)
    if gen_seconds is None:
        say(f"reusing the generated repository in {gen.path}")
    rows: list[Row] = []
    if gen_seconds is not None:
        rows.append(Row("generate", f"synthetic repository ({gen.bytes_at_head / 1e6:.1f} MB "
                        "at the head)", gen_seconds, note=f"{gen.commits} commits"))
    settings = Settings(repo_path=gen.path)
    started: list[bool] = []
    with tempfile.TemporaryDirectory(prefix="maestro-bench-work-") as work:
        ctx = Context(repo=gen, settings=settings, workdir=Path(work),
                      server_url=_server_url(settings, started), quick=quick)
        ctx.shared["commands"] = tuple(commands)
        ctx.shared["no_peer"] = args.no_peer
        ctx.shared["peer"] = args.peer
        try:
            for name in sections:
                try:
                    module = importlib.import_module(f"bench_{name}")
                    for row in module.run(ctx):  # rows kept as they come, even if one fails
                        rows.append(row)
                except ImportError as exc:
                    rows.append(Row(name, name, None, note=f"not available: {exc}"))
                except Exception as exc:  # one broken section must not hide the others
                    traceback.print_exc(file=sys.stderr)
                    rows.append(Row(name, name, None,
                                    note=f"failed: {type(exc).__name__}: {exc}"[:200]))
        finally:
            ctx.drop_databases()
            if started and started[0]:
                from maestro_git.mirror import db

                db.stop_embedded(settings)
    return gen, rows


def _machine(load_start: tuple[float, float, float]) -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average_at_start": load_start, "load_average_at_end": os.getloadavg()}


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.scale:
        return scale_main(args, argv)
    load_start = os.getloadavg()
    gen, rows = measure(args, args.personas, args.sets, args.commits, args.only,
                        args.commands, args.quick)
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "scripts/bench.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "parameters": {"personas": args.personas, "sets": args.sets, "commits": args.commits,
                       "seed": args.seed},
        "machine": _machine(load_start),
        "repository": {"path": str(gen.path), "head": gen.head,
                       "bytes_at_head": gen.bytes_at_head, "merges": gen.merges,
                       "renames": gen.renames, "deletes": gen.deletes},
        "rows": [r.as_dict() for r in rows],
    }
    if args.output:
        args.output.write_text(json.dumps(report, indent=2) + "\n")
    if args.format == "json":
        print(json.dumps(report, indent=2))
    else:
        print(render_table(rows))
        print(f"\n{os.cpu_count()} CPUs; load average {load_start[0]:.1f} at the start, "
              f"{os.getloadavg()[0]:.1f} at the end (figures inflate under load)")
    return 0


# -- the scale curve (issue 15) ----------------------------------------------------------------
# From this many personas on, a step measures only what the issue bounds there: check, the
# head sync, the index rebuild and their memory (the rest would take hours on a shared box).
LARGE = 100_000
SCALE_COMMANDS_LARGE = ("check", "head-sync", "index")
# Figures expected to grow with the repository; the others (latencies) are reported as they
# are. Growth per 10x step may be at most 1.2x linear: value(10N) / value(N) <= 12.
LINEAR_SLACK = 1.2


def scale_sizes(personas: int) -> tuple[int, int, int]:
    """(personas, sets, commits) of one step: sets and commits scaled alike from the default
    10,000 / 200 / 2,000."""
    return personas, max(2, personas // 50), max(20, personas // 5)


def curve_key(figure: str) -> str:
    """A figure's name without the counts that change with the size, so the steps line up."""
    key = re.sub(r"\s*\([^)]*\d[^)]*\)", "", figure)
    return re.sub(r"(?<![A-Za-z\d])\d[\d,.]*", "N", key).strip()


def scale_curve(steps: list[tuple[int, list[Row]]]) -> list[dict[str, Any]]:
    """One line per figure: its value at each step and the growth of each 10x step."""
    by_key: dict[str, dict[int, Row]] = {}
    order: list[str] = []
    for size, rows in steps:
        for r in rows:
            if r.value is None or r.section == "generate":
                continue
            key = f"{r.section}: {curve_key(r.figure)}"
            if key not in by_key:
                by_key[key] = {}
                order.append(key)
            by_key[key].setdefault(size, r)
    lines = []
    sizes = [size for size, _ in steps]
    for key in order:
        found = by_key[key]
        unit = next(iter(found.values())).unit
        bulk = unit in ("s", "MB") and "latency" not in key and "Client.get" not in key
        line: dict[str, Any] = {"figure": key, "unit": unit, "values": {}, "growth": {}}
        for size in sizes:
            if size in found:
                line["values"][size] = found[size].value
        for a, b in zip(sizes, sizes[1:], strict=False):
            va, vb = line["values"].get(a), line["values"].get(b)
            if bulk and va and vb:
                linear = b / a
                line["growth"][f"{a}->{b}"] = {"ratio": vb / va, "linear": linear,
                                               "ok": vb / va <= LINEAR_SLACK * linear}
        lines.append(line)
    return lines


def render_curve(lines: list[dict[str, Any]], sizes: list[int]) -> str:
    out = []
    for line in lines:
        row = {"figure": line["figure"]}
        for size in sizes:
            v = line["values"].get(size)
            row[f"{size:,}"] = fmt_value(v, line["unit"]) if v is not None else ""
        growth = [f"{g['ratio']:.1f}x/{g['linear']:.0f}x" + ("" if g["ok"] else " NO")
                  for g in line["growth"].values()]
        row["growth per step (≤ 1.2 × linear)"] = ", ".join(growth)
        out.append(row)
    cols = ["figure", *[f"{s:,}" for s in sizes], "growth per step (≤ 1.2 × linear)"]
    return table(out, cols, max_width=80)


def scale_main(args: argparse.Namespace, argv: list[str] | None) -> int:
    load_start = os.getloadavg()
    steps: list[tuple[int, list[Row]]] = []
    params = []
    for personas in args.scale:
        personas, sets, commits = scale_sizes(personas)
        large = personas >= LARGE
        sections = ["commands"] if large else ["commands", "search", "latency"]
        commands = [c for c in args.commands if not large or c in SCALE_COMMANDS_LARGE]
        say(f"scale: {personas} personas, {sets} sets, {commits} commits: "
            f"{', '.join(sections)} ({', '.join(commands)})")
        _, rows = measure(args, personas, sets, commits, sections, commands,
                          args.quick or large)
        steps.append((personas, rows))
        params.append({"personas": personas, "sets": sets, "commits": commits})
        if args.output:  # written after every step: a long run keeps what it measured
            _write_scale(args, argv, load_start, params, steps)
    report = _write_scale(args, argv, load_start, params, steps)
    if args.format == "json":
        print(json.dumps(report, indent=2))
    else:
        for size, rows in steps:
            print(f"\n## {size:,} personas\n")
            print(render_table(rows))
        print("\n## scale curve\n")
        print(render_curve(report["curve"], [s for s, _ in steps]))
        print(f"\n{os.cpu_count()} CPUs; load average {load_start[0]:.1f} at the start, "
              f"{os.getloadavg()[0]:.1f} at the end (figures inflate under load)")
    return 0


def _write_scale(args: argparse.Namespace, argv: list[str] | None,
                 load_start: tuple[float, float, float], params: list[dict[str, int]],
                 steps: list[tuple[int, list[Row]]]) -> dict[str, Any]:
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "scripts/bench.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "steps": [{"parameters": p, "rows": [r.as_dict() for r in rows]}
                  for p, (_, rows) in zip(params, steps, strict=True)],
        "curve": scale_curve(steps),
        "machine": _machine(load_start),
    }
    if args.output:
        args.output.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    sys.exit(main())
