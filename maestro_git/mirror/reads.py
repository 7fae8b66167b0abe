"""Reads the HTTP API needs beyond `query`: templates, the audit log, set sources, the head.

Rules of this module:
- Same as `query`: SQL composed with `psycopg.sql`, rows as frozen records, one statement
  per function, psycopg errors as `DatabaseError`.
- The caller chooses the scope: under `scope.scoped` every row here passes row-level
  security (`owner_visible` asks PostgreSQL itself whether an owner is in scope).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import sql
from psycopg.rows import class_row

from maestro_git.core.models import SearchHit
from maestro_git.errors import NotFoundError
from maestro_git.mirror.db import Connection, translate_errors

__all__ = [
    "AuditFilters",
    "AuditRow",
    "SetSource",
    "TemplateRow",
    "TemplateSummary",
    "audit_log",
    "head_commit",
    "list_templates",
    "owner_visible",
    "set_source",
    "template",
    "image_source",
    "visible_hits",
]


@dataclass(frozen=True)
class TemplateSummary:
    name: str
    display_name: str | None
    description: str | None
    category: str | None
    version: str
    tags: list[str]
    is_system_template: bool
    commit: str
    updated_at: datetime


@dataclass(frozen=True)
class TemplateRow(TemplateSummary):
    content: str
    metadata: dict[str, Any]
    content_hash: str


@dataclass(frozen=True)
class AuditRow:
    id: int
    commit: str
    action: str
    kind: str
    key: str
    old_key: str | None
    actor_name: str
    actor_email: str
    occurred_at: datetime
    message: str


@dataclass(frozen=True)
class AuditFilters:
    key: str | None = None  # the entity under this name or its old name
    kind: str | None = None
    action: str | None = None
    since: datetime | None = None
    limit: int = 100
    offset: int = 0


@dataclass(frozen=True)
class SetSource:
    key: str
    path: str
    commit: str
    content_hash: str


def _cols(cls: Any) -> sql.Composed:
    return sql.SQL(", ").join([sql.Identifier(f.name) for f in dataclasses.fields(cls)])


def head_commit(conn: Connection, branch: str) -> str | None:
    """The last mirrored commit of `branch` (None before the first sync)."""
    with translate_errors("read the sync cursor"):
        row = conn.execute(sql.SQL("SELECT commit FROM sync_state WHERE branch = %s"),
                           (branch,)).fetchone()
    return str(row[0]) if row else None


def owner_visible(conn: Connection, owner: str) -> bool:
    """Whether the current scope may read `owner`'s rows (PostgreSQL decides)."""
    with translate_errors("check the read scope"):
        row = conn.execute(sql.SQL("SELECT maestro_owner_visible(%s)"), (owner,)).fetchone()
    return bool(row and row[0])


def list_templates(conn: Connection, category: str | None = None) -> list[TemplateSummary]:
    query = sql.SQL("SELECT {} FROM persona_templates{} ORDER BY name").format(
        _cols(TemplateSummary),
        sql.SQL(" WHERE category = %(category)s") if category else sql.SQL(""))
    with translate_errors("list templates"), conn.cursor(
            row_factory=class_row(TemplateSummary)) as cur:
        return cur.execute(query, {"category": category}).fetchall()


def template(conn: Connection, name: str) -> TemplateRow:
    query = sql.SQL("SELECT {} FROM persona_templates WHERE name = %s").format(
        _cols(TemplateRow))
    with translate_errors("read a template"), conn.cursor(
            row_factory=class_row(TemplateRow)) as cur:
        row = cur.execute(query, (name,)).fetchone()
    if row is None:
        raise NotFoundError(f"no template '{name}' in the mirror")
    return row


def audit_log(conn: Connection, f: AuditFilters) -> list[AuditRow]:
    """Audit events, newest first, filtered and paged."""
    where: list[sql.Composable] = []
    params: dict[str, Any] = {"limit": f.limit, "offset": f.offset}
    if f.key is not None:
        where.append(sql.SQL("(key = %(key)s OR old_key = %(key)s)"))
        params["key"] = f.key
    for name in ("kind", "action"):
        if getattr(f, name) is not None:
            where.append(sql.SQL("{} = {}").format(sql.Identifier(name), sql.Placeholder(name)))
            params[name] = getattr(f, name)
    if f.since is not None:
        where.append(sql.SQL("occurred_at >= %(since)s"))
        params["since"] = f.since
    query = sql.SQL("SELECT {} FROM audit_events{} ORDER BY occurred_at DESC, id DESC "
                    "LIMIT %(limit)s OFFSET %(offset)s").format(
        _cols(AuditRow),
        sql.SQL(" WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL(""))
    with translate_errors("read the audit log"), conn.cursor(
            row_factory=class_row(AuditRow)) as cur:
        return cur.execute(query, params).fetchall()


def set_source(conn: Connection, key: str) -> SetSource:
    """Where a persona set's file is, and at which mirrored commit."""
    query = sql.SQL("SELECT {} FROM persona_sets WHERE key = %s").format(_cols(SetSource))
    with translate_errors("read a persona set"), conn.cursor(
            row_factory=class_row(SetSource)) as cur:
        row = cur.execute(query, (key,)).fetchone()
    if row is None:
        raise NotFoundError(f"no persona set '{key}' in the mirror",
                            hint="list them at /api/v1/sets")
    return row


_VISIBLE = sql.SQL(
    "SELECT 'persona', key FROM personas WHERE key = ANY(%(p)s) "
    "UNION ALL SELECT 'persona_set', key FROM persona_sets WHERE key = ANY(%(s)s) "
    "UNION ALL SELECT 'template', name FROM persona_templates WHERE name = ANY(%(t)s)")


def visible_hits(conn: Connection, hits: list[SearchHit]) -> list[SearchHit]:
    """The hits (of any search backend) whose entity the current scope may read, in order.
    A set member is visible with its set."""
    if not hits:
        return []
    group = {"persona": "persona", "template": "template", "persona_set": "persona_set",
             "set_member": "persona_set"}
    wanted: dict[str, list[str]] = {"persona": [], "persona_set": [], "template": []}
    for h in hits:
        wanted[group.get(h.kind, "persona")].append(h.key)
    with translate_errors("filter search hits"):
        rows = conn.execute(_VISIBLE, {"p": wanted["persona"], "s": wanted["persona_set"],
                                       "t": wanted["template"]}).fetchall()
    seen = {(str(r[0]), str(r[1])) for r in rows}
    return [h for h in hits if (group.get(h.kind, "persona"), h.key) in seen]


@dataclass(frozen=True)
class ImageSource:
    set_key: str
    set_path: str
    commit: str
    image_url: str


def image_source(conn: Connection, *, set_key: str | None = None, position: int | None = None,
                 image_url: str | None = None) -> ImageSource:
    """The member image named by (`set_key`, `position`) or by its `image_url`, in a set the
    current scope may read (`NotFoundError` otherwise)."""
    if set_key is not None and position is not None:
        where = sql.SQL("m.set_key = %(set)s AND m.position = %(pos)s")
    elif image_url is not None:
        where = sql.SQL("m.image_url = %(url)s")
    else:
        raise ValueError("image_source needs (set_key, position) or image_url")
    query = sql.SQL("SELECT s.key, s.path, s.commit, m.image_url FROM persona_set_members m "
                    "JOIN persona_sets s ON s.key = m.set_key "
                    "WHERE m.image_url IS NOT NULL AND {} ORDER BY s.key LIMIT 1").format(where)
    with translate_errors("find a member image"):
        row = conn.execute(query, {"set": set_key, "pos": position, "url": image_url}
                           ).fetchone()
    if row is None:
        raise NotFoundError("no such member image in the mirror")
    return ImageSource(*row)
