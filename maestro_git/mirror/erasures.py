"""The GDPR erasure register (`gdpr_erasures`) and the mirror rows that carry identities.

Rules of this module:
- The register holds hashes of an erased address and name, and the pseudonym to write
  instead (`core/subject.py`). The syncer reads it at each catch-up (`load_erasures`) and
  writes pseudonyms for the subject's commits, old and new; `maestro rebuild` keeps it.
- Every statement is composed with `psycopg.sql`; the identity columns are named once, in
  `IDENTITY_COLUMNS`. Callers own the transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from psycopg import sql
from psycopg.rows import class_row, dict_row

from maestro_git.core.models import CommitInfo
from maestro_git.core.subject import DataSubject, identity_hash, pseudonym
from maestro_git.mirror import db

__all__ = [
    "IDENTITY_COLUMNS",
    "Erasures",
    "RegisterEntry",
    "add_to_register",
    "apply_register",
    "count_identity_rows",
    "has_identity_tables",
    "identity_rows",
    "load_erasures",
    "read_register",
    "register_entry",
]

# The mirror's identity columns: table -> (name column, e-mail column, columns exported).
IDENTITY_COLUMNS: Mapping[str, tuple[str, str, tuple[str, ...]]] = {
    "persona_versions": ("author_name", "author_email",
                         ("id", "key", "commit", "action", "author_name", "author_email",
                          "committed_at", "message")),
    "audit_events": ("actor_name", "actor_email",
                     ("id", "commit", "action", "kind", "key", "actor_name", "actor_email",
                      "occurred_at", "message")),
}


@dataclass(frozen=True)
class Erasures:
    """The erasure register: identities the mirror writes as pseudonyms.

    Matching is `DataSubject.names_identity`'s (the address ignoring case, or the name
    ignoring case and surrounding spaces), on hashes."""

    by_email: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    by_name: Mapping[str, tuple[str, str]] = field(default_factory=dict)

    def identity(self, name: str, email: str) -> tuple[str, str]:
        """The (name, e-mail) to write for this identity."""
        if not self.by_email:
            return name, email
        hit = self.by_email.get(identity_hash(email.strip().lower()))
        if hit is None and self.by_name:
            hit = self.by_name.get(identity_hash(name.strip().lower()))
        return hit if hit is not None else (name, email)

    def apply(self, info: CommitInfo) -> CommitInfo:
        """`info` with erased author and committer identities replaced by their pseudonyms."""
        if not self.by_email:
            return info
        author = self.identity(info.author_name, info.author_email)
        committer = self.identity(info.committer_name, info.committer_email)
        return replace(info, author_name=author[0], author_email=author[1],
                       committer_name=committer[0], committer_email=committer[1])


@dataclass(frozen=True)
class RegisterEntry:
    """One row of the erasure register, as `maestro backup` carries it to another database."""

    email_sha256: str
    name_sha256: str | None
    pseudonym_name: str
    pseudonym_email: str
    erased_at: datetime


_REGISTER = sql.SQL("SELECT email_sha256, name_sha256, pseudonym_name, pseudonym_email, "
                    "erased_at FROM gdpr_erasures ORDER BY erased_at, email_sha256")


def read_register(conn: db.Connection) -> list[RegisterEntry]:
    """Every row of the erasure register, oldest erasure first (a migrated mirror)."""
    with conn.cursor(row_factory=class_row(RegisterEntry)) as cur:
        return cur.execute(_REGISTER).fetchall()


def load_erasures(conn: db.Connection) -> Erasures:
    """The erasure register as the mirror holds it (one query, run at each catch-up)."""
    by_email: dict[str, tuple[str, str]] = {}
    by_name: dict[str, tuple[str, str]] = {}
    for e in read_register(conn):
        by_email[e.email_sha256] = (e.pseudonym_name, e.pseudonym_email)
        if e.name_sha256:
            by_name[e.name_sha256] = (e.pseudonym_name, e.pseudonym_email)
    return Erasures(by_email, by_name)


_ADD = sql.SQL(
    "INSERT INTO gdpr_erasures (email_sha256, name_sha256, pseudonym_name, pseudonym_email, "
    "erased_at) VALUES (%s, %s, %s, %s, %s) "
    "ON CONFLICT (email_sha256, coalesce(name_sha256, '')) DO NOTHING")


def add_to_register(conn: db.Connection, entries: Iterable[RegisterEntry]) -> int:
    """Add `entries` to the register (an (address, name) pair it holds already is kept as
    it is); returns how many were new. Call inside the caller's transaction."""
    added = 0
    for e in entries:
        cur = conn.execute(_ADD, (e.email_sha256, e.name_sha256, e.pseudonym_name,
                                  e.pseudonym_email, e.erased_at))
        added += max(cur.rowcount, 0)
    return added


def register_entry(subject: DataSubject) -> RegisterEntry:
    """The register row that erases `subject` (hashes of its address and name, its
    pseudonym), dated now."""
    name, email = pseudonym(subject)
    return RegisterEntry(identity_hash(subject.email.lower()),
                         identity_hash(subject.name.lower()) if subject.name else None,
                         name, email, datetime.now(UTC))


def apply_register(conn: db.Connection) -> dict[str, int]:
    """Write the register's pseudonyms over the mirror rows that still carry an erased
    identity (after restoring a register into a database mirrored without it); returns
    table -> rows changed. Matching is `Erasures.identity`'s. Call inside a transaction."""
    erasures = load_erasures(conn)
    changed: dict[str, int] = dict.fromkeys(IDENTITY_COLUMNS, 0)
    if not erasures.by_email:
        return changed
    for table, (name_col, email_col, _) in IDENTITY_COLUMNS.items():
        t, n, e = sql.Identifier(table), sql.Identifier(name_col), sql.Identifier(email_col)
        pairs = conn.execute(sql.SQL("SELECT DISTINCT {}, {} FROM {}").format(n, e, t)).fetchall()
        update = sql.SQL("UPDATE {t} SET {n} = %s, {e} = %s WHERE {n} = %s AND {e} = %s"
                         ).format(t=t, n=n, e=e)
        for name, email in pairs:
            new = erasures.identity(name, email)
            if new != (name, email):
                changed[table] += conn.execute(update, (*new, name, email)).rowcount
    return changed


def has_identity_tables(conn: db.Connection) -> bool:
    """True when the connection's database holds a migrated mirror (both identity tables)."""
    row = conn.execute(sql.SQL("SELECT to_regclass('persona_versions') IS NOT NULL "
                               "AND to_regclass('audit_events') IS NOT NULL")).fetchone()
    return bool(row and row[0])


def _where(table: str, subject: DataSubject) -> tuple[sql.Composable, list[Any]]:
    name_col, email_col, _ = IDENTITY_COLUMNS[table]
    clause: sql.Composable = sql.SQL("lower(btrim({})) = lower(%s)").format(
        sql.Identifier(email_col))
    params: list[Any] = [subject.email]
    if subject.name:
        clause = sql.SQL("{} OR lower(btrim({})) = lower(%s)").format(
            clause, sql.Identifier(name_col))
        params.append(subject.name)
    return sql.SQL("({})").format(clause), params


def identity_rows(conn: db.Connection, subject: DataSubject
                  ) -> dict[str, tuple[Mapping[str, Any], ...]]:
    """table -> the rows of `IDENTITY_COLUMNS` naming the subject, oldest first."""
    out: dict[str, tuple[Mapping[str, Any], ...]] = {}
    for table, (_, _, columns) in IDENTITY_COLUMNS.items():
        where, params = _where(table, subject)
        query = sql.SQL("SELECT {} FROM {} WHERE {} ORDER BY id").format(
            sql.SQL(", ").join(map(sql.Identifier, columns)), sql.Identifier(table), where)
        with conn.cursor(row_factory=dict_row) as cur:
            out[table] = tuple(cur.execute(query, params).fetchall())
    return out


def count_identity_rows(conn: db.Connection, subject: DataSubject) -> dict[str, int]:
    """table -> how many rows name the subject (what an erasure would change)."""
    counts: dict[str, int] = {}
    for table in IDENTITY_COLUMNS:
        where, params = _where(table, subject)
        row = conn.execute(sql.SQL("SELECT count(*) FROM {} WHERE {}").format(
            sql.Identifier(table), where), params).fetchone()
        counts[table] = int(row[0]) if row else 0
    return counts
