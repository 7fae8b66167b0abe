"""maestro-git: a git repository as the source of truth for AI agent personas.

The public API (everything else is internal and may change):

- `load_settings(repo_path=None, *, database_url=None, branch=None) -> Settings`
- `Repository(settings)`: files and git — snapshots at any revision, history, diffs, and
  validated compare-and-swap writes (create, update, rename, delete, rollback), the audit log.
- `Client(database_url=None, ...)`: reads over the PostgreSQL mirror with an in-process cache
  kept coherent by `LISTEN maestro_events`; search; usage counters.
- `build_snapshot`, `read_worktree`: parse and validate a working tree without git.
- The records (`Persona`, `PersonaSet`, `Template`, `Problem`, ...) and the `MaestroError` tree.

Imports are lazy so `import maestro_git` stays cheap (the CLI starts fast).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from maestro_git.client import Client
    from maestro_git.core.models import Persona, PersonaSet, PersonaSetMember, Problem, Template
    from maestro_git.core.snapshot import Snapshot, build_snapshot
    from maestro_git.errors import (
        ConflictError,
        DatabaseError,
        GitError,
        MaestroError,
        NotFoundError,
        SearchError,
        ValidationFailed,
    )
    from maestro_git.git.worktree import read_worktree
    from maestro_git.repo.repository import Repository
    from maestro_git.settings import Settings, load_settings

__all__ = [
    "Client",
    "ConflictError",
    "DatabaseError",
    "GitError",
    "MaestroError",
    "NotFoundError",
    "Persona",
    "PersonaSet",
    "PersonaSetMember",
    "Problem",
    "Repository",
    "SearchError",
    "Settings",
    "Snapshot",
    "Template",
    "ValidationFailed",
    "build_snapshot",
    "load_settings",
    "read_worktree",
]

_WHERE = {
    "Client": "client",
    "Repository": "repo.repository",
    "Settings": "settings",
    "load_settings": "settings",
    "Snapshot": "core.snapshot",
    "build_snapshot": "core.snapshot",
    "read_worktree": "git.worktree",
    "Persona": "core.models",
    "PersonaSet": "core.models",
    "PersonaSetMember": "core.models",
    "Problem": "core.models",
    "Template": "core.models",
    "ConflictError": "errors",
    "DatabaseError": "errors",
    "GitError": "errors",
    "MaestroError": "errors",
    "NotFoundError": "errors",
    "SearchError": "errors",
    "ValidationFailed": "errors",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'maestro_git' has no attribute {name!r}")
    return getattr(import_module(f"maestro_git.{module}"), name)
