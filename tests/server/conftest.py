"""A real `maestro serve` process over a real mirror of a real git repository.

`api` is module-scoped: one database, one repository (this project's demo content plus a
set owned by `platform`), one server subprocess on a free loopback port, and tokens for
`acme` and for both owners. Tests that change the repository commit and `sync` through the
library, as a user would, and wait for the server to see it.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from maestro_git.cli import main as cli_main
from maestro_git.server.tokens import create_token
from maestro_git.settings import load_settings
from tests.conftest import _make_database, _server_url
from tests.factories import GitRepoFactory

ROOT = Path(__file__).resolve().parents[2]
SECRET = "test-webhook-secret"

PLATFORM_SET = {
    "name": "Platform internal pilots",
    "description": "Pilot users of the platform team's internal tools.",
    "personas": [{"name": "Ines Duarte", "age": 41, "occupation": "SRE lead",
                  "image_url": "/static/images/personas/persona_2.png",
                  "validation_status": "pending"}],
    "metadata": {"owner": "platform", "status": "generated", "generation_cycle": 1},
}


def wait_for(condition: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Poll until `condition()` is truthy; return it (fail at the deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(0.02)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Receiver:
    """A webhook receiver on loopback: records each POST; answers `status`."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.requests: list[tuple[dict[str, str], bytes]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.requests.append(({k: v for k, v in self.headers.items()}, body))
                self.send_response(outer.status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Api:
    base: str
    repo: GitRepoFactory
    database_url: str
    tokens: dict[str, str]
    receivers: dict[str, Receiver]
    process: subprocess.Popen[bytes]
    clients: list[httpx.Client] = field(default_factory=list)

    def client(self, who: str | None = "acme") -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        c = httpx.Client(base_url=self.base, headers=headers, timeout=10.0)
        self.clients.append(c)
        return c

    def sync(self) -> None:
        code = cli_main(["--repo", str(self.repo.path), "--database-url", self.database_url,
                         "-q", "sync"])
        assert code == 0


def start_server(repo: Path, url: str, *args: str) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    env = {**os.environ, "MAESTRO_WEBHOOK_SECRET": SECRET, "DATABASE_URL": url}
    log = repo.parent / f"serve-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "maestro_git", "--repo", str(repo), "serve", "--port",
             str(port), *args], env=env, stdout=subprocess.DEVNULL, stderr=out)
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if proc.poll() is not None:
            err = log.read_text(encoding="utf-8", errors="replace")
            pytest.fail(f"maestro serve exited {proc.returncode}: {err[-2000:]}")
        try:
            return httpx.get(base + "/api/v1/ping", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(up, timeout=30.0)
    return base, proc


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def demo_repo(path: Path, webhook_urls: list[str]) -> GitRepoFactory:
    repo = GitRepoFactory.create(path)
    for folder in ("personas", "persona_sets", "templates"):
        shutil.copytree(ROOT / folder, path / folder)
    urls = ", ".join(json.dumps(u) for u in webhook_urls)
    (path / "maestro.toml").write_text(
        f"[webhooks]\nurls = [{urls}]\n\n[sets]\nstatic_dir = \"persona_sets/static\"\n",
        encoding="utf-8")
    png = (ROOT / "persona_sets/clinic_booking_research/images/tom_becker.png").read_bytes()
    static = path / "persona_sets" / "static" / "images" / "personas"
    static.mkdir(parents=True)
    (static / "persona_1.png").write_bytes(png)
    (static / "persona_2.png").write_bytes(png)
    fintech_path = path / "persona_sets" / "fintech_early_adopters.json"
    fintech = json.loads(fintech_path.read_text(encoding="utf-8"))
    fintech["personas"][0]["image_url"] = "/static/images/personas/persona_1.png"
    fintech_path.write_text(json.dumps(fintech, indent=2) + "\n", encoding="utf-8")
    (path / "persona_sets" / "platform_internal.json").write_text(
        json.dumps(PLATFORM_SET, indent=2), encoding="utf-8")
    repo.commit(message="demo content")
    reviewer = path / "personas" / "acme" / "python_reviewer.md"
    text = reviewer.read_text(encoding="utf-8")
    repo.commit({"personas/acme/python_reviewer.md":
                 text.replace('version: "1.1.0"', 'version: "1.2.0"\nmodel: sonnet\n'
                              'tools: [Read, Grep, "Bash(pytest:*)"]')
                 + "\nAlso check type hints.\n"}, message="python_reviewer: type hints")
    return repo


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    receivers = {"ok": Receiver(200), "failing": Receiver(500)}
    url_iter = _make_database(_server_url())
    url = next(url_iter)
    repo = demo_repo(tmp_path_factory.mktemp("api") / "repo",
                     [receivers["ok"].url, receivers["failing"].url])
    settings = load_settings(repo.path, database_url=url, environ={})
    assert cli_main(["--repo", str(repo.path), "--database-url", url, "-q", "sync"]) == 0
    tokens = {"acme": create_token(settings, ["acme"]).secret,
              "both": create_token(settings, ["acme", "platform"]).secret,
              "platform": create_token(settings, ["platform"]).secret}
    base, proc = start_server(repo.path, url)
    api = Api(base, repo, url, tokens, receivers, proc)
    try:
        yield api
    finally:
        for c in api.clients:
            c.close()
        stop_server(proc)
        for r in receivers.values():
            r.close()
        with contextlib.suppress(StopIteration):
            next(url_iter)
