"""`make soak`: the fault suite, bounded in count and time; prints a table of figures (or JSON).

    .venv/bin/python scripts/soak.py [--short] [--kills N] [--commits N] [--restarts N]
        [--max-outage S] [--race-rounds N] [--writers N] [--writes N] [--examples N]
        [--only kills,restarts,writers,damage,properties] [--seconds LIMIT] [--seed S]
        [--database-url URL] [--format table|json] [--output FILE] [--keep DIR]

Sections (each in `scripts/faults/`):
- kills: the real `maestro daemon` SIGKILLed at random points while a committer moves the
  branch through a commit stream; then `maestro verify` must be exact and the mirror's
  versions equal both a clean replay and git's first-parent history (`kills.py`).
- restarts: a private embedded PostgreSQL stopped and started under a running daemon, a
  commit during each outage; the catch-up time of each (`restarts.py`). The machine's shared
  server is never restarted.
- writers: the human-commit race and concurrent library writers (`writers.py`).
- damage: every kind of damage to `.maestro/` against `search`, `index status`, `sync` and
  the daemon (`damage.py`).
- properties: the property-based tests of `tests/core` with many more examples
  (`properties.py`).

The database is --database-url, else $DATABASE_URL's server (a fresh database per section,
dropped after it), else a private embedded server. `--short` is the preset `make test` runs
through `tests/faults/test_soak_short.py`. `--seconds` bounds the whole run: a section that
meets the limit stops and says so (`stopped early`). Exit 1 when any figure is not as it must
be. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: the repository root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.faults.common import Deadline  # noqa: E402

SECTIONS = ("kills", "restarts", "writers", "damage", "properties")
FULL = {"kills": 1000, "commits": 2000, "restarts": 20, "max_outage": 8.0, "race_rounds": 200,
        "writers": 8, "writes": 50, "examples": 1000, "seconds": 1500.0}
SHORT = {"kills": 20, "commits": 60, "restarts": 3, "max_outage": 1.5, "race_rounds": 10,
         "writers": 8, "writes": 5, "examples": 0, "seconds": 600.0}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="soak.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--short", action="store_true",
                   help="the small preset that runs in CI (make test)")
    p.add_argument("--kills", type=int, help="daemon SIGKILLs (full: 1000)")
    p.add_argument("--commits", type=int, help="commits in the stream (full: 2000)")
    p.add_argument("--restarts", type=int, help="database restarts (full: 20)")
    p.add_argument("--max-outage", type=float, help="longest database outage, s (full: 8)")
    p.add_argument("--race-rounds", type=int, help="human-commit race rounds (full: 200)")
    p.add_argument("--writers", type=int, help="concurrent writers (full: 8)")
    p.add_argument("--writes", type=int, help="writes per writer (full: 50)")
    p.add_argument("--examples", type=int,
                   help="examples per property test; 0: not run (full: 1000, short: 0)")
    p.add_argument("--only", default=",".join(SECTIONS),
                   help=f"comma-separated sections (default: all of {','.join(SECTIONS)})")
    p.add_argument("--seconds", type=float, help="time limit of the whole run (full: 1500)")
    p.add_argument("--seed", type=int, default=20261203)
    p.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--output", type=Path, help="also write the JSON figures to FILE")
    p.add_argument("--keep", type=Path, help="work in DIR and keep it (repositories, logs)")
    args = p.parse_args(argv)
    preset = SHORT if args.short else FULL
    for name, value in preset.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(args.only) - set(SECTIONS)
    if unknown:
        p.error(f"unknown section(s): {', '.join(sorted(unknown))}")
    return args


def _progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every section asked for; returns the figures (`ok`: all as they must be)."""
    from scripts.faults.restarts import PrivateServer

    started = time.monotonic()
    budget = Deadline(args.seconds)
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="maestro-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    server = None
    base_url = args.database_url
    if not base_url and {"kills", "damage"} & set(args.only):
        server = PrivateServer()  # no server given: a private embedded one
        base_url = server.url
    out: dict[str, Any] = {"started": datetime.now(UTC).isoformat(timespec="seconds"),
                           "command": "scripts/soak.py " + " ".join(sys.argv[1:]),
                           "sections": {}}
    try:
        for section in args.only:
            _progress(f"soak: {section}")
            out["sections"][section] = _section(section, args, workdir, base_url, budget,
                                                started)
    finally:
        if server is not None:
            server.close()
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)
    out["seconds"] = round(time.monotonic() - started, 1)
    out["ok"] = all(s.get("ok", False) for s in out["sections"].values())
    return out


def _reserve(section: str, args: argparse.Namespace) -> float:
    """Seconds the sections after `section` are expected to need (kept out of its budget)."""
    from scripts.faults.damage import CASES, SHORT_CASES

    cases = len(SHORT_CASES) if args.short else len(CASES)
    later = list(args.only)[list(args.only).index(section) + 1:]
    need = {"restarts": args.restarts * (args.max_outage / 2 + 2.5) + 10,
            "writers": 5 + args.race_rounds * 0.3 + args.writers * args.writes * 0.05,
            "damage": 8.0 * cases, "properties": 30 + args.examples * 0.2}
    return sum(need.get(s, 0.0) for s in later)


def _section(section: str, args: argparse.Namespace, workdir: Path, base_url: str | None,
             budget: Deadline, started: float) -> dict[str, Any]:
    own = Deadline(max(1.0, budget.left() - _reserve(section, args)))
    if section == "kills":
        from scripts.faults.kills import run_kills

        assert base_url is not None
        return run_kills(workdir, base_url, args.kills, args.commits, args.seed, own,
                         log=_progress).as_dict()
    if section == "restarts":
        from scripts.faults.restarts import run_restarts

        return run_restarts(workdir, args.restarts, args.seed, own, args.max_outage,
                            log=_progress).as_dict()
    if section == "writers":
        from scripts.faults.writers import run_writers

        return run_writers(workdir, args.race_rounds, args.writers, args.writes, args.seed)
    if section == "damage":
        from scripts.faults.damage import run_damage

        assert base_url is not None
        from scripts.faults.damage import SHORT_CASES

        names = SHORT_CASES if args.short else None
        return run_damage(workdir, base_url, args.seed, own, names, log=_progress).as_dict()
    from scripts.faults.properties import run_properties

    if args.examples <= 0:
        return {"ran": False, "reason": "not run (--examples 0; the suite runs them itself)",
                "ok": True}
    return run_properties(args.examples, args.seed, max(60.0, budget.left()))


# -- the table ------------------------------------------------------------------------------
def _rows(out: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    rows: list[tuple[str, str, str, str]] = []
    s = out["sections"]

    def add(section: str, figure: str, value: object, ok: bool | None = None) -> None:
        rows.append((section, figure, str(value), "" if ok is None else ("ok" if ok else "NO")))

    if "kills" in s:
        k = s["kills"]
        add("kills", "daemon SIGKILLs done / asked", f"{k['kills_done']} / {k['kills_asked']}",
            k["kills_done"] == k["kills_asked"])
        add("kills", "kill points starting / writer / mirroring",
            " / ".join(str(k["kill_points"][m]) for m in ("starting", "writer", "mirroring")))
        add("kills", "killed while the mirror was behind the branch", k["killed_while_behind"])
        add("kills", "commits in the stream", k["commits"])
        add("kills", "versions lost / extra / duplicated",
            f"{k['versions_lost']} / {k['versions_extra']} / {k['versions_duplicated']}",
            k["versions_lost"] == k["versions_extra"] == k["versions_duplicated"] == 0)
        add("kills", "version rows equal to git's first-parent history",
            f"{k['version_rows']} rows, {k['git_versions_differing']} differing",
            k["git_versions_differing"] == 0)
        add("kills", "other rows unlike a clean replay", k["other_rows_differing"],
            k["other_rows_differing"] == 0)
        add("kills", "maestro verify", "exact" if k["verify_ok"] else f"exit {k['verify_exit']}",
            k["verify_ok"])
        add("kills", "search index at the head, leftover build folders",
            f"{k['index_at_head']}, {k['leftover_build_folders']}",
            k["index_at_head"] and k["leftover_build_folders"] == 0)
        add("kills", "final catch-up, SIGTERM stop (s)",
            f"{k['final_catch_up_s']}, {k['sigterm_stop_s']} (exit {k['sigterm_exit']})",
            k["sigterm_exit"] == 0)
        add("kills", "tracebacks in daemon logs", k["tracebacks"], k["tracebacks"] == 0)
        add("kills", "seconds", k["seconds"] if not k["stopped_early"]
            else f"{k['seconds']} (stopped early: time limit)")
    if "restarts" in s:
        r = s["restarts"]
        add("restarts", "database restarts done / asked",
            f"{r['restarts_done']} / {r['restarts_asked']}",
            r["restarts_done"] == r["restarts_asked"])
        if r["outage_s"]:
            add("restarts", "outage min / max (s)", f"{min(r['outage_s'])} / {max(r['outage_s'])}")
        add("restarts", "catch-up max / median (s)",
            f"{r['catch_up_max_s']} / {r['catch_up_median_s']}", r["over_limit"] == 0)
        add("restarts", "catch-ups over 5 s", r["over_limit"], r["over_limit"] == 0)
        add("restarts", "daemon alive throughout, SIGTERM exit",
            f"{r['daemon_alive']}, {r['sigterm_exit']}",
            r["daemon_alive"] and r["sigterm_exit"] == 0)
        add("restarts", "maestro verify exit, tracebacks",
            f"{r['verify_exit']}, {r['tracebacks']}",
            r["verify_exit"] == 0 and r["tracebacks"] == 0)
    if "writers" in s:
        w = s["writers"]
        if not w.get("available"):
            add("writers", "race and concurrent writers", w["reason"])
        elif "error" in w:
            add("writers", "race and concurrent writers", w["error"], False)
        else:
            race, many = w["race"], w["writers"]
            add("writers", "race rounds / reverted / refused",
                f"{race['rounds']} / {race['library_reverted']} / {race['library_refused']}",
                w["race_failures"] == 0)
            add("writers", "human commits undone, dirty status",
                f"{race['human_undone']}, {race['status_dirty']}")
            add("writers", "writes attempted / accepted / refused",
                f"{many['attempted']} / {many['accepted']} / {many['refused']}",
                w["writers_failures"] == 0)
            add("writers", "accepted writes missing / reverted",
                f"{many['missing']} / {many['reverted']}")
    if "damage" in s:
        d = s["damage"]
        add("damage", "cases healed / refused / tracebacked / failed",
            f"{d['healed']} / {d['refused']} / {d['tracebacked']} / {d['failed']}"
            + (f" ({d['not_applicable']} n/a)" if d["not_applicable"] else ""),
            d["tracebacked"] == d["failed"] == 0)
        add("damage", "cases where the mirror stopped", d["mirror_stopped"],
            d["mirror_stopped"] == 0)
        add("damage", "slowest daemon stop after SIGTERM (s)", d["stop_max_s"],
            d["stop_max_s"] <= 1.0)
        add("damage", "search while another process holds the lock (s)", d["reader_max_s"])
        add("damage", "full disk made by", d["full_disk_method"])
        add("damage", "unwritable folder made by", d["unwritable_method"])
        for case in d["cases"]:
            if case["outcome"] not in ("healed", "refused"):
                add("damage", f"  {case['case']}", f"{case['outcome']}: "
                    + "; ".join(f"{k}: {v}" for k, v in case["commands"].items())
                    + case["detail"], case["outcome"] == "n/a")
    if "properties" in s:
        pr = s["properties"]
        if not pr.get("ran", True):
            add("properties", "property tests", pr["reason"])
        elif "error" in pr:
            add("properties", "property tests", pr["error"], False)
        else:
            add("properties", "tests passed / failed",
                f"{pr['passed']} / {pr['failed']} ({pr['examples']} examples each, seed "
                f"{pr['seed']}, {pr['seconds']} s)", pr["ok"])
    return rows


def render_table(out: dict[str, Any]) -> str:
    rows = [("section", "figure", "value", "ok?"), *_rows(out)]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [" | ".join(r[i].ljust(widths[i]) for i in range(3)) + " | " + r[3] for r in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths) + "-+----")
    lines.append(f"\n{'all figures as they must be' if out['ok'] else 'SOME FIGURES ARE NOT'}"
                 f" ({out['seconds']} s): {out['command']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = run(args)
    text = json.dumps(out, indent=2) if args.format == "json" else render_table(out)
    print(text)
    if args.output is not None:
        args.output.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
