"""Templates, the audit log, search, and the floor route `ping`.

Rules of this module:
- These reads are not cached: each takes a pooled connection under the request's scope.
- Search runs on the backend asked for (`auto`: the local Whoosh index when usable, else
  PostgreSQL). Whoosh knows no scopes, so its hits pass through PostgreSQL, which keeps only
  the keys the scope may read; PostgreSQL's own search reads under row-level security.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from maestro_git.core.models import SearchHit
from maestro_git.mirror import reads
from maestro_git.mirror.reads import AuditFilters
from maestro_git.server.auth import ConnDep, Scope, ScopeDep, StateDep
from maestro_git.server.http import body_response, encode, etag_for, json_response
from maestro_git.server.state import KeptAnswer, ServerState, kept_slot

__all__ = ["router"]

router = APIRouter(prefix="/api/v1")
PING = b'{"status":"ok","service":"maestro-git"}'


@router.get("/ping", tags=["service"], summary="Liveness (no token needed); the benchmark floor")
async def ping() -> Response:
    return Response(PING, media_type="application/json")


@router.get("/templates", tags=["templates"], summary="Every template")
def list_templates(request: Request, conn: ConnDep,
                   category: Annotated[str | None, Query(max_length=100)] = None) -> Response:
    return json_response(request, {"items": reads.list_templates(conn, category)})


@router.get("/templates/{name}", tags=["templates"], summary="One template")
def get_template(request: Request, name: str, conn: ConnDep) -> Response:
    row = reads.template(conn, name)
    return json_response(request, row, commit=row.commit)


@router.get("/audit", tags=["audit"], summary="The audit log, newest first")
def audit(request: Request, conn: ConnDep,
          key: Annotated[str | None, Query(max_length=201)] = None,
          kind: Annotated[str | None, Query(
              pattern="^(persona|template|persona_set|repository)$")] = None,
          action: Annotated[str | None, Query(
              pattern="^(created|updated|renamed|deleted|rolled_back|history_rewritten)$")
          ] = None,
          since: datetime | None = None,
          limit: Annotated[int, Query(ge=1, le=1000)] = 100,
          offset: Annotated[int, Query(ge=0)] = 0) -> Response:
    rows = reads.audit_log(conn, AuditFilters(key, kind, action, since, limit + 1, offset))
    nxt = str(request.url.include_query_params(offset=offset + limit)) \
        if len(rows) > limit else None
    return json_response(request, {"items": rows[:limit], "limit": limit, "offset": offset,
                                   "next": nxt})


def _search(state: ServerState, scope: Scope, q: str, limit: int,
            backend: Literal["auto", "whoosh", "postgres"]) -> list[SearchHit]:
    if backend == "postgres":  # cached per scope until any mirrored change (NOTIFY)
        return state.client.scoped(scope.setting).search(q, limit, pool=state.pool)
    wide = limit if scope.owners is None else min(4 * limit, 500)
    hits = state.client.search(q, wide, backend)
    with state.pool.scoped(scope.setting) as conn:
        return reads.visible_hits(conn, hits)[:limit]


@router.get("/search", tags=["search"], summary="Search personas, templates, sets, members")
async def search(request: Request, state: StateDep, scope: ScopeDep,
                 q: Annotated[str, Query(min_length=1, max_length=500)],
                 limit: Annotated[int, Query(ge=1, le=100)] = 10,
                 backend: Literal["auto", "whoosh", "postgres"] = "auto") -> Response:
    if backend != "postgres":
        hits = await run_in_threadpool(_search, state, scope, q, limit, backend)
        return json_response(request, {"query": q, "backend": backend, "items": hits})
    reads_ = state.client.scoped(scope.setting)
    kept = reads_.peek_search(q, limit)
    found = kept if kept is not None else await run_in_threadpool(
        _search, state, scope, q, limit, backend)
    body = encode({"query": q, "backend": backend, "items": found})
    etag = etag_for(None, body)
    # Made of one cached search alone: the fast path repeats it while the cache holds it.
    state.keep(kept_slot(scope.setting, request.scope),
               KeptAnswer(functools.partial(reads_.peek_search, q, limit), found, body, etag))
    return body_response(request, body, etag)
