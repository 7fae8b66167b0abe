"""Where a use case gets a snapshot: `snapshot_of(settings, rev)`.

The one answer to "the snapshot at REV, or of the working tree" for ops/, cli/ and server/:
`WORKTREE` reads the files on disk under `settings.repo_path` (also a folder that is not a
git repository) without importing git at all, so `maestro check` starts fast; any other
revision is read from its commit through `Repository.snapshot` (no checkout, the last
snapshot kept and updated by re-parsing only what differs). mirror/ and daemon/ sit beside
repo/ in the layers and build their per-commit snapshots from git themselves.
"""

from __future__ import annotations

from maestro_git.core.snapshot import Snapshot, build_snapshot
from maestro_git.git.worktree import read_worktree
from maestro_git.settings import Settings

__all__ = ["WORKTREE", "snapshot_of"]

WORKTREE = ":worktree"  # the files on disk, not a commit (also `Repository.snapshot`/`diff`)


def snapshot_of(settings: Settings, rev: str = WORKTREE) -> Snapshot:
    """The snapshot of the working tree (`WORKTREE`) or of the commit `rev` names."""
    if rev == WORKTREE:
        return build_snapshot(read_worktree(settings.repo_path), settings)
    from maestro_git.repo.repository import Repository  # pygit2: only for a revision

    return Repository(settings).snapshot(rev)
