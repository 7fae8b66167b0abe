"""The webhook delivery log: what to send to which URL, and what became of each attempt.

Rules of this module:
- `enqueue` turns the audit events mirrored since each URL's cursor into one delivery per
  (URL, commit), the body built once and stored, so a retry sends the same bytes. A URL
  seen for the first time starts at the current end of the audit log (no replay of history).
  Concurrent workers serialise on a transaction-level advisory lock.
- `claim` leases due deliveries (`LEASE_SECONDS`), so two workers never post the same one
  at once; `record` ends an attempt: delivered, or retried after `backoff(attempts)`, or
  `failed` after `MAX_ATTEMPTS`.
- None of this runs inside the mirror's transaction: a failing receiver never blocks it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from psycopg import sql
from psycopg.rows import class_row

from maestro_git.mirror.db import Connection, translate_errors

__all__ = ["LEASE_SECONDS", "MAX_ATTEMPTS", "Delivery", "DeliveryRow", "backoff", "claim",
           "enqueue", "log", "record"]

WEBHOOK_LOCK_KEY = 0x6D61657374726F03
MAX_ATTEMPTS = 8
LEASE_SECONDS = 60
_BATCH = 5000


def backoff(attempts: int) -> float:
    """Seconds before the next attempt after `attempts` failures: 2, 4, 8, … up to an hour."""
    return float(min(2 ** max(1, attempts), 3600))


@dataclass(frozen=True)
class Delivery:
    id: int
    url: str
    commit: str
    body: str
    attempts: int


@dataclass(frozen=True)
class DeliveryRow:
    id: int
    url: str
    commit: str
    status: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime
    delivered_at: datetime | None


def enqueue(conn: Connection, urls: Sequence[str]) -> int:
    """Add the deliveries of every commit mirrored since each URL's cursor; returns how many."""
    added = 0
    with translate_errors("enqueue webhook deliveries"), conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (WEBHOOK_LOCK_KEY,))
        for url in urls:
            row = conn.execute("SELECT last_event_id FROM webhook_cursors WHERE url = %s",
                               (url,)).fetchone()
            if row is None:
                conn.execute("INSERT INTO webhook_cursors (url, last_event_id) "
                             "SELECT %s, coalesce(max(id), 0) FROM audit_events", (url,))
                continue
            events = conn.execute(
                "SELECT id, commit, action, kind, key, old_key, occurred_at FROM audit_events "
                "WHERE id > %s ORDER BY id LIMIT %s", (row[0], _BATCH)).fetchall()
            if not events:
                continue
            bodies: dict[str, list[dict[str, str]]] = {}
            for _id, commit, action, kind, key, old_key, _at in events:
                payload = {"action": action, "kind": kind, "key": key, "commit": commit}
                if old_key is not None:
                    payload["old_key"] = old_key
                bodies.setdefault(commit, []).append(payload)
            for commit, items in bodies.items():
                body = json.dumps({"type": "maestro.commit", "commit": commit,
                                   "events": items}, ensure_ascii=False,
                                  separators=(",", ":"))
                cur = conn.execute(
                    "INSERT INTO webhook_deliveries (url, commit, body) VALUES (%s, %s, %s) "
                    "ON CONFLICT (url, commit) DO NOTHING", (url, commit, body))
                added += cur.rowcount
            conn.execute("UPDATE webhook_cursors SET last_event_id = %s WHERE url = %s",
                         (events[-1][0], url))
    return added


_CLAIM = sql.SQL("""
UPDATE webhook_deliveries d SET next_attempt_at = now() + make_interval(secs => %(lease)s)
WHERE d.id IN (SELECT id FROM webhook_deliveries
               WHERE status = 'pending' AND next_attempt_at <= now()
               ORDER BY next_attempt_at, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
RETURNING d.id, d.url, d.commit, d.body, d.attempts
""")


def claim(conn: Connection, limit: int = 20) -> list[Delivery]:
    """Lease up to `limit` due deliveries, oldest first."""
    with translate_errors("claim webhook deliveries"), conn.cursor(
            row_factory=class_row(Delivery)) as cur:
        rows = cur.execute(_CLAIM, {"lease": LEASE_SECONDS, "limit": limit}).fetchall()
    return sorted(rows, key=lambda d: d.id)


def record(conn: Connection, delivery: Delivery, *, ok: bool, status_code: int | None,
           error: str | None) -> None:
    """End one attempt of `delivery`."""
    attempts = delivery.attempts + 1
    with translate_errors("record a webhook delivery"):
        if ok:
            conn.execute("UPDATE webhook_deliveries SET status = 'delivered', attempts = %s, "
                         "last_status_code = %s, last_error = NULL, delivered_at = now() "
                         "WHERE id = %s", (attempts, status_code, delivery.id))
        else:
            conn.execute(
                "UPDATE webhook_deliveries SET attempts = %s, last_status_code = %s, "
                "last_error = %s, status = CASE WHEN %s >= %s THEN 'failed' ELSE 'pending' END, "
                "next_attempt_at = now() + make_interval(secs => %s) WHERE id = %s",
                (attempts, status_code, (error or "")[:500], attempts, MAX_ATTEMPTS,
                 backoff(attempts), delivery.id))


def log(conn: Connection, limit: int = 100, status: str | None = None) -> list[DeliveryRow]:
    """The delivery log, newest first (only `status` rows when given)."""
    cols = sql.SQL(", ").join(sql.Identifier(f) for f in DeliveryRow.__dataclass_fields__)
    where = sql.SQL("WHERE status = %s ") if status is not None else sql.SQL("")
    params: tuple[object, ...] = (status, limit) if status is not None else (limit,)
    with translate_errors("read the webhook log"), conn.cursor(
            row_factory=class_row(DeliveryRow)) as cur:
        return cur.execute(sql.SQL("SELECT {} FROM webhook_deliveries {}ORDER BY id DESC "
                                   "LIMIT %s").format(cols, where), params).fetchall()
