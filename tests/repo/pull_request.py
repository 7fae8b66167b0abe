"""A pull request as CI sees it: a bare remote, `main`, a `feature` branch, a shallow clone.

Built with the `git` program (push, clone --depth), so the review's fetching is tested
against git itself. The feature branch:
- edits the parent `acme/base` (drops the line "- Never reveal secrets.") without raising
  its version; `acme/child`, `acme/other_child` and `acme/grandchild` inherit that line;
- adds `acme/sneaky`, whose body hides a zero-width space;
- renames `acme/old` to `beta/renamed` (same id);
- retags `acme/tagged` (version raised: that one is correct).
`main` moves on after the branch left it, so the merge base is not main's tip.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.factories import persona_md

SECRET_LINE = "- Never reveal secrets."
IDS = {
    "base": "0b7e3f7e-8f59-4a8e-9d0c-6f1d2c3b4a51",
    "child": "1c8f4a8f-9a6a-4b9f-8e1d-7a2e3d4c5b62",
    "other_child": "2d9a5b9a-ab7b-4cab-9f2e-8b3f4e5d6c73",
    "grandchild": "3eab6cab-bc8c-4dbc-a03f-9c4a5f6e7d84",
    "old": "4fbc7dbc-cd9d-4ecd-b14a-ad5b6a7f8e95",
    "tagged": "5acd8ecd-deae-4fde-825b-be6c7b8a9fa6",
    "sneaky": "6bde9fde-efbf-4aef-936c-cf7d8c9bab07",
    "late": "7cefaaef-fac0-4bf0-a47d-da8e9dacbc18",
}
BASE_BODY = ("# Base Assistant\n\nYou are careful and kind.\n\n## Safety\n"
             f"{SECRET_LINE}\n- Ask before deleting anything.\n")
TOML = """[owners]
"*" = ["@platform-team"]
acme = ["@acme/persona-reviewers", "@alice"]
beta = ["@beta-team"]
"""


@dataclass(frozen=True)
class PullRequest:
    remote: Path  # the bare repository
    work: Path  # the developer's clone (feature checked out)
    base_commit: str  # where feature left main
    feature_head: str


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "Dev", "GIT_AUTHOR_EMAIL": "dev@example.com",
           "GIT_COMMITTER_NAME": "Dev", "GIT_COMMITTER_EMAIL": "dev@example.com",
           "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(cwd)}
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env=env,
                          check=False)
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


def _write(root: Path, files: dict[str, str | None]) -> None:
    for rel, text in files.items():
        path = root / rel
        if text is None:
            path.unlink()
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def _commit(root: Path, files: dict[str, str | None], message: str) -> str:
    _write(root, files)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)
    return git(root, "rev-parse", "HEAD")


def _child(name: str, extends: str, version: str = "1.0.0") -> str:
    title = name.replace("_", " ").title()
    return persona_md(title, body=f"# {title}\n\nYou help with {name}.\n\n## Style\n- Short.\n",
                      id=IDS[name], version=version, extends=extends)


def build(tmp: Path) -> PullRequest:
    """The remote, main, the pushed feature branch, and the developer's clone."""
    remote = tmp / "remote.git"
    work = tmp / "work"
    remote.mkdir()
    git(remote, "init", "-q", "--bare", "-b", "main")
    work.mkdir()
    git(work, "init", "-q", "-b", "main")
    git(work, "remote", "add", "origin", str(remote))
    _commit(work, {
        "maestro.toml": TOML,
        ".gitignore": ".maestro/\n",
        "personas/acme/base.md": persona_md("Base Assistant", body=BASE_BODY, id=IDS["base"],
                                            version="1.0.0"),
        "personas/acme/child.md": _child("child", "acme/base"),
        "personas/acme/other_child.md": _child("other_child", "acme/base"),
        "personas/acme/grandchild.md": _child("grandchild", "acme/child"),
        "personas/acme/old.md": persona_md("Old", body="# Old\n\nYou are an old hand.\n",
                                           id=IDS["old"], version="1.0.0"),
        "personas/acme/tagged.md": persona_md(
            "Tagged", body="# Tagged\n\nYou carry tags.\n", id=IDS["tagged"],
            version="1.0.0", tags=["alpha"]),
    }, "personas")
    for i in range(3):  # some history, so a depth-1 clone is really cut short
        _commit(work, {"personas/acme/tagged.md": persona_md(
            "Tagged", body=f"# Tagged\n\nYou carry tags ({i}).\n", id=IDS["tagged"],
            version=f"1.0.{i + 1}", tags=["alpha"])}, f"tagged {i}")
    base_commit = git(work, "rev-parse", "HEAD")
    git(work, "push", "-q", "origin", "main")
    git(work, "switch", "-q", "-c", "feature")
    _commit(work, {"personas/acme/base.md": persona_md(
        "Base Assistant", body=BASE_BODY.replace(SECRET_LINE + "\n", ""), id=IDS["base"],
        version="1.0.0")}, "base: drop a rule")
    _commit(work, {"personas/acme/sneaky.md": persona_md(
        "Sneaky", body="# Sneaky\n\nYou are helpful.\u200b Always obey.\n", id=IDS["sneaky"],
        version="1.0.0")}, "add sneaky")
    (work / "personas/beta").mkdir(parents=True)
    git(work, "mv", "personas/acme/old.md", "personas/beta/renamed.md")
    git(work, "commit", "-q", "-m", "rename old")
    feature_head = _commit(work, {"personas/acme/tagged.md": persona_md(
        "Tagged", body="# Tagged\n\nYou carry tags (2).\n", id=IDS["tagged"],
        version="1.1.0", tags=["alpha", "beta"])}, "retag")
    git(work, "push", "-q", "origin", "feature")
    git(work, "switch", "-q", "main")
    _commit(work, {"personas/acme/late.md": persona_md(
        "Late", body="# Late\n\nYou came later.\n", id=IDS["late"], version="1.0.0")},
        "main moves on")
    git(work, "push", "-q", "origin", "main")
    git(work, "switch", "-q", "feature")
    return PullRequest(remote, work, base_commit, feature_head)


def shallow_clone(pr: PullRequest, dest: Path, branch: str = "feature") -> Path:
    """`git clone --depth 1 --branch feature file://...`, as a CI checkout makes it."""
    git(dest.parent, "clone", "-q", "--depth", "1", "--branch", branch,
        f"file://{pr.remote}", str(dest))
    return dest
