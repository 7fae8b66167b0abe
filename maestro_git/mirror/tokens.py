"""API tokens of `maestro serve`: created, listed, revoked and looked up (table api_tokens).

Rules of this module:
- A token's secret is shown once, by `create`, and stored only as its sha256. The secret is
  `mgt_<token_id>_<32 random bytes, url-safe base64>`; `token_id` (8 hex digits) is the public
  handle that `list` shows and `revoke` takes.
- `lookup` returns the token's owners only while it is neither revoked nor expired.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from psycopg.rows import class_row

from maestro_git.errors import NotFoundError, UsageError
from maestro_git.mirror.db import Connection, translate_errors

__all__ = ["CreatedToken", "TokenRow", "create", "digest", "list_tokens", "lookup", "revoke"]

PREFIX = "mgt_"


@dataclass(frozen=True)
class TokenRow:
    token_id: str
    owners: list[str]
    description: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class CreatedToken:
    row: TokenRow
    secret: str  # shown once; never stored


def digest(secret: str) -> str:
    """The stored form of a token: sha256 of its secret, in hex."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


_COLUMNS = "token_id, owners, description, created_at, expires_at, revoked_at"


def create(conn: Connection, owners: Sequence[str], *, expires_at: datetime | None = None,
           description: str = "") -> CreatedToken:
    """A new token reading `owners`; its secret is in the result and nowhere else."""
    clean = sorted({o.strip() for o in owners if o.strip()})
    if not clean:
        raise UsageError("a token needs at least one owner", hint="pass --owner acme")
    token_id = secrets.token_hex(4)
    secret = f"{PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
    with translate_errors("create a token"), conn.cursor(row_factory=class_row(TokenRow)) as cur:
        row = cur.execute(
            "INSERT INTO api_tokens (token_id, token_sha256, owners, description, expires_at) "
            "VALUES (%s, %s, %s, %s, %s) RETURNING " + _COLUMNS,
            (token_id, digest(secret), clean, description, expires_at)).fetchone()
    assert row is not None
    return CreatedToken(row, secret)


def list_tokens(conn: Connection) -> list[TokenRow]:
    """Every token (revoked and expired ones included), oldest first."""
    with translate_errors("list tokens"), conn.cursor(row_factory=class_row(TokenRow)) as cur:
        return cur.execute("SELECT " + _COLUMNS + " FROM api_tokens "
                           "ORDER BY created_at, token_id").fetchall()


def revoke(conn: Connection, token_id: str) -> TokenRow:
    """Revoke a token by its id (idempotent: the first revocation time is kept)."""
    with translate_errors("revoke a token"), conn.cursor(row_factory=class_row(TokenRow)) as cur:
        row = cur.execute(
            "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now()) "
            "WHERE token_id = %s RETURNING " + _COLUMNS, (token_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"no token '{token_id}'", hint="list them with 'maestro token list'")
    return row


def lookup(conn: Connection, secret: str) -> tuple[str, ...] | None:
    """The owners a live token may read, or None (unknown, revoked or expired)."""
    if not secret.startswith(PREFIX):
        return None
    with translate_errors("check a token"):
        row = conn.execute(
            "SELECT owners FROM api_tokens WHERE token_sha256 = %s AND revoked_at IS NULL "
            "AND (expires_at IS NULL OR expires_at > now())", (digest(secret),)).fetchone()
    return tuple(row[0]) if row else None
