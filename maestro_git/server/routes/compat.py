"""The persona-set service's endpoints, at their old paths and in their response shapes, so
its clients switch by changing the base URL.

- `GET /api/v1/personas/sets`: every set with its personas, as the service's two tables
  (`persona_sets` columns, each with a `personas` array of `personas` columns). The service's
  integer ids do not exist in git: a set's `id` is its key (`fintech_early_adopters`), a
  member's `id` its 1-based position and `persona_set_id` its set's key. A member's
  `image_url` is its URL under `/static/images/personas/<set>/<file>` when the image is in git.
- `GET /api/v1/personas/{persona_set_id}/download`: the set's JSON file as committed (the
  exact bytes at the mirrored commit), as an attachment `<id>.json`.
- `GET /api/v1/personas/available-persona-sets`: the set files the mirror knows:
  `{"available_sets": [{"name", "title", "persona_count", "status"}], "count"}`.
- `GET /static/images/personas/{set}/{file}`: a member's image, as `/api/v1/sets/.../images/`.
- `GET /static/{path}`: an image a member names by that URL path (`image_url:
  /static/images/personas/persona_3.png`, the service's own form), read from git under
  `[sets] static_dir` (maestro.toml); served only when a set the request may read has a
  member with exactly that `image_url`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from maestro_git.errors import NotFoundError
from maestro_git.mirror import reads
from maestro_git.mirror.query import MemberRow, SetDetail
from maestro_git.server.auth import ReadsDep, Scope, ScopeDep, StateDep
from maestro_git.server.http import etag_for, json_response, not_modified
from maestro_git.server.routes.personas import get_persona_response
from maestro_git.server.routes.sets import (
    IMAGE_FILE,
    SET_KEY,
    bytes_response,
    image_response,
    member_image,
)
from maestro_git.server.state import ServerState

__all__ = ["router"]

router = APIRouter(tags=["persona-set service (compatible)"])
STATIC = "/static/images/personas"


def _image_url(set_key: str, image_url: str | None) -> str | None:
    if image_url and image_url.startswith("images/") and "/" not in image_url[7:]:
        return f"{STATIC}/{set_key}/{image_url[7:]}"
    return image_url


def _member(set_key: str, m: MemberRow, created: Any, updated: Any) -> dict[str, Any]:
    return {"id": m.position + 1, "persona_set_id": set_key, "name": m.name,
            "persona_data": m.persona_data, "image_url": _image_url(set_key, m.image_url),
            "image_prompt": m.image_prompt, "similarity_score": m.similarity_score,
            "validation_status": m.validation_status, "created_at": created,
            "updated_at": updated}


def _set(detail: SetDetail, created: Any) -> dict[str, Any]:
    s = detail.set
    return {"id": s.key, "name": s.name, "description": s.description,
            "rqe_scores": s.rqe_scores, "diversity_score": s.diversity_score,
            "validation_scores": s.validation_scores, "generation_cycle": s.generation_cycle,
            "status": s.status, "created_at": created, "updated_at": s.updated_at,
            "personas": [_member(s.key, m, created, s.updated_at) for m in detail.members]}


def _all_sets(state: ServerState, scope: Scope) -> list[dict[str, Any]]:
    scoped = state.client.scoped(scope.setting)
    out = []
    for row in scoped.sets():
        detail = scoped.set(row.key)
        out.append(_set(detail, row.updated_at))
    return out


@router.get("/api/v1/personas/sets", summary="Every persona set with its personas")
async def sets(request: Request, state: StateDep, scope: ScopeDep) -> Response:
    data = await run_in_threadpool(_all_sets, state, scope)
    return json_response(request, data)


@router.get("/api/v1/personas/available-persona-sets", summary="The persona-set files")
async def available(request: Request, reads_: ReadsDep) -> Response:
    rows = await run_in_threadpool(reads_.sets)
    items = [{"name": r.key, "title": r.name, "persona_count": r.member_count,
              "status": r.status} for r in rows]
    return json_response(request, {"available_sets": items, "count": len(items)})


def _download(state: ServerState, scope: Scope, key: str) -> tuple[bytes, str]:
    with state.pool.scoped(scope.setting) as conn:
        source = reads.set_source(conn, key)
    data = state.repo_for(None).git.read_file(source.commit, source.path)
    if data is None:
        raise NotFoundError(f"persona set '{key}' is not in git at {source.commit[:12]}")
    return data, source.commit


@router.get("/api/v1/personas/{persona_set_id}/download",
            summary="A persona set's JSON file (or the persona `<owner>/download`)")
async def download(request: Request, persona_set_id: Annotated[str, Path(pattern=SET_KEY)],
                   state: StateDep, scope: ScopeDep, reads_: ReadsDep) -> Response:
    try:
        data, commit = await run_in_threadpool(_download, state, scope, persona_set_id)
    except NotFoundError:
        try:  # no such set: perhaps a persona named `download`
            return await get_persona_response(request, state, scope, reads_,
                                              f"{persona_set_id}/download")
        except NotFoundError:
            pass
        raise NotFoundError(f"no persona set '{persona_set_id}' in the mirror",
                            hint="list them at /api/v1/personas/available-persona-sets"
                            ) from None
    etag = etag_for(commit, data)
    headers = {"ETag": etag, "Cache-Control": "private, no-cache",
               "Content-Disposition": f'attachment; filename="{persona_set_id}.json"'}
    if not_modified(request, etag):
        return Response(status_code=304, headers=headers)
    return Response(data, media_type="application/json", headers=headers)


@router.get(STATIC + "/{set_key}/{file}", summary="A member's image (the service's path)",
            response_class=Response)
async def static_image(request: Request, set_key: Annotated[str, Path(pattern=SET_KEY)],
                       file: Annotated[str, Path(pattern=IMAGE_FILE)],
                       state: StateDep, scope: ScopeDep) -> Response:
    return await image_response(request, state, scope, set_key, file)


@router.get("/static/{path:path}", summary="A member image named by its URL path",
            response_class=Response)
async def static_path(request: Request, path: str, state: StateDep,
                      scope: ScopeDep) -> Response:
    if state.settings.sets_static is None or len(path) > 500:
        raise NotFoundError(f"no file '/static/{path[:100]}'",
                            hint="set images are served when maestro.toml has [sets] "
                                 "static_dir")
    data, kind, commit = await run_in_threadpool(member_image, state, scope,
                                                 image_url="/static/" + path)
    return bytes_response(request, data, kind, commit)
