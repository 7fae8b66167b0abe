"""A data subject of a GDPR request, and the stable pseudonym that replaces it (pure).

A data subject is an e-mail address, optionally with a name. Matching rules: commit
identities and mirror rows match when the e-mail is equal ignoring case, or the name is equal
ignoring case and surrounding spaces; content matches when the address or the name occurs
anywhere in a value or line, ignoring case. The pseudonym is `erased-<h>` /
`erased-<h>@invalid`, `<h>` the first 12 hex digits of SHA-256 of the lower-cased address.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from maestro_git.errors import UsageError

__all__ = ["DataSubject", "identity_hash", "pseudonym"]


def identity_hash(text: str) -> str:
    """The SHA-256 hex digest the erasure register stores for an address or a name."""
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class DataSubject:
    """The person a request is about: an e-mail address and, optionally, a name."""

    email: str
    name: str | None = None

    @classmethod
    def of(cls, email: str, name: str | None = None) -> DataSubject:
        """A subject from user input (trimmed); a UsageError when the address is not one."""
        address = email.strip()
        if "@" not in address or any(c.isspace() for c in address):
            raise UsageError(f"'{email}' is not an e-mail address",
                             hint="pass --email name@example.com")
        return cls(address, (name or "").strip() or None)

    def names_identity(self, name: str, email: str) -> bool:
        """True when a commit or mirror identity is this subject's."""
        if email.strip().lower() == self.email.lower():
            return True
        return self.name is not None and name.strip().lower() == self.name.lower()

    def needles(self) -> tuple[str, ...]:
        """The lower-cased texts a content scan looks for."""
        return (self.email.lower(),) + ((self.name.lower(),) if self.name else ())

    def occurs_in(self, text: str) -> bool:
        low = text.lower()
        return any(n in low for n in self.needles())


def pseudonym(subject: DataSubject) -> tuple[str, str]:
    """The stable (name, e-mail) that replaces the subject's identity in the mirror."""
    digest = identity_hash(subject.email.lower())[:12]
    return f"erased-{digest}", f"erased-{digest}@invalid"
