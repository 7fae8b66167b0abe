"""Fixtures for the web interface: a real repository with history, mirrored into a real
PostgreSQL by `maestro sync`, served by a real `maestro serve` process, and a real headless
Chromium (Debian's `/usr/bin/chromium` + `/usr/bin/chromedriver`, driven by Selenium).

Nothing here downloads a browser or a driver: Selenium is handed the system chromedriver
(`Service(CHROMEDRIVER)`) and the system browser (`binary_location`), so Selenium Manager is
never asked, and `SE_OFFLINE` tells it to stay offline should it be.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import _make_database, _server_url
from tests.factories import GitRepoFactory, persona_md

ROOT = Path(__file__).resolve().parents[3]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = ROOT / "tests" / "screenshots"
# The browser tests write their screenshots here only when asked (make screenshots), so that a
# test run leaves the committed pictures alone; otherwise into a temporary folder.
SCREENSHOTS_ENV = "MAESTRO_WEB_SCREENSHOTS"

ZWSP = "\u200b"
XSS_BODY = """# Tricky persona

You are helpful.

<script>window.__pwned = "script"; console.error("pwned by script")</script>

<img src="x" onerror="window.__pwned = 'onerror'; console.error('pwned by onerror')">

[Click me](javascript:window.__pwned='link')

<a href="javascript:window.__pwned='anchor'">a raw link</a>

<div onmouseover="window.__pwned='hover'">Hover text</div>
"""


def _maestro(repo: Path, url: str, *args: str, timeout: float = 120) -> str:
    env = {**os.environ, "DATABASE_URL": url}
    done = subprocess.run([sys.executable, "-m", "maestro_git", "--repo", str(repo), *args],
                          capture_output=True, text=True, timeout=timeout, env=env)
    assert done.returncode == 0, f"maestro {' '.join(args)} failed: {done.stderr}"
    return done.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, deadline: float) -> None:
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status < 500:
                    return
        except urllib.error.HTTPError as err:
            if err.code < 500:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"the server did not answer {url} in time")
        time.sleep(0.1)


def build_repository(path: Path) -> GitRepoFactory:
    """The project's demo content with a little history on top: an updated persona (a diff
    with a hidden character), an XSS-laden persona committed with the content rules off, and
    a persona set whose members change."""
    repo = GitRepoFactory.create(path)
    for folder in ("personas", "persona_sets", "templates"):
        shutil.copytree(ROOT / folder, path / folder)
    toml = (ROOT / "maestro.toml").read_text(encoding="utf-8").replace(
        '# non-instruction-content = "warning"',
        '"dangerous-html" = "off"\n"hidden-unicode" = "off"')
    repo.commit({"maestro.toml": toml}, message="Import the demo personas",
                author=("Ada Admin", "ada@example.com"), time=1_750_000_000)
    reviewer = path / "personas/acme/python_reviewer.md"
    text = reviewer.read_text(encoding="utf-8")
    bumped = _bump_version(text).rstrip("\n") + (
        f"\n\n## Tone\n\nBe{ZWSP} kind, and explain each finding in one sentence.\n")
    repo.commit({"personas/acme/python_reviewer.md": bumped},
                message="python_reviewer: a Tone section", author=("Bea Dev", "bea@example.com"),
                time=1_750_100_000)
    repo.commit({"personas/acme/tricky.md": persona_md(
        "Tricky persona", body=XSS_BODY, description="Carries script payloads",
        version="1.0.0", tags=["test"])}, message="tricky: a persona with payloads",
        author=("Eve Tester", "eve@example.com"), time=1_750_200_000)
    set_file = path / "persona_sets/fintech_early_adopters.json"
    data = set_file.read_text(encoding="utf-8").replace('"Electrician running a small business"',
                                                        '"Electrician and business owner"')
    repo.commit({"persona_sets/fintech_early_adopters.json": data},
                message="fintech: Oliver's occupation", author=("Bea Dev", "bea@example.com"),
                time=1_750_300_000)
    return repo


def _bump_version(text: str) -> str:
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.startswith("version:"):
            major, minor, _patch = line.split(":", 1)[1].strip().strip('"').split(".")
            lines[i] = f'version: "{major}.{int(minor) + 1}.0"\n'
            break
    return "".join(lines)


@dataclass
class Site:
    """A running `maestro serve` over a mirrored repository, and tokens to read it with."""

    base: str
    repo: GitRepoFactory
    database_url: str
    acme_token: str
    all_token: str
    platform_token: str


@pytest.fixture(scope="session")
def site() -> Iterator[Site]:
    workdir = Path(tempfile.mkdtemp(prefix="maestro-web-"))
    try:
        repo = build_repository(workdir / "repo")
        for url in _make_database(_server_url()):
            _maestro(repo.path, url, "sync")
            tokens = {owners: _maestro(repo.path, url, "token", "create",
                                       *sum((["--owner", o] for o in owners), [])
                                       ).strip().splitlines()[-1]
                      for owners in (("acme",), ("acme", "platform"), ("platform",))}
            port = _free_port()
            log = (workdir / "serve.log").open("w")
            proc = subprocess.Popen(
                [sys.executable, "-m", "maestro_git", "--repo", str(repo.path), "serve",
                 "--port", str(port)], env={**os.environ, "DATABASE_URL": url},
                stdout=log, stderr=subprocess.STDOUT)
            base = f"http://127.0.0.1:{port}"
            try:
                _wait_http(base + "/api/v1/ping", time.monotonic() + 60)
                yield Site(base, repo, url, tokens[("acme",)], tokens[("acme", "platform")],
                           tokens[("platform",)])
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                log.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def chrome() -> Iterator[object]:
    """One headless Chromium for the session (a fresh profile in a temporary folder)."""
    assert CHROMIUM.exists() and CHROMEDRIVER.exists(), (
        "the browser tests need Debian's chromium and chromium-driver: run 'make browser'")
    os.environ.setdefault("SE_OFFLINE", "true")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="maestro-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1280,900",
                 f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="session")
def screenshot_dir() -> Iterator[Path]:
    if os.environ.get(SCREENSHOTS_ENV):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        yield SCREENSHOTS
        return
    folder = Path(tempfile.mkdtemp(prefix="maestro-shots-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)
