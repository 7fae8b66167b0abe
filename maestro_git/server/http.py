"""JSON bodies, ETags and conditional requests for the API routes.

Rules of this module:
- Bodies are serialised once, here (`json_response`): dataclass rows become objects,
  datetimes ISO 8601 strings, UUIDs strings. Routes return these responses directly, so no
  second validation pass runs on the hot path.
- An ETag is `"<commit[:12]>-<sha256(body)[:16]>"`: the mirrored commit the answer reflects
  and the hash of the exact bytes sent, so any change of content (usage counters included)
  changes it. `If-None-Match` matching it (or `*`) answers 304 with no body.
- Cache-Control: answers that can change are `no-cache` (stored, revalidated each time:
  cheap with a 304), `private` with `Vary: Authorization, Cookie` when a token scoped them,
  `public` under `--public`; answers at a fixed commit are `immutable` for a year.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import uuid
from datetime import date, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

__all__ = ["IMMUTABLE", "body_response", "cache_control", "cache_control_value", "encode",
           "etag_for", "json_response", "not_modified"]

IMMUTABLE = "max-age=31536000, immutable"


def _default(obj: Any) -> Any:
    if isinstance(obj, datetime | date):
        return obj.isoformat()
    if isinstance(obj, uuid.UUID):
        return str(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple | set | frozenset):
        return list(obj)
    raise TypeError(f"cannot encode {type(obj).__name__}")


def encode(data: Any) -> bytes:
    return json.dumps(data, default=_default, ensure_ascii=False,
                      separators=(",", ":")).encode("utf-8")


def etag_for(commit: str | None, body: bytes) -> str:
    return f'"{(commit or "none")[:12]}-{hashlib.sha256(body).hexdigest()[:16]}"'


def not_modified(request: Request, etag: str) -> bool:
    header = request.headers.get("if-none-match")
    if not header:
        return False
    for tag in header.split(","):
        tag = tag.strip()
        if tag == "*" or tag.removeprefix("W/") == etag:
            return True
    return False


def json_response(request: Request, data: Any, *, commit: str | None = None,
                  status: int = 200, cache: str | None = None,
                  media_type: str = "application/json") -> Response:
    """`data` as JSON with ETag and Cache-Control; a 304 when `If-None-Match` matches."""
    body = encode(data)
    if status != 200:
        return Response(body, status_code=status, media_type=media_type,
                        headers={"Cache-Control": "no-store"})
    return body_response(request, body, etag_for(commit, body), cache=cache,
                         media_type=media_type)


def body_response(request: Request, body: bytes, etag: str, *, cache: str | None = None,
                  media_type: str = "application/json") -> Response:
    """A 200 of an encoded `body` with its `etag` (as `json_response` makes them, e.g. kept
    from an earlier answer), or a 304 when `If-None-Match` matches."""
    headers = {"ETag": etag, "Cache-Control": cache_control(request, cache)}
    if "authorization" in request.headers or "cookie" in request.headers:
        headers["Vary"] = "Authorization, Cookie"
    if not_modified(request, etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


def cache_control_value(public: bool, fixed: str | None = None) -> str:
    return f"{'public' if public else 'private'}, {fixed or 'no-cache'}"


def cache_control(request: Request, fixed: str | None = None) -> str:
    state = getattr(request.app.state, "maestro", None)
    public = state is not None and state.public and "authorization" not in request.headers
    return cache_control_value(public, fixed)
