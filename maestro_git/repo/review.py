"""`maestro review`: what a pull request changes, what it breaks, and who must approve it.

`review(repo, base=...)` compares the base (the merge base of the head with the base branch)
with the working tree (or a given head revision) and returns one `ReviewReport`:

1. the change list (`core.diff.diff_entities`): added, modified, renamed and deleted
   personas, templates and sets, frontmatter changes by key path, version old -> new, body
   size and estimated tokens before and after (the report carries the configured limits);
2. the inheritance impact (`core.diff.inheritance_impact`): every descendant whose effective
   instruction changes, with its effective diff;
3. persona-set changes by member (inside each set's entry of the change list);
4. who must approve: the reviewers `[owners]` names for every touched owner folder
   (`templates/` and `persona_sets/` fall to the `"*"` default), given by the caller as an
   `Owners` (ops/owners.py's `OwnersConfig` is one; repo/ does not import ops/);
5. every validation problem of the head, on its line, plus `version-not-raised` against the
   base.

Rules of this module:
- The base is found, never guessed. `base` names a revision or a branch; without it the base
  branch is `Repository.base_branch`. A branch is looked up as `refs/remotes/<remote>/<b>`,
  then `refs/heads/<b>`; when it is missing, or the clone is shallow and the merge base is
  not in it (what CI checkouts give), it is fetched from the remote (`git.fetch`), deepening
  the history 50, 200, 800 commits and then in full, until the merge base is found.
  When that fails, `GitError` says so with the exact command to run.
- A review never compares a commit with itself silently: with no working tree to compare,
  a base equal to the head is refused; with one, the report says that the base is the head
  (`same_commit`), so only uncommitted changes are reviewed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from maestro_git.core.diff import diff_entities, inheritance_impact
from maestro_git.core.review import Owners, ReviewReport, approvals
from maestro_git.core.rules.validate import apply_severities
from maestro_git.core.rules.versions import version_problems
from maestro_git.errors import GitError, NotFoundError, UsageError
from maestro_git.git import fetch as git_fetch
from maestro_git.git.repo import GitRepo
from maestro_git.repo.repository import WORKTREE, Repository

__all__ = ["BaseFound", "find_base", "review"]

DEEPEN_STEPS = (50, 200, 800)  # commits added per round before fetching the whole history


@dataclass(frozen=True)
class BaseFound:
    """The base commit and how it was found."""

    commit: str
    ref: str  # what it was read from (refs/remotes/origin/main, a commit id)
    fetched: tuple[str, ...] = ()  # the git commands run to find it


def review(repo: Repository, base: str | None = None, head: str | None = None,
           owners: Owners | None = None, remote: str = "origin",
           fetch: bool = True) -> ReviewReport:
    """The review of `head` (default: the working tree) against `base` (see the module
    docstring for how the base is found)."""
    head_commit = repo.resolve("HEAD") if repo.head() is not None else None
    head_side = head if head is not None else (
        WORKTREE if repo.follows_checkout or repo.git.checked_out(repo.branch) else "HEAD")
    tip = repo.resolve(head_side) if head_side != WORKTREE else head_commit
    if tip is None:
        raise NotFoundError(f"branch '{repo.branch}' has no commits yet")
    found = find_base(repo, base, tip, remote=remote, fetch=fetch)
    same = found.commit == tip
    if same and head_side != WORKTREE:
        raise UsageError(f"the base {found.ref} is the head commit {tip[:7]}: nothing to "
                         "review", hint="pass --base with the branch the change goes into")
    old = repo.snapshot(found.commit)
    new = repo.snapshot(head_side)
    renames = repo.git.changed_files(found.commit, tip).renames if not same else {}
    label_b = "worktree" if head_side == WORKTREE else tip[:7]
    changes = [c for c in diff_entities(old, new, renames, rev_a=found.commit[:7],
                                        rev_b=label_b) if c.action != "unchanged"]
    impact = inheritance_impact(old, new, changes, repo.settings.limits.max_inheritance_depth,
                                rev_a=found.commit[:7], rev_b=label_b)
    problems = list(new.problems)
    problems += apply_severities(version_problems(old, new), repo.settings)
    problems.sort(key=lambda p: (p.path, p.line or 0, p.column or 0, p.rule))
    summary = {action: sum(1 for c in changes if c.action == action)
               for action in ("added", "modified", "renamed", "deleted")}
    summary["impacted"] = len(impact)
    return ReviewReport(
        base=found.commit, base_ref=found.ref,
        head="worktree" if head_side == WORKTREE else tip, head_commit=head_commit,
        changes=tuple(changes), impact=tuple(impact),
        approvals=tuple(approvals(changes, owners)), problems=tuple(problems),
        limits=repo.settings.limits, fetched=found.fetched, same_commit=same,
        summary=summary)


# -- the base ---------------------------------------------------------------------------------
def find_base(repo: Repository, base: str | None, head: str, *, remote: str = "origin",
              fetch: bool = True) -> BaseFound:
    """The commit to compare `head` with: the merge base of `head` and the base branch
    (or the revision `base`), fetched from `remote` when it is missing or out of reach."""
    name = base if base is not None else repo.base_branch
    git = repo.git
    fetched: list[str] = []
    has_remote = remote in git.remote_names()
    tip, ref = _lookup(git, name, remote)
    if tip is None and fetch and has_remote and _branch_like(name):
        fetched.append(_fetch_branch(repo, remote, name))
        git = repo.reopen()
        tip, ref = _lookup(git, name, remote)
    if tip is None:
        command = git_fetch.fetch_command(remote, [_refspec(name, remote)],
                                          depth=50 if git.is_shallow else None)
        raise GitError(f"the review base '{name}' is not in this clone",
                       hint=f"fetch it first: {' '.join(command)}"
                       if has_remote else "pass --base with a revision this clone has")
    merge_base = git.merge_base(head, tip)
    steps = list(DEEPEN_STEPS)
    while merge_base is None and fetch and has_remote and git.is_shallow:
        step = steps.pop(0) if steps else None
        result = git_fetch.fetch(_git_dir(git), remote, [_refspec(name, remote)]
                                 if _branch_like(name) else [],
                                 deepen=step, unshallow=step is None)
        fetched.append(result.command)
        if not result.ok:
            break
        git = repo.reopen()
        if _branch_like(name):
            tip, ref = _lookup(git, name, remote)
            assert tip is not None
        merge_base = git.merge_base(head, tip)
    if merge_base is None:
        if git.is_shallow:
            command = git_fetch.fetch_command(remote, [_refspec(name, remote)],
                                              unshallow=True)
            raise GitError(f"this shallow clone does not reach the commit where {head[:7]} "
                           f"and {name} meet", hint=f"run: {' '.join(command)} (or check "
                           "out with fetch-depth: 0)")
        raise GitError(f"{head[:7]} and {name} share no history",
                       hint="pass --base with the branch this change goes into")
    return BaseFound(merge_base, ref, tuple(fetched))


def _lookup(git: GitRepo, name: str, remote: str) -> tuple[str | None, str]:
    refs = [f"refs/remotes/{remote}/{name}", f"refs/heads/{name}"]
    if name.startswith(("refs/", f"{remote}/")) or not _branch_like(name):
        refs = [name]
    for ref in refs:
        if ref == name or git.has_ref(ref):
            try:
                return git.resolve(ref), ref
            except NotFoundError:
                continue
    if not name.startswith("refs/"):
        try:
            return git.resolve(name), name
        except NotFoundError:
            pass
    return None, name


def _branch_like(name: str) -> bool:
    """Whether `name` reads as a branch name (not a commit id or a revision expression)."""
    if any(c in name for c in "~^:@{}") or name == "HEAD":
        return False
    return not (len(name) >= 7 and all(c in "0123456789abcdef" for c in name))


def _refspec(name: str, remote: str) -> str:
    branch = name.removeprefix("refs/heads/").removeprefix(f"{remote}/")
    return f"+refs/heads/{branch}:refs/remotes/{remote}/{branch}"


def _fetch_branch(repo: Repository, remote: str, name: str) -> str:
    git = repo.git
    result = git_fetch.fetch(_git_dir(git), remote, [_refspec(name, remote)],
                             depth=DEEPEN_STEPS[0] if git.is_shallow else None)
    if not result.ok:
        raise GitError(f"cannot fetch the review base '{name}' from {remote}: "
                       f"{result.message}", hint=f"run: {result.command}")
    return result.command


def _git_dir(git: GitRepo) -> Path:
    return git.workdir or git.path

