"""Fetching from a remote, for a review in a CI checkout: a base branch, and more history.

CI checkouts are shallow (`actions/checkout` fetches one commit by default) and hold only the
pull request's branch. A review needs the base branch and the commit where the two lines
meet. libgit2 cannot deepen a shallow clone, nor fetch shallow over the local transport
(`file://`, a path), so this module runs the `git` program: `git fetch --depth`/`--deepen`
work over every transport. The commands are returned with each result, so that a failure can
tell the user the exact command to run themselves.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from maestro_git.errors import GitError

__all__ = ["FetchResult", "fetch", "fetch_command"]

FETCH_TIMEOUT_SECONDS = 300.0


@dataclass(frozen=True)
class FetchResult:
    """One `git fetch` run: the command, and whether it worked (with git's message)."""

    command: str
    ok: bool
    message: str = ""


def fetch_command(remote: str, refspecs: Sequence[str], *, depth: int | None = None,
                  deepen: int | None = None, unshallow: bool = False) -> list[str]:
    """The `git fetch` arguments for `refspecs` from `remote` (no tags, quiet)."""
    args = ["git", "fetch", "--no-tags", "--quiet"]
    if unshallow:
        args.append("--unshallow")
    elif deepen is not None:
        args.append(f"--deepen={deepen}")
    elif depth is not None:
        args.append(f"--depth={depth}")
    return [*args, remote, *refspecs]


def fetch(git_dir: Path, remote: str, refspecs: Sequence[str], *, depth: int | None = None,
          deepen: int | None = None, unshallow: bool = False) -> FetchResult:
    """Run `git fetch` in the repository at `git_dir`; never raises for git's own failure
    (a missing branch, no network): the result says what happened."""
    args = fetch_command(remote, refspecs, depth=depth, deepen=deepen, unshallow=unshallow)
    shown = shlex.join(args)
    if shutil.which("git") is None:
        raise GitError("fetching needs the git program, which is not installed",
                       hint=f"install git, or run: {shown}")
    try:
        done = subprocess.run(args, cwd=git_dir, capture_output=True, text=True,
                              timeout=FETCH_TIMEOUT_SECONDS, check=False,
                              env=None)
    except subprocess.TimeoutExpired:
        return FetchResult(shown, False, f"timed out after {FETCH_TIMEOUT_SECONDS:.0f} s")
    message = (done.stderr or done.stdout).strip().splitlines()
    return FetchResult(shown, done.returncode == 0, message[-1] if message else "")
