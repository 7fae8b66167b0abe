"""Fault drivers for library writes, reusable by the tests and by a long soak run.

Two races, each run in a fresh repository made under a given folder, each returning counts
(never asserting) so a caller decides what is a failure:

- `human_commit_race(folder, rounds)`: every round a "human" thread runs the real `git`
  program (`git add X && git commit`, retried the way a person retries a command that met
  another git process's lock) while `Repository.update` writes persona Y. Afterwards the head
  must hold both changes, no human commit may have touched Y (the human never edits it, so
  a change to Y in a human commit is a revert of the library's write), and `git status` must
  be clean.
- `concurrent_writers(folder, writers, writes)`: `writers` threads (or processes) each make
  `writes` updates to a persona of their own. Every write must be accepted, every accepted
  commit must hold its writer's content, and the first-parent history must show each
  persona's writes in order, none undone.

`scripts/soak.py` calls these with large numbers; the fault tests with small ones.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from maestro_git.errors import MaestroError
from maestro_git.repo.repository import Repository
from maestro_git.settings import Settings
from tests.factories import GitRepoFactory, persona_md

__all__ = ["RaceCounts", "WriterCounts", "concurrent_writers", "human_commit_race"]

HUMAN_FILE = "personas/human/notes.md"
LIBRARY_KEY = "acme/library"
LIBRARY_FILE = "personas/acme/library.md"
_GIT_DEADLINE = 30.0  # seconds a "human" keeps retrying one git command


@dataclass
class RaceCounts:
    """What `human_commit_race` saw, round by round."""

    rounds: int = 0
    human_commits: int = 0  # human commits that landed
    human_retries: int = 0  # git commands retried after meeting a lock or a moved HEAD
    library_writes: int = 0  # Repository.update calls that returned a commit
    library_refused: int = 0  # Repository.update calls that raised
    library_reverted: int = 0  # rounds where a human commit changed Y or the head lost Y
    human_undone: int = 0  # rounds where the head lacks the human's change to X
    status_dirty: int = 0  # rounds after which `git status --porcelain` was not empty
    errors: list[str] = field(default_factory=list)  # first messages, for the report

    @property
    def failures(self) -> int:
        return (self.library_refused + self.library_reverted + self.human_undone
                + self.status_dirty)


@dataclass
class WriterCounts:
    """What `concurrent_writers` saw."""

    attempted: int = 0
    accepted: int = 0
    refused: int = 0
    missing: int = 0  # accepted commits that do not hold their writer's content
    reverted: int = 0  # personas whose history on the branch is not their writes in order
    status_dirty: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def failures(self) -> int:
        return self.refused + self.missing + self.reverted + self.status_dirty


def _git_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull,
               GIT_AUTHOR_NAME="Human", GIT_AUTHOR_EMAIL="human@example.com",
               GIT_COMMITTER_NAME="Human", GIT_COMMITTER_EMAIL="human@example.com",
               GIT_OPTIONAL_LOCKS="0", LC_ALL="C")
    return env


def _git(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(path), *args], capture_output=True, text=True,
                          env=_git_env(), check=False)


def _retry_git(path: Path, counts: RaceCounts, *args: str) -> bool:
    """Run a git command until it succeeds, as a person would after a lock or a moved HEAD;
    False when there is nothing left to commit (the staged change was undone)."""
    deadline = time.monotonic() + _GIT_DEADLINE
    while True:
        done = _git(path, *args)
        if done.returncode == 0:
            return True
        if "nothing to commit" in done.stdout or "no changes added" in done.stdout:
            return False
        if time.monotonic() > deadline:
            raise RuntimeError(f"git {' '.join(args)} kept failing: "
                               f"{(done.stderr or done.stdout).strip()}")
        counts.human_retries += 1
        time.sleep(random.uniform(0.001, 0.005))


def _blob(repo: Repository, commit: str, path: str) -> bytes | None:
    return repo.git.read_file(commit, path)


def _status(path: Path) -> str:
    return _git(path, "status", "--porcelain", "--untracked-files=all").stdout.strip()


def human_commit_race(folder: Path, rounds: int = 30, seed: int = 0) -> RaceCounts:
    """Race the real `git add && git commit` of one file against `Repository.update` of
    another for `rounds` rounds in a new repository under `folder`; returns the counts."""
    factory = GitRepoFactory.create(folder / "human-race")
    factory.commit({LIBRARY_FILE: persona_md("Library", body="# Library\n\nround -1\n",
                                             version="1.0.0"),
                    HUMAN_FILE: persona_md("Notes", body="# Notes\n\nround -1\n",
                                           version="1.0.0")}, "seed")
    path = factory.path
    repo = Repository(Settings(repo_path=path, author_name="Library",
                               author_email="library@example.com"))
    rng = random.Random(seed)
    counts = RaceCounts()
    for i in range(rounds):
        before = repo.git.head("main")
        assert before is not None
        human_bytes = persona_md("Notes", body=f"# Notes\n\nround {i}\n",
                                 version=f"1.0.{i + 1}").encode()
        library_body = f"# Library\n\nround {i}\n"
        failures = _round(repo, path, counts, i, human_bytes, library_body,
                          (rng.uniform(0, 0.02), rng.uniform(0, 0.02)))
        counts.rounds += 1
        counts.errors.extend(failures[:3])
        head = repo.git.head("main")
        assert head is not None
        library_now = _blob(repo, head, LIBRARY_FILE) or b""
        if (library_body.encode() not in library_now
                or _touched(repo, before, head, "Human", LIBRARY_FILE)):
            counts.library_reverted += 1
        if (_blob(repo, head, HUMAN_FILE) != human_bytes
                or _touched(repo, before, head, "Library", HUMAN_FILE)):
            counts.human_undone += 1
        status = _status(path)
        if status:
            counts.status_dirty += 1
            counts.errors.append(f"round {i}: git status: {status}")
            _git(path, "reset", "-q", "--hard")  # next round starts clean
    return counts


def _round(repo: Repository, path: Path, counts: RaceCounts, i: int, human_bytes: bytes,
           library_body: str, delays: tuple[float, float]) -> list[str]:
    """One round: the human's `git add && git commit` against the library's update, started
    together and each delayed a little (a sweep over the phases of the two writers)."""
    barrier = threading.Barrier(2)
    failures: list[str] = []

    def human() -> None:
        try:
            barrier.wait(10)
            time.sleep(delays[0])
            (path / HUMAN_FILE).write_bytes(human_bytes)
            _retry_git(path, counts, "add", HUMAN_FILE)
            if _retry_git(path, counts, "commit", "-q", "-m", f"human round {i}"):
                counts.human_commits += 1
            else:
                failures.append(f"human round {i}: nothing staged to commit")
        except Exception as exc:  # reported in the counts, not lost in a thread
            failures.append(f"human round {i}: {exc}")

    def library() -> None:
        try:
            barrier.wait(10)
            time.sleep(delays[1])
            repo.update(LIBRARY_KEY, body=library_body)
            counts.library_writes += 1
        except Exception as exc:  # a refusal, or an error from a layer below
            counts.library_refused += 1
            failures.append(f"library round {i}: {exc!r}")

    threads = [threading.Thread(target=human), threading.Thread(target=library)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(_GIT_DEADLINE * 2)
    return failures


def _touched(repo: Repository, since: str, head: str, author: str, path: str) -> bool:
    """Whether a commit by `author` between `since` and `head` changed `path` (the other
    writer's file, which that author never edits: a change is a revert)."""
    for commit in repo.git.first_parent_chain(since, head):
        info = repo.git.commit_info(commit)
        if info.author_name != author or not info.parents:
            continue
        if _blob(repo, commit, path) != _blob(repo, info.parents[0], path):
            return True
    return False


def _writer_key(k: int) -> str:
    return f"acme/writer{k}"


def _writer_body(k: int, j: int) -> str:
    return f"# Writer {k}\n\nwrite {j}\n"


def _write_many(path: Path, k: int, writes: int, start: Callable[[], object],
                report: Callable[[str], None]) -> None:
    repo = Repository(Settings(repo_path=path, author_name=f"Writer {k}",
                               author_email=f"writer{k}@example.com"))
    start()
    for j in range(writes):
        try:
            commit = repo.update(_writer_key(k), body=_writer_body(k, j))
            report(f"ok {k} {j} {commit}")
        except MaestroError as exc:
            report(f"refused {k} {j} {exc}")


def _process_main(path: str, k: int, writes: int, go: multiprocessing.synchronize.Event,
                  out: multiprocessing.queues.Queue[str]) -> None:
    _write_many(Path(path), k, writes, lambda: go.wait(60), out.put)
    out.put(f"done {k}")


def concurrent_writers(folder: Path, writers: int = 8, writes: int = 10,
                       processes: bool = False) -> WriterCounts:
    """`writers` threads (or processes) each updating their own persona `writes` times, all
    at once, in a new repository under `folder`; returns the counts."""
    factory = GitRepoFactory.create(folder / f"writers-{'p' if processes else 't'}")
    factory.commit({f"personas/{_writer_key(k)}.md": persona_md(
        f"Writer {k}", body=f"# Writer {k}\n\nseed\n", version="1.0.0")
        for k in range(writers)}, "seed")
    path = factory.path
    seed = factory.head()
    lines: list[str] = []
    if processes:
        ctx = multiprocessing.get_context("spawn")
        go = ctx.Event()
        out: multiprocessing.queues.Queue[str] = ctx.Queue()
        procs = [ctx.Process(target=_process_main, args=(str(path), k, writes, go, out))
                 for k in range(writers)]
        for p in procs:
            p.start()
        go.set()
        done = 0
        while done < writers:
            line = out.get(timeout=300)
            if line.startswith("done "):
                done += 1
            else:
                lines.append(line)
        for p in procs:
            p.join(60)
    else:
        barrier = threading.Barrier(writers)
        lock = threading.Lock()

        def report(line: str) -> None:
            with lock:
                lines.append(line)

        threads = [threading.Thread(target=_write_many,
                                    args=(path, k, writes, lambda: barrier.wait(30), report))
                   for k in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
    return _judge(path, seed, writers, writes, lines)


def _judge(path: Path, seed: str, writers: int, writes: int, lines: list[str]) -> WriterCounts:
    repo = Repository(Settings(repo_path=path))
    counts = WriterCounts(attempted=writers * writes)
    for line in lines:
        kind, k, j, rest = line.split(" ", 3)
        if kind == "ok":
            counts.accepted += 1
            data = repo.git.read_file(rest, f"personas/{_writer_key(int(k))}.md") or b""
            if _writer_body(int(k), int(j)).encode() not in data:
                counts.missing += 1
        else:
            counts.refused += 1
            if len(counts.errors) < 5:
                counts.errors.append(f"writer {k} write {j}: {rest}")
    head = repo.git.head("main")
    assert head is not None
    chain = repo.git.first_parent_chain(seed, head)
    for k in range(writers):
        file = f"personas/{_writer_key(k)}.md"
        seen: list[bytes] = []
        for commit in [seed, *chain]:
            data = repo.git.read_file(commit, file) or b""
            if not seen or seen[-1] != data:
                seen.append(data)
        order = [next((j for j in range(writes) if _writer_body(k, j).encode() in s), -1)
                 for s in seen[1:]]
        in_order = all(a < b for a, b in zip(order, order[1:], strict=False))
        if -1 in order or not in_order or (counts.refused == 0
                                           and order != list(range(writes))):
            counts.reverted += 1
    if _status(path):
        counts.status_dirty += 1
    return counts
