"""The hot path: answer a cached persona GET (and the `ping` floor) before routing.

Rules of this module:
- `FastPath` is ASGI middleware in front of the FastAPI app. It answers only
  `GET /api/v1/ping` and `GET /api/v1/personas/<owner>/<name>` (no query, or only
  `resolved=`) and only when everything it needs is in memory: the token in the token cache
  (or no token under `--public`) and the persona in the scope's NOTIFY-coherent client cache.
  Anything else, and every miss, goes to the routes unchanged, which answer the same bytes
  and headers (they share `routes.personas.persona_json`, `http.encode`, `http.etag_for`).
- So a hot persona costs no query, no thread hop and no dependency resolution; the rows it
  answers with were read under row-level security for the same scope.
- Encoded bodies are kept per (scope, key, resolved) while the cached row is the same object.
- Kept answers (`ServerState.kept`): a route whose answer is made from one client-cache entry
  alone (a list page) leaves its encoded body there with a probe that peeks that entry; the
  same request (scope, scheme, host, path and query) is answered here while the probe returns
  the same object, so a hot list page skips routing and validation too.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from maestro_git.mirror.scope import ALL_OWNERS, owners_setting
from maestro_git.server.http import cache_control_value, encode, etag_for
from maestro_git.server.routes.catalog import PING
from maestro_git.server.routes.personas import persona_json
from maestro_git.server.state import kept_slot

__all__ = ["FastPath"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_PERSONA = re.compile(r"^/api/v1/personas/([a-z0-9_-]{1,100})/([a-z0-9_-]{1,100})$")
_QUERIES = {b"": False, b"resolved=false": False, b"resolved=true": True,
            b"resolved=0": False, b"resolved=1": True}
_JSON = (b"content-type", b"application/json")
_BODIES_MAX = 10_000


class FastPath:
    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app
        self._bodies: dict[tuple[str, str, bool], tuple[object, bytes, str]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            path = scope["path"]
            if path == "/api/v1/ping":
                await _answer(send, 200, [_JSON], PING)
                return
            if path.startswith("/api/v1/personas/") and await self._persona(scope, send):
                return
            if await self._kept(scope, send):
                return
        await self.app(scope, receive, send)

    async def _kept(self, scope: Scope, send: Send) -> bool:
        state = getattr(scope["app"].state, "maestro", None)
        if state is None or not state.kept:
            return False
        caller = _caller(scope, state)
        if caller is None:
            return False
        setting, auth, etag_wanted = caller
        answer = state.kept.get(kept_slot(setting, scope))
        if answer is None or answer.probe() is not answer.source:
            return False
        await _send_kept(send, state, auth, etag_wanted, answer.body, answer.etag)
        return True

    async def _persona(self, scope: Scope, send: Send) -> bool:
        match = _PERSONA.match(scope["path"])
        resolved = _QUERIES.get(scope.get("query_string", b""))
        if match is None or resolved is None:
            return False
        state = getattr(scope["app"].state, "maestro", None)
        if state is None:
            return False
        caller = _caller(scope, state)
        if caller is None:
            return False
        setting, auth, etag_wanted = caller
        key = f"{match.group(1)}/{match.group(2)}"
        row = state.client.scoped(setting).peek_get(key)
        if row is None:
            return False
        body, etag = self._body(setting, key, resolved, row)
        await _send_kept(send, state, auth, etag_wanted, body, etag)
        return True

    def _body(self, setting: str, key: str, resolved: bool, row: Any) -> tuple[bytes, str]:
        slot = (setting, key, resolved)
        kept = self._bodies.get(slot)
        if kept is not None and kept[0] is row:
            return kept[1], kept[2]
        body = encode(persona_json(row, resolved))
        etag = etag_for(row.commit, body)
        if len(self._bodies) >= _BODIES_MAX:
            self._bodies.clear()
        self._bodies[slot] = (row, body, etag)
        return body, etag


def _caller(scope: Scope, state: Any) -> tuple[str, str | None, str | None] | None:
    """(owner scope setting, Authorization header, If-None-Match) of a request this module
    may answer: a cached live bearer token, or no token under `--public`; None otherwise (a
    cookie, no token, an unknown token: the routes decide and explain)."""
    auth = cookie = etag_wanted = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            auth = value.decode("latin-1")
        elif name == b"cookie":
            cookie = value.decode("latin-1")
        elif name == b"if-none-match":
            etag_wanted = value.decode("latin-1")
    if auth is not None:
        kind, _, secret = auth.partition(" ")
        if kind.lower() != "bearer" or not secret.strip():
            return None
        known, owners = state.cached_token(secret.strip())
        if not known or owners is None:
            return None
        return owners_setting(owners), auth, etag_wanted
    if cookie is not None or not state.public:
        return None
    return ALL_OWNERS, None, etag_wanted


async def _send_kept(send: Send, state: Any, auth: str | None, etag_wanted: str | None,
                     body: bytes, etag: str) -> None:
    """A 200 of `body` (or a 304) with the headers `http.body_response` gives it."""
    headers = [(b"etag", etag.encode()),
               (b"cache-control", cache_control_value(state.public and auth is None).encode())]
    if auth is not None:
        headers.append((b"vary", b"Authorization, Cookie"))
    if etag_wanted is not None and _matches(etag_wanted, etag):
        await _answer(send, 304, headers, b"")
    else:
        await _answer(send, 200, [_JSON, *headers], body)


def _matches(header: str, etag: str) -> bool:
    return any(t.strip() == "*" or t.strip().removeprefix("W/") == etag
               for t in header.split(","))


async def _answer(send: Send, status: int, headers: list[tuple[bytes, bytes]],
                  body: bytes) -> None:
    if status != 304:
        headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
