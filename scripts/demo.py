"""`make demo`: the main job end to end on this repository's own personas.

Validate the files, mirror every commit of this repository into PostgreSQL (DATABASE_URL, or
the embedded server when it is unset), build the search index, and query the mirror through
the CLI, SQL and the Python client. Each step is printed as the terminal session a user would
type. Exits non-zero at the first failing step.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAESTRO = str(Path(sys.executable).with_name("maestro"))

STEPS: list[tuple[str, list[str]]] = [
    ("Validate every persona, template and persona set", ["check"]),
    ("Mirror every commit of this repository into PostgreSQL and index it", ["sync"]),
    ("The mirror equals the branch head", ["verify"]),
    ("Personas in the mirror", ["list", "--source", "mirror"]),
    ("Full-text search (Whoosh): fields and phrases",
     ["search", "tag:coding OR \"pull request\"", "--limit", "5"]),
    ("Set members are searchable too", ["search", "nurse in her 50s", "--limit", "3"]),
    ("The same search over PostgreSQL's full-text index",
     ["search", "incident timeline", "--backend", "postgres", "--limit", "3"]),
    ("Inheritance: the effective instruction of a persona",
     ["show", "acme/python_reviewer", "--resolved"]),
    ("A persona set with its members and scores", ["sets", "show", "clinic_booking_research"]),
    ("The audit trail of one persona", ["log", "acme/developer_assistant"]),
]

SQL = """SELECT owner, count(*) AS personas, sum(size_bytes) AS bytes,
       string_agg(key, ', ' ORDER BY key) FILTER (WHERE 'review' = ANY (tags)) AS reviewers
FROM current_personas GROUP BY owner ORDER BY owner"""

CLIENT = """from maestro_git import Client
with Client(url) as client:
    p = client.get("acme/python_reviewer", resolved=True)
    print(p.key, p.version, len(p.content), "chars of effective instruction")
    client.get("acme/python_reviewer", resolved=True)   # served from the cache
    print("queries:", client.stats.queries, "cache hits:", client.stats.hits)"""


def banner(text: str) -> None:
    print(f"\n# {text}", flush=True)


def run(args: list[str]) -> None:
    print(f"$ maestro {shlex.join(args)}", flush=True)
    result = subprocess.run([MAESTRO, "--repo", str(ROOT), *args], check=False)
    if result.returncode != 0:
        sys.exit(f"demo: 'maestro {shlex.join(args)}' exited {result.returncode}")


def database_url() -> str:
    url = subprocess.run([MAESTRO, "--repo", str(ROOT), "db", "url"], check=True,
                         capture_output=True, text=True).stdout.strip()
    return url


def main() -> int:
    embedded = not os.environ.get("DATABASE_URL")
    where = "the embedded PostgreSQL" if embedded else "$DATABASE_URL"
    print(f"maestro-git demo: this repository's personas, mirrored into {where}")
    try:
        for title, args in STEPS:
            banner(title)
            run(args)
        url = database_url()
        banner("Plain SQL over the mirror's views (psql works the same: maestro db url)")
        print(SQL)
        import psycopg

        with psycopg.connect(url) as conn:
            rows = conn.execute(SQL).fetchall()
        for owner, count, size, reviewers in rows:
            print(f"  {owner:<10} {count} personas  {size:>6} bytes  reviewers: {reviewers}")
        banner("The Python client (cached, kept coherent by LISTEN maestro_events)")
        print(CLIENT)
        exec(compile(CLIENT, "<demo>", "exec"), {"url": url})  # noqa: S102 - our own snippet
    finally:
        if embedded:
            subprocess.run([MAESTRO, "--repo", str(ROOT), "db", "stop"], check=False,
                           capture_output=True)
    print("\ndemo: done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
