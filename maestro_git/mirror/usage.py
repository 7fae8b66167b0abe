"""The operational usage counters (`persona_usage`), as backups carry them.

Rules of this module:
- `persona_usage` is the one table git cannot rebuild: `maestro rebuild` keeps it, a backup
  carries it, and a restore merges it (the larger count and the later time win), so a
  restore is idempotent.
- Statements are composed with `psycopg.sql`; callers own the transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from psycopg import sql
from psycopg.rows import class_row

from maestro_git.mirror import db

__all__ = ["UsageRow", "merge_usage", "persona_ids_by_key", "read_usage"]


@dataclass(frozen=True)
class UsageRow:
    """One persona's counters, with its key when the persona is still mirrored."""

    persona_id: str
    key: str | None
    application_count: int
    last_applied_at: datetime | None


_READ = sql.SQL(
    "SELECT u.persona_id::text AS persona_id, p.key, u.application_count, u.last_applied_at "
    "FROM persona_usage u LEFT JOIN personas p ON p.id = u.persona_id ORDER BY u.persona_id")

_MERGE = sql.SQL("""
INSERT INTO persona_usage AS pu (persona_id, application_count, last_applied_at)
VALUES (%s, %s, %s)
ON CONFLICT (persona_id) DO UPDATE SET
    application_count = GREATEST(pu.application_count, excluded.application_count),
    last_applied_at = GREATEST(pu.last_applied_at, excluded.last_applied_at)
""")


def read_usage(conn: db.Connection) -> list[UsageRow]:
    """Every usage row, by persona id."""
    with conn.cursor(row_factory=class_row(UsageRow)) as cur:
        return cur.execute(_READ).fetchall()


def persona_ids_by_key(conn: db.Connection) -> dict[str, str]:
    """key -> row id of every mirrored persona."""
    rows = conn.execute(sql.SQL("SELECT key, id FROM personas")).fetchall()
    return {str(r[0]): str(r[1]) for r in rows}


def merge_usage(conn: db.Connection,
                rows: Iterable[tuple[str, int, datetime | None]]) -> None:
    """Upsert (persona id, count, last applied) rows; the larger count and later time win."""
    with conn.cursor() as cur:
        cur.executemany(_MERGE, list(rows))
