"""Each mirrored table's columns, write statement and row builder, for `mirror.apply_commit`.

No connection here: statements are `psycopg.sql` compositions, rows are tuples (JSON values wrapped in psycopg's
`Jsonb`). Every row table is written by one of two statement shapes, built here once:
- `upsert`: `INSERT … ON CONFLICT (key) DO UPDATE SET … WHERE … IS DISTINCT FROM …`, so a
  row whose hashes did not change is not rewritten (a replayed commit writes nothing);
- `insert`: a plain insert, or one that skips a row a unique constraint already holds
  (`ON CONFLICT ON CONSTRAINT … DO NOTHING`).
A table's column tuple is also the column list of the bulk load's COPY; its row builder
returns values in that order.
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from collections.abc import Sequence
from typing import Any

from psycopg import sql
from psycopg.types.json import Jsonb

from maestro_git.core.models import AuditEvent, CommitInfo, Persona, PersonaSet, Template

__all__ = [
    "EVENT_COLUMNS",
    "PERSONA_NAMESPACE",
    "EVENT_INSERT",
    "MEMBER_COLUMNS",
    "PERSONA_COLUMNS",
    "PERSONA_UPSERT",
    "SET_COLUMNS",
    "SET_UPSERT",
    "TEMPLATE_COLUMNS",
    "TEMPLATE_UPSERT",
    "VERSION_COLUMNS",
    "VERSION_INSERT",
    "deleted_version_row",
    "event_row",
    "insert",
    "insert_rows",
    "insert_values",
    "member_rows",
    "persona_row",
    "persona_uuid",
    "set_row",
    "sha",
    "template_row",
    "upsert",
    "version_row",
]


def insert(table: str, columns: Sequence[str], *,
           skip_duplicates_of: str | None = None) -> sql.Composed:
    """`INSERT INTO table (columns) VALUES (%s, …)`, one placeholder per column.

    `skip_duplicates_of`: a unique constraint's name; a row it already holds is skipped
    (`ON CONFLICT ON CONSTRAINT … DO NOTHING`).
    """
    stmt = insert_values(table, tuple(columns), 1)
    if skip_duplicates_of is not None:
        stmt += sql.SQL(" ON CONFLICT ON CONSTRAINT {} DO NOTHING").format(
            sql.Identifier(skip_duplicates_of))
    return stmt


@functools.lru_cache(maxsize=64)
def insert_values(table: str, columns: tuple[str, ...], rows: int) -> sql.Composed:
    """`INSERT INTO table (columns) VALUES (%s, …), (%s, …), …` for `rows` rows: one
    statement where `executemany` would send one per row (statement-level triggers fire
    once; `insert_rows` splits what exceeds `ROWS_PER_INSERT`)."""
    one = sql.SQL("({})").format(sql.SQL(", ").join(sql.Placeholder() * len(columns)))
    return sql.SQL("INSERT INTO {} ({}) VALUES {}").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns)),
        sql.SQL(", ").join([one] * rows))


ROWS_PER_INSERT = 1000  # x columns: well under PostgreSQL's 65,535 parameters a statement


def insert_rows(rows: Sequence[Row], table: str,
                columns: tuple[str, ...]) -> list[tuple[sql.Composed, list[Any]]]:
    """(statement, parameters) pairs that insert `rows`, `ROWS_PER_INSERT` a statement."""
    out: list[tuple[sql.Composed, list[Any]]] = []
    for start in range(0, len(rows), ROWS_PER_INSERT):
        chunk = rows[start:start + ROWS_PER_INSERT]
        out.append((insert_values(table, columns, len(chunk)),
                    [value for row in chunk for value in row]))
    return out


def upsert(table: str, columns: Sequence[str], *, key: str, keep: Sequence[str] = (),
           changed: Sequence[str], returning: str | None = None) -> sql.Composed:
    """Insert a row or update the row with the same `key`, only when it changed.

    - `key`: the conflict target column; it and the `keep` columns (e.g. `created_at`) keep
      their stored values on update, every other column takes the new one.
    - `changed`: the update happens only when one of these columns differs from the stored
      row (`table.c IS DISTINCT FROM excluded.c`, OR-ed, in this order).
    - `returning`: a column to return, for the rows inserted or updated only.
    """
    fixed = {key, *keep}
    t = sql.Identifier(table)
    sets = sql.SQL(", ").join(sql.SQL("{c} = excluded.{c}").format(c=sql.Identifier(c))
                              for c in columns if c not in fixed)
    differs = sql.SQL(" OR ").join(
        sql.SQL("{t}.{c} IS DISTINCT FROM excluded.{c}").format(t=t, c=sql.Identifier(c))
        for c in changed)
    stmt = insert(table, columns) + sql.SQL(" ON CONFLICT ({}) DO UPDATE SET {} WHERE {}").format(
        sql.Identifier(key), sets, differs)
    if returning is not None:
        stmt += sql.SQL(" RETURNING {}").format(sql.Identifier(returning))
    return stmt


PERSONA_COLUMNS = ("id", "key", "owner", "name", "path", "display_name", "description",
                   "content", "resolved_content", "version", "parent_key", "parent_id",
                   "tags", "active", "metadata", "frontmatter", "content_hash",
                   "resolved_hash", "size_bytes", "commit", "created_at", "updated_at")
# A rename keeps the row id and changes the key; a re-linked parent changes parent_id.
PERSONA_UPSERT = upsert("personas", PERSONA_COLUMNS, key="id", keep=("created_at",),
                        changed=("content_hash", "key", "resolved_hash", "parent_id"))

TEMPLATE_COLUMNS = ("name", "path", "id", "display_name", "description", "content",
                    "category", "version", "tags", "is_system_template", "metadata",
                    "content_hash", "size_bytes", "commit", "created_at", "updated_at")
TEMPLATE_UPSERT = upsert("persona_templates", TEMPLATE_COLUMNS, key="name",
                         keep=("created_at",), changed=("content_hash", "path"))

SET_COLUMNS = ("key", "path", "name", "description", "rqe_scores", "diversity_score",
               "validation_scores", "generation_cycle", "status", "metadata", "member_count",
               "content_hash", "size_bytes", "commit", "created_at", "updated_at")
# RETURNING: a set row that did not change (a replay) leaves its members alone.
SET_UPSERT = upsert("persona_sets", SET_COLUMNS, key="key", keep=("created_at",),
                    changed=("content_hash", "path"), returning="key")

MEMBER_COLUMNS = ("set_key", "position", "name", "persona_data", "image_url", "image_prompt",
                  "similarity_score", "validation_status")

VERSION_COLUMNS = ("persona_id", "key", "path", "commit", "action", "version", "content",
                   "frontmatter", "content_hash", "author_name", "author_email",
                   "committed_at", "message")
VERSION_INSERT = insert("persona_versions", VERSION_COLUMNS,
                        skip_duplicates_of="persona_versions_once_per_commit")

EVENT_COLUMNS = ("commit", "action", "kind", "key", "old_key", "actor_name", "actor_email",
                 "occurred_at", "message", "details")
EVENT_INSERT = insert("audit_events", EVENT_COLUMNS, skip_duplicates_of="audit_events_once")


# uuid5 namespace for personas without a usable frontmatter `id` (see `persona_uuid`).
PERSONA_NAMESPACE = uuid.UUID("6f1c3c1e-2f7a-5b8e-9a51-6d6165737472")


def persona_uuid(key: str, frontmatter_id: str | None) -> uuid.UUID:
    """A persona's row id: its frontmatter `id` when that is a UUID, else uuid5 of its key.

    (The syncer also keeps a key's existing row id across renames detected by git, so an
    id-less persona keeps its history when it moves.)
    """
    if frontmatter_id:
        try:
            return uuid.UUID(frontmatter_id)
        except ValueError:
            pass
    return uuid.uuid5(PERSONA_NAMESPACE, f"persona:{key}")


# -- rows, in the column order above ----------------------------------------------------------
Row = tuple[Any, ...]


def sha(text: str) -> str:
    """The SHA-256 hex digest of a text (a persona's `resolved_hash`)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _frontmatter(rec: Persona | Template) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("id", "display_name", "description", "version", "extends", "category"):
        value = getattr(rec, name, None)
        if value is not None:
            out[name] = value
    if rec.tags:
        out["tags"] = list(rec.tags)
    if rec.model is not None:
        out["model"] = rec.model  # read back by the generated `model` column (0013)
    if rec.tools is not None:
        out["tools"] = list(rec.tools)  # and `tools` (text[])
    out["active"] = rec.active
    if rec.metadata:
        out["metadata"] = rec.metadata
    return out


def _json(value: Any) -> Jsonb | None:
    return None if value is None else Jsonb(value)


_NO_DETAILS = Jsonb({})


def persona_row(rec: Persona, pid: uuid.UUID, parent_id: uuid.UUID | None, resolved: str,
                info: CommitInfo) -> Row:
    """A `personas` row: `pid` its row id, `resolved` its content after inheritance."""
    return (pid, rec.key, rec.owner, rec.name, rec.path, rec.display_name, rec.description,
            rec.body, resolved, rec.version, rec.extends, parent_id, list(rec.tags),
            rec.active, Jsonb(rec.metadata), Jsonb(_frontmatter(rec)), rec.content_hash,
            sha(resolved), rec.size_bytes, info.id, info.time, info.time)


def template_row(rec: Template, info: CommitInfo, system: bool) -> Row:
    """A `persona_templates` row (`system`: a built-in template's name)."""
    tid: uuid.UUID | None = None
    if rec.id:
        try:
            tid = uuid.UUID(rec.id)
        except ValueError:
            tid = None
    return (rec.name, rec.path, tid, rec.display_name, rec.description, rec.body, rec.category,
            rec.version, list(rec.tags), system, Jsonb(rec.metadata),
            rec.content_hash, rec.size_bytes, info.id, info.time, info.time)


def set_row(rec: PersonaSet, info: CommitInfo) -> Row:
    """A `persona_sets` row."""
    return (rec.name, rec.path, rec.title or rec.name, rec.description, _json(rec.rqe_scores),
            _json(rec.diversity_score), _json(rec.validation_scores), rec.generation_cycle,
            rec.status, Jsonb(rec.metadata), len(rec.members), rec.content_hash, rec.size_bytes,
            info.id, info.time, info.time)


def member_rows(rec: PersonaSet) -> list[Row]:
    """A set's `persona_set_members` rows; of members sharing a name only the first."""
    rows: list[Row] = []
    seen: set[str] = set()
    for position, m in enumerate(rec.members):
        if m.name in seen:  # (set_key, name) is the key; a duplicate name keeps the first
            continue
        seen.add(m.name)
        rows.append((rec.name, position, m.name, Jsonb(m.persona_data), m.image_url,
                     m.image_prompt, _json(m.similarity_score), m.validation_status))
    return rows


def version_row(pid: uuid.UUID, key: str, rec: Persona, action: str, info: CommitInfo) -> Row:
    """A `persona_versions` row for a persona the commit created, changed or renamed."""
    return (pid, key, rec.path, info.id, action, rec.version, rec.body,
            Jsonb(_frontmatter(rec)), rec.content_hash, info.author_name, info.author_email,
            info.time, info.message)


def deleted_version_row(pid: uuid.UUID, key: str, path: str, info: CommitInfo) -> Row:
    """A `persona_versions` row for a persona the commit deleted (no content)."""
    return (pid, key, path, info.id, "deleted", None, None, None, None, info.author_name,
            info.author_email, info.time, info.message)


def event_row(e: AuditEvent) -> Row:
    """An `audit_events` row."""
    return (e.commit, e.action, e.kind, e.key, e.old_key, e.actor_name, e.actor_email, e.time,
            e.message, _NO_DETAILS)
