"""Replaying planned history: each `PlannedCommit` becomes one commit on the branch, with
its author, committer and original time (`git.write`), oldest first.

Rules of this module:
- a replay only adds: it refuses (`ConflictError`) when a path it would write already exists
  at the branch head, and writes nothing then;
- commits go on top of the branch head with compare-and-swap, one after another; the working
  tree of a checked-out branch is brought up to the last one at the end (uncommitted
  changes on those paths refuse the replay before anything is written);
- the commits carry the original times, so `maestro history` shows the old system's dates,
  authors and versions; `git log` order (parents) is the replay order, which is time order.
"""

from __future__ import annotations

import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from maestro_git.errors import ConflictError
from maestro_git.git.repo import Identity
from maestro_git.ops.importer import normalise_name
from maestro_git.repo.repository import WRITE_DEADLINE_SECONDS, Repository
from maestro_git.settings import Settings

__all__ = ["PlannedCommit", "replay", "slug"]


def slug(text: str) -> str:
    """A name from the old system as a maestro name: accents dropped (`écrivain` ->
    `ecrivain`, `Café Owners` -> `cafe_owners`), then `importer.normalise_name`."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return normalise_name(ascii_text)


@dataclass(frozen=True)
class PlannedCommit:
    """One commit to write: when, by whom, why, and the files it sets (None deletes)."""

    time: datetime
    author: Identity
    message: str
    changes: dict[str, bytes | None] = field(default_factory=dict)


def replay(settings: Settings, commits: Sequence[PlannedCommit]) -> list[str]:
    """Write `commits` onto the branch (module docstring); the new commit ids, in order."""
    repo = Repository(settings)
    git = repo.git
    branch = settings.branch
    head = repo.head()
    paths = sorted({p for c in commits for p in c.changes})
    taken = [p for p in paths if head is not None and git.read_file(head, p) is not None]
    if taken:
        raise ConflictError(f"{taken[0]} already exists on '{branch}'; a migration only adds"
                            + (f" ({len(taken)} paths taken)" if len(taken) > 1 else ""),
                            hint="migrate into a new repository (maestro init) or a new "
                                 "branch (--branch)")
    workdir = git.checked_out(branch)
    if workdir is not None:
        dirty = [p for p in paths if (workdir / p).exists()]
        if dirty:
            raise ConflictError(f"{dirty[0]} exists in the working tree and is not committed",
                                hint="commit or remove it, then migrate again")
    def write(base: str | None) -> list[str]:
        ids: list[str] = []
        for planned in commits:
            base = git.write_commit(branch, base, planned.changes, planned.author,
                                    planned.author, planned.message, when=planned.time)
            ids.append(base)
        return ids

    deadline = time.monotonic() + WRITE_DEADLINE_SECONDS
    with git.writers_lock(deadline):  # maestro's own writers wait for the whole series
        if workdir is None:
            return write(head)
        # one index.lock over the series and the files: a human `git commit` in between
        # would otherwise commit an index without the migrated files (dropping them)
        return git.commit_series_checked_out(branch, head, write, paths, deadline)
