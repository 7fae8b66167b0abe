"""The first load into an empty mirror: COPY, with the server's work overlapping the parse.

Most of a first load's time is the server computing each persona's `tsvector` (a stored
generated column) while it takes the rows in. A `BulkLoad` lets that happen while Python is
still reading and parsing the head's files, instead of after:

- entering it begins the transaction (`synchronous_commit = off`: a crash loses the whole
  load, never part of it), drops the GIN indexes of the loaded tables (building one after the
  load costs about half of maintaining it row by row) and opens a COPY into `personas`;
- `offer(parsed)` is the snapshot builder's per-file callback: a persona file with no problem
  of its own, no `extends` (so its resolved content is its body) and an id no earlier row took
  is written to the COPY at once; the server indexes it while the next files parse;
- `end_stream()` closes that COPY, once every file is parsed;
- `mirror.apply_commit(..., bulk=load)` then decides every row exactly as without streaming:
  `keep_streamed` deletes the streamed rows the finished snapshot judged otherwise (an error
  only cross-file rules see, a different row id) and names the ones to keep, so only the rest
  is copied; versions are copied server-side from the loaded rows (`insert_versions`) and
  `rebuild_indexes` recreates the GIN indexes;
- leaving it commits, or rolls the whole load back on an error.

Streaming is only an optimisation: what the mirror holds afterwards is what the snapshot
says, whatever was streamed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from contextlib import ExitStack
from typing import Any

from psycopg import sql
from psycopg.copy import Copy, QueuedLibpqWriter

from maestro_git import mirror_tables as tables
from maestro_git.db import Connection
from maestro_git.formats import ParsedFile
from maestro_git.git import CommitInfo
from maestro_git.models import Persona

__all__ = ["BULK_TABLES", "BulkLoad", "copy_rows", "drop_gin_indexes"]

BULK_TABLES = ("personas", "persona_templates", "persona_set_members")


def _open_copy(conn: Connection, stack: ExitStack, table: str, cols: Sequence[str]) -> Copy:
    stmt = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(c) for c in cols))
    cur = stack.enter_context(conn.cursor())
    # A queued writer: a thread sends the buffers, so Python goes on building rows (and
    # parsing files) while the server is busy instead of blocking on a full socket.
    return stack.enter_context(cur.copy(stmt, writer=QueuedLibpqWriter(cur)))


def copy_rows(conn: Connection, table: str, cols: Sequence[str],
              rows: Iterable[Sequence[Any]]) -> int:
    """COPY `rows` into `table`'s `cols`; returns how many."""
    n = 0
    with ExitStack() as stack:
        copy = _open_copy(conn, stack, table, cols)
        for row in rows:
            copy.write_row(row)
            n += 1
    return n


def drop_gin_indexes(conn: Connection) -> list[str]:
    """Drop the GIN indexes of the bulk-loaded tables; returns their definitions."""
    rows = conn.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
        "AND tablename = ANY(%s) AND indexdef LIKE '%% USING gin %%'",
        (list(BULK_TABLES),)).fetchall()
    for name, _ in rows:
        conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
    return [d for _, d in rows]


class BulkLoad:
    """One first load, from before the parse to the commit (see the module rules)."""

    def __init__(self, conn: Connection, info: CommitInfo) -> None:
        self.conn = conn
        self.info = info
        self.gin: list[str] = []
        self.streamed: dict[str, tuple[uuid.UUID, str]] = {}  # key -> (row id, content hash)
        self._ids: set[uuid.UUID] = set()
        self._stack = ExitStack()
        self._copy: Copy | None = None

    def __enter__(self) -> BulkLoad:
        with ExitStack() as undo:
            undo.push(self._stack)
            self._stack.enter_context(self.conn.transaction())
            self.conn.execute("SET LOCAL synchronous_commit = off")
            self.gin = drop_gin_indexes(self.conn)
            self._copy_stack = self._stack.enter_context(ExitStack())
            self._copy = _open_copy(self.conn, self._copy_stack, "personas",
                                    tables.PERSONA_COLUMNS)
            undo.pop_all()
        return self

    def __exit__(self, *exc: Any) -> bool | None:
        return self._stack.__exit__(*exc)

    def offer(self, parsed: ParsedFile) -> None:
        """Stream this file's `personas` row now if it can be judged on its own."""
        rec = parsed.record
        if self._copy is None or parsed.problems or not isinstance(rec, Persona) \
                or rec.extends:
            return
        uid = tables.persona_uuid(rec.key, rec.id)
        if uid in self._ids or rec.key in self.streamed:
            return  # a repeated id: the snapshot decides who keeps it
        self._copy.write_row(tables.persona_row(rec, uid, None, rec.body, self.info))
        self._ids.add(uid)
        self.streamed[rec.key] = (uid, rec.content_hash)

    def end_stream(self) -> None:
        """Finish the streaming COPY (the server has every streamed row after this)."""
        if self._copy is not None:
            self._copy = None
            self._copy_stack.close()

    def keep_streamed(self, personas: Sequence[Persona],
                      ids: Mapping[str, uuid.UUID]) -> set[str]:
        """Of the streamed rows, delete those `personas` (every persona the commit writes,
        with `ids` their row ids) does not hold as streamed; returns the keys kept."""
        self.end_stream()
        wanted = {p.key: p for p in personas}
        keep: set[str] = set()
        stale: list[str] = []
        for key, (uid, content_hash) in self.streamed.items():
            rec = wanted.get(key)
            if rec is not None and not rec.extends and ids.get(key) == uid \
                    and rec.content_hash == content_hash:
                keep.add(key)
            else:
                stale.append(key)
        if stale:
            self.conn.execute("DELETE FROM personas WHERE key = ANY(%s)", (stale,))
        return keep

    def insert_versions(self, by_action: Mapping[str, Sequence[str]]) -> int:
        """`persona_versions` rows for the given persona keys (action -> keys), copied from
        their `personas` rows by the server (the same values `tables.version_row` builds)."""
        info, n = self.info, 0
        for action, keys in by_action.items():
            if not keys:
                continue
            cur = self.conn.execute(
                "INSERT INTO persona_versions (persona_id, key, path, commit, action, version, "
                "content, frontmatter, content_hash, author_name, author_email, committed_at, "
                "message) SELECT id, key, path, %s, %s, version, content, frontmatter, "
                "content_hash, %s, %s, %s, %s FROM personas WHERE key = ANY(%s) "
                "ON CONFLICT ON CONSTRAINT persona_versions_once_per_commit DO NOTHING",
                (info.id, action, info.author_name, info.author_email, info.time,
                 info.message, list(keys)))
            n += max(cur.rowcount, 0)
        return n

    def rebuild_indexes(self) -> None:
        """Recreate the GIN indexes dropped on entry."""
        if self.gin:
            self.conn.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no pending checks at CREATE
        for definition in self.gin:
            self.conn.execute(definition.encode("utf-8"))
        self.gin = []
