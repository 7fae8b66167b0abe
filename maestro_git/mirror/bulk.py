"""The first load into an empty mirror: COPY, with the server's work overlapping the parse.

Most of a first load's time is the server computing each persona's `tsvector` (a stored
generated column) while it takes the rows in. A `BulkLoad` lets that happen while Python is
still reading and parsing the head's files, instead of after:

- entering it begins the transaction, drops the GIN indexes of the loaded tables (building one after the
  load costs about half of maintaining it row by row) and opens a COPY into `personas`;
- `offer(parsed)` is the snapshot builder's per-file callback: a persona file with no error of
  its own (warnings are fine) and an id no earlier row took is written to the COPY at once,
  the server indexing it while the next files parse. A persona that `extends` another waits until its parent has
  been streamed, then goes with its content composed over the parent's (so a whole chain
  streams, whatever order its files come in; a chain over the depth limit does not);
- `end_stream()` closes that COPY; `apply_commit` calls it, as late as it can, so the server
  works through the queued rows while Python validates across files, diffs and resolves;
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
from dataclasses import dataclass
from typing import Any

from psycopg import sql
from psycopg.copy import Copy, QueuedLibpqWriter

from maestro_git.core.formats import ParsedFile
from maestro_git.core.inherit import Composer
from maestro_git.core.models import CommitInfo, Persona, Severity
from maestro_git.core.rules.validate import apply_severities
from maestro_git.mirror import tables
from maestro_git.mirror.db import Connection
from maestro_git.settings import Settings

__all__ = ["BulkLoad", "copy_rows"]

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


@dataclass(frozen=True)
class _Streamed:
    """What a streamed `personas` row holds, to be checked against the finished snapshot."""

    uid: uuid.UUID
    content_hash: str
    parent_uid: uuid.UUID | None
    resolved: str  # the content composed over its parents'
    links: int  # `extends` links above it


class BulkLoad:
    """One first load, from before the parse to the commit (see the module rules)."""

    def __init__(self, conn: Connection, info: CommitInfo, settings: Settings) -> None:
        self.conn = conn
        self.info = info
        self.settings = settings
        self.max_depth = settings.limits.max_inheritance_depth
        self.gin: list[str] = []
        self.streamed: dict[str, _Streamed] = {}
        # Chains composed while streaming; `Syncer` resolves the snapshot with it too.
        self.composer = Composer()
        self._waiting: dict[str, list[Persona]] = {}  # parent key -> children parsed first
        self._ids: set[uuid.UUID] = set()
        self._stack = ExitStack()  # the transaction, then the streaming COPY
        self._copy_stack = ExitStack()  # the streaming COPY alone (`end_stream` closes it)
        self._copy: Copy | None = None

    def __enter__(self) -> BulkLoad:
        with ExitStack() as undo:
            undo.push(self._stack)
            self._stack.enter_context(self.conn.transaction())
            self.gin = drop_gin_indexes(self.conn)
            self._stack.enter_context(self._copy_stack)
            self._copy = _open_copy(self.conn, self._copy_stack, "personas",
                                    tables.PERSONA_COLUMNS)
            undo.pop_all()
        return self

    def __exit__(self, *exc: Any) -> bool | None:
        return self._stack.__exit__(*exc)

    def offer(self, parsed: ParsedFile) -> None:
        """Stream this file's `personas` row now if it can be judged on its own (a child
        waits for its parent's row)."""
        rec = parsed.record
        if self._copy is None or not isinstance(rec, Persona) or (parsed.problems and any(
                p.severity is Severity.ERROR
                for p in apply_severities(parsed.problems, self.settings))):
            return
        if rec.extends:
            parent = self.streamed.get(rec.extends)
            if parent is None:
                self._waiting.setdefault(rec.extends, []).append(rec)
                return
            self._stream(rec, parent)
        else:
            self._stream(rec, None)

    def _stream(self, rec: Persona, parent: _Streamed | None) -> None:
        uid = tables.persona_uuid(rec.key, rec.id)
        links = 0 if parent is None else parent.links + 1
        if uid in self._ids or rec.key in self.streamed or links > self.max_depth \
                or self._copy is None:
            return  # a repeated id or a chain too deep: the snapshot decides
        resolved = rec.body if parent is None else self.composer(parent.resolved, rec.body)
        parent_uid = None if parent is None else parent.uid
        self._copy.write_row(tables.persona_row(rec, uid, parent_uid, resolved, self.info))
        self._ids.add(uid)
        entry = self.streamed[rec.key] = _Streamed(uid, rec.content_hash, parent_uid,
                                                   resolved, links)
        for child in self._waiting.pop(rec.key, ()):
            self._stream(child, entry)

    def end_stream(self) -> None:
        """Finish the streaming COPY (the server has every streamed row after this)."""
        if self._copy is not None:
            self._copy = None
            self._copy_stack.close()

    def keep_streamed(self, personas: Sequence[Persona], ids: Mapping[str, uuid.UUID],
                      resolved: Mapping[str, str]) -> set[str]:
        """Of the streamed rows, delete those the commit does not write as streamed;
        returns the keys kept. `personas`: every persona the commit writes, `ids` their row
        ids, `resolved` their resolved contents (a persona missing there: its own body).
        Call after `end_stream`."""
        wanted = {p.key: p for p in personas}
        keep: set[str] = set()
        stale: list[str] = []
        for key, row in self.streamed.items():
            rec = wanted.get(key)
            if rec is not None and ids.get(key) == row.uid \
                    and rec.content_hash == row.content_hash \
                    and (ids.get(rec.extends) if rec.extends else None) == row.parent_uid \
                    and resolved.get(key, rec.body) == row.resolved:
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
        commit_values = {"commit": info.id, "author_name": info.author_name,
                         "author_email": info.author_email, "committed_at": info.time,
                         "message": info.message}
        # Each of VERSION_COLUMNS from the commit, or from the persona row's same column.
        values = sql.SQL(", ").join(
            sql.Placeholder(col) if col in commit_values or col == "action"
            else sql.Identifier("id" if col == "persona_id" else col)
            for col in tables.VERSION_COLUMNS)
        stmt = sql.SQL(
            "INSERT INTO persona_versions ({}) SELECT {} FROM personas WHERE key = ANY(%(keys)s) "
            "ON CONFLICT ON CONSTRAINT persona_versions_once_per_commit DO NOTHING").format(
            sql.SQL(", ").join(map(sql.Identifier, tables.VERSION_COLUMNS)), values)
        for action, keys in by_action.items():
            if keys:
                cur = self.conn.execute(stmt, {**commit_values, "action": action,
                                               "keys": list(keys)})
                n += max(cur.rowcount, 0)
        return n

    def rebuild_indexes(self) -> None:
        """Recreate the GIN indexes dropped on entry."""
        if self.gin:
            self.conn.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no pending checks at CREATE
        for definition in self.gin:
            self.conn.execute(definition.encode("utf-8"))
        self.gin = []
