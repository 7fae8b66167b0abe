"""The records of a review (`maestro review`), and who must approve a change.

Pure: `approvals` maps the changed entities to the owner folders they touch and the
reviewers `[owners]` names for each (given as an `Owners`, e.g. `ops.owners.OwnersConfig`).
`repo.review.review` builds a `ReviewReport`; `output` renders it as text, JSON, GitHub
annotations or Markdown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from maestro_git.core.diff import EntityDiff, Impact
from maestro_git.core.formats import classify
from maestro_git.core.models import Problem, Severity
from maestro_git.settings import Limits

__all__ = ["Approval", "Owners", "ReviewReport", "approvals"]


class Owners(Protocol):
    """Who reviews an owner folder: `reviewers_of(owner) -> (reviewers, source)`."""

    def reviewers_of(self, owner: str) -> tuple[tuple[str, ...], str]: ...


@dataclass(frozen=True)
class Approval:
    """The reviewers one touched folder needs, and the entities that touch it."""

    folder: str  # personas/acme/, templates/, persona_sets/
    owner: str | None  # the owner folder's name (None for templates/ and persona_sets/)
    reviewers: tuple[str, ...]
    source: str  # "owners" (its own entry), "default" ("*"), "none"
    keys: tuple[str, ...]


@dataclass(frozen=True)
class ReviewReport:
    """Everything `maestro review` reports; `errors` decides its exit code."""

    base: str
    base_ref: str
    head: str  # a commit id, or "worktree"
    head_commit: str | None  # the commit checked out (the worktree's HEAD)
    changes: tuple[EntityDiff, ...]
    impact: tuple[Impact, ...]
    approvals: tuple[Approval, ...]
    problems: tuple[Problem, ...]
    limits: Limits
    fetched: tuple[str, ...] = ()
    same_commit: bool = False
    summary: dict[str, int] = field(default_factory=dict)

    @property
    def errors(self) -> int:
        return sum(1 for p in self.problems if p.severity is Severity.ERROR)

    @property
    def warnings(self) -> int:
        return sum(1 for p in self.problems if p.severity is Severity.WARNING)


def approvals(changes: Sequence[EntityDiff], owners: Owners | None) -> list[Approval]:
    """The reviewers every touched folder needs (both sides of a move), by folder."""
    touched: dict[tuple[str, str | None], list[str]] = {}
    for change in changes:
        for path in (change.old_path, change.new_path):
            loc = classify(path) if path else None
            if loc is None:
                continue
            if loc.kind == "persona":
                where: tuple[str, str | None] = (f"personas/{loc.owner}/", loc.owner)
            else:
                where = (f"{path.split('/', 1)[0]}/" if path else "", None)
            keys = touched.setdefault(where, [])
            if change.key not in keys:
                keys.append(change.key)
    out: list[Approval] = []
    for (folder, owner), keys in sorted(touched.items()):
        reviewers: tuple[str, ...] = ()
        source = "none"
        if owners is not None:
            reviewers, source = owners.reviewers_of(owner if owner is not None else "*")
        out.append(Approval(folder, owner, tuple(reviewers), source, tuple(keys)))
    return out


