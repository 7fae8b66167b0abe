"""The event hub: one LISTEN connection per server process, fanned out to SSE subscribers.

Rules of this module:
- One daemon thread holds a `db.listen_connection` on `maestro_events` and hands every
  payload (the JSON of `mirror.events`) to each subscriber's asyncio queue through its loop
  (`call_soon_threadsafe`). Subscribers never touch the database connection.
- Notifications sent while the connection is down are lost: after each (re)connect the hub
  sends subscribers `{"action": "reloaded", "kind": "repository", "key": "*"}`, so a remote
  cache flushes, as `Client` does. A subscriber whose queue is full gets the same.
- Every event gets an id `<epoch>.<n>` (`epoch`: random per server process, `n` counting
  up) and the last `RECENT` events are kept. A subscriber that reconnects with
  `Last-Event-ID` gets the events it missed replayed before the live ones, atomically with
  its subscription (nothing lost, nothing twice); an id of another process, or older than
  the kept window, gets `reloaded` instead, so the client flushes rather than trusting a gap.
- Only this server's mirror: a payload naming another mirror's `schema` (one database may
  hold several mirrors) is dropped.
- What a subscriber may see is decided by the stream route (`routes/stream.py`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import threading
from collections import deque
from typing import Any

from maestro_git.errors import DatabaseError
from maestro_git.mirror import db

__all__ = ["RECENT", "RELOADED", "Event", "EventHub"]

log = logging.getLogger("maestro_git.server.events")

RELOADED: dict[str, Any] = {"action": "reloaded", "kind": "repository", "key": "*"}
QUEUE_SIZE = 1000
RECENT = 1000  # events kept for a reconnecting subscriber's Last-Event-ID
Event = tuple[str, dict[str, Any]]  # (id, payload)


class EventHub:
    def __init__(self, url: str, schema: str | None = None) -> None:
        self.url = url
        self.schema = schema
        self._subs: dict[asyncio.Queue[Event], asyncio.AbstractEventLoop] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.listening = threading.Event()
        self.epoch = secrets.token_hex(4)
        self._seq = 0
        self._recent: deque[tuple[int, dict[str, Any]]] = deque(maxlen=RECENT)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="maestro-events", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)

    def subscribe(self, last_id: str | None = None
                  ) -> tuple[asyncio.Queue[Event], list[Event]]:
        """A queue of live events, and the events to send first: those after `last_id`
        (a reconnecting client's `Last-Event-ID`), or `reloaded` when they are not known."""
        queue: asyncio.Queue[Event] = asyncio.Queue(QUEUE_SIZE)
        with self._lock:
            self._subs[queue] = asyncio.get_running_loop()
            return queue, self._since(last_id)

    def _since(self, last_id: str | None) -> list[Event]:
        if not last_id:
            return []
        epoch, _, number = last_id.strip().partition(".")
        seen = int(number) if number.isdigit() and len(number) < 19 else -1
        oldest = self._recent[0][0] if self._recent else self._seq + 1
        if epoch != self.epoch or seen < 0 or seen > self._seq or seen < oldest - 1:
            return [(self._id(self._seq), RELOADED)]
        return [(self._id(n), payload) for n, payload in self._recent if n > seen]

    def _id(self, n: int) -> str:
        return f"{self.epoch}.{n}"

    def unsubscribe(self, queue: asyncio.Queue[Event]) -> None:
        with self._lock:
            self._subs.pop(queue, None)

    def publish(self, payload: dict[str, Any]) -> None:
        with self._lock:
            self._seq += 1
            self._recent.append((self._seq, payload))
            event = (self._id(self._seq), payload)
            subs = list(self._subs.items())
        for queue, loop in subs:
            try:
                loop.call_soon_threadsafe(_offer, queue, event)
            except RuntimeError:  # the subscriber's loop has closed
                self.unsubscribe(queue)

    def _run(self) -> None:
        delay = 0.1
        while not self._stop.is_set():
            try:
                conn = db.listen_connection(self.url)
            except DatabaseError as err:
                log.warning("event hub cannot connect (%s); retrying", err.message)
                self._stop.wait(delay)
                delay = min(2 * delay, 5.0)
                continue
            delay = 0.1
            self.listening.set()
            self.publish(RELOADED)
            try:
                while not self._stop.is_set():
                    for note in conn.notifies(timeout=0.25):
                        try:
                            payload = json.loads(note.payload)
                        except ValueError:
                            payload = RELOADED
                        if not isinstance(payload, dict):
                            payload = RELOADED
                        elif payload.get("schema", self.schema) != self.schema:
                            continue  # another mirror's change
                        self.publish(payload)
            except Exception as exc:  # a dropped connection: reconnect
                if not self._stop.is_set():
                    log.warning("event hub lost its connection (%s); reconnecting", exc)
            finally:
                self.listening.clear()
                conn.close()


def _offer(queue: asyncio.Queue[Event], event: Event) -> None:
    try:
        queue.put_nowait(event)
    except asyncio.QueueFull:  # a subscriber too slow to keep up: it must flush
        while not queue.empty():
            queue.get_nowait()
        queue.put_nowait((event[0], RELOADED))
