"""Persona-set routes: the sets, one set with its members and scores, and member images.

Rules of this module:
- Sets and members come from the scoped client cache (row-level security: a set with a
  `metadata.owner` outside the scope does not exist for the request).
- Image bytes come from git at the set's mirrored commit, from the `images/` folder beside
  a `persona_sets/<set>/set.json`, with the content type of their extension; only image
  types are served, and SVG with a Content-Security-Policy that runs nothing.
"""

from __future__ import annotations

import hashlib
import mimetypes
import posixpath
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from maestro_git.errors import NotFoundError
from maestro_git.mirror import reads
from maestro_git.mirror.query import MemberRow, SetDetail
from maestro_git.server.auth import ReadsDep, Scope, ScopeDep, StateDep
from maestro_git.server.http import cache_control, json_response, not_modified
from maestro_git.server.state import ServerState

__all__ = ["image_response", "member_json", "router"]

router = APIRouter(prefix="/api/v1/sets", tags=["persona sets"])

SET_KEY = r"^[a-z0-9_-]{1,100}$"
SetKey = Annotated[str, Path(pattern=SET_KEY, description="the set key (its file name)")]
IMAGE_FILE = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$"
IMAGE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp", "image/svg+xml",
               "image/avif"}


def image_path(set_key: str, image_url: str | None) -> str | None:
    """The API path of a member's image (None when it has none or it is not in git)."""
    if not image_url:
        return None
    if image_url.startswith("images/") and "/" not in image_url[7:]:
        return f"/api/v1/sets/{set_key}/images/{image_url[7:]}"
    return None


def member_json(m: MemberRow) -> dict[str, Any]:
    return {"position": m.position, "name": m.name, "persona_data": m.persona_data,
            "image_url": m.image_url, "image": image_path(m.set_key, m.image_url),
            "image_prompt": m.image_prompt, "similarity_score": m.similarity_score,
            "validation_status": m.validation_status}


def set_json(detail: SetDetail) -> dict[str, Any]:
    out: dict[str, Any] = {f: getattr(detail.set, f) for f in detail.set.__dataclass_fields__}
    out["members"] = [member_json(m) for m in detail.members]
    return out


@router.get("", summary="Every persona set")
async def list_sets(request: Request, reads_: ReadsDep,
                    status: Annotated[str | None, Query(
                        pattern="^(generated|expanded|validated)$")] = None) -> Response:
    rows = await run_in_threadpool(reads_.sets, status)
    return json_response(request, {"items": rows})


@router.get("/{key}", summary="One persona set with its members and scores")
async def get_set(request: Request, key: SetKey, reads_: ReadsDep) -> Response:
    detail = await run_in_threadpool(reads_.set, key)
    return json_response(request, set_json(detail), commit=detail.set.commit)


def _image(state: ServerState, scope: Scope, key: str, file: str) -> tuple[bytes, str, str]:
    with state.pool.scoped(scope.setting) as conn:
        source = reads.set_source(conn, key)
    missing = NotFoundError(f"no image '{file}' in persona set '{key}'")
    if not source.path.endswith("/set.json"):
        raise missing
    path = posixpath.join(posixpath.dirname(source.path), "images", file)
    kind = mimetypes.guess_type(file)[0]
    if kind not in IMAGE_TYPES:
        raise missing
    data = state.repo_for(None).git.read_file(source.commit, path)
    if data is None:
        raise missing
    return data, kind or "application/octet-stream", source.commit


async def image_response(request: Request, state: ServerState, scope: Scope, key: str,
                         file: str) -> Response:
    data, kind, commit = await run_in_threadpool(_image, state, scope, key, file)
    etag = f'"{commit[:12]}-{hashlib.sha256(data).hexdigest()[:16]}"'
    headers = {"ETag": etag, "Cache-Control": cache_control(request),
               "X-Content-Type-Options": "nosniff"}
    if kind == "image/svg+xml":
        headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    if not_modified(request, etag):
        return Response(status_code=304, headers=headers)
    return Response(data, media_type=kind, headers=headers)


@router.get("/{key}/images/{file}", summary="A member's image, from git",
            response_class=Response)
async def image(request: Request, key: SetKey,
                file: Annotated[str, Path(pattern=IMAGE_FILE)],
                state: StateDep, scope: ScopeDep) -> Response:
    return await image_response(request, state, scope, key, file)
