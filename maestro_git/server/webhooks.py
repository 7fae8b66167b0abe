"""Signed webhooks: the delivery worker of `maestro serve`, and how a receiver verifies.

Each mirrored commit is POSTed to every `[webhooks] urls` entry of maestro.toml as
`application/json`:

```json
{"type": "maestro.commit", "commit": "<sha>",
 "events": [{"action": "updated", "kind": "persona", "key": "acme/reviewer", "commit": "<sha>"}]}
```

with these headers:

| header | value |
|---|---|
| `X-Maestro-Timestamp` | Unix time of this attempt, in seconds |
| `X-Maestro-Signature` | `sha256=` + hex HMAC-SHA256, keyed by the secret, over `<timestamp>.<body>` |
| `X-Maestro-Delivery` | the delivery's id (the same on every retry: deduplicate on it) |
| `X-Maestro-Event` | `commit` |

The secret is read from the environment variable named by `[webhooks] secret_env`
(default `MAESTRO_WEBHOOK_SECRET`), never from the file. To verify: recompute the HMAC over
the timestamp header, a `.`, and the raw body bytes; compare in constant time; refuse a
timestamp more than five minutes away (`verify` does all three).

A 2xx answer within `TIMEOUT_SECONDS` is a delivery; anything else is retried with back-off
(2, 4, 8 … seconds, up to an hour; `failed` after `mirror.webhooks.MAX_ATTEMPTS`). The log is
the table `webhook_deliveries`. The worker is a thread of the server: it reads the audit
log after the mirror committed, so a slow or failing receiver never blocks the mirror.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
import urllib.error
import urllib.request

from maestro_git.errors import ConfigError, DatabaseError
from maestro_git.mirror import db, webhooks
from maestro_git.settings import Settings

__all__ = ["SIGNATURE_HEADER", "STATUSES", "TIMESTAMP_HEADER", "WebhookWorker", "delivery_log",
           "sign", "verify"]

log = logging.getLogger("maestro_git.server.webhooks")

TIMESTAMP_HEADER = "X-Maestro-Timestamp"
SIGNATURE_HEADER = "X-Maestro-Signature"
DELIVERY_HEADER = "X-Maestro-Delivery"
TIMEOUT_SECONDS = 5.0
POLL_SECONDS = 0.5
TOLERANCE_SECONDS = 300


STATUSES = ("pending", "delivered", "failed")


def delivery_log(settings: Settings, limit: int = 50,
                 status: str | None = None) -> list[webhooks.DeliveryRow]:
    """The webhook deliveries of this branch's mirror, newest first (`maestro webhooks`)."""
    with db.connect(settings) as conn:
        db.migrate(conn)
        return webhooks.log(conn, limit, status)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The `X-Maestro-Signature` value of `body` sent at `timestamp`."""
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body,
                   hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str, *,
           now: float | None = None, tolerance: int = TOLERANCE_SECONDS) -> bool:
    """A receiver's check: the signature matches and the timestamp is recent."""
    try:
        age = abs((time.time() if now is None else now) - int(timestamp))
    except ValueError:
        return False
    return age <= tolerance and hmac.compare_digest(sign(secret, timestamp, body), signature)


class WebhookWorker:
    """Enqueues and posts deliveries until stopped; idle when no URL is configured."""

    def __init__(self, settings: Settings, url: str, mirror: db.Mirror | None = None) -> None:
        self.mirror = mirror  # the mirror whose notifications and deliveries it serves
        self.urls = settings.webhook_urls
        self.secret = settings.webhook_secret
        if self.urls and not self.secret:
            raise ConfigError("[webhooks] urls are set but the signing secret is not",
                              hint="export MAESTRO_WEBHOOK_SECRET (or the variable named by "
                                   "[webhooks] secret_env)")
        self.db_url = url
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if not self.urls:
            return
        self._thread = threading.Thread(target=self._run, name="maestro-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=TIMEOUT_SECONDS + 2)

    def _run(self) -> None:
        conn: db.Connection | None = None
        while not self._stop.is_set():
            try:
                if conn is None or conn.closed or conn.broken:
                    conn = db.connect(self.db_url, mirror=self.mirror)
                self.run_once(conn)
            except DatabaseError as err:
                log.warning("webhook worker: %s", err.message)
                if conn is not None:
                    conn.close()
                conn = None
            self._stop.wait(POLL_SECONDS)
        if conn is not None:
            conn.close()

    def run_once(self, conn: db.Connection) -> int:
        """Enqueue new commits and post what is due; returns the attempts made."""
        webhooks.enqueue(conn, self.urls)
        due = webhooks.claim(conn)
        for delivery in due:
            if self._stop.is_set():
                break
            ok, status, error = self._post(delivery)
            webhooks.record(conn, delivery, ok=ok, status_code=status, error=error)
        return len(due)

    def _post(self, delivery: webhooks.Delivery) -> tuple[bool, int | None, str | None]:
        assert self.secret is not None
        body = delivery.body.encode("utf-8")
        stamp = str(int(time.time()))
        request = urllib.request.Request(delivery.url, data=body, method="POST", headers={
            "Content-Type": "application/json", "User-Agent": "maestro-git-webhooks",
            TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: sign(self.secret, stamp, body),
            DELIVERY_HEADER: str(delivery.id), "X-Maestro-Event": "commit"})
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as answer:  # noqa: S310
                return 200 <= answer.status < 300, answer.status, None
        except urllib.error.HTTPError as exc:
            return False, exc.code, f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError, ValueError) as exc:
            return False, None, str(getattr(exc, "reason", exc))[:500]
