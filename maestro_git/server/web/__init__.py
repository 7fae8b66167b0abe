"""The web interface of `maestro serve`: server-rendered pages over the mirror.

`mount(app)` adds the pages (`pages.router`), their hot path (`fastpath.WebFastPath`), the
style sheet under `/assets`, and the handlers that turn a missing login into a redirect to `/login` and a refused CSRF check into
a 403 page. Pages are Jinja2 templates (`maestro_git/server/templates`), need no JavaScript
and no build step, and read under the same token boundary as the API (`server.auth`):

| page | what it shows |
|---|---|
| `/` | search (the mirror's full-text index) and browsing by owner, tag, activity, with paging; the sets |
| `/personas/<owner>/<name>` | the instruction as sanitised HTML, frontmatter, the resolved view with its chain and each section's source, children, history |
| `/personas/<owner>/<name>/diff?a=&b=&view=raw\\|resolved` | the diff between two versions, hidden characters shown |
| `/sets/<set>` | member cards with images and score charts (inline SVG), validation status, history |
| `/sets/<set>/members/<n>`, `/sets/<set>/changes?a=&b=` | one member; member-level changes between two versions |
| `/log`, `/branches` | the audit log, filterable; the mirrored branches and their heads |
| any page `?branch=<name>` | the same page over another mirrored branch (`ServerState.for_branch`); links keep it |
| `/login` | the token form (the one form that posts, with `/logout`) |
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response

from maestro_git.server.web import pages, session
from maestro_git.server.web.fastpath import WebFastPath

__all__ = ["STATIC_DIR", "TEMPLATES_DIR", "mount"]

TEMPLATES_DIR = pages.TEMPLATES_DIR
STATIC_DIR = Path(__file__).resolve().parents[1] / "static"


def mount(app: FastAPI) -> None:
    """Add the web interface's routes, static files and handlers to `app`."""
    app.include_router(pages.router)
    app.add_middleware(WebFastPath)
    app.mount("/assets", StaticFiles(directory=str(STATIC_DIR)), name="web-assets")

    async def login_required(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, session.LoginRequired)
        return RedirectResponse(session.login_url(exc.next_path), status_code=303)

    async def csrf_rejected(request: Request, exc: Exception) -> Response:
        return Response(str(exc), status_code=403, media_type="text/plain")

    app.add_exception_handler(session.LoginRequired, login_required)
    app.add_exception_handler(session.CsrfRejected, csrf_rejected)
