"""Persona routes: list, one persona (mirror, a branch, a past version or commit), its
history, a diff between versions, and recording an application.

Rules of this module:
- A persona at the last mirrored commit comes from the scoped client cache; a hot one costs
  no query and no thread hop (`peek_get`). Past versions and other branches are read from
  git, after PostgreSQL has said that the owner is in the request's scope.
- A persona the scope may not read is a 404 with the same message as a missing one.
"""

from __future__ import annotations

import dataclasses
import functools
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from maestro_git.client import ScopedClient
from maestro_git.core.formats import parse_file
from maestro_git.core.models import Persona, SourceFile
from maestro_git.errors import NotFoundError
from maestro_git.mirror import reads
from maestro_git.mirror.query import PersonaFilters, PersonaRow
from maestro_git.repo.history import resolved_body
from maestro_git.server.auth import ReadsDep, Scope, ScopeDep, StateDep
from maestro_git.server.http import IMMUTABLE, body_response, encode, etag_for, json_response
from maestro_git.server.state import KeptAnswer, ServerState, kept_slot

__all__ = ["persona_json", "read_persona", "router"]

router = APIRouter(prefix="/api/v1/personas", tags=["personas"])

NAME = r"^[a-z0-9_-]{1,100}$"
Owner = Annotated[str, Path(pattern=NAME, description="owner folder")]
Name = Annotated[str, Path(pattern=NAME, description="persona name")]
_ROW_FIELDS = [f.name for f in dataclasses.fields(PersonaRow) if f.name != "resolved_content"]


def persona_json(row: PersonaRow, resolved: bool) -> dict[str, Any]:
    out = {name: getattr(row, name) for name in _ROW_FIELDS}
    if resolved:
        out["content"] = row.resolved_content
    out["resolved"] = resolved
    return out


def _hidden(key: str) -> NotFoundError:
    return NotFoundError(f"no persona '{key}' in the mirror",
                         hint="check the key (owner/name) at /api/v1/personas")


@router.get("", summary="List personas (the filters of `maestro list`)")
async def list_personas(
        request: Request, reads_: ReadsDep, state: StateDep,
        owner: Annotated[str | None, Query(pattern=NAME)] = None,
        tag: Annotated[list[str], Query(description="required tags (repeat)")] = [],  # noqa: B006
        active: bool | None = None,
        parent: Annotated[str | None, Query(description="the `extends` key")] = None,
        text: Annotated[str | None, Query(max_length=200)] = None,
        model: Annotated[str | None, Query(max_length=200, description="the typed `model` "
                                           "(any case)")] = None,
        tool: Annotated[list[str], Query(description="required tools (repeat)")] = [],  # noqa: B006
        updated_since: datetime | None = None,
        sort: Annotated[str, Query(description="key, name, owner, updated, created, "
                                               "applied, last-applied")] = "key",
        desc: bool | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0) -> Response:
    filters = PersonaFilters(tags=tuple(tag), owner=owner, active=active, parent=parent,
                             updated_since=updated_since, text=text or None, model=model,
                             tools=tuple(tool), sort=sort,
                             descending=desc, limit=limit + 1, offset=offset)
    rows = reads_.peek_list(filters)
    if rows is None:
        rows = await run_in_threadpool(reads_.list, filters)
    more = len(rows) > limit
    nxt = str(request.url.include_query_params(offset=offset + limit)) if more else None
    body = encode({"items": rows[:limit], "limit": limit, "offset": offset, "next": nxt})
    etag = etag_for(None, body)
    # The page is made of the cached rows alone: the fast path repeats it to the same request
    # while the client cache holds the same rows (no routing, no query, no encoding).
    state.keep(kept_slot(reads_.owners, request.scope),
               KeptAnswer(functools.partial(reads_.peek_list, filters), rows, body, etag))
    return body_response(request, body, etag)


def _visible(state: ServerState, scope: Scope, owner: str) -> bool:
    with state.pool.scoped(scope.setting) as conn:
        return reads.owner_visible(conn, owner)


def read_persona(state: ServerState, scope: Scope, key: str, *, resolved: bool,
                 branch: str | None, ref: str | None) -> dict[str, Any]:
    """A persona from git: at `branch`'s head, or at a version (semver) or commit `ref`."""
    owner = key.split("/", 1)[0]
    if not _visible(state, scope, owner):
        raise _hidden(key)
    repo = state.repo_for(branch)
    version = repo.version_commit(key, ref or "HEAD")
    if version.content_hash is None:
        raise NotFoundError(f"'{key}' was deleted at {version.commit[:12]}")
    data = repo.git.read_file(version.commit, version.path)
    doc = parse_file(SourceFile(path=version.path, data=data or b""),
                     state.settings.limits).record
    if not isinstance(doc, Persona):
        raise NotFoundError(f"'{key}' at {version.commit[:12]} does not parse",
                            hint="see 'maestro check' at that commit")
    content = resolved_body(repo.git, state.settings, doc, version.commit) if resolved \
        else doc.body
    return {"id": doc.id, "key": key, "owner": doc.owner, "name": doc.name,
            "display_name": doc.display_name, "description": doc.description,
            "version": doc.version, "parent_key": doc.extends, "tags": list(doc.tags),
            "active": doc.active, "metadata": doc.metadata, "content": content,
            "model": doc.model, "tools": list(doc.tools) if doc.tools is not None else None,
            "content_hash": doc.content_hash, "size_bytes": doc.size_bytes,
            "commit": version.commit, "path": version.path,
            "branch": branch or state.settings.branch, "resolved": resolved,
            "source": "git"}


async def get_persona_response(request: Request, state: ServerState, scope: Scope,
                               reads_: ScopedClient, key: str, resolved: bool = False,
                               branch: str | None = None, version: str | None = None,
                               commit: str | None = None) -> Response:
    if branch or version or commit:
        data = await run_in_threadpool(read_persona, state, scope, key, resolved=resolved,
                                       branch=branch, ref=commit or version)
        fixed = IMMUTABLE if commit and len(commit) == 40 else None
        return json_response(request, data, commit=data["commit"], cache=fixed)
    row = reads_.peek_get(key)
    if row is None:
        row = await run_in_threadpool(reads_.get, key)
    return json_response(request, persona_json(row, resolved), commit=row.commit)


@router.get("/{owner}/{name}", summary="One persona")
async def get_persona(
        request: Request, owner: Owner, name: Name, state: StateDep, scope: ScopeDep,
        reads_: ReadsDep,
        resolved: Annotated[bool, Query(description="compose the `extends` chain")] = False,
        branch: Annotated[str | None, Query(max_length=200)] = None,
        version: Annotated[str | None, Query(max_length=100, description="a semver")] = None,
        commit: Annotated[str | None, Query(pattern=r"^[0-9a-f]{4,40}$")] = None) -> Response:
    return await get_persona_response(request, state, scope, reads_, f"{owner}/{name}",
                                      resolved, branch, version, commit)


@router.get("/{owner}/{name}/history", summary="Every mirrored version, newest first")
async def history(request: Request, owner: Owner, name: Name, reads_: ReadsDep,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                  offset: Annotated[int, Query(ge=0)] = 0) -> Response:
    key = f"{owner}/{name}"
    rows = await run_in_threadpool(reads_.history, key)
    page = rows[offset:offset + limit]
    nxt = str(request.url.include_query_params(offset=offset + limit)) \
        if offset + limit < len(rows) else None
    return json_response(request, {"key": key, "total": len(rows), "versions": page,
                                   "limit": limit, "offset": offset, "next": nxt},
                         commit=rows[0].commit if rows else None)


def _diff(state: ServerState, scope: Scope, key: str, a: str | None, b: str | None,
          resolved: bool, branch: str | None) -> dict[str, Any]:
    if not _visible(state, scope, key.split("/", 1)[0]):
        raise _hidden(key)
    d = state.repo_for(branch).diff(key, a, b, resolved=resolved)
    out = {f.name: getattr(d, f.name) for f in dataclasses.fields(d)}
    out["changed"] = d.changed
    return out


@router.get("/{owner}/{name}/diff", summary="What changed between two versions")
async def diff(request: Request, owner: Owner, name: Name, state: StateDep, scope: ScopeDep,
               from_: Annotated[str | None, Query(alias="from", max_length=100,
                                                  description="version or commit")] = None,
               to: Annotated[str | None, Query(max_length=100)] = None,
               resolved: bool = False,
               branch: Annotated[str | None, Query(max_length=200)] = None) -> Response:
    data = await run_in_threadpool(_diff, state, scope, f"{owner}/{name}", from_, to,
                                   resolved, branch)
    return json_response(request, data, commit=data["rev_b"])


@router.post("/{owner}/{name}/applications", status_code=201,
             summary="Record one application (application_count, last_applied_at)")
async def apply(request: Request, owner: Owner, name: Name, reads_: ReadsDep) -> Response:
    row = await run_in_threadpool(reads_.record_application, f"{owner}/{name}")
    return json_response(request, row, status=201)
