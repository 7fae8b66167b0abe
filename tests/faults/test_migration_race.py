"""A migration's replay and a human `git commit` in the same checkout: nothing dropped."""

from __future__ import annotations

import subprocess
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from maestro_git.git.repo import Identity
from maestro_git.ops.migrate.replay import PlannedCommit, replay
from maestro_git.settings import Settings
from tests.factories import GitRepoFactory, persona_md


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                          timeout=30)


def test_a_human_commit_during_a_replay_never_drops_the_migrated_files(tmp_path: Path
                                                                       ) -> None:
    repo = GitRepoFactory.create(tmp_path / "repo")
    repo.commit({"personas/human/notes.md": persona_md("Notes")}, message="start")
    root = repo.path
    start = datetime(2024, 1, 1, tzinfo=UTC)
    who = Identity("Migrator", "migrator@example.com")
    commits = [PlannedCommit(start + timedelta(minutes=i), who, f"migrate {i}",
                             {f"personas/old/p{i:03d}.md": persona_md(f"P {i}").encode()})
               for i in range(120)]
    stop = threading.Event()
    human: list[str] = []

    def typing_human() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            (root / "personas/human/notes.md").write_text(persona_md(f"Notes {n}"))
            if _git(root, "add", "personas/human/notes.md").returncode == 0 and \
                    _git(root, "commit", "-q", "-m", f"human {n}").returncode == 0:
                human.append(str(n))

    thread = threading.Thread(target=typing_human)
    thread.start()
    try:
        ids = replay(Settings(repo_path=root), commits)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert len(ids) == 120
    tree = set(_git(root, "ls-tree", "-r", "--name-only", "HEAD").stdout.split())
    missing = [c for c in commits if next(iter(c.changes)) not in tree]
    assert missing == [], f"{len(missing)} migrated files dropped by a human commit"
    status = _git(root, "status", "--porcelain", "--", "personas/old").stdout
    assert status == ""
