"""The owner scope of a read: row-level security applied per transaction, and a small pool.

Rules of this module:
- A scope is the set of owner folders a reader may see, or `ALL_OWNERS` (`*`). It reaches
  PostgreSQL as the transaction-local setting `maestro.owners` while the transaction runs as
  the role `READER_ROLE` (`SET LOCAL ROLE`): the policies of migration 0011 then filter every
  row, so a bug in a caller cannot read past its scope. Both end with the transaction.
- `scoped(conn, owners)` is the one way in; it opens the transaction itself.
- `Pool` hands out `db.connect` connections (so every connection gets what `connect` gives
  it, e.g. a mirror's search_path) and drops broken ones; it holds at most `size` idle.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from psycopg import sql

from maestro_git.mirror import db
from maestro_git.mirror.db import Connection, translate_errors

__all__ = ["ALL_OWNERS", "READER_ROLE", "Pool", "owners_setting", "scoped"]

READER_ROLE = "maestro_reader"
ALL_OWNERS = "*"

_SET_ROLE = sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(READER_ROLE))
_SET_OWNERS = sql.SQL("SELECT set_config('maestro.owners', %s, true)")


def owners_setting(owners: Iterable[str] | None) -> str:
    """The `maestro.owners` value of a scope: sorted owners joined by commas; None: `*`."""
    if owners is None:
        return ALL_OWNERS
    return ",".join(sorted(set(owners)))


@contextmanager
def scoped(conn: Connection, owners: str) -> Iterator[Connection]:
    """`conn` inside a transaction that reads as `READER_ROLE` with `maestro.owners = owners`
    (a value of `owners_setting`)."""
    with conn.transaction():
        with translate_errors("apply the read scope"):
            conn.execute(_SET_ROLE)
            conn.execute(_SET_OWNERS, (owners,))
        yield conn


class Pool:
    """A thread-safe pool of autocommit connections to one mirror."""

    def __init__(self, url: str, size: int = 8, mirror: db.Mirror | None = None) -> None:
        self.url = url
        self.mirror = mirror  # every connection is bound to it (its schema's search_path)
        self._idle: queue.LifoQueue[Connection] = queue.LifoQueue(maxsize=max(1, size))
        self._closed = threading.Event()

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        try:
            conn = self._idle.get_nowait()
        except queue.Empty:
            conn = db.connect(self.url, mirror=self.mirror)
        try:
            yield conn
        finally:
            if conn.closed or conn.broken or self._closed.is_set():
                conn.close()
            else:
                try:
                    self._idle.put_nowait(conn)
                except queue.Full:
                    conn.close()

    @contextmanager
    def scoped(self, owners: str) -> Iterator[Connection]:
        """A pooled connection inside `scoped(conn, owners)`."""
        with self.connection() as conn, scoped(conn, owners):
            yield conn

    def close(self) -> None:
        self._closed.set()
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return
