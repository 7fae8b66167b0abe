"""Persona-set routes: the sets, one set with its members and scores, and member images.

Rules of this module:
- Sets and members come from the scoped client cache (row-level security: a set with a
  `metadata.owner` outside the scope does not exist for the request).
- Image bytes come from git at the set's mirrored commit, with the content type of their
  extension; only image types are served, and SVG with a Content-Security-Policy that runs
  nothing. A member's image is where its `image_url` points (`core.rules.sets.image_target`:
  relative to the set's file, or under `[sets] static_dir` for a `static_url` path); the
  `images/<file>` route reads the `images/` folder beside a `persona_sets/<set>/set.json`.
"""

from __future__ import annotations

import hashlib
import mimetypes
import posixpath
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from maestro_git.core.rules.sets import image_target
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


def image_path(m: MemberRow) -> str | None:
    """The API path of a member's image (None when it has none, or it is a web URL)."""
    if not m.image_url or m.image_url.startswith(("http:", "https:", "//")):
        return None
    return f"/api/v1/sets/{m.set_key}/members/{m.position}/image"


def member_json(m: MemberRow) -> dict[str, Any]:
    return {"position": m.position, "name": m.name, "persona_data": m.persona_data,
            "image_url": m.image_url, "image": image_path(m),
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


def member_image(state: ServerState, scope: Scope, *, set_key: str | None = None,
                 position: int | None = None, image_url: str | None = None
                 ) -> tuple[bytes, str, str]:
    """A member's image bytes, by (set, position) or by its `image_url`."""
    with state.pool.scoped(scope.setting) as conn:
        source = reads.image_source(conn, set_key=set_key, position=position,
                                    image_url=image_url)
    missing = NotFoundError(f"no image '{source.image_url}' in git for set '{source.set_key}'")
    target, _reason = image_target(source.set_path, source.image_url,
                                   state.settings.sets_static)
    kind = mimetypes.guess_type(target or "")[0]
    if target is None or kind not in IMAGE_TYPES:
        raise missing
    data = state.repo_for(None).git.read_file(source.commit, target)
    if data is None:
        raise missing
    return data, kind or "application/octet-stream", source.commit


async def image_response(request: Request, state: ServerState, scope: Scope, key: str,
                         file: str) -> Response:
    data, kind, commit = await run_in_threadpool(_image, state, scope, key, file)
    return bytes_response(request, data, kind, commit)


def bytes_response(request: Request, data: bytes, kind: str, commit: str) -> Response:
    etag = f'"{commit[:12]}-{hashlib.sha256(data).hexdigest()[:16]}"'
    headers = {"ETag": etag, "Cache-Control": cache_control(request),
               "X-Content-Type-Options": "nosniff"}
    if kind == "image/svg+xml":
        headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    if not_modified(request, etag):
        return Response(status_code=304, headers=headers)
    return Response(data, media_type=kind, headers=headers)


@router.get("/{key}/members/{position}/image", summary="A member's image, from git",
            response_class=Response)
async def member_image_route(request: Request, key: SetKey,
                             position: Annotated[int, Path(ge=0, le=100_000)],
                             state: StateDep, scope: ScopeDep) -> Response:
    data, kind, commit = await run_in_threadpool(member_image, state, scope, set_key=key,
                                                 position=position)
    return bytes_response(request, data, kind, commit)


@router.get("/{key}/images/{file}", summary="A member's image, from git",
            response_class=Response)
async def image(request: Request, key: SetKey,
                file: Annotated[str, Path(pattern=IMAGE_FILE)],
                state: StateDep, scope: ScopeDep) -> Response:
    return await image_response(request, state, scope, key, file)
