"""The pages: home and search, personas, persona sets, the audit log, branches, logging in.

Rules of this module:
- Each page reads under the request's owner scope: cached reads through
  `ServerState.client.scoped(...)`, other reads on a `ServerState.pool.scoped(...)`
  connection (row-level security), past versions and images from git through
  `ServerState.repo` only after the scoped mirror has shown that the reader may see the
  entity. Nothing here filters rows itself.
- Pages are plain GET forms and links: they work without JavaScript. Query parameters are
  read as text and checked here, so a bad one gives an HTML page with a one-line reason (400),
  never a JSON error or a 500; an entity outside the scope is a 404, like a missing one.
- Route handlers are plain functions (run in the thread pool): every read blocks.
"""

from __future__ import annotations

import json
import mimetypes
import posixpath
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from maestro_git.client import ScopedClient
from maestro_git.core.models import SearchHit, Version
from maestro_git.core.render import render_html
from maestro_git.errors import MaestroError, NotFoundError, UsageError
from maestro_git.mirror import reads
from maestro_git.mirror.query import SORTS, PersonaFilters
from maestro_git.server.auth import Scope, state_of
from maestro_git.server.state import ServerState
from maestro_git.server.web import session, views
from maestro_git.server.web.session import page_scope

__all__ = ["PAGE_SIZE", "SECURITY_HEADERS", "TEMPLATES_DIR", "fill_csrf", "kept_html",
           "page_address", "persona_inputs", "router", "set_inputs", "templates"]

PAGE_SIZE = 25
MAX_PAGE_SIZE = 100
ScopeDep = Annotated[Scope, Depends(page_scope)]
# Defence in depth: the pages run no script at all, so the browser is told to run none
# (sanitising on output, `core.render`, is the first line).
SECURITY_HEADERS = {
    "Cache-Control": "private, no-store",
    "Content-Security-Policy": "default-src 'none'; img-src 'self'; style-src 'self'; "
                               "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
router = APIRouter(include_in_schema=False)
TEMPLATES_DIR = Path(__file__).resolve().parents[1] / "templates"
templates = Jinja2Templates(directory=str(TEMPLATES_DIR))


@lru_cache(maxsize=1024)
def _html(markdown: str) -> Markup:
    return views.for_page(render_html(markdown))


def _branch_context(request: Request, context: dict[str, Any]) -> dict[str, Any]:
    """What every page knows of branches: `served` (the server's branch), `branch` (the one
    shown: a `?branch=` the server mirrors, else the served one) and `at(path)`, which keeps
    the shown branch on a link. A page's own `params` (its pager) keep it too."""
    state = state_of(request)
    asked = request.query_params.get("branch")
    shown = asked if asked and state.is_open_branch(asked) else state.served
    if shown == state.served:
        def at(path: str) -> str:
            return path
    else:
        query = urlencode({"branch": shown})

        def at(path: str) -> str:
            return f"{path}{'&' if '?' in path else '?'}{query}"
        if isinstance(context.get("params"), dict):
            context["params"] = {**context["params"], "branch": shown}
    context.update(branch=shown, served=state.served, at=at)
    return context


def _page(request: Request, scope: Scope | None, name: str, status: int = 200,
          **context: Any) -> Response:
    state = state_of(request)
    context.update(request=request, scope=scope, csrf=session.csrf_token(request),
                   public=state.public)
    _branch_context(request, context)
    response = templates.TemplateResponse(request, name, context, status_code=status)
    session.set_csrf_cookie(request, response)
    response.headers.update(SECURITY_HEADERS)
    return response


# Pages built from the client's cached records are kept rendered: the same records (the
# cache hands out the same objects until a NOTIFY or its TTL replaces them) give the same
# HTML, so a hot page costs no template rendering. The entry holds its input objects, so an
# identity check is sound; the browser's CSRF token is put in per response (a per-process
# random slot stands for it in the kept HTML).
_CSRF_SLOT = "csrf-slot-" + secrets.token_hex(16)
_CSRF_SLOT_BYTES = _CSRF_SLOT.encode()
# (template, scope, address) -> (input records, the page's UTF-8 bytes split at the CSRF slot)
_RENDERED: OrderedDict[tuple[str, str, str], tuple[tuple[object, ...], tuple[bytes, ...]]] = \
    OrderedDict()
_RENDERED_LOCK = threading.Lock()
_RENDERED_SIZE = 512


def page_address(path: str, query: str) -> str:
    """The address a kept page is filed under (the same for a route and `fastpath`)."""
    return f"{path}?{query}" if query else path


def kept_html(name: str, setting: str, address: str,
              inputs: tuple[object, ...]) -> tuple[bytes, ...] | None:
    """The kept page for this scope and address, if rendered from `inputs`: its bytes split
    where the CSRF token goes (`fill_csrf` joins them)."""
    key = (name, setting, address)
    with _RENDERED_LOCK:
        kept = _RENDERED.get(key)
        if kept is not None:
            _RENDERED.move_to_end(key)
    if kept is not None and len(kept[0]) == len(inputs) and all(
            a is b for a, b in zip(kept[0], inputs, strict=True)):
        return kept[1]
    return None


def _address(request: Request) -> str:
    return page_address(request.url.path, request.url.query)


def fill_csrf(parts: tuple[bytes, ...], token: str) -> bytes:
    """A kept page with this browser's CSRF token in its forms."""
    return token.encode().join(parts)


def _respond(request: Request, parts: tuple[bytes, ...]) -> Response:
    response = HTMLResponse(fill_csrf(parts, session.csrf_token(request)))
    session.set_csrf_cookie(request, response)
    response.headers.update(SECURITY_HEADERS)
    return response


def _kept_page(request: Request, scope: Scope, name: str, inputs: tuple[object, ...],
               context: Callable[[], dict[str, Any]]) -> Response:
    """`_page` for a page that is a pure function of `inputs` (records from the cache) and
    the scope: rendered once, then served from `_RENDERED` while the inputs are the same."""
    parts = kept_html(name, scope.setting, _address(request), inputs)
    if parts is None:
        state = state_of(request)
        values = context()
        values.update(request=request, scope=scope, csrf=_CSRF_SLOT, public=state.public)
        _branch_context(request, values)
        parts = tuple(templates.get_template(name).render(values).encode().split(
            _CSRF_SLOT_BYTES))
        with _RENDERED_LOCK:
            _RENDERED[(name, scope.setting, _address(request))] = (inputs, parts)
            while len(_RENDERED) > _RENDERED_SIZE:
                _RENDERED.popitem(last=False)
    return _respond(request, parts)


def _hot(request: Request, scope: Scope, name: str,
         inputs: Sequence[object | None] | None) -> Response | None:
    """The kept page when every input is in the client's cache (`peek_*`, no query) and the
    page was rendered from exactly those: served on the event loop, without a thread."""
    if inputs is None or any(i is None for i in inputs):
        return None
    parts = kept_html(name, scope.setting, _address(request), tuple(inputs))
    return None if parts is None else _respond(request, parts)


def _guarded(request: Request, scope: Scope, build: Callable[[ServerState], Response]
             ) -> Response:
    """`build(state)` on the state of the page's branch (`?branch=`, default the served
    one), with a MaestroError shown as an HTML error page."""
    try:
        return build(state_of(request).for_branch(request.query_params.get("branch")))
    except MaestroError as err:
        status = 404 if isinstance(err, NotFoundError) else 400 if isinstance(
            err, UsageError) else 503
        return _page(request, scope, "error.html", status=status, message=err.message,
                     hint=err.hint)


def _int(value: str | None, name: str, default: int, low: int = 1) -> int:
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except ValueError:
        raise UsageError(f"{name} must be a whole number, not {value!r}") from None
    if number < low:
        raise UsageError(f"{name} must be at least {low}")
    return number


# -- home: browse and search ---------------------------------------------------------------
@router.get("/", response_class=HTMLResponse)
def home(request: Request, scope: ScopeDep, q: str | None = None, owner: str | None = None,
         tag: str | None = None, active: str | None = None, sort: str | None = None,
         page: str | None = None, per: str | None = None) -> Response:
    def build(state: ServerState) -> Response:
        number = _int(page, "page", 1)
        size = _int(per, "per", PAGE_SIZE)
        if size > MAX_PAGE_SIZE:
            raise UsageError(f"per must be at most {MAX_PAGE_SIZE}")
        order = sort or "key"
        if order not in SORTS:
            raise UsageError(f"unknown sort {order!r}", hint="sorts: " + ", ".join(SORTS))
        if active not in (None, "", "yes", "no"):
            raise UsageError("active must be yes or no")
        reader = state.client.scoped(scope.setting)
        hits = None
        if q and q.strip():
            found = _search(state, scope, q, number * size + 1)
            hits = found[(number - 1) * size:number * size]
            more = len(found) > number * size
            rows = []
        else:
            rows = reader.list(PersonaFilters(
                owner=owner or None, tags=(tag,) if tag else (),
                active=None if not active else active == "yes", sort=order,
                limit=size + 1, offset=(number - 1) * size))
            more = len(rows) > size
            rows = rows[:size]
        sets = reader.sets() if number == 1 and not (q or owner or tag) else []
        params = {k: v for k, v in (("q", q), ("owner", owner), ("tag", tag),
                                    ("active", active), ("sort", sort), ("per", per)) if v}
        return _page(request, scope, "home.html", rows=rows, hits=hits, sets=sets,
                     q=q or "", owner=owner or "", tag=tag or "", active=active or "",
                     sort=order, sorts=list(SORTS), page=number, more=more, params=params)
    return _guarded(request, scope, build)


def _search(state: ServerState, scope: Scope, text: str, limit: int) -> list[SearchHit]:
    """Search as `GET /api/v1/search` does (backend auto): the local index when there is
    one, then only the hits the scope may read (PostgreSQL decides, `reads.visible_hits`)."""
    wide = limit if scope.owners is None else min(4 * limit, 500)
    hits = state.client.search(text, wide, "auto" if state.local_index else "postgres")
    with state.pool.scoped(scope.setting) as conn:
        return reads.visible_hits(conn, hits)[:limit]


# -- logging in and out ----------------------------------------------------------------------
_LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


def _login_page(request: Request, next_path: str | None, error: str | None,
                status: int = 200) -> Response:
    # A browser keeps a Secure cookie only from HTTPS or a loopback address: say so, or a
    # login over plain HTTP from another host would fail without a word.
    insecure = request.url.scheme == "http" and request.url.hostname not in _LOOPBACK
    return _page(request, None, "login.html", status=status, next=session.safe_next(next_path),
                 error=error, insecure=insecure)


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str | None = None) -> Response:
    return _login_page(request, next, None)


@router.post("/login", response_class=HTMLResponse)
def login(request: Request, token: Annotated[str, Form()] = "",
          csrf: Annotated[str, Form()] = "", next: Annotated[str, Form()] = "/") -> Response:
    try:
        session.check_csrf(request, csrf)
    except session.CsrfRejected as err:
        return _login_page(request, next, str(err), status=403)
    secret = token.strip()
    owners = state_of(request).lookup_token(secret) if secret else None
    if owners is None:
        return _login_page(request, next, "That token is unknown, revoked or expired.",
                           status=401)
    response = RedirectResponse(session.safe_next(next), status_code=303)
    session.remember_login(response, secret)
    return response


@router.post("/logout")
def logout(request: Request, csrf: Annotated[str, Form()] = "") -> Response:
    try:
        session.check_csrf(request, csrf)
    except session.CsrfRejected as err:
        return _page(request, None, "error.html", status=403, message=str(err), hint=None)
    response = RedirectResponse("/login", status_code=303)
    session.clear_login(response)
    return response


# -- personas --------------------------------------------------------------------------------
def persona_inputs(reader: ScopedClient, key: str) -> list[object | None] | None:
    """The cached records a persona page is made of (`peek_*`: no query), or None."""
    row = reader.peek_get(key)
    if row is None:
        return None
    inputs: list[object | None] = [row, reader.peek_history(key),
                                   reader.peek_list(_children_filter(key))]
    parent, seen = row.parent_key, {key}
    while parent and parent not in seen:
        seen.add(parent)
        ancestor = reader.peek_get(parent)
        if ancestor is None:
            return None  # not cached, or outside the scope: the full path decides
        inputs.append(ancestor)
        parent = ancestor.parent_key
    return inputs


def _children_filter(key: str) -> PersonaFilters:
    return PersonaFilters(parent=key, limit=None)


@router.get("/personas/{owner}/{name}", response_class=HTMLResponse)
async def persona_page(request: Request, owner: str, name: str, scope: ScopeDep) -> Response:
    key = f"{owner}/{name}"
    if "branch" not in request.query_params:  # another branch's state may need a query
        reader = state_of(request).client.scoped(scope.setting)
        hot = _hot(request, scope, "persona.html", persona_inputs(reader, key))
        if hot is not None:
            return hot
    return await run_in_threadpool(_persona_page, request, scope, key)


def _persona_page(request: Request, scope: Scope, key: str) -> Response:
    def build(state: ServerState) -> Response:
        reader = state.client.scoped(scope.setting)
        row = reader.get(key)
        versions = reader.history(key)
        children = reader.list(_children_filter(key))
        chain: list[tuple[str | None, str | None]] = [(key, row.content)]
        inputs: list[object] = [row, versions, children]
        parent, seen = row.parent_key, {key}
        while parent and parent not in seen:
            seen.add(parent)
            try:
                ancestor = reader.get(parent)
            except NotFoundError:
                chain.append((None, None))  # outside the scope (or missing): not named
                break
            chain.append((ancestor.key, ancestor.content))
            inputs.append(ancestor)
            parent = ancestor.parent_key
        chain.reverse()

        def context() -> dict[str, Any]:
            return dict(
                row=row, versions=versions, children=children, chain=[k for k, _ in chain],
                sections=views.attribute_sections(tuple(chain), row.resolved_content),
                body=_html(row.content), resolved=_html(row.resolved_content),
                hidden=views.hidden_characters(row.content),
                metadata=json.dumps(row.metadata, indent=2, ensure_ascii=False,
                                    sort_keys=True))
        return _kept_page(request, scope, "persona.html", tuple(inputs), context)
    return _guarded(request, scope, build)


@router.get("/personas/{owner}/{name}/diff", response_class=HTMLResponse)
def persona_diff(request: Request, owner: str, name: str, scope: ScopeDep,
                 a: str | None = None, b: str | None = None,
                 view: str | None = None) -> Response:
    key = f"{owner}/{name}"

    def build(state: ServerState) -> Response:
        mode = view or "raw"
        if mode not in ("raw", "resolved"):
            raise UsageError("view must be raw or resolved")
        reader = state.client.scoped(scope.setting)
        versions = reader.history(key)  # the scope decides: a hidden persona is a 404 here
        commits = [v.commit for v in versions]
        new = b or commits[0]
        old = a or (commits[1] if len(commits) > 1 else commits[0])
        for label, commit in (("a", old), ("b", new)):
            if commit not in commits:
                raise UsageError(f"{label} must be one of the commits in {key}'s history")
        diff = state.repo_for().diff(key, old, new, resolved=mode == "resolved")
        return _page(request, scope, "diff.html", key=key, versions=versions, diff=diff,
                     a=old, b=new, view=mode, lines=views.diff_lines(diff.body_diff),
                     fields=[(f.field, views.visible(_json(f.old)), views.visible(_json(f.new)))
                             for f in diff.fields])
    return _guarded(request, scope, build)


def _json(value: Any) -> str:
    return "(absent)" if value is None else json.dumps(value, ensure_ascii=False)


# -- persona sets ----------------------------------------------------------------------------
def _set_image_src(set_key: str, member: Any) -> str | None:
    url = member.image_url
    if not url or "://" in url or url.startswith(("/", "data:")):
        return None  # only images stored in the repository are shown (no outside fetches)
    return f"/sets/{set_key}/images/{member.position}"


@router.get("/sets/{key}", response_class=HTMLResponse)
async def set_page(request: Request, key: str, scope: ScopeDep) -> Response:
    if "branch" not in request.query_params:  # another branch's state may need a query
        state = state_of(request)
        hot = _hot(request, scope, "set.html", set_inputs(state, scope.setting, key))
        if hot is not None:
            return hot
    return await run_in_threadpool(_set_page, request, scope, key)


def _set_page(request: Request, scope: Scope, key: str) -> Response:
    def build(state: ServerState) -> Response:
        detail = state.client.scoped(scope.setting).set(key)
        versions = _set_history(state, key)

        def context() -> dict[str, Any]:
            s = detail.set
            charts = [(title, views.bar_chart(views.score_items(value), title))
                      for title, value in (("RQE scores", s.rqe_scores),
                                           ("Diversity", s.diversity_score),
                                           ("Validation", s.validation_scores))
                      if views.score_items(value)]
            cards = [(m, _set_image_src(key, m),
                      views.bar_chart(views.score_items(m.similarity_score),
                                      f"Similarity of {m.name}"))
                     for m in detail.members]
            return dict(detail=detail, charts=charts, cards=cards, versions=versions)
        return _kept_page(request, scope, "set.html", (detail, versions), context)
    return _guarded(request, scope, build)


@router.get("/sets/{key}/members/{position}", response_class=HTMLResponse)
def member_page(request: Request, key: str, position: str, scope: ScopeDep) -> Response:
    def build(state: ServerState) -> Response:
        detail = state.client.scoped(scope.setting).set(key)
        number = _int(position, "position", 0, low=0)
        member = next((m for m in detail.members if m.position == number), None)
        if member is None:
            raise NotFoundError(f"persona set '{key}' has no member {number}")
        fields = [(k, v if isinstance(v, str) else json.dumps(v, ensure_ascii=False))
                  for k, v in member.persona_data.items()
                  if k not in ("name", "image_url", "image_prompt", "similarity_score",
                               "validation_status")]
        return _page(request, scope, "member.html", detail=detail, member=member,
                     fields=fields, image=_set_image_src(key, member),
                     chart=views.bar_chart(views.score_items(member.similarity_score),
                                           f"Similarity of {member.name}"))
    return _guarded(request, scope, build)


@router.get("/sets/{key}/changes", response_class=HTMLResponse)
def set_changes(request: Request, key: str, scope: ScopeDep, a: str | None = None,
                b: str | None = None) -> Response:
    def build(state: ServerState) -> Response:
        state.client.scoped(scope.setting).set(key)  # the scope decides
        versions = _set_history(state, key)
        by_commit = {v.commit: v for v in versions}
        new = b or versions[0].commit
        old = a or (versions[1].commit if len(versions) > 1 else versions[0].commit)
        for label, commit in (("a", old), ("b", new)):
            if commit not in by_commit:
                raise UsageError(f"{label} must be one of the commits in {key}'s history")
        docs = [_set_document(state, by_commit[c]) for c in (old, new)]
        return _page(request, scope, "set_changes.html", key=key, versions=versions,
                     a=old, b=new, changes=views.member_changes(*docs),
                     unreadable=[c for c, d in zip((old, new), docs, strict=True) if d is None])
    return _guarded(request, scope, build)


_HISTORIES: OrderedDict[tuple[str, str | None], list[Version]] = OrderedDict()
_HISTORIES_LOCK = threading.Lock()
_HEADS: dict[str, str | None] = {}  # the branch head the last full set page read from git


def set_inputs(state: ServerState, setting: str, key: str) -> list[object | None]:
    """The cached records a set page is made of (no query, no git walk)."""
    with _HISTORIES_LOCK:
        versions = _HISTORIES.get((key, _HEADS.get(state.settings.branch)))
    return [state.client.scoped(setting).peek_set(key), versions]


def _set_history(state: ServerState, key: str) -> list[Version]:
    """A set's versions from git, kept per (key, branch head): walking a file's history is
    the costliest read of the set page, and a new head is a new cache key."""
    repo = state.repo_for()
    head = repo.head()
    _HEADS[state.settings.branch] = head
    cache_key = (key, head)
    with _HISTORIES_LOCK:
        found = _HISTORIES.get(cache_key)
        if found is not None:
            _HISTORIES.move_to_end(cache_key)
            return found
    versions = repo.history(key)
    with _HISTORIES_LOCK:
        _HISTORIES[cache_key] = versions
        while len(_HISTORIES) > 256:
            _HISTORIES.popitem(last=False)
    return versions


def _set_document(state: ServerState, version: Any) -> Any:
    if version.content_hash is None:
        return {}
    data = state.repo_for().git.read_file(version.commit, version.path)
    try:
        return json.loads(data) if data is not None else None
    except ValueError:
        return None


@router.get("/sets/{key}/images/{position}")
def set_image(request: Request, key: str, position: str, scope: ScopeDep) -> Response:
    try:
        state = state_of(request).for_branch(request.query_params.get("branch"))
        detail = state.client.scoped(scope.setting).set(key)
        with state.pool.scoped(scope.setting) as conn:
            source = reads.set_source(conn, key)
        number = _int(position, "position", 0, low=0)
    except MaestroError:
        return Response(status_code=404)
    member = next((m for m in detail.members if m.position == number), None)
    if member is None or _set_image_src(key, member) is None:
        return Response(status_code=404)
    folder = posixpath.dirname(source.path)
    path = posixpath.normpath(posixpath.join(folder, member.image_url or ""))
    if not path.startswith(folder + "/"):
        return Response(status_code=404)
    data = state.repo_for().git.read_file(source.commit, path)
    if data is None:
        return Response(status_code=404)
    media = mimetypes.guess_type(path)[0] or "application/octet-stream"
    if not media.startswith("image/") or media == "image/svg+xml":
        media = "application/octet-stream"  # never serve a script-bearing type inline
    return Response(data, media_type=media, headers={
        "Cache-Control": "private, max-age=300", "X-Content-Type-Options": "nosniff",
        "ETag": f'"{source.commit[:16]}-{number}"'})


# -- the audit log and the branches ----------------------------------------------------------
AUDIT_KINDS = ("persona", "persona_set", "template", "repository")
AUDIT_ACTIONS = ("created", "updated", "renamed", "deleted", "rolled_back",
                 "history_rewritten")


@router.get("/log", response_class=HTMLResponse)
def audit_page(request: Request, scope: ScopeDep, key: str | None = None,
               kind: str | None = None, action: str | None = None,
               since: str | None = None, page: str | None = None) -> Response:
    def build(state: ServerState) -> Response:
        number = _int(page, "page", 1)
        if kind and kind not in AUDIT_KINDS:
            raise UsageError(f"unknown kind {kind!r}", hint="kinds: " + ", ".join(AUDIT_KINDS))
        if action and action not in AUDIT_ACTIONS:
            raise UsageError(f"unknown action {action!r}",
                             hint="actions: " + ", ".join(AUDIT_ACTIONS))
        when = None
        if since:
            try:
                when = datetime.fromisoformat(since)
            except ValueError:
                raise UsageError("since must be a date (YYYY-MM-DD)") from None
            when = when if when.tzinfo else when.replace(tzinfo=UTC)
        with state.pool.scoped(scope.setting) as conn:
            rows = reads.audit_log(conn, reads.AuditFilters(
                key=key or None, kind=kind or None, action=action or None, since=when,
                limit=PAGE_SIZE + 1, offset=(number - 1) * PAGE_SIZE))
        params = {k: v for k, v in (("key", key), ("kind", kind), ("action", action),
                                    ("since", since)) if v}
        return _page(request, scope, "log.html", rows=rows[:PAGE_SIZE],
                     more=len(rows) > PAGE_SIZE, page=number, params=params, key=key or "",
                     kind=kind or "", action=action or "", since=since or "",
                     kinds=AUDIT_KINDS, actions=AUDIT_ACTIONS)
    return _guarded(request, scope, build)


@router.get("/branches", response_class=HTMLResponse)
def branches_page(request: Request, scope: ScopeDep) -> Response:
    def build(state: ServerState) -> Response:
        return _page(request, scope, "branches.html", rows=state.mirrored_branches())
    return _guarded(request, scope, build)
