"""Reading the mirror: personas, versions, persona sets, full-text search, usage counters.

Rules of this module:
- SQL is composed only with `psycopg.sql` (identifiers and placeholders); rows come back as
  the frozen records below (`rows.class_row`).
- Every function takes an open connection (`db.connect`) and runs one statement (one
  transaction for `record_application`); psycopg errors become `DatabaseError`.
- Reads go to the views where there is one (`current_personas`, `set_members`), so the README's
  example SQL and this module answer the same questions the same way.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import class_row

from maestro_git.core import grammar
from maestro_git.core.models import SearchHit
from maestro_git.errors import DatabaseError, NotFoundError, SearchError, UsageError
from maestro_git.mirror import events, fts
from maestro_git.mirror.db import Connection, translate_errors

__all__ = [
    "has_synced",
    "SORTS",
    "MemberRow",
    "PersonaFilters",
    "PersonaRow",
    "PersonaSummary",
    "SetDetail",
    "SetRow",
    "UsageRow",
    "VersionRow",
    "get_persona",
    "get_set",
    "history",
    "list_personas",
    "list_sets",
    "record_application",
    "search",
]


@dataclass(frozen=True)
class PersonaSummary:
    """One persona in a listing (no content)."""

    key: str
    owner: str
    name: str
    display_name: str | None
    description: str | None
    version: str
    parent_key: str | None
    tags: list[str]
    active: bool
    updated_at: datetime
    application_count: int
    last_applied_at: datetime | None
    model: str | None = None  # the typed agent settings (migration 0013)
    tools: list[str] | None = None  # None: the tool's default (all); []: none


@dataclass(frozen=True)
class PersonaRow:
    """One persona as `current_personas` shows it: content, its inheritance-resolved
    content, and the usage counters."""

    id: Any  # uuid.UUID
    key: str
    owner: str
    name: str
    display_name: str | None
    description: str | None
    version: str
    parent_key: str | None
    tags: list[str]
    active: bool
    metadata: dict[str, Any]
    content: str
    resolved_content: str
    content_hash: str
    size_bytes: int
    commit: str
    created_at: datetime
    updated_at: datetime
    application_count: int
    last_applied_at: datetime | None
    model: str | None = None  # the typed agent settings (migration 0013)
    tools: list[str] | None = None  # None: the tool's default (all); []: none


@dataclass(frozen=True)
class VersionRow:
    """One mirrored version of a persona (a commit that changed it)."""

    key: str
    path: str
    commit: str
    action: str
    version: str | None
    content_hash: str | None
    author_name: str
    author_email: str
    committed_at: datetime
    message: str


@dataclass(frozen=True)
class SetRow:
    """One persona set, without its members."""

    key: str
    name: str
    description: str | None
    status: str | None
    generation_cycle: int | None
    member_count: int
    rqe_scores: Any
    diversity_score: Any
    validation_scores: Any
    commit: str
    updated_at: datetime


@dataclass(frozen=True)
class MemberRow:
    """One synthetic user persona inside a set, with its scores."""

    set_key: str
    position: int
    name: str
    persona_data: dict[str, Any]
    image_url: str | None
    image_prompt: str | None
    similarity_score: Any
    validation_status: str | None


@dataclass(frozen=True)
class SetDetail:
    """A persona set with its members in file order."""

    set: SetRow
    members: tuple[MemberRow, ...]


@dataclass(frozen=True)
class UsageRow:
    """A persona's usage counters after `record_application`."""

    key: str
    commit: str
    application_count: int
    last_applied_at: datetime


# sort name -> (column, default direction descending?)
SORTS: dict[str, tuple[str, bool]] = {
    "key": ("key", False), "name": ("name", False), "owner": ("owner", False),
    "updated": ("updated_at", True), "created": ("created_at", True),
    "applied": ("application_count", True), "last-applied": ("last_applied_at", True),
}


@dataclass(frozen=True)
class PersonaFilters:
    """What `list_personas` keeps and in which order. Every filter is optional; `tags` are
    all required (a persona must carry each one)."""

    tags: tuple[str, ...] = ()
    owner: str | None = None
    active: bool | None = None
    parent: str | None = None  # the `extends` key
    updated_since: datetime | None = None
    text: str | None = None  # a substring of key, display name or description
    model: str | None = None  # the typed `model`, case-insensitive
    tools: tuple[str, ...] = ()  # tools every kept persona allows (as written in `tools`)
    sort: str = "key"
    descending: bool | None = None  # None: the sort's natural direction
    limit: int | None = 100
    offset: int = 0
    extra: dict[str, Any] = field(default_factory=dict)  # metadata containment (jsonb @>)


_SUMMARY_COLUMNS = [f for f in PersonaSummary.__dataclass_fields__]
_PERSONA_COLUMNS = [f for f in PersonaRow.__dataclass_fields__]
_VERSION_COLUMNS = [f for f in VersionRow.__dataclass_fields__]
_SET_COLUMNS = [f for f in SetRow.__dataclass_fields__]
_MEMBER_COLUMNS = [f for f in MemberRow.__dataclass_fields__]


def _columns(names: Sequence[str]) -> sql.Composed:
    return sql.SQL(", ").join(sql.Identifier(n) for n in names)


def has_synced(conn: Connection, branch: str) -> bool:
    """True when the mirror has mirrored `branch` at least once (False without a schema)."""
    try:
        row = conn.execute(sql.SQL("SELECT 1 FROM sync_state WHERE branch = %s"),
                           (branch,)).fetchone()
    except psycopg.Error:  # no schema yet: not a mirror we can read
        if not conn.autocommit:
            conn.rollback()
        return False
    return row is not None


def list_personas(conn: Connection, filters: PersonaFilters | None = None
                  ) -> list[PersonaSummary]:
    """Personas at the last mirrored commit, filtered, sorted and paged."""
    f = filters or PersonaFilters()
    if f.sort not in SORTS:
        raise UsageError(f"unknown sort '{f.sort}'", hint="sorts: " + ", ".join(SORTS))
    where: list[sql.Composable] = []
    params: dict[str, Any] = {}
    if f.tags:
        where.append(sql.SQL("tags @> {}").format(sql.Placeholder("tags")))
        params["tags"] = list(f.tags)
    for name, column in (("owner", "owner"), ("active", "active"), ("parent", "parent_key")):
        value = getattr(f, name)
        if value is not None:
            where.append(sql.SQL("{} = {}").format(sql.Identifier(column),
                                                    sql.Placeholder(name)))
            params[name] = value
    if f.model is not None:
        where.append(sql.SQL("lower(model) = lower({})").format(sql.Placeholder("model")))
        params["model"] = f.model
    if f.tools:
        where.append(sql.SQL("tools @> {}").format(sql.Placeholder("tools")))
        params["tools"] = list(f.tools)
    if f.updated_since is not None:
        where.append(sql.SQL("updated_at >= {}").format(sql.Placeholder("since")))
        params["since"] = f.updated_since
    if f.text:
        where.append(sql.SQL(
            "(key ILIKE {p} OR display_name ILIKE {p} OR description ILIKE {p})").format(
            p=sql.Placeholder("text")))
        params["text"] = "%" + f.text.replace("%", r"\%").replace("_", r"\_") + "%"
    if f.extra:
        where.append(sql.SQL("metadata @> {}::jsonb").format(sql.Placeholder("extra")))
        params["extra"] = json.dumps(f.extra)
    column, natural_desc = SORTS[f.sort]
    desc = natural_desc if f.descending is None else f.descending
    query = sql.SQL("SELECT {cols} FROM current_personas{where} ORDER BY {order} {dir} "
                    "NULLS LAST, key{limit} OFFSET {offset}").format(
        cols=_columns(_SUMMARY_COLUMNS),
        where=sql.SQL(" WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL(""),
        order=sql.Identifier(column), dir=sql.SQL("DESC" if desc else "ASC"),
        limit=sql.SQL(" LIMIT {}").format(sql.Literal(int(f.limit)))
        if f.limit is not None else sql.SQL(""),
        offset=sql.Literal(max(0, int(f.offset))))
    with translate_errors("list personas"), conn.cursor(
            row_factory=class_row(PersonaSummary)) as cur:
        return cur.execute(query, params).fetchall()


_GET = sql.SQL("SELECT {} FROM current_personas WHERE key = %s").format(
    _columns(_PERSONA_COLUMNS))


def get_persona(conn: Connection, key: str) -> PersonaRow:
    """One persona at the last mirrored commit, or `NotFoundError`."""
    with translate_errors("read a persona"), conn.cursor(
            row_factory=class_row(PersonaRow)) as cur:
        row = cur.execute(_GET, (key,)).fetchone()
    if row is None:
        raise NotFoundError(f"no persona '{key}' in the mirror",
                            hint="check the key (owner/name) with 'maestro list'")
    return row


_HISTORY = sql.SQL(
    "SELECT {} FROM persona_versions WHERE persona_id IN ("
    "SELECT id FROM personas WHERE key = %(key)s "
    "UNION SELECT persona_id FROM persona_versions WHERE key = %(key)s) "
    "ORDER BY committed_at DESC, id DESC").format(_columns(_VERSION_COLUMNS))


def history(conn: Connection, key: str) -> list[VersionRow]:
    """Every mirrored version of the persona now (or last) called `key`, newest first;
    versions from before a rename are included."""
    with translate_errors("read a persona's history"), conn.cursor(
            row_factory=class_row(VersionRow)) as cur:
        rows = cur.execute(_HISTORY, {"key": key}).fetchall()
    if not rows:
        raise NotFoundError(f"no versions of '{key}' in the mirror")
    return rows


def list_sets(conn: Connection, status: str | None = None) -> list[SetRow]:
    """Every persona set (optionally with one status), by key."""
    query = sql.SQL("SELECT {} FROM persona_sets{} ORDER BY key").format(
        _columns(_SET_COLUMNS),
        sql.SQL(" WHERE status = %(status)s") if status else sql.SQL(""))
    with translate_errors("list persona sets"), conn.cursor(
            row_factory=class_row(SetRow)) as cur:
        return cur.execute(query, {"status": status}).fetchall()


def get_set(conn: Connection, key: str) -> SetDetail:
    """One persona set with its members and their scores, or `NotFoundError`."""
    with translate_errors("read a persona set"):
        with conn.cursor(row_factory=class_row(SetRow)) as cur:
            found = cur.execute(sql.SQL("SELECT {} FROM persona_sets WHERE key = %s").format(
                _columns(_SET_COLUMNS)), (key,)).fetchone()
        if found is None:
            raise NotFoundError(f"no persona set '{key}' in the mirror",
                                hint="list them with 'maestro sets list'")
        with conn.cursor(row_factory=class_row(MemberRow)) as cur:
            members = cur.execute(sql.SQL(
                "SELECT {} FROM set_members WHERE set_key = %s ORDER BY position").format(
                _columns(_MEMBER_COLUMNS)), (key,)).fetchall()
    return SetDetail(found, tuple(members))


SEARCH_TIMEOUT_MS = 2000  # a search statement longer than this is cancelled by the server


def search(conn: Connection, text: str, limit: int = 10, *,
           timeout_ms: int = SEARCH_TIMEOUT_MS) -> list[SearchHit]:
    """Full-text search over the mirror in the query language of the Whoosh index
    (`core/grammar.py`, compiled to SQL by `mirror/fts.py`), ranked with `ts_rank_cd`,
    snippets from `ts_headline`.

    The statement runs under `statement_timeout` (the server stops it, whoever waits), in a
    transaction of its own; an interrupted wait (Ctrl-C, a client gone) cancels it on the
    server, as psycopg does for every interrupted query."""
    tree = grammar.parse(text)
    texts = fts.tsquery_texts(tree)
    try:
        with translate_errors("search the mirror"), conn.transaction(), conn.cursor() as cur:
            # Under row-level security (the server's reader), with migration 0014's
            # functions there, text matches go through them (`fts.statement`'s `guarded`).
            settings_row = cur.execute(
                "SELECT set_config('statement_timeout', %s, true),"
                " set_config('client_min_messages', 'warning', true),"
                " row_security_active('personas')"
                " AND to_regprocedure('maestro_fts_personas(tsquery)') IS NOT NULL",
                (f"{int(timeout_ms)}ms",)).fetchone()
            guarded = settings_row is not None and bool(settings_row[2])
            stop_only = frozenset(r[0] for r in cur.execute(
                fts.STOP_ONLY, {"t": texts}).fetchall()) if texts else frozenset()
            found = fts.statement(tree, limit, stop_only, guarded=guarded)
            rows = cur.execute(found.query, found.params).fetchall()
    except DatabaseError as err:
        if isinstance(err.__cause__, psycopg.errors.QueryCanceled):
            raise SearchError(f"the search took longer than {timeout_ms} ms and was stopped",
                              hint="search for fewer or more specific words") from None
        raise
    return [SearchHit(kind=r[0], key=r[1], title=r[2], score=round(float(r[3]), 4),
                      snippet=" ".join(str(r[4]).split()), member=r[5]) for r in rows]


_APPLY = sql.SQL("""
WITH p AS (SELECT id, key, commit FROM personas WHERE key = %(key)s),
u AS (
    INSERT INTO persona_usage AS pu (persona_id, application_count, last_applied_at)
    SELECT id, 1, clock_timestamp() FROM p
    ON CONFLICT (persona_id) DO UPDATE
        SET application_count = pu.application_count + 1,
            last_applied_at = excluded.last_applied_at
    RETURNING application_count, last_applied_at
)
SELECT p.key, p.commit, u.application_count, u.last_applied_at FROM p, u
""")


def record_application(conn: Connection, key: str) -> UsageRow:
    """Count one application of a persona (`application_count + 1`, `last_applied_at = now`)
    in the operational table `persona_usage`, which `maestro rebuild` keeps. Notifies
    `maestro_events` (action `applied`, the persona's current commit) in the same
    transaction, so cached readers refresh."""
    with translate_errors("record an application"), conn.transaction(), conn.cursor(
            row_factory=class_row(UsageRow)) as cur:
        row = cur.execute(_APPLY, {"key": key}).fetchone()
        if row is not None:
            events.notify(conn, [events.EntityEvent("applied", "persona", key, row.commit)])
    if row is None:
        raise NotFoundError(f"no persona '{key}' in the mirror")
    return row

