"""The branches this database mirrors and the commit each one has reached (`sync_state`).

Rules of this module: as `query` (SQL composed with `psycopg.sql`, rows as frozen records,
one statement, psycopg errors as `DatabaseError`). `sync_state` holds no owner data, so every
read scope sees it (migration 0011).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from psycopg import sql
from psycopg.rows import class_row

from maestro_git.mirror.db import Connection, translate_errors

__all__ = ["BranchRow", "branches"]


@dataclass(frozen=True)
class BranchRow:
    """One mirrored branch: its last mirrored commit and when it was mirrored."""

    branch: str
    commit: str
    mirrored_at: datetime


_BRANCHES = sql.SQL("SELECT {} FROM sync_state ORDER BY branch").format(
    sql.SQL(", ").join(sql.Identifier(f) for f in BranchRow.__dataclass_fields__))


def branches(conn: Connection) -> list[BranchRow]:
    """Every mirrored branch with its head, by name."""
    with translate_errors("read the mirrored branches"), conn.cursor(
            row_factory=class_row(BranchRow)) as cur:
        return cur.execute(_BRANCHES).fetchall()
