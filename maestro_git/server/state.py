"""What one server process holds for its lifetime: settings, the cached client, a pool.

Rules of this module:
- One `ServerState` per process, built at start-up by the app's lifespan and closed at its
  end; routes reach it with `state_of(request)`.
- Hot reads go through `client` (the NOTIFY-coherent cache of `maestro_git.client`); reads it
  does not cache (search, audit, templates, diffs) take a connection of `pool`. Both read
  under a row-level-security owner scope (`maestro_git.mirror.scope`).
- Other mirrored branches of the repository (`[sync] branches`) are read through a state of
  their own (`for_branch`): its own cached client and a small pool bound to that branch's
  mirror, opened on first use and sharing the token cache. A branch that is not mirrored is
  a NotFoundError naming the mirrored ones.
- `kept` holds answers the fast path may repeat (`KeptAnswer`, keyed by `kept_slot`): each
  with a probe of the client-cache entry it was made from, so it is repeated only while that
  entry is the same object (any NOTIFY, application or TTL expiry ends it).
- Token look-ups are cached for `TOKEN_CACHE_SECONDS`, so a revoked or expired token stops
  working within that time and a hot request costs no query.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from maestro_git.client import Client
from maestro_git.errors import NotFoundError, UsageError
from maestro_git.mirror import db, registry, tokens
from maestro_git.mirror.scope import Pool
from maestro_git.repo.repository import Repository
from maestro_git.settings import Settings

__all__ = ["TOKEN_CACHE_SECONDS", "KeptAnswer", "ServerState", "kept_slot"]

TOKEN_CACHE_SECONDS = 2.0
KEPT_MAX = 2_000  # kept answers; all dropped when full (each is rebuilt by its next request)


@dataclass(frozen=True)
class KeptAnswer:
    """An encoded 200 answer, valid while `probe()` returns `source` (the cached value it was
    encoded from)."""

    probe: Callable[[], object]
    source: object
    body: bytes
    etag: str


def kept_slot(setting: str, scope: MutableMapping[str, Any]) -> tuple[Any, ...]:
    """Where a kept answer to this ASGI request lives: its owner scope, scheme, Host header,
    path and raw query string (everything a kept answer, its `next` link included, is made
    of)."""
    host = b""
    for name, value in scope["headers"]:
        if name == b"host":
            host = value
            break
    return (setting, scope.get("scheme", "http"), host, scope["path"],
            scope.get("query_string", b""))


@dataclass
class ServerState:
    settings: Settings
    public: bool
    url: str
    client: Client
    pool: Pool
    _repos: dict[str, Repository] = field(default_factory=dict)
    _tokens: dict[str, tuple[float, tuple[str, ...] | None]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # The local Whoosh index reflects the served branch only: other branches search PostgreSQL.
    local_index: bool = True
    _branches: dict[str, ServerState] = field(default_factory=dict)
    kept: dict[tuple[Any, ...], KeptAnswer] = field(default_factory=dict)
    _branch_lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def open(cls, settings: Settings, *, public: bool, pool_size: int = 8) -> ServerState:
        url = db.database_url(settings)
        with db.connect(settings.with_overrides(database_url=url)) as conn:
            db.migrate(conn)  # the mirror of the settings' branch, created when missing
            mirror = db.mirror_of(conn)
        client = Client(url, settings=settings, mirror=mirror)
        return cls(settings=settings, public=public, url=url, client=client,
                   pool=Pool(url, pool_size, mirror))

    @property
    def repo(self) -> Repository:
        """The git repository on the mirrored branch."""
        return self.repo_for(None)

    def repo_for(self, branch: str | None = None) -> Repository:
        """The git repository on `branch` (default: the mirrored one), for past versions,
        other branches and set images."""
        name = branch or self.settings.branch
        with self._lock:
            repo = self._repos.get(name)
            if repo is None:
                if len(self._repos) >= 32:  # branch names come from requests: bound the map
                    self._repos.clear()
                repo = Repository(self.settings.with_overrides(branch=name))
                self._repos[name] = repo
        return repo

    @property
    def served(self) -> str:
        """The branch this server shows unless a request names another."""
        return self.settings.branch

    def mirrored_branches(self) -> list[registry.MirrorRow]:
        """This repository's mirrors in the database, one per branch."""
        with self.pool.connection() as conn:
            return registry.of_repository(conn, self.settings)

    def is_open_branch(self, branch: str) -> bool:
        """True for the served branch and every branch `for_branch` has opened."""
        return branch == self.settings.branch or branch in self._branches

    def for_branch(self, branch: str | None) -> ServerState:
        """The state that reads `branch`'s mirror (this one for None or the served branch).

        Raises UsageError for a name that is no branch name and NotFoundError for a branch
        that is not mirrored."""
        if not branch or branch == self.settings.branch:
            return self
        if len(branch) > 200 or not branch.isprintable() or branch.startswith("-"):
            raise UsageError(f"{branch[:40]!r} is not a branch name")
        with self._branch_lock:
            found = self._branches.get(branch)
            if found is not None:
                return found
            rows = {r.branch: r for r in self.mirrored_branches()}
            row = rows.get(branch)
            if row is None:
                raise NotFoundError(
                    f"branch '{branch}' is not mirrored",
                    hint="mirrored: " + (", ".join(sorted(rows)) or "none") + "; add it to "
                         "[sync] branches in maestro.toml and run `maestro sync`")
            mirror = registry.Mirror(row.schema, row.name, row.branch, row.roots)
            settings = self.settings.with_overrides(branch=branch)
            found = ServerState(
                settings=settings, public=self.public, url=self.url,
                client=Client(self.url, settings=settings, mirror=mirror),
                pool=Pool(self.url, 2, mirror), local_index=False, _repos=self._repos,
                _tokens=self._tokens, _lock=self._lock)
            self._branches[branch] = found
            return found

    def keep(self, slot: tuple[Any, ...], answer: KeptAnswer) -> None:
        if len(self.kept) >= KEPT_MAX:
            self.kept.clear()
        self.kept[slot] = answer

    def cached_token(self, secret: str) -> tuple[bool, tuple[str, ...] | None]:
        """(known, owners) from the token cache; owners None: not a live token."""
        item = self._tokens.get(secret)
        if item is None or item[0] < time.monotonic():
            return False, None
        return True, item[1]

    def lookup_token(self, secret: str) -> tuple[str, ...] | None:
        """The owners of a live token (a query; the answer is cached briefly)."""
        with self.pool.connection() as conn:
            owners = tokens.lookup(conn, secret)
        with self._lock:
            if len(self._tokens) > 10_000:
                self._tokens.clear()
            self._tokens[secret] = (time.monotonic() + TOKEN_CACHE_SECONDS, owners)
        return owners

    def close(self) -> None:
        with self._branch_lock:
            others = list(self._branches.values())
            self._branches.clear()
        for other in others:
            other.client.close()
            other.pool.close()
        self.client.close()
        self.pool.close()
