"""Reads of the two database-first systems maestro migrates from (their SQL lives here, as
all SQL does): TheMaestro's Ecto tables (`personas`, `persona_versions`,
`persona_templates`, `users`) and the persona-set service's (`persona_sets`, `personas`).

Rules of this module:
- read-only: one `REPEATABLE READ, READ ONLY` transaction per read, so a migration sees one
  consistent state of a database that may still be in use;
- statements are composed with `psycopg.sql` and rows read with `class_row` into the frozen
  records below, in the order a replay needs (time, then id);
- the users table is not part of TheMaestro's persona schema (it comes from its accounts
  epic): its columns are found in `information_schema`, and a display name is read from the
  first of `name`, `full_name`, `display_name`, `username` that exists (the e-mail alone
  otherwise). JSON columns arrive as Python values; naive timestamps are UTC.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from psycopg import Connection, sql
from psycopg.rows import class_row

from maestro_git.errors import DatabaseError
from maestro_git.mirror import db

__all__ = [
    "MaestroPersona",
    "MaestroTemplate",
    "MaestroUser",
    "MaestroVersion",
    "ServiceMember",
    "ServiceSet",
    "TheMaestroData",
    "PersonaSetData",
    "read_persona_sets",
    "read_themaestro",
]


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class MaestroUser:
    id: str
    email: str | None
    name: str | None


@dataclass(frozen=True)
class MaestroPersona:
    id: str
    name: str
    display_name: str | None
    description: str | None
    content: str
    version: str
    is_active: bool
    parent_persona_id: str | None
    user_id: str | None
    metadata: Any
    tags: list[str] | None
    application_count: int | None
    last_applied_at: datetime | None
    inserted_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class MaestroVersion:
    id: str
    persona_id: str
    version: str
    content: str
    changes_summary: str | None
    created_by_user_id: str | None
    metadata: Any
    created_at: datetime


@dataclass(frozen=True)
class MaestroTemplate:
    id: str
    name: str
    display_name: str | None
    description: str | None
    content: str
    category: str | None
    tags: list[str] | None
    is_system_template: bool | None
    popularity_score: float | None
    metadata: Any
    inserted_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class TheMaestroData:
    users: tuple[MaestroUser, ...]
    personas: tuple[MaestroPersona, ...]
    versions: tuple[MaestroVersion, ...]
    templates: tuple[MaestroTemplate, ...]


@dataclass(frozen=True)
class ServiceSet:
    id: int
    name: str | None
    description: str | None
    rqe_scores: Any
    diversity_score: Any
    validation_scores: Any
    generation_cycle: int | None
    status: str | None
    created_at: datetime
    updated_at: datetime | None


@dataclass(frozen=True)
class ServiceMember:
    id: int
    persona_set_id: int
    name: str | None
    persona_data: Any
    image_url: str | None
    image_prompt: str | None
    similarity_score: Any
    validation_status: str | None
    created_at: datetime
    updated_at: datetime | None


@dataclass(frozen=True)
class PersonaSetData:
    sets: tuple[ServiceSet, ...]
    members: tuple[ServiceMember, ...]


@contextmanager
def _snapshot(url: str) -> Iterator[Connection[Any]]:
    conn = db.connect(url, autocommit=False)
    try:
        with db.translate_errors("read the database migrated from"):
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield conn
    finally:
        conn.rollback()
        conn.close()


def _columns(conn: Connection[Any], table: str) -> list[str]:
    rows = conn.execute(sql.SQL(
        "SELECT column_name FROM information_schema.columns WHERE table_name = {} "
        "AND table_schema = current_schema() ORDER BY ordinal_position").format(
            sql.Literal(table))).fetchall()
    return [str(r[0]) for r in rows]


def _require(conn: Connection[Any], tables: Sequence[str], what: str) -> None:
    missing = [t for t in tables if not _columns(conn, t)]
    if missing:
        raise DatabaseError(f"no table {', '.join(missing)} in the database: is it {what}?",
                            hint="pass --from-url with that system's DATABASE_URL")


def _rows(conn: Connection[Any], cls: type[Any], query: sql.SQL | sql.Composed) -> list[Any]:
    with conn.cursor(row_factory=class_row(cls)) as cur:
        return list(cur.execute(query).fetchall())


_PERSONAS = sql.SQL("""
SELECT id::text, name, display_name, description, content, version, is_active,
       parent_persona_id::text, user_id::text, metadata, tags, application_count,
       last_applied_at, inserted_at, updated_at
FROM personas ORDER BY inserted_at, id""")
_VERSIONS = sql.SQL("""
SELECT id::text, persona_id::text, version, content, changes_summary,
       created_by_user_id::text, metadata, created_at
FROM persona_versions ORDER BY created_at, id""")
_TEMPLATES = sql.SQL("""
SELECT id::text, name, display_name, description, content, category, tags,
       is_system_template, popularity_score, metadata, inserted_at, updated_at
FROM persona_templates ORDER BY inserted_at, id""")


def _users(conn: Connection[Any]) -> list[MaestroUser]:
    columns = _columns(conn, "users")
    if not columns:
        return []
    name = next((c for c in ("name", "full_name", "display_name", "username")
                 if c in columns), None)
    query = sql.SQL("SELECT id::text AS id, {email} AS email, {name} AS name FROM users "
                    "ORDER BY id").format(
        email=sql.Identifier("email") if "email" in columns else sql.NULL,
        name=sql.Identifier(name) if name else sql.NULL)
    return _rows(conn, MaestroUser, query)


def read_themaestro(url: str) -> TheMaestroData:
    """Every user, persona, version and template of TheMaestro's database at `url`."""
    with _snapshot(url) as conn:
        _require(conn, ("personas", "persona_versions"), "TheMaestro's")
        templates = _rows(conn, MaestroTemplate, _TEMPLATES) if _columns(
            conn, "persona_templates") else []
        personas = [MaestroPersona(**{**p.__dict__, "inserted_at": _utc(p.inserted_at),
                                      "updated_at": _utc(p.updated_at),
                                      "last_applied_at": _utc(p.last_applied_at)})
                    for p in _rows(conn, MaestroPersona, _PERSONAS)]
        versions = [MaestroVersion(**{**v.__dict__, "created_at": _utc(v.created_at)})
                    for v in _rows(conn, MaestroVersion, _VERSIONS)]
        templates = [MaestroTemplate(**{**t.__dict__, "inserted_at": _utc(t.inserted_at),
                                        "updated_at": _utc(t.updated_at)})
                     for t in templates]
        return TheMaestroData(tuple(_users(conn)), tuple(personas), tuple(versions),
                              tuple(templates))


_SETS = sql.SQL("""
SELECT id, name, description, rqe_scores, diversity_score, validation_scores,
       generation_cycle, status, created_at, updated_at
FROM persona_sets ORDER BY created_at, id""")
_MEMBERS = sql.SQL("""
SELECT id, persona_set_id, name, persona_data, image_url, image_prompt, similarity_score,
       validation_status, created_at, updated_at
FROM personas ORDER BY persona_set_id, created_at, id""")


def read_persona_sets(url: str) -> PersonaSetData:
    """Every set and member of the persona-set service's database at `url`."""
    with _snapshot(url) as conn:
        _require(conn, ("persona_sets", "personas"), "the persona-set service's")
        sets = [ServiceSet(**{**s.__dict__, "created_at": _utc(s.created_at),
                              "updated_at": _utc(s.updated_at)})
                for s in _rows(conn, ServiceSet, _SETS)]
        members = [ServiceMember(**{**m.__dict__, "created_at": _utc(m.created_at),
                                    "updated_at": _utc(m.updated_at)})
                   for m in _rows(conn, ServiceMember, _MEMBERS)]
        return PersonaSetData(tuple(sets), tuple(members))
