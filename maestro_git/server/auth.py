"""The authentication boundary of the HTTP API: who asks, which owners they may read.

Contract (the API routes and the web interface both build on it):

- `request_scope(request) -> Scope` is a FastAPI dependency (`ScopeDep`). It reads the
  token from `Authorization: Bearer <token>` (or the `maestro_token` cookie, for pages) and
  answers 401 (problem+json, `WWW-Authenticate: Bearer`) when it is missing, unknown,
  revoked or expired, unless the server runs with `--public`: then a request without a
  token reads every owner, and a request with a valid token still reads only its owners.
- `Scope.owners` is the owner folders the request may read (None: every owner);
  `Scope.setting` is the value PostgreSQL sees in `maestro.owners`.
- `scoped_reads(request, scope) -> ScopedClient` (`ReadsDep`): the cached reads
  (`get`, `list`, `history`, `sets`, `set`, `record_application`) under the scope.
- `scoped_connection(request, scope)` (`ConnDep`): a pooled psycopg connection inside a
  transaction that reads as the role `maestro_reader` with `maestro.owners` set, so every
  query through it is filtered by row-level security (`maestro_git.mirror.scope`). The
  transaction ends with the request.
- `scope.allows(owner)` is for filtering what does not come from a row (event-stream
  payloads); rows are filtered by PostgreSQL, never by this.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from maestro_git.client import ScopedClient
from maestro_git.errors import MaestroError
from maestro_git.mirror.db import Connection
from maestro_git.mirror.scope import owners_setting
from maestro_git.server.state import ServerState

__all__ = [
    "ConnDep",
    "ReadsDep",
    "Scope",
    "ScopeDep",
    "StateDep",
    "Unauthorized",
    "request_scope",
    "scoped_connection",
    "scoped_reads",
    "state_of",
]

COOKIE = "maestro_token"


class Unauthorized(MaestroError):
    """No valid token (HTTP 401)."""


@dataclass(frozen=True)
class Scope:
    """The owners one request may read; `owners` None means every owner."""

    owners: frozenset[str] | None

    @property
    def setting(self) -> str:
        return owners_setting(self.owners)

    def allows(self, owner: str) -> bool:
        return self.owners is None or owner in self.owners


EVERY_OWNER = Scope(None)


def state_of(request: Request) -> ServerState:
    """The process's `ServerState` (set up by the app's lifespan)."""
    state: ServerState = request.app.state.maestro
    return state


async def _state(request: Request) -> ServerState:  # async: no thread hop for a lookup
    return state_of(request)


StateDep = Annotated[ServerState, Depends(_state)]


def _secret(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header:
        kind, _, value = header.partition(" ")
        if kind.lower() == "bearer" and value.strip():
            return value.strip()
        raise Unauthorized("the Authorization header must be 'Bearer <token>'",
                           hint="create a token with 'maestro token create --owner OWNER'")
    return request.cookies.get(COOKIE) or None


async def request_scope(request: Request) -> Scope:
    """The request's scope (see the module docstring); raises `Unauthorized`."""
    state = state_of(request)
    secret = _secret(request)
    if secret is None:
        if state.public:
            return EVERY_OWNER
        raise Unauthorized("a token is required",
                           hint="send 'Authorization: Bearer <token>' "
                                "(maestro token create --owner OWNER)")
    known, owners = state.cached_token(secret)
    if not known:
        owners = await run_in_threadpool(state.lookup_token, secret)
    if owners is None:
        raise Unauthorized("the token is unknown, revoked or expired",
                           hint="create a new one with 'maestro token create --owner OWNER'")
    return Scope(frozenset(owners))


ScopeDep = Annotated[Scope, Depends(request_scope)]


async def scoped_reads(request: Request, scope: ScopeDep) -> ScopedClient:
    """Cached reads under the request's scope."""
    return state_of(request).client.scoped(scope.setting)


ReadsDep = Annotated[ScopedClient, Depends(scoped_reads)]


def scoped_connection(request: Request, scope: ScopeDep) -> Iterator[Connection]:
    """A pooled connection in a transaction under row-level security for the scope."""
    with state_of(request).pool.scoped(scope.setting) as conn:
        yield conn


ConnDep = Annotated[Connection, Depends(scoped_connection)]
