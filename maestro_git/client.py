"""`Client`: the Python API over the mirror, with an in-process cache kept coherent by NOTIFY.

```python
from maestro_git import Client

with Client("postgresql://localhost/maestro") as client:
    persona = client.get("acme/code_reviewer", resolved=True)
    print(persona.content)            # the instruction with its `extends` chain composed
    client.record_application("acme/code_reviewer")
    for hit in client.search("tag:coding review"):
        print(hit.key, hit.snippet)
```

Coherence: reads (`get`, `list`, `history`, `sets`, `set`) are cached in an LRU of
`cache_size` entries that live at most `cache_ttl` seconds. A daemon thread holds one
dedicated autocommit connection that LISTENs on `maestro_events`; each payload drops the
entries of the key it names (and every listing of that kind). Notifications sent while that
connection is down are lost, so nothing is cached while it is down and the whole cache is
flushed each time it (re)connects. A read that raced with an invalidation is not cached (a
generation counter). So a cached read is never staler than the notification latency.
Thread-safe: the cache has a lock, the query connection another.

Mirrors: a client reads one mirror, that of `branch` (default: the settings' branch) of the
repository its settings describe (`maestro_git.mirror.registry`), so
`Client(branch="production")` reads what production runs. Notifications name their mirror
(`schema`); the listener ignores those of other mirrors.
"""

from __future__ import annotations

import builtins
import dataclasses
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from maestro_git.core.models import SearchHit
from maestro_git.errors import DatabaseError, SearchError
from maestro_git.mirror import db, query, registry, scope
from maestro_git.mirror.query import (
    PersonaFilters,
    PersonaRow,
    PersonaSummary,
    SetDetail,
    SetRow,
    UsageRow,
    VersionRow,
)
from maestro_git.settings import Settings, load_settings

if TYPE_CHECKING:
    from maestro_git.search.index import SearchIndex  # whoosh is imported by a local search only

__all__ = ["Client", "ClientStats", "ScopedClient"]

log = logging.getLogger("maestro_git.client")

T = TypeVar("T")
Backend = Literal["auto", "whoosh", "postgres"]
_ANY = "*"
# The tags of a read that any mirrored change may alter (a full-text search).
_EVERY_CHANGE = frozenset({f"persona:{_ANY}", f"persona_set:{_ANY}", f"template:{_ANY}"})


@dataclass
class ClientStats:
    """Counters for tests and tuning: `queries` counts statements sent to PostgreSQL."""

    queries: int = 0
    hits: int = 0
    misses: int = 0
    invalidations: int = 0
    flushes: int = 0
    reconnects: int = 0


class _Cache:
    """LRU + TTL, with tags for invalidation and a generation counter against races."""

    def __init__(self, size: int, ttl: float) -> None:
        self.size = max(0, size)
        self.ttl = ttl
        self._lock = threading.Lock()
        self._items: OrderedDict[Hashable, tuple[float, Any, frozenset[str]]] = OrderedDict()
        self.generation = 0

    def get(self, key: Hashable) -> tuple[bool, Any]:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return False, None
            if item[0] < time.monotonic():
                del self._items[key]
                return False, None
            self._items.move_to_end(key)
            return True, item[1]

    def put(self, key: Hashable, value: Any, tags: frozenset[str], generation: int) -> None:
        with self._lock:
            if generation != self.generation or self.size == 0:
                return  # an invalidation happened while the value was read: do not keep it
            self._items[key] = (time.monotonic() + self.ttl, value, tags)
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def invalidate(self, tags: set[str]) -> int:
        with self._lock:
            self.generation += 1
            doomed = [k for k, item in self._items.items() if item[2] & tags]
            for k in doomed:
                del self._items[k]
            return len(doomed)

    def clear(self) -> None:
        with self._lock:
            self.generation += 1
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


def _tags_for(payload: dict[str, Any]) -> set[str] | None:
    """The cache tags a NOTIFY payload touches; None means flush everything."""
    kind, key = payload.get("kind"), payload.get("key")
    if kind not in ("persona", "persona_set", "template") or not isinstance(key, str):
        return None
    tags = {f"{kind}:{key}", f"{kind}:{_ANY}"}
    old = payload.get("old_key")
    if isinstance(old, str):
        tags.add(f"{kind}:{old}")
    return tags


class Client:
    """Cached, thread-safe reads of the mirror, search, and usage counters.

    `database_url` (or `settings.database_url`; None: `DATABASE_URL`, then the embedded
    server) says where the mirror is. `settings` default to those of the current directory;
    they also say where the local search index is. `cache_size` / `cache_ttl` default to
    `[cache] size` / `ttl_seconds` of maestro.toml. `listen=False` turns the NOTIFY listener
    off (the cache then relies on its TTL alone). `branch` chooses the mirror (default: the
    settings' branch); `mirror` gives one explicitly.
    """

    def __init__(self, database_url: str | None = None, *, settings: Settings | None = None,
                 branch: str | None = None, mirror: db.Mirror | None = None,
                 cache_size: int | None = None, cache_ttl: float | None = None,
                 listen: bool = True, listen_timeout: float = 5.0) -> None:
        self.settings = settings or load_settings()
        if branch is not None:
            self.settings = self.settings.with_overrides(branch=branch)
        self.url = database_url or db.database_url(self.settings)
        self.stats = ClientStats()
        self._cache = _Cache(self.settings.cache_size if cache_size is None else cache_size,
                             self.settings.cache_ttl_seconds if cache_ttl is None else cache_ttl)
        self._conn_lock = threading.Lock()
        conn = db.connect(self.url)
        try:
            with db.translate_errors("finding the mirror"):
                self.mirror: db.Mirror = mirror or registry.resolve(conn, self.settings)
            db.bind(conn, self.mirror)
        except BaseException:
            conn.close()
            raise
        self._conn: db.Connection | None = conn
        self._index: SearchIndex | None = None
        self._stop = threading.Event()
        self._listening = threading.Event()
        self._listener: threading.Thread | None = None
        self._listen = listen
        if listen:
            self._listener = threading.Thread(target=self._listen_loop, daemon=True,
                                              name="maestro-client-listen")
            self._listener.start()
            self._listening.wait(listen_timeout)

    # -- the database ------------------------------------------------------------------
    def _query(self, fn: Callable[[db.Connection], T]) -> T:
        with self._conn_lock:
            for attempt in (1, 2):
                if self._conn is None or self._conn.closed or self._conn.broken:
                    if self._conn is not None:
                        self._conn.close()
                        self.stats.reconnects += 1
                    self._conn = db.connect(self.url, mirror=self.mirror)
                self.stats.queries += 1
                try:
                    return fn(self._conn)
                except DatabaseError:
                    if attempt == 2 or not self._conn.broken:
                        raise
            raise AssertionError("unreachable")  # pragma: no cover

    def _cached(self, key: Hashable, tags: frozenset[str],
                fn: Callable[[db.Connection], T]) -> T:
        return self._remember(key, tags, lambda: self._query(fn))

    def _remember(self, key: Hashable, tags: frozenset[str], compute: Callable[[], T]) -> T:
        """The cached value of `key`, else `compute()` kept under `tags` (unless an
        invalidation arrived while it was computed, or no listener keeps the cache true)."""
        found, value = self._cache.get(key)
        if found:
            self.stats.hits += 1
            return value  # type: ignore[no-any-return]
        self.stats.misses += 1
        generation = self._cache.generation
        value = compute()
        if self._listening.is_set() or not self._listen:
            self._cache.put(key, value, tags, generation)
        return value

    # -- the listener ------------------------------------------------------------------
    def _listen_loop(self) -> None:
        delay = 0.1
        while not self._stop.is_set():
            try:
                conn = db.listen_connection(self.url)
            except DatabaseError as err:
                log.warning("cache listener cannot connect (%s); retrying", err.message)
                self._stop.wait(delay)
                delay = min(delay * 2, 5.0)
                continue
            delay = 0.1
            self._cache.clear()  # anything sent while we were away is lost: start afresh
            self.stats.flushes += 1
            self._listening.set()
            try:
                while not self._stop.is_set():
                    for note in conn.notifies(timeout=0.25):
                        self._on_payload(note.payload)
            except Exception as exc:  # a dropped connection: reconnect and flush
                if not self._stop.is_set():
                    log.warning("cache listener lost its connection (%s); reconnecting", exc)
                    self.stats.reconnects += 1
            finally:
                self._listening.clear()
                self._cache.clear()
                conn.close()

    def _on_payload(self, raw: str) -> None:
        try:
            payload = json.loads(raw)
        except ValueError:
            payload = {}
        if isinstance(payload, dict) and payload.get("schema", self.mirror.schema) \
                != self.mirror.schema:
            return  # another mirror's change
        tags = _tags_for(payload) if isinstance(payload, dict) else None
        if tags is None:
            self._cache.clear()
            self.stats.flushes += 1
        else:
            self._cache.invalidate(tags)
            self.stats.invalidations += 1

    @property
    def listening(self) -> bool:
        """True while the NOTIFY connection is up (and the cache is in use)."""
        return self._listening.is_set()

    # -- reads ---------------------------------------------------------------------------
    def get(self, key: str, resolved: bool = False) -> PersonaRow:
        """One persona at the last mirrored commit; with `resolved`, `content` is the
        instruction composed with its `extends` chain. Raises `NotFoundError`."""
        row = self._cached(("get", key), frozenset({f"persona:{key}"}),
                           lambda c: query.get_persona(c, key))
        if resolved:
            return dataclasses.replace(row, content=row.resolved_content)
        return row

    def list(self, filters: PersonaFilters | None = None, **kwargs: Any) -> builtins.list[PersonaSummary]:
        """Personas, filtered/sorted/paged (`PersonaFilters` fields as keywords:
        `tags=("coding",)`, `owner=`, `active=`, `parent=`, `updated_since=`, `sort=`,
        `limit=`, `offset=`)."""
        f = dataclasses.replace(filters or PersonaFilters(), **kwargs)
        return self._cached(("list", repr(f)), frozenset({f"persona:{_ANY}"}),
                            lambda c: query.list_personas(c, f))

    def history(self, key: str) -> builtins.list[VersionRow]:
        """Every mirrored version of a persona, newest first."""
        return self._cached(("history", key), frozenset({f"persona:{key}"}),
                            lambda c: query.history(c, key))

    def sets(self, status: str | None = None) -> builtins.list[SetRow]:
        """Every persona set."""
        return self._cached(("sets", status), frozenset({f"persona_set:{_ANY}"}),
                            lambda c: query.list_sets(c, status))

    def set(self, key: str) -> SetDetail:
        """One persona set with its members and scores."""
        return self._cached(("set", key), frozenset({f"persona_set:{key}"}),
                            lambda c: query.get_set(c, key))

    def search(self, text: str, limit: int = 10, backend: Backend = "auto") -> builtins.list[SearchHit]:
        """Search personas, templates, sets and set members.

        `auto` uses the local Whoosh index when this repository has a usable one, else the
        mirror's full-text index (`postgres`). Answers of the mirror's index are cached like
        every other read until any persona, set or template changes; the local index's are
        not (it may catch up after the mirror's NOTIFY)."""
        if backend != "postgres":
            index = self._search_index()
            if index is not None:
                return index.search(text, limit)
            if backend == "whoosh":
                raise SearchError("no usable local search index",
                                  hint="run 'maestro index rebuild', or use the postgres backend")
        return self._cached(("search", text, limit), _EVERY_CHANGE,
                            lambda c: query.search(c, text, limit))

    def _search_index(self) -> SearchIndex | None:
        if self._index is None:
            from maestro_git.search.index import SearchIndex  # whoosh: only for a local search

            candidate = SearchIndex(self.settings)
            if not candidate.exists() or candidate.check() is not None:
                return None
            self._index = candidate
        return self._index

    # -- writes --------------------------------------------------------------------------
    def record_application(self, key: str) -> UsageRow:
        """Count one application of a persona (`application_count`, `last_applied_at`)."""
        row = self._query(lambda c: query.record_application(c, key))
        self._cache.invalidate({f"persona:{key}", f"persona:{_ANY}"})
        return row

    def scoped(self, owners: str) -> ScopedClient:
        """The reads of one owner scope (`mirror.scope.owners_setting`): every query runs under
        PostgreSQL row-level security for those owners, and its rows are cached apart from
        every other scope's, in this client's NOTIFY-coherent cache."""
        return ScopedClient(self, owners)

    # -- lifetime ------------------------------------------------------------------------
    def clear_cache(self) -> None:
        self._cache.clear()

    def close(self) -> None:
        """Stop the listener and close the connections."""
        self._stop.set()
        if self._listener is not None:
            self._listener.join(timeout=5.0)
        with self._conn_lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
        if self._index is not None:
            self._index.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ScopedClient:
    """`Client` reads under one owner scope (see `Client.scoped`); `peek_*` answer from the
    cache alone (None on a miss) and never send a query, so a server can serve hot reads
    without leaving its event loop."""

    def __init__(self, client: Client, owners: str) -> None:
        self.client = client
        self.owners = owners

    def _run(self, fn: Callable[[db.Connection], T]) -> Callable[[db.Connection], T]:
        def run(conn: db.Connection) -> T:
            with scope.scoped(conn, self.owners):
                return fn(conn)
        return run

    def _key(self, *parts: Hashable) -> Hashable:
        return ("scope", self.owners, *parts)

    def _peek(self, key: Hashable) -> Any:
        found, value = self.client._cache.get(key)
        if found:
            self.client.stats.hits += 1
            return value
        return None

    def peek_get(self, key: str) -> PersonaRow | None:
        return self._peek(self._key("get", key))  # type: ignore[no-any-return]

    def peek_list(self, filters: PersonaFilters) -> builtins.list[PersonaSummary] | None:
        return self._peek(self._key("list", repr(filters)))  # type: ignore[no-any-return]

    def peek_history(self, key: str) -> builtins.list[VersionRow] | None:
        return self._peek(self._key("history", key))  # type: ignore[no-any-return]

    def peek_set(self, key: str) -> SetDetail | None:
        return self._peek(self._key("set", key))  # type: ignore[no-any-return]

    def peek_search(self, text: str, limit: int) -> builtins.list[SearchHit] | None:
        return self._peek(self._key("search", text, limit))  # type: ignore[no-any-return]

    def search(self, text: str, limit: int, *, pool: scope.Pool) -> builtins.list[SearchHit]:
        """The mirror's full-text search under this scope, cached until any change. A miss
        runs on a connection of `pool`, so a slow search does not hold the client's one
        connection that every other miss waits for."""
        def pooled() -> builtins.list[SearchHit]:
            with pool.scoped(self.owners) as conn:
                return query.search(conn, text, limit)
        return self.client._remember(self._key("search", text, limit), _EVERY_CHANGE, pooled)

    def get(self, key: str) -> PersonaRow:
        return self.client._cached(self._key("get", key), frozenset({f"persona:{key}"}),
                                   self._run(lambda c: query.get_persona(c, key)))

    def list(self, filters: PersonaFilters) -> builtins.list[PersonaSummary]:
        return self.client._cached(self._key("list", repr(filters)),
                                   frozenset({f"persona:{_ANY}"}),
                                   self._run(lambda c: query.list_personas(c, filters)))

    def history(self, key: str) -> builtins.list[VersionRow]:
        return self.client._cached(self._key("history", key), frozenset({f"persona:{key}"}),
                                   self._run(lambda c: query.history(c, key)))

    def sets(self, status: str | None = None) -> builtins.list[SetRow]:
        return self.client._cached(self._key("sets", status),
                                   frozenset({f"persona_set:{_ANY}"}),
                                   self._run(lambda c: query.list_sets(c, status)))

    def set(self, key: str) -> SetDetail:
        return self.client._cached(self._key("set", key), frozenset({f"persona_set:{key}"}),
                                   self._run(lambda c: query.get_set(c, key)))

    def record_application(self, key: str) -> UsageRow:
        row = self.client._query(self._run(lambda c: query.record_application(c, key)))
        self.client._cache.invalidate({f"persona:{key}", f"persona:{_ANY}"})
        return row
