"""The hot path of the pages: a kept persona or set page answered before routing.

Rules of this module:
- `WebFastPath` is ASGI middleware in front of the app (added by `web.mount`). It answers
  only `GET /personas/<owner>/<name>` and `GET /sets/<set>` without a query, and only when
  everything is in memory: the login cookie's token in the server's token cache (or no token
  under `--public`), the browser's CSRF cookie, every record of the page in the scope's
  NOTIFY-coherent client cache (`peek_*`), and the page kept rendered from exactly those
  records (`pages.kept_html`). Anything else, and every miss, goes to the routes unchanged,
  which render the same bytes (and keep them for the next request).
- An `Authorization` header goes to the routes: pages are for browsers.
- So a hot page costs no query, no thread hop, no dependency resolution and no template.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.requests import cookie_parser

from maestro_git.mirror.scope import ALL_OWNERS, owners_setting
from maestro_git.server.auth import COOKIE
from maestro_git.server.web import pages
from maestro_git.server.web.session import CSRF_COOKIE

__all__ = ["WebFastPath"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_PERSONA = re.compile(r"^/personas/([a-z0-9_-]{1,100})/([a-z0-9_-]{1,100})$")
_SET = re.compile(r"^/sets/([A-Za-z0-9_.-]{1,200})$")
_HEADERS = [(b"content-type", b"text/html; charset=utf-8")] + [
    (k.lower().encode(), v.encode()) for k, v in pages.SECURITY_HEADERS.items()]


class WebFastPath:
    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" \
                and not scope.get("query_string") and await self._page(scope, send):
            return
        await self.app(scope, receive, send)

    async def _page(self, scope: Scope, send: Send) -> bool:
        path: str = scope["path"]
        persona = _PERSONA.match(path) if path.startswith("/personas/") else None
        set_match = _SET.match(path) if persona is None and path.startswith("/sets/") else None
        if persona is None and set_match is None:
            return False
        state = getattr(scope["app"].state, "maestro", None)
        if state is None:
            return False
        cookies = _cookies(scope)
        csrf = cookies.get(CSRF_COOKIE) if cookies is not None else None
        if csrf is None or not 20 <= len(csrf) <= 100 or not csrf.isascii():
            return False  # an Authorization header, or a first visit: the routes decide
        assert cookies is not None
        token = cookies.get(COOKIE)
        if token:
            known, owners = state.cached_token(token)
            if not known or owners is None:
                return False
            setting = owners_setting(owners)
        elif state.public:
            setting = ALL_OWNERS
        else:
            return False
        if persona is not None:
            name = "persona.html"
            inputs = pages.persona_inputs(state.client.scoped(setting),
                                          f"{persona.group(1)}/{persona.group(2)}")
        else:
            assert set_match is not None
            name = "set.html"
            inputs = pages.set_inputs(state, setting, set_match.group(1))
        if inputs is None or any(i is None for i in inputs):
            return False
        parts = pages.kept_html(name, setting, pages.page_address(path, ""), tuple(inputs))
        if parts is None:
            return False
        body = pages.fill_csrf(parts, csrf)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [*_HEADERS, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
        return True


def _cookies(scope: Scope) -> dict[str, str] | None:
    """The request's cookies; None when it carries an Authorization header."""
    raw = ""
    for name, value in scope["headers"]:
        if name == b"authorization":
            return None
        if name == b"cookie":
            raw = value.decode("latin-1")
    return cookie_parser(raw)  # as `Request.cookies` reads them
