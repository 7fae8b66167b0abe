"""Token use cases for `maestro token`: create, list, revoke (each owns its connection).

`expires` accepts a duration (`30d`, `12h`, `90m`) or an ISO 8601 date or time (`2027-01-31`,
`2027-01-31T12:00:00+00:00`; a time without a zone is UTC).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from maestro_git.errors import UsageError
from maestro_git.mirror import db, tokens
from maestro_git.mirror.tokens import CreatedToken, TokenRow
from maestro_git.settings import Settings

__all__ = ["create_token", "list_tokens", "parse_expiry", "revoke_token"]

_DURATION = re.compile(r"^(\d+)([dhm])$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}
_OWNER = re.compile(r"^[a-z0-9_-]{1,100}$")


def parse_expiry(text: str, now: datetime | None = None) -> datetime:
    now = now or datetime.now(UTC)
    match = _DURATION.match(text.strip())
    if match:
        return now + timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"--expires '{text}' is neither a duration nor an ISO date",
                         hint="e.g. --expires 30d, --expires 2027-01-31") from None
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    if when <= now:
        raise UsageError(f"--expires '{text}' is in the past")
    return when


def _connect(settings: Settings) -> db.Connection:
    conn = db.connect(settings)
    db.migrate(conn)
    return conn


def create_token(settings: Settings, owners: Sequence[str], expires: str | None = None,
                 description: str = "") -> CreatedToken:
    bad = [o for o in owners if not _OWNER.match(o)]
    if bad:
        raise UsageError(f"'{bad[0]}' is not an owner folder name",
                         hint="owners are lowercase letters, digits, _ and -")
    when = parse_expiry(expires) if expires else None
    with _connect(settings) as conn:
        return tokens.create(conn, owners, expires_at=when, description=description)


def list_tokens(settings: Settings) -> list[TokenRow]:
    with _connect(settings) as conn:
        return tokens.list_tokens(conn)


def revoke_token(settings: Settings, token_id: str) -> TokenRow:
    with _connect(settings) as conn:
        return tokens.revoke(conn, token_id)
