"""A stream of commits for the fault scenarios: a synthetic repository generated once, then
its branch moved forward one first-parent commit at a time, as pushes arrive on a server.

The commits are the synthetic generator's (edits, adds, deletes, renames between owners,
merge commits, broken-then-fixed files), so a stream of N commits is N real ref moves, each a
compare-and-swap `git update-ref`, at whatever pace the scenario chooses.
"""

from __future__ import annotations

import threading
from pathlib import Path

from scripts.faults.common import git
from scripts.synthetic import generate_repository

__all__ = ["Stream"]


class Stream:
    """`commits` first-parent commits of a synthetic repository at `path`, oldest first; the
    branch starts at the first one and `advance(n)` moves it to the n-th (0-based)."""

    def __init__(self, path: Path, commits: int, seed: int, personas: int = 60,
                 sets: int = 4, branch: str = "main") -> None:
        if commits < 2:
            raise ValueError("a stream needs at least 2 commits")
        self.path = path
        self.branch = branch
        made = commits + commits // 10 + 8  # merge commits leave the first-parent line
        generated = generate_repository(path, personas=personas, sets=sets, commits=made,
                                        seed=seed, branch=branch, checkout=False,
                                        invalid_commits=True)
        line = git(path, "rev-list", "--first-parent", "--reverse", generated.head).split()
        if len(line) < commits:
            raise RuntimeError(f"the generator gave {len(line)} first-parent commits, "
                               f"fewer than {commits}")
        self.commits = line[:commits]
        # Commits the generator made with a deliberately broken file (fixed by the next one).
        self.broken = frozenset(generated.invalid_commits) & set(self.commits)
        # The working tree stays empty (the daemon mirrors commits, not files); without the
        # index git would see the generated head's files as staged deletions.
        (Path(git(path, "rev-parse", "--absolute-git-dir")) / "index").unlink(missing_ok=True)
        self.pos = len(line) - 1
        self._lock = threading.Lock()
        self._head = generated.head
        self.move(0)

    @property
    def head(self) -> str:
        return self.commits[self.pos]

    @property
    def last(self) -> int:
        return len(self.commits) - 1

    def move(self, pos: int) -> str:
        """Point the branch at commit `pos` (compare-and-swap on the old head)."""
        with self._lock:
            old = self._head
            new = self.commits[pos]
            git(self.path, "update-ref", f"refs/heads/{self.branch}", new, old)
            self.pos, self._head = pos, new
            return new

    def advance(self, steps: int = 1) -> str:
        """Move the branch `steps` commits forward (not past the last)."""
        return self.move(min(self.last, self.pos + steps))
