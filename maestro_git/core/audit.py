"""The audit trail: events derived from commits (pure: no git, no clock).

`events_for_commit` is the one derivation, called by `maestro log` and by the mirror for every
mirrored commit, so the CLI and the `audit_events` table always agree. One event per changed
entity:

| change (`snapshot.diff_snapshots`) | action        |
|------------------------------------|---------------|
| added                              | `created`     |
| modified                           | `updated`     |
| renamed (id or git rename)         | `renamed`     |
| removed                            | `deleted`     |
| added/modified/renamed by a rollback commit | `rolled_back` |
| added/modified/renamed by a promotion commit | `promoted`    |

A rollback commit is one written by `Repository.rollback`: its message carries the line
`Rollback to version X (commit abc1234)` and a `Maestro-Rollback: <key>` trailer naming the
rolled-back entity (without the trailer, every entity the commit changed counts as rolled back).
A promotion commit is one whose message carries the trailer `Maestro-Action: promoted`
(written by `maestro promote`, which copies a persona from one branch onto another).
The actor is the commit's author (the acting user of a library write).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from maestro_git.core.models import AuditEvent, Change, ChangeAction

if TYPE_CHECKING:
    from maestro_git.core.models import CommitInfo
    from maestro_git.core.snapshot import Snapshot

__all__ = ["Rollback", "events_for_commit", "is_promotion", "parse_rollback",
           "rollback_message"]

_ACTIONS = {
    ChangeAction.ADDED: "created",
    ChangeAction.MODIFIED: "updated",
    ChangeAction.RENAMED: "renamed",
    ChangeAction.REMOVED: "deleted",
}
_ROLLBACK_LINE = re.compile(
    r"^Rollback to version (?P<version>\S+) \(commit (?P<commit>[0-9a-f]{7,40})\)\s*$",
    re.MULTILINE)
_ACTION_TRAILER = re.compile(r"^Maestro-Action:\s*(?P<action>\S+)\s*$", re.MULTILINE)
_ROLLBACK_TRAILER = re.compile(r"^Maestro-Rollback:\s*(?P<key>\S+)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Rollback:
    """What a rollback commit's message says it restored."""

    version: str
    commit: str  # the (abbreviated) commit the content was restored from
    keys: tuple[str, ...]  # entities named by trailers; empty: every changed entity


def rollback_message(key: str, version: str, commit: str) -> str:
    """The commit message `Repository.rollback` writes (and `parse_rollback` reads)."""
    return (f"Roll back {key} to version {version}\n\n"
            f"Rollback to version {version} (commit {commit[:7]})\n\n"
            f"Maestro-Rollback: {key}\n")


def parse_rollback(message: str) -> Rollback | None:
    """The rollback a commit message records, or None for any other commit."""
    match = _ROLLBACK_LINE.search(message)
    if match is None:
        return None
    keys = tuple(m["key"] for m in _ROLLBACK_TRAILER.finditer(message))
    return Rollback(match["version"], match["commit"], keys)


def is_promotion(message: str) -> bool:
    """True when the commit message carries the trailer `Maestro-Action: promoted`."""
    return any(m["action"] == "promoted" for m in _ACTION_TRAILER.finditer(message))


def events_for_commit(info: CommitInfo, changes: Sequence[Change], old: Snapshot | None,
                      new: Snapshot) -> list[AuditEvent]:
    """The audit events of one commit: one per entity in `changes`, in that order.

    `changes` are `snapshot.diff_snapshots(old, new, renames)` for the commit against its
    first parent (`old` is None for a root commit). The snapshots are the two sides of that
    diff; only the changed entities are read from them (they may be partial snapshots holding
    just the changed files).
    """
    rollback = parse_rollback(info.message)
    promoted = is_promotion(info.message)
    events: list[AuditEvent] = []
    for change in changes:
        action = _ACTIONS[change.action]
        if promoted and change.action is not ChangeAction.REMOVED:
            action = "promoted"
        elif (rollback is not None and change.action is not ChangeAction.REMOVED
                and (not rollback.keys or change.key in rollback.keys)):
            action = "rolled_back"
        events.append(AuditEvent(
            action=action, kind=change.kind, key=change.key, commit=info.id,
            actor_name=info.author_name, actor_email=info.author_email, time=info.time,
            message=info.message.strip(), old_key=change.old_key))
    return events
