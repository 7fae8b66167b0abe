"""Where `maestro list` and `maestro show` read from: the mirror when it is there, else the
working tree.

`source="auto"` (the default) reads the PostgreSQL mirror when one is configured
(`--database-url` / `DATABASE_URL` / maestro.toml, or this repository's embedded server is
already running) and has mirrored the branch; otherwise it reads the working tree, so the
commands work on a fresh clone with no database. `source="mirror"` insists on the mirror
(an error when it is unreachable); `source="worktree"` never touches a database.

Both sources take the same `PersonaFilters` and give the same row shape, so output does not
depend on where it came from (except `updated_since` and the usage sorts, which only the
mirror knows: asking the working tree for them is a usage error).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from maestro_git.core.models import Persona
from maestro_git.errors import DatabaseError, UsageError
from maestro_git.mirror import db, query
from maestro_git.mirror.query import PersonaFilters
from maestro_git.settings import Settings

__all__ = ["PersonaView", "Source", "get_persona", "list_personas", "mirror_connection"]

Source = Literal["auto", "mirror", "worktree"]
_WORKTREE_SORTS = {"key", "name", "owner"}


@dataclass(frozen=True)
class PersonaView:
    """One persona as `show` renders it, from either source."""

    source: Literal["mirror", "worktree"]
    record: dict[str, Any]  # the fields (JSON-ready)
    body: str  # the system instruction as written
    resolved_body: str | None  # the effective instruction after inheritance, when asked


@contextmanager
def mirror_connection(settings: Settings, source: Source) -> Iterator[Any | None]:
    """A connection to a mirror that has synced `settings.branch`, or None (auto only)."""
    if source == "worktree":
        yield None
        return
    configured = bool(settings.database_url) or db.embedded_running(settings)
    if source == "auto" and not configured:
        yield None
        return
    try:
        conn = db.connect(settings)
    except DatabaseError:
        if source == "mirror":
            raise
        yield None
        return
    try:
        if source == "auto" and not query.has_synced(conn, settings.branch):
            yield None
        else:
            yield conn
    finally:
        conn.close()


def _worktree_row(p: Persona) -> dict[str, Any]:
    return {"key": p.key, "owner": p.owner, "name": p.name, "id": p.id,
            "display_name": p.display_name, "description": p.description,
            "version": p.version, "extends": p.extends, "tags": list(p.tags),
            "active": p.active, "metadata": p.metadata, "path": p.path, "model": p.model,
            "tools": list(p.tools) if p.tools is not None else None}


def _matches(p: Persona, f: PersonaFilters) -> bool:
    if f.owner is not None and p.owner != f.owner:
        return False
    if f.active is not None and p.active != f.active:
        return False
    if f.parent is not None and p.extends != f.parent:
        return False
    if not set(f.tags) <= set(p.tags):
        return False
    if f.model is not None and (p.model or "").lower() != f.model.lower():
        return False
    if f.tools and not set(f.tools) <= set(p.tools or ()):
        return False
    if f.extra and any(p.metadata.get(k) != v for k, v in f.extra.items()):
        return False
    if f.text:
        needle = f.text.lower()
        hay = " ".join(x for x in (p.key, p.display_name, p.description) if x).lower()
        if needle not in hay:
            return False
    return True


def list_personas(settings: Settings, filters: PersonaFilters | None = None,
                  source: Source = "auto") -> tuple[str, list[dict[str, Any]]]:
    """(the source read, the personas matching `filters` as dicts)."""
    f = filters or PersonaFilters()
    with mirror_connection(settings, source) as conn:
        if conn is not None:
            rows = [dict(vars(r)) for r in query.list_personas(conn, f)]
            for row in rows:  # the file format's name for the parent key
                row["extends"] = row.pop("parent_key")
            return "mirror", rows
    if f.updated_since is not None or f.sort not in _WORKTREE_SORTS:
        raise UsageError("--since and the usage sorts need the mirror",
                         hint="run 'maestro sync' first, or pass --source mirror")
    from maestro_git.repo.snapshots import snapshot_of

    personas = [p for p in snapshot_of(settings).personas.values() if _matches(p, f)]
    personas.sort(key=lambda p: (getattr(p, f.sort), p.key), reverse=bool(f.descending))
    end = None if f.limit is None else f.offset + f.limit
    return "worktree", [_worktree_row(p) for p in personas[f.offset:end]]


def get_persona(settings: Settings, key: str, resolved: bool = False,
                source: Source = "auto") -> PersonaView | None:
    """One persona from the mirror, or None when `source` resolves to the working tree
    (whose files `maestro show` prints as written). `NotFoundError` when the mirror lacks it.
    """
    with mirror_connection(settings, source) as conn:
        if conn is None:
            return None
        row = query.get_persona(conn, key)
    record = {k: v for k, v in vars(row).items() if k not in ("content", "resolved_content")}
    record["id"] = str(row.id)
    return PersonaView("mirror", record, row.content,
                       row.resolved_content if resolved else None)
