"""Deterministic synthetic persona repositories, for the benchmarks and the tests.

`generate_repository(path, personas=N, sets=M, commits=C, seed=S)` writes a real git
repository whose history edits, adds, renames (also between owners, keeping the frontmatter
`id`), deletes and merges (a side branch merged with a merge commit every few dozen commits).
The same arguments always give the same commit ids.

Shape of the content:
- `personas/<owner>/<name>.md`: Markdown bodies of a few KB in the sections of the seed
  templates, `extends` chains (depth <= 4, never a cycle), tags from a fixed vocabulary, a
  version raised on every edit. A few "hot" personas collect many versions (history benchmarks).
- `persona_sets/<set>/set.json`: the persona-set service's JSON shape (`personas` members with
  name/age/occupation/..., `metadata` with rqe_scores, diversity_score, validation_scores,
  generation_cycle, status).
- `templates/<name>.md`: the four seed templates.
- With `invalid_commits=True`, every ~100 commits a broken file is committed and fixed by the
  next commit (for mirror tests); the head is always valid.

Counts are exact at the head: `personas` personas, `sets` sets, `commits` commits reachable
from the head (merges and side-branch commits included).

The generator is split by concern: `synthetic_content` writes the text (pure),
`synthetic_history` decides what each commit changes, `synthetic_pack` hashes the objects into
one pack file. This module, the only one of them that imports pygit2, creates the repository,
sets the branch on the generated head and checks it out.

Why it does not write objects with pygit2: writing ~25k loose objects costs far more than
generating them (file creation per object), so objects are hashed and compressed and streamed
into one pack (with its v2 index) that libgit2 reads like any cloned repository. Nothing here
depends on the modules it benchmarks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pygit2

from .history import SyntheticHistory

__all__ = ["GENERATOR_VERSION", "GeneratedRepo", "generate_repository"]

GENERATOR_VERSION = 2  # raise when the output for given arguments changes (bench caches key on it)


@dataclass(frozen=True)
class GeneratedRepo:
    """What `generate_repository` wrote (counts are at the head unless named otherwise)."""

    path: Path
    branch: str
    head: str  # commit id at refs/heads/<branch>
    seed: int
    personas: int
    sets: int
    templates: int
    commits: int  # commits reachable from the head
    merges: int
    renames: int  # rename commits (one persona each), moves between owners included
    moves: int  # renames that changed the owner
    deletes: int  # personas deleted in the history
    adds: int  # personas added after the first commit
    invalid_commits: tuple[str, ...]  # commits with a deliberately broken file
    sample_personas: tuple[str, ...]  # persona keys at the head
    sample_sets: tuple[str, ...]
    hot_persona: str  # the persona key with the most versions
    hot_persona_versions: int
    bytes_at_head: int  # content bytes of every file at the head
    checked_out: bool


def generate_repository(path: Path | str, personas: int = 10_000, sets: int = 200,
                        commits: int = 2_000, seed: int = 0, branch: str = "main", *,
                        checkout: bool = True, invalid_commits: bool = False) -> GeneratedRepo:
    """Write a synthetic persona repository at `path` (which must not exist or be empty).

    Deterministic: the same arguments give the same commit ids. `checkout=False` leaves the
    working tree empty (reads from git need none, and it saves seconds at 10k personas).
    `invalid_commits=True` adds broken-then-fixed commits, listed in the result.
    """
    if personas < 1 or commits < 1 or sets < 0:
        raise ValueError("personas and commits must be >= 1, sets >= 0")
    root = Path(path)
    if root.exists() and any(root.iterdir()):
        raise ValueError(f"{root} is not empty")
    repo = pygit2.init_repository(str(root), initial_head=branch)
    repo.config["user.name"] = "Synthetic Generator"
    repo.config["user.email"] = "synthetic@example.com"
    history = SyntheticHistory(root, seed, personas, sets, commits, invalid_commits)
    head = history.run()
    repo = pygit2.Repository(str(root))  # sees the new pack
    repo.references.create(f"refs/heads/{branch}", pygit2.Oid(raw=head), force=True)
    if checkout:
        repo.checkout_head(  # type: ignore[no-untyped-call]
            strategy=pygit2.enums.CheckoutStrategy.FORCE)
    size = sum(len(p.render()) for p in history.personas.values())
    size += sum(len(s.render()) for s in history.sets.values())
    hot = max(history.personas.values(), key=lambda p: (p.versions, p.key))
    keys = sorted(history.personas)
    step = max(1, len(keys) // 20)
    return GeneratedRepo(
        path=root.resolve(), branch=branch, head=head.hex(), seed=seed,
        personas=len(history.personas), sets=len(history.sets),
        templates=len(history.templates), commits=len(history.slots),
        merges=history.counts["merges"], renames=history.counts["renames"],
        moves=history.counts["moves"], deletes=history.counts["deletes"],
        adds=history.counts["adds"], invalid_commits=tuple(history.invalid),
        sample_personas=tuple(keys[::step][:20]), sample_sets=tuple(sorted(history.sets)[:10]),
        hot_persona=hot.key, hot_persona_versions=hot.versions, bytes_at_head=size,
        checked_out=checkout)
