"""`create_app(settings, public=False)`: the FastAPI application of `maestro serve`.

Contract: `create_app` returns an app whose lifespan opens one `ServerState`
(`app.state.maestro`: the cached client, a connection pool, the event hub and the webhook
worker) and closes it at shutdown. The API routes live in `maestro_git.server.routes`; when
the web interface package `maestro_git.server.web` exists, `web.mount(app)` adds its pages.
`factory()` builds the app from `MAESTRO_SERVE_*` environment values, for uvicorn's workers
(`maestro serve --workers N` hands its resolved options to each worker process that way).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version as _version
from pathlib import Path

from fastapi import FastAPI

from maestro_git.server import problems
from maestro_git.server.state import ServerState
from maestro_git.settings import Settings, load_settings

__all__ = ["SERVE_ENV", "create_app", "factory"]

SERVE_ENV = "MAESTRO_SERVE_OPTIONS"

DESCRIPTION = """Read API over a maestro-git mirror: personas, versions, diffs, templates,
persona sets and their images, the audit log, search, usage counters, and a stream of change
events. Authenticate with `Authorization: Bearer <token>` (`maestro token create`); a token
reads only its owners' rows (PostgreSQL row-level security). Errors are
`application/problem+json` (RFC 9457)."""


def create_app(settings: Settings, *, public: bool = False, workers: bool = True) -> FastAPI:
    """The API app over the mirror of `settings`; `public` lets requests without a token read
    every owner. `workers=False` starts no background worker (webhooks, event hub)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = ServerState.open(settings, public=public)
        app.state.maestro = state
        from maestro_git.server.events import EventHub
        from maestro_git.server.webhooks import WebhookWorker

        hub = EventHub(state.url, state.client.mirror.schema)
        app.state.events = hub
        worker = WebhookWorker(settings, state.url, state.client.mirror) if workers else None
        if workers:
            hub.start()
        if worker is not None:
            worker.start()
        try:
            yield
        finally:
            if worker is not None:
                worker.stop()
            hub.stop()
            state.close()

    app = FastAPI(title="maestro-git", version=_version("maestro-git"), description=DESCRIPTION,
                  lifespan=lifespan)
    problems.install(app)
    from maestro_git.server.fastpath import FastPath

    app.add_middleware(FastPath)
    from maestro_git.server import routes

    routes.install(app)
    if importlib.util.find_spec("maestro_git.server.web") is not None:
        web = importlib.import_module("maestro_git.server.web")
        web.mount(app)
    return app


def factory() -> FastAPI:
    """The app from `SERVE_ENV` (JSON: repo, database_url, branch, public)."""
    options = json.loads(os.environ.get(SERVE_ENV, "{}"))
    settings = load_settings(Path(options["repo"]) if options.get("repo") else None,
                             database_url=options.get("database_url"),
                             branch=options.get("branch"))
    return create_app(settings, public=bool(options.get("public")))
