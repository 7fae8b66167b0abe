"""Errors as problem details (RFC 9457, `application/problem+json`) with one-line messages.

Rules of this module:
- Every error a route raises on purpose is a `MaestroError`; `STATUS` maps its kind to the
  HTTP status. Request validation errors (bad query or path parameters) are 400s naming the
  parameter. No input can produce a 500: a 500 is a bug, answered with a generic detail
  and logged with its traceback.
- The body: `type` (`about:blank`), `title` (the status phrase), `status`, `detail` (the
  one-line reason), `instance` (the path), and `hint` (an extension member) when there is one.
"""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from maestro_git.errors import (
    ConfigError,
    DatabaseError,
    MaestroError,
    NotFoundError,
    SearchError,
    UsageError,
    ValidationFailed,
)

__all__ = ["MEDIA_TYPE", "STATUS", "install", "problem"]

log = logging.getLogger("maestro_git.server")

MEDIA_TYPE = "application/problem+json"

STATUS: tuple[tuple[type[MaestroError], int], ...] = (
    (NotFoundError, 404),
    (UsageError, 400),
    (SearchError, 400),
    (ValidationFailed, 422),
    (ConfigError, 500),
    (DatabaseError, 503),
)


def problem(status: int, detail: str, instance: str, hint: str | None = None,
            headers: dict[str, str] | None = None) -> Response:
    body: dict[str, Any] = {"type": "about:blank", "title": HTTPStatus(status).phrase,
                            "status": status, "detail": " ".join(detail.split()),
                            "instance": instance}
    if hint:
        body["hint"] = hint
    return Response(json.dumps(body, ensure_ascii=False), status_code=status,
                    media_type=MEDIA_TYPE, headers=headers)


def status_of(err: MaestroError) -> int:
    from maestro_git.server.auth import Unauthorized

    if isinstance(err, Unauthorized):
        return 401
    for kind, status in STATUS:
        if isinstance(err, kind):
            return status
    return 400


def _param(loc: tuple[Any, ...]) -> str:
    where = {"query": "query parameter", "path": "path parameter", "header": "header",
             "body": "body", "cookie": "cookie"}.get(str(loc[0]), str(loc[0])) if loc else ""
    name = ".".join(str(p) for p in loc[1:])
    return f"{where} '{name}'" if name else where


def install(app: FastAPI) -> None:
    """Register the problem+json handlers on `app`."""

    async def maestro_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, MaestroError)
        status = status_of(exc)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return problem(status, exc.message, request.url.path, exc.hint, headers)

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {}
        detail = f"{_param(tuple(first.get('loc', ())))}: {first.get('msg', 'invalid')}"
        return problem(400, detail, request.url.path)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        return problem(exc.status_code, detail, request.url.path,
                       headers=dict(exc.headers) if exc.headers else None)

    async def bug(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s", request.url.path, exc_info=exc)
        return problem(500, "internal error (a bug: see the server log)", request.url.path)

    app.add_exception_handler(MaestroError, maestro_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, bug)
