"""The one error tree of maestro-git, and the exit code of each kind.

```
MaestroError                  exit 1   a user-facing failure with a one-line reason
├── UsageError                exit 2   a bad argument or option the parser could not catch
├── ConfigError               exit 2   maestro.toml or an environment value is wrong
├── NotFoundError             exit 3   a persona, set, template, revision or version that does not exist
├── ValidationFailed          exit 1   a write or import refused; carries the Problems
├── InheritanceError          exit 1   `extends` cannot be resolved (missing parent, cycle, depth)
├── GitError                  exit 4   the git repository cannot be read or written
│   └── ConflictError         exit 5   a concurrent writer changed the same persona (compare-and-swap lost)
├── DatabaseError             exit 6   PostgreSQL cannot be reached, migrated or queried
│   └── LockHeldError         exit 7   another daemon holds the writer lock
└── SearchError               exit 8   a malformed search query, or the index cannot be used

any other exception            exit 70  a bug: one line on stderr, the traceback in a log file
```

Library code raises these; `cli.main` maps each to its exit code and prints `error: <message>`
(plus the `hint`, when there is one). No traceback reaches a user for a user's mistake.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from maestro_git.core.models import Problem

__all__ = [
    "ConfigError",
    "ConflictError",
    "DatabaseError",
    "GitError",
    "InheritanceError",
    "LockHeldError",
    "MaestroError",
    "NotFoundError",
    "SearchError",
    "UsageError",
    "ValidationFailed",
]


class MaestroError(Exception):
    """Base of every error maestro-git raises on purpose. `str(err)` is the one-line reason."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(MaestroError):
    exit_code = 2


class ConfigError(MaestroError):
    exit_code = 2


class NotFoundError(MaestroError):
    exit_code = 3


class ValidationFailed(MaestroError):
    """A write or import was refused because the result would not validate."""

    exit_code = 1

    def __init__(self, message: str, problems: Sequence[Problem], *, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.problems = tuple(problems)


class InheritanceError(MaestroError):
    """A persona's `extends` chain cannot be resolved: a missing parent, a cycle, too deep."""

    exit_code = 1


class GitError(MaestroError):
    exit_code = 4


class ConflictError(GitError):
    exit_code = 5


class DatabaseError(MaestroError):
    exit_code = 6


class LockHeldError(DatabaseError):
    exit_code = 7


class SearchError(MaestroError):
    exit_code = 8
