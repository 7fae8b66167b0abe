"""Who is looking: the login form's token cookie, the page scope, and CSRF protection.

Rules of this module:
- The token a person types into the login form is checked (`ServerState.lookup_token`) and
  kept in the cookie `auth.COOKIE` (`maestro_token`): `Secure`, `HttpOnly`, `SameSite=Lax`,
  path `/`. From then on `auth.request_scope` reads it like a bearer token, so a page sees
  exactly what the same token sees through the API (row-level security in PostgreSQL).
- A page asked for without a valid token redirects to `/login?next=<the page>` (unless the
  server is public); `next` is kept only when it is a path on this site.
- Every form that posts (log in, log out) carries a CSRF token: a random value kept in the
  cookie `CSRF_COOKIE` (`HttpOnly`, `SameSite=Strict`) and repeated in a hidden field; a
  post whose field does not match its cookie, or whose `Origin` is another site, is refused
  with 403 before anything else is read.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import quote, urlsplit

from fastapi import Request
from starlette.responses import Response

from maestro_git.server import auth
from maestro_git.server.auth import Scope, Unauthorized

__all__ = [
    "CSRF_COOKIE",
    "CSRF_FIELD",
    "CsrfRejected",
    "LoginRequired",
    "clear_login",
    "csrf_token",
    "check_csrf",
    "login_url",
    "page_scope",
    "remember_login",
    "safe_next",
    "set_csrf_cookie",
]

CSRF_COOKIE = "maestro_csrf"
CSRF_FIELD = "csrf"
TOKEN_MAX_AGE = 12 * 3600  # the login cookie lasts a working day


class LoginRequired(Exception):
    """Raised by `page_scope`: the page needs a token; the handler redirects to log in."""

    def __init__(self, next_path: str, reason: str) -> None:
        super().__init__(reason)
        self.next_path = next_path
        self.reason = reason


class CsrfRejected(Exception):
    """A post without a matching CSRF token, or from another origin (HTTP 403)."""


def _here(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


async def page_scope(request: Request) -> Scope:
    """The scope of a page request; raises `LoginRequired` instead of answering 401."""
    try:
        return await auth.request_scope(request)
    except Unauthorized as err:
        raise LoginRequired(_here(request), err.message) from None


def login_url(next_path: str) -> str:
    return "/login?next=" + quote(safe_next(next_path), safe="/")


def safe_next(value: str | None) -> str:
    """A redirect target on this site: a path, never another host (`//evil`, `http:`)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    return value


def csrf_token(request: Request) -> str:
    """The CSRF token of this browser (from its cookie, or a new one to set)."""
    value = request.cookies.get(CSRF_COOKIE)
    if value and 20 <= len(value) <= 100 and value.isascii():
        return value
    cached: str | None = getattr(request.state, "new_csrf", None)
    if cached is None:
        cached = secrets.token_urlsafe(32)
        request.state.new_csrf = cached
    return cached


def set_csrf_cookie(request: Request, response: Response) -> None:
    """Sets the CSRF cookie when `csrf_token` made a new one for this request."""
    new: str | None = getattr(request.state, "new_csrf", None)
    if new is not None:
        response.set_cookie(CSRF_COOKIE, new, secure=True, httponly=True, samesite="strict",
                            path="/")


def check_csrf(request: Request, submitted: str | None) -> None:
    """Raises `CsrfRejected` unless the form's token matches the cookie and the post comes
    from this site."""
    cookie = request.cookies.get(CSRF_COOKIE)
    if not cookie or not submitted or not hmac.compare_digest(cookie.encode(),
                                                              submitted.encode()):
        raise CsrfRejected("the form's CSRF token does not match: reload the page and retry")
    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host"):
        raise CsrfRejected("the form was posted from another site")


def remember_login(response: Response, token: str) -> None:
    response.set_cookie(auth.COOKIE, token, max_age=TOKEN_MAX_AGE, secure=True, httponly=True,
                        samesite="lax", path="/")


def clear_login(response: Response) -> None:
    response.delete_cookie(auth.COOKIE, path="/", secure=True, httponly=True, samesite="lax")
