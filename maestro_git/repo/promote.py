"""Promotion: a branch as a deployment label (`main` → `production`), moved by a commit.

Rules of this module:
- A promotion copies the persona's file, and every ancestor file its effective instruction
  needs that differs on the target, from the source branch's head onto the target branch,
  in ONE compare-and-swap commit on the target (`Writer.commit`, re-planned when another
  writer moved the target first). The source branch is never moved.
- The commit message carries the trailer `Maestro-Action: promoted`, from which the audit
  trail derives the `promoted` action (`core/audit.py`), so `maestro history KEY --branch
  production` reads as the label's history: every promotion and rollback, with who and when.
- Promoting what the target already holds is refused (`UsageError`), never an empty commit.
"""

from __future__ import annotations

from collections.abc import Mapping

from maestro_git.core.models import Persona, Template
from maestro_git.core.snapshot import Snapshot
from maestro_git.errors import NotFoundError, UsageError
from maestro_git.git.repo import GitRepo
from maestro_git.repo.writes import Plan, key_path

__all__ = ["TRAILER", "promotion_paths", "plan_promotion"]

TRAILER = "Maestro-Action: promoted"


def promotion_paths(source: Snapshot, key: str) -> list[str]:
    """The files a promotion of `key` carries: its own, then its `extends` chain's."""
    record = source.personas.get(key) if "/" in key else source.templates.get(key)
    if record is None:
        raise NotFoundError(f"{key} does not exist on the source branch",
                            hint="check the key and --from (maestro list --branch BRANCH)")
    paths = [key_path(key)]
    seen = {key}
    parent = record.extends if isinstance(record, Persona | Template) else None
    while parent and parent not in seen:
        seen.add(parent)
        rec = source.personas.get(parent)
        if rec is None:
            break
        paths.append(key_path(parent))
        parent = rec.extends
    return paths


def plan_promotion(git: GitRepo, source: Snapshot, target: Snapshot, key: str,
                   source_branch: str, target_branch: str, message: str | None) -> Plan:
    """The commit on `target_branch` that makes `key`'s effective instruction equal to
    `source_branch`'s head (`source`)."""
    assert source.commit is not None
    changes: dict[str, bytes | None] = {}
    for path in promotion_paths(source, key):
        new = git.read_file(source.commit, path)
        old = git.read_file(target.commit, path) if target.commit is not None else None
        if new is not None and new != old:
            changes[path] = new
    if not changes:
        raise UsageError(f"{key} on '{target_branch}' already equals '{source_branch}'",
                         hint="nothing to promote; edit it on the source branch first")
    record: Mapping[str, Persona] | Mapping[str, Template] = (
        source.personas if "/" in key else source.templates)
    version = record[key].version
    text = message or (f"Promote {key} {version} from {source_branch} "
                       f"({source.commit[:7]}) to {target_branch}")
    return Plan(key, changes, f"{text}\n\n{TRAILER}\n")
