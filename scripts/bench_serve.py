"""Benchmark section `serve`: the HTTP API under a bounded loopback load, beside its floor.

    .venv/bin/python scripts/bench.py --only serve [--personas N ...]   # this section alone
    .venv/bin/python scripts/bench_serve.py [bench.py options]          # the same

It mirrors the generated repository's head into a fresh database, creates a token for the
owner of a sample persona, starts `maestro serve` as a subprocess on a free loopback port,
and drives it with `CONNECTIONS` keep-alive connections (asyncio, raw HTTP/1.1; each
connection sends its next request when the previous answer is read). Every scenario is
bounded twice: `REQUESTS` requests or `SECONDS` seconds, whichever comes first, run in
`ROUNDS` interleaved rounds so background load on a shared machine falls on each alike.
Figures:
requests/s, p50 and p99 latency for

- the floor: the same server answering a fixed JSON body (`GET /api/v1/ping`),
- a cached persona GET (token checked, answered from the NOTIFY-coherent cache),
- a 304 (the same GET with its ETag in If-None-Match),
- a list page (`?limit=20&offset=40`), and a search (`backend=postgres`).

Targets (issue 13): cached GET ≥ 0.7× the floor's requests/s, 304 ≥ 0.9× the floor,
(issue 16) the persona and set web pages ≥ 0.5× the floor,
p99 < 25 ms at 32 connections. The load generator shares the 2 cores with the server, the
same way for the floor as for every other scenario, so only the ratios are comparable
across machines.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench_common import Context, Row, say

SECTION = "serve"
CONNECTIONS = 32
REQUESTS = 30000
SECONDS = 20.0
WARMUP = 300
ROUNDS = 5
P99_TARGET_MS = 25.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _connection(port: int, request: bytes, budget: list[int], deadline: float,
                      latencies: list[float], statuses: dict[int, int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while budget[0] > 0 and time.perf_counter() < deadline:
            budget[0] -= 1
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n")[1:]:
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            statuses[status] = statuses.get(status, 0) + 1
    finally:
        writer.close()


async def _load(port: int, request: bytes, requests: int, seconds: float,
                connections: int) -> tuple[float, list[float], dict[int, int]]:
    budget = [requests]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    start = time.perf_counter()
    await asyncio.gather(*(_connection(port, request, budget, start + seconds, latencies,
                                       statuses) for _ in range(connections)))
    return time.perf_counter() - start, latencies, statuses


@dataclass
class Tally:
    """What the rounds of one scenario added up to."""

    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0


def request_bytes(path: str, headers: dict[str, str]) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1"] + [f"{k}: {v}" for k, v in
                                                            headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def load(port: int, scenarios: list[tuple[str, bytes]], *, requests: int = REQUESTS,
         seconds: float = SECONDS, connections: int = CONNECTIONS,
         rounds: int = ROUNDS) -> dict[str, Tally]:
    """Each scenario's tally under the bounded load: `rounds` interleaved rounds of
    `requests / rounds` requests (or `seconds / rounds` seconds) each, so a change in the
    machine's background load falls on every scenario alike."""
    tallies = {name: Tally() for name, _ in scenarios}
    for _name, request in scenarios:
        asyncio.run(_load(port, request, min(WARMUP, requests), seconds, connections))
    for done in range(rounds):
        for name, request in scenarios:
            say(f"serve: round {done + 1}/{rounds}: {name}")
            elapsed, latencies, statuses = asyncio.run(_load(
                port, request, requests // rounds, seconds / rounds, connections))
            tally = tallies[name]
            tally.seconds += elapsed
            tally.latencies += latencies
            for status, count in statuses.items():
                tally.statuses[status] = tally.statuses.get(status, 0) + count
    return tallies


def _mirror(ctx: Context) -> str:
    url = ctx.shared.get("mirrored_url")
    if isinstance(url, str):
        return url
    from maestro_git.mirror.sync import sync

    url = ctx.fresh_database()
    say("serve: mirroring the head")
    sync(ctx.settings.with_overrides(database_url=url), head_only=True)
    ctx.shared["mirrored_url"] = url
    return url


def _start(repo: Path, url: str, port: int) -> subprocess.Popen[bytes]:
    log = Path(tempfile.gettempdir()) / f"maestro-bench-serve-{port}.log"
    env = {**os.environ, "DATABASE_URL": url}
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "maestro_git", "-q", "--repo", str(repo),
                                 "serve", "--port", str(port)], env=env,
                                stdout=subprocess.DEVNULL, stderr=out)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"maestro serve exited: {log.read_text()[-500:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("maestro serve did not start within 60 s")


def _etag(port: int, path: str, headers: dict[str, str]) -> str:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path, headers=headers)
    answer = conn.getresponse()
    answer.read()
    conn.close()
    if answer.status != 200:
        raise RuntimeError(f"GET {path}: HTTP {answer.status}")
    return str(answer.getheader("ETag"))


def run(ctx: Context) -> Iterator[Row]:
    try:
        from maestro_git.server.tokens import create_token
    except ImportError as exc:
        yield Row(SECTION, "serve", None, note=f"not available: {exc}")
        return
    url = _mirror(ctx)
    key = ctx.repo.hot_persona or ctx.repo.sample_personas[0]
    owner = key.split("/", 1)[0]
    settings = ctx.settings.with_overrides(database_url=url)
    secret = create_token(settings, [owner], description="bench").secret
    auth = {"Authorization": f"Bearer {secret}"}
    port = _free_port()
    proc = _start(ctx.repo.path, url, port)
    n = REQUESTS // 4 if ctx.quick else REQUESTS
    try:
        persona = f"/api/v1/personas/{key}"
        etag = _etag(port, persona, auth)
        word = key.split("/", 1)[1].split("_")[0]
        scenarios = [
            ("floor: fixed JSON body (GET /api/v1/ping)", "/api/v1/ping", {}),
            ("cached persona GET", persona, auth),
            ("304 (If-None-Match)", persona, {**auth, "If-None-Match": etag}),
            ("list page (limit=20, offset=40)", f"/api/v1/personas?owner={owner}&limit=20"
             "&offset=40", auth),
            (f"search '{word}' (postgres)", f"/api/v1/search?q={word}&backend=postgres", auth),
        ]
        # The web pages (issue 16) as a logged-in browser asks for them: the login cookie and
        # the CSRF cookie a first visit sets; target >= 0.5x the same floor.
        browser = {"Cookie": f"maestro_token={secret}; maestro_csrf={'c' * 32}"}
        scenarios.append(("web: persona page", f"/personas/{key}", browser))
        set_key = next(iter(ctx.repo.sample_sets), None)
        if set_key is not None:
            scenarios.append(("web: set page", f"/sets/{set_key}", browser))
        say(f"serve: {len(scenarios)} scenarios, each {n} requests or {SECONDS:.0f} s, "
            f"{CONNECTIONS} connections, {ROUNDS} interleaved rounds")
        tallies = load(port, [(figure, request_bytes(path, headers))
                              for figure, path, headers in scenarios], requests=n)
        floor_rps = None
        for figure, _path, _headers in scenarios:
            tally = tallies[figure]
            rps, p50, p99, statuses = tally.rps, tally.pct(0.5), tally.pct(0.99), tally.statuses
            bad = {s: c for s, c in statuses.items() if s not in (200, 304)}
            note = f"p50 {p50:.1f} ms; statuses {statuses}" + (" UNEXPECTED" if bad else "")
            target = None
            if floor_rps is None:
                floor_rps = rps
            elif figure.startswith("cached"):
                target = 0.7 * floor_rps
            elif figure.startswith("304"):
                target = 0.9 * floor_rps
            elif figure.startswith("web:"):
                target = 0.5 * floor_rps
            yield Row(SECTION, f"{figure}: requests/s", rps, unit="req/s", target=target,
                      floor=f"{floor_rps:,.0f} req/s (floor)" if target else "",
                      note=note, higher_is_better=True)
            yield Row(SECTION, f"{figure}: p99 latency", p99, unit="ms",
                      target=P99_TARGET_MS)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import bench

    sys.exit(bench.main(["--only", SECTION, *sys.argv[1:]]))
