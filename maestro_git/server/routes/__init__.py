"""The API routes, one module per resource; `install(app)` adds them all in order.

Order matters once: the persona-set service's `GET /api/v1/personas/{persona_set_id}/download`
(`compat`) is added before a persona's `GET /api/v1/personas/{owner}/{name}`, and answers for
a persona named `download` when no set has that id.
"""

from __future__ import annotations

from fastapi import FastAPI

from maestro_git.server.routes import catalog, compat, personas, sets, stream

__all__ = ["install"]


def install(app: FastAPI) -> None:
    for module in (catalog, compat, personas, sets, stream):
        app.include_router(module.router)
