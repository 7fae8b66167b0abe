"""`GET /api/v1/events`: the change stream as Server-Sent Events, fed by LISTEN.

Each event is `event: <action>` and `data: <payload JSON>` (the NOTIFY payload of
`maestro_git.mirror.events`: action, kind, key, commit, old_key), with an `id` the server
process assigns (`EventHub`). A client reconnecting with `Last-Event-ID` (browsers' EventSource
send it by themselves) first gets the events it missed, or `reloaded` when the server no
longer knows them.
A comment line every `KEEPALIVE_SECONDS` keeps proxies from closing the stream. After
`reloaded` (a bulk commit, or the server's listener reconnected) a client drops what it
holds. Scope: a persona event reaches a subscriber only when its key's (or old key's) owner
is in scope; a set event only when PostgreSQL lets the scope read the set (so a deleted set
reaches only every-owner subscribers); template and repository events reach everyone.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse

from maestro_git.errors import NotFoundError
from maestro_git.server.auth import ReadsDep, Scope, ScopeDep

__all__ = ["KEEPALIVE_SECONDS", "router"]

router = APIRouter(tags=["events"])
KEEPALIVE_SECONDS = 15.0


def _owner(key: Any) -> str | None:
    return key.split("/", 1)[0] if isinstance(key, str) and "/" in key else None


async def _visible(payload: dict[str, Any], scope: Scope, reads_: Any) -> bool:
    if scope.owners is None:
        return True
    kind = payload.get("kind")
    if kind == "persona":
        owners = {_owner(payload.get("key")), _owner(payload.get("old_key"))} - {None}
        return any(scope.allows(o) for o in owners if o is not None)
    if kind == "persona_set":
        try:
            await run_in_threadpool(reads_.set, str(payload.get("key")))
        except NotFoundError:
            return False
        return True
    return kind in ("template", "repository")


@router.get("/api/v1/events", summary="Change events (text/event-stream)")
async def events(request: Request, scope: ScopeDep, reads_: ReadsDep) -> StreamingResponse:
    hub = request.app.state.events
    queue, missed = hub.subscribe(request.headers.get("last-event-id"))

    async def stream() -> AsyncIterator[bytes]:
        try:
            yield b"retry: 2000\n: connected\n\n"
            backlog = list(missed)
            while True:
                if backlog:
                    event_id, payload = backlog.pop(0)
                else:
                    try:
                        event_id, payload = await asyncio.wait_for(queue.get(),
                                                                   KEEPALIVE_SECONDS)
                    except TimeoutError:
                        if await request.is_disconnected():
                            return
                        yield b": keep-alive\n\n"
                        continue
                if not await _visible(payload, scope, reads_):
                    continue
                data = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
                yield f"id: {event_id}\nevent: {payload.get('action', 'message')}\n" \
                      f"data: {data}\n\n".encode()
        finally:
            hub.unsubscribe(queue)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
