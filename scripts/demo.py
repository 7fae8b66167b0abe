"""`make demo`: the main job end to end on this repository's own personas.

Validate the files, mirror every commit of this repository into PostgreSQL (DATABASE_URL, or
the embedded server when it is unset), build the search index, and query the mirror through
the CLI, SQL and the Python client. Each step is printed as the terminal session a user would
type. Then it starts `maestro serve` briefly and prints one API answer, with a token that
reads only the `acme` owner. Exits non-zero at the first failing step.
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


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_once() -> None:
    """Start `maestro serve`, print one persona as `curl` would get it, stop the server."""
    import json
    import time
    import urllib.error
    import urllib.request

    made = subprocess.run([MAESTRO, "--repo", str(ROOT), "token", "create", "--owner", "acme",
                           "--expires", "1h", "--description", "demo"], check=True,
                          capture_output=True, text=True)
    token = made.stdout.strip().splitlines()[-1]
    print("$ TOKEN=$(maestro token create --owner acme --expires 1h | tail -1)")
    port = free_port()
    print(f"$ maestro serve --port {port} &")
    server = subprocess.Popen([MAESTRO, "--repo", str(ROOT), "-q", "serve", "--port",
                               str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(base + "/api/v1/ping", timeout=1).read()
                break
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline or server.poll() is not None:
                    sys.exit("demo: maestro serve did not start")
                time.sleep(0.1)
        path = "/api/v1/personas/acme/python_reviewer?resolved=true"
        print(f'$ curl -s -H "Authorization: Bearer $TOKEN" "{base}{path}"')
        request = urllib.request.Request(base + path,
                                         headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            body = json.loads(answer.read())
            etag = answer.headers["ETag"]
        shown = {k: body[k] for k in ("key", "version", "parent_key", "tags", "commit",
                                      "application_count")}
        shown["content"] = body["content"][:60] + "…"
        print(json.dumps(shown, indent=2))
        print(f"(ETag {etag}; the same request with If-None-Match answers 304)")
        hidden = urllib.request.Request(base + "/api/v1/personas/platform/base_assistant",
                                        headers={"Authorization": f"Bearer {token}"})
        try:
            urllib.request.urlopen(hidden, timeout=10)
            sys.exit("demo: the acme token read a platform persona")
        except urllib.error.HTTPError as err:
            print(f"$ curl ... {base}/api/v1/personas/platform/base_assistant  ->  "
                  f"{err.code} {json.loads(err.read())['detail']}")
    finally:
        server.terminate()
        server.wait(timeout=15)


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
        banner("The HTTP API (maestro serve), with a token that reads only acme")
        serve_once()
    finally:
        if embedded:
            subprocess.run([MAESTRO, "--repo", str(ROOT), "db", "stop"], check=False,
                           capture_output=True)
    print("\ndemo: done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
