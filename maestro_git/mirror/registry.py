"""Which mirror a command reads and writes: one PostgreSQL schema per (repository, branch).

Rules of this module:
- A mirror is a schema holding the same tables and views as every other mirror; connections
  bound to it `SET search_path` to that schema alone (never `public` behind it), so SQL stays
  unqualified and a table missing from one mirror can never be read from another.
- The shared registry `maestro.mirrors` (created on first use) records each mirror: schema,
  name, branch, the repository's identity (the root commits of the mirrored branch) and the
  head it was last mirrored to. `maestro db status` lists it.
- Identity: a registered mirror belongs to a repository when one of its recorded root commits
  (or its recorded head) is a commit of that repository. That survives force pushes, resets
  and even a new line with no common ancestor (the old commits stay in the object database
  or the recorded head is the new line), and a different repository never passes it.
- Resolution (`resolve`): `[sync] schema` when set (refused when the schema holds another
  repository); else the registered mirror of this branch that belongs to this repository
  (preferring the same `[sync] name`); else the pre-schema layout in `public` when it holds
  this repository (read in place until a writer moves it, `adopt_legacy`); else a new name,
  `<name>_<branch>_<hash>` sanitised to at most 63 bytes, the hash covering name, branch and
  root commits, so two repositories with the same folder name never share a schema.
- Nothing here deletes a row: a mirror that is not this repository's is refused or left alone.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from maestro_git.errors import ConfigError, GitError
from maestro_git.git.repo import GitRepo
from maestro_git.settings import Settings

__all__ = [
    "LEGACY_OBJECTS",
    "Mirror",
    "MirrorMismatch",
    "MirrorRow",
    "REGISTRY_SCHEMA",
    "adopt_legacy",
    "bind",
    "ensure_registry",
    "legacy_layout",
    "mirror_name",
    "of_repository",
    "register",
    "registered",
    "repository_roots",
    "resolve",
    "schema_name",
    "update_head",
]

Connection = psycopg.Connection[Any]

REGISTRY_SCHEMA = "maestro"
_MAX_IDENTIFIER = 63  # PostgreSQL's NAMEDATALEN - 1
_UNSAFE = re.compile(r"[^a-z0-9_]+")

# What migrations before 0005 (and 0010-0013, where they ran there) created in
# `public`, the layout before one schema per mirror. Indexes, constraints, policies, grants
# and owned sequences move with their tables.
LEGACY_OBJECTS: tuple[tuple[str, str], ...] = (
    ("TABLE", "personas"), ("TABLE", "persona_versions"), ("TABLE", "persona_sets"),
    ("TABLE", "persona_set_members"), ("TABLE", "persona_templates"),
    ("TABLE", "audit_events"), ("TABLE", "sync_state"), ("TABLE", "sync_errors"),
    ("TABLE", "persona_usage"), ("TABLE", "gdpr_erasures"), ("TABLE", "schema_migrations"),
    ("TABLE", "api_tokens"), ("TABLE", "webhook_cursors"), ("TABLE", "webhook_deliveries"),
    ("VIEW", "current_personas"), ("VIEW", "latest_versions"), ("VIEW", "set_members"),
)
_LEGACY_FUNCTIONS = ("maestro_tags_text(text[])", "maestro_owner_visible(text)",
                     "maestro_set_visible(jsonb)", "maestro_json_texts(jsonb)")
_READER_ROLE = "maestro_reader"  # migration 0011's role: it needs USAGE on the new schema

_CREATE_REGISTRY = """
CREATE TABLE IF NOT EXISTS maestro.mirrors (
    schema_name text PRIMARY KEY,
    name        text NOT NULL,
    branch      text NOT NULL,
    roots       text[] NOT NULL DEFAULT '{}',
    head        text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
)"""


class MirrorMismatch(ConfigError):
    """The schema chosen for this repository holds another repository's mirror."""


@dataclass(frozen=True)
class Mirror:
    """One mirror: the schema its tables live in, and what it mirrors."""

    schema: str
    name: str
    branch: str
    roots: tuple[str, ...] = ()  # root commits of the branch (the repository's identity)
    legacy: bool = False  # the tables still sit in `public` (moved by the next migrate)

    @classmethod
    def named(cls, schema: str, branch: str = "main") -> Mirror:
        """A mirror in an explicit schema with no recorded identity (scripts, tests)."""
        return cls(schema=schema, name=schema, branch=branch)


@dataclass(frozen=True)
class MirrorRow:
    """A row of `maestro.mirrors`."""

    schema: str
    name: str
    branch: str
    roots: tuple[str, ...]
    head: str | None
    created_at: datetime
    updated_at: datetime


# -- names and identity -----------------------------------------------------------------------
def _sanitise(text: str, limit: int) -> str:
    out = _UNSAFE.sub("_", text.lower()).strip("_")
    return (out or "x")[:limit].rstrip("_") or "x"


def mirror_name(settings: Settings) -> str:
    """`[sync] name`, else the repository folder's name."""
    return settings.mirror_name or Path(settings.repo_path).resolve().name or "repo"


def schema_name(name: str, branch: str, roots: tuple[str, ...]) -> str:
    """`<name>_<branch>_<hash>`: lower-case, `[a-z0-9_]`, at most 63 bytes; the 8-hex hash
    covers the unsanitised name, branch and root commits."""
    digest = hashlib.sha256("\0".join([name, branch, *sorted(roots)]).encode()).hexdigest()[:8]
    room = _MAX_IDENTIFIER - len(digest) - 2
    left = _sanitise(name, room // 2)
    right = _sanitise(branch, room - len(left))
    schema = f"{left}_{right}_{digest}"
    return f"m_{schema}"[:_MAX_IDENTIFIER] if schema.startswith(("pg_", "maestro_")) or \
        schema[0].isdigit() else schema


def repository_roots(git: GitRepo, branch: str) -> tuple[str, ...]:
    """The root commits reachable from the branch head (empty for a branch with no commit)."""
    head = git.head(branch)
    if head is None:
        return ()
    return git.roots(head)


def _open_git(settings: Settings) -> GitRepo | None:
    try:
        return GitRepo(settings.repo_path)
    except GitError:
        return None


def _belongs(row: MirrorRow, git: GitRepo) -> bool:
    return any(git.has_commit(c) for c in (*row.roots, *((row.head,) if row.head else ())))


# -- the registry -----------------------------------------------------------------------------
def _has_registry(conn: Connection) -> bool:
    row = conn.execute("SELECT to_regclass('maestro.mirrors') IS NOT NULL").fetchone()
    return bool(row and row[0])


def ensure_registry(conn: Connection) -> None:
    """Create `maestro.mirrors` when it does not exist (idempotent)."""
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
        sql.Identifier(REGISTRY_SCHEMA)))
    conn.execute(_CREATE_REGISTRY)


def registered(conn: Connection, branch: str | None = None) -> list[MirrorRow]:
    """Every registered mirror (of `branch`, when given), by schema name."""
    if not _has_registry(conn):
        return []
    query = sql.SQL("SELECT schema_name, name, branch, roots, head, created_at, updated_at "
                    "FROM maestro.mirrors {} ORDER BY schema_name").format(
        sql.SQL("WHERE branch = %s") if branch is not None else sql.SQL(""))
    rows = conn.execute(query, (branch,) if branch is not None else ())
    return [MirrorRow(r[0], r[1], r[2], tuple(r[3]), r[4], r[5], r[6]) for r in rows]


def of_repository(conn: Connection, settings: Settings) -> list[MirrorRow]:
    """The mirrors of this repository (one per branch, by branch name): the registered rows
    whose commits this repository has, or, with no repository to ask, whose name is its."""
    git = _open_git(settings)
    name = mirror_name(settings)
    rows = [r for r in registered(conn)
            if (_belongs(r, git) if git is not None else r.name == name)]
    rows.sort(key=lambda r: (r.branch, r.name != name, -r.updated_at.timestamp()))
    best: dict[str, MirrorRow] = {}
    for row in rows:
        best.setdefault(row.branch, row)
    return list(best.values())


def _row(conn: Connection, schema: str) -> MirrorRow | None:
    if not _has_registry(conn):
        return None
    found = [r for r in registered(conn) if r.schema == schema]
    return found[0] if found else None


def _schema_exists(conn: Connection, schema: str) -> bool:
    row = conn.execute("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %s)",
                       (schema,)).fetchone()
    return bool(row and row[0])


def _mismatch(schema: str, row: MirrorRow) -> MirrorMismatch:
    roots = ", ".join(r[:7] for r in row.roots) or "none recorded"
    return MirrorMismatch(
        f"schema {schema} mirrors another repository ({row.name}, branch {row.branch}, "
        f"root {roots}), not this one",
        hint="set [sync] schema in maestro.toml to a schema of its own (or remove it to let "
             "maestro choose one)")


def register(conn: Connection, mirror: Mirror) -> None:
    """Record `mirror` in the registry (inside the caller's transaction); refuse a schema
    registered to another repository or branch."""
    existing = _row(conn, mirror.schema)
    if existing is not None:
        if existing.branch != mirror.branch or (
                existing.roots and mirror.roots and not set(existing.roots) & set(mirror.roots)
                and existing.head not in mirror.roots):
            raise _mismatch(mirror.schema, existing)
        if mirror.roots and set(mirror.roots) != set(existing.roots):
            conn.execute("UPDATE maestro.mirrors SET roots = %s, updated_at = now() "
                         "WHERE schema_name = %s", (list(mirror.roots), mirror.schema))
        return
    conn.execute("INSERT INTO maestro.mirrors (schema_name, name, branch, roots) "
                 "VALUES (%s, %s, %s, %s)",
                 (mirror.schema, mirror.name, mirror.branch, list(mirror.roots)))


def update_head(conn: Connection, commit: str) -> None:
    """Record the mirror's new head (the session's schema), in the commit's transaction."""
    conn.execute("UPDATE maestro.mirrors SET head = %s, updated_at = now() "
                 "WHERE schema_name = current_schema() AND head IS DISTINCT FROM %s",
                 (commit, commit))


def bind(conn: Connection, schema: str) -> None:
    """Point the session at `schema` alone."""
    conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))


# -- the layout before schemas ----------------------------------------------------------------
def legacy_layout(conn: Connection) -> dict[str, str] | None:
    """The cursors (branch -> commit) of a mirror still in `public`, or None when there is
    none (never migrated there, or already moved)."""
    row = conn.execute("SELECT to_regclass('public.sync_state') IS NOT NULL AND "
                       "to_regclass('public.personas') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return None
    return {r[0]: r[1] for r in conn.execute("SELECT branch, commit FROM public.sync_state")}


def _legacy_is_ours(cursors: dict[str, str], git: GitRepo | None, branch: str) -> bool:
    if git is None or not cursors:  # nothing to tell by, or nothing mirrored there yet
        return True
    commit = cursors.get(branch)
    return commit is not None and git.has_commit(commit)


def adopt_legacy(conn: Connection, mirror: Mirror) -> Mirror:
    """Move the `public` tables, views and function into `mirror.schema` and register it,
    in the caller's transaction (the caller holds the migrate lock). History is not read
    again: rows, versions, usage counters and the erasure register move as they are. Cursors
    of other branches are dropped (they described rows this branch's sync had overwritten)."""
    target = Mirror(schema_name(mirror.name, mirror.branch, mirror.roots), mirror.name,
                    mirror.branch, mirror.roots)
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(target.schema)))
    for kind, name in LEGACY_OBJECTS:
        conn.execute(sql.SQL("ALTER {} IF EXISTS {} SET SCHEMA {}").format(
            sql.SQL(kind), sql.Identifier("public", name), sql.Identifier(target.schema)))
    for function in _LEGACY_FUNCTIONS:
        found = conn.execute("SELECT to_regprocedure(%s) IS NOT NULL",
                             (f"public.{function}",)).fetchone()
        if found and found[0]:
            conn.execute(sql.SQL("ALTER FUNCTION public.{} SET SCHEMA {}").format(
                sql.SQL(function), sql.Identifier(target.schema)))
    role = conn.execute("SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = %s)",
                        (_READER_ROLE,)).fetchone()
    if role and role[0]:
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(
            sql.Identifier(target.schema), sql.Identifier(_READER_ROLE)))
    conn.execute(sql.SQL("DELETE FROM {} WHERE branch <> %s").format(
        sql.Identifier(target.schema, "sync_state")), (target.branch,))
    register(conn, target)
    cursor = conn.execute(sql.SQL("SELECT commit FROM {} WHERE branch = %s").format(
        sql.Identifier(target.schema, "sync_state")), (target.branch,)).fetchone()
    if cursor:
        conn.execute("UPDATE maestro.mirrors SET head = %s WHERE schema_name = %s",
                     (cursor[0], target.schema))
    return target


# -- resolution -------------------------------------------------------------------------------
def resolve(conn: Connection, settings: Settings, branch: str | None = None) -> Mirror:
    """The mirror of `branch` (default `settings.branch`) for this repository (module rules).
    Reads only; `db.migrate` creates, registers or moves it."""
    branch = branch or settings.branch
    name = mirror_name(settings)
    git = _open_git(settings)
    explicit = settings.schema_for(branch)
    if explicit is not None:
        row = _row(conn, explicit)
        roots = repository_roots(git, branch) if git is not None else ()
        if row is not None and git is not None and row.roots and not _belongs(row, git):
            raise _mismatch(explicit, row)
        return Mirror(explicit, name, branch, roots)
    rows = registered(conn, branch)
    if git is not None:
        ours = [r for r in rows if _belongs(r, git)]
    else:  # no repository to ask: only an unambiguous name will do
        ours = [r for r in rows if r.name == name]
        if len(ours) > 1:
            raise ConfigError(f"{len(ours)} mirrors of {name} (branch {branch}) are "
                              "registered and there is no git repository to tell them apart",
                              hint="set [sync] schema in maestro.toml")
    if ours:
        ours.sort(key=lambda r: (r.name != name, -r.updated_at.timestamp()))
        best = ours[0]
        return Mirror(best.schema, best.name, branch, best.roots)
    cursors = legacy_layout(conn)
    roots = repository_roots(git, branch) if git is not None else ()
    if cursors is not None and _legacy_is_ours(cursors, git, branch):
        return Mirror("public", name, branch, roots, legacy=True)
    schema = schema_name(name, branch, roots)
    row = _row(conn, schema)
    if row is not None and not (roots and set(row.roots) == set(roots)):
        raise _mismatch(schema, row)
    # (a row at the schema named for exactly these roots is this repository's, even when the
    # look-up above missed it: a commit read can fail for a moment while git writes objects)
    return Mirror(schema, name, branch, roots)
