"""Audit events: the pure derivation per commit, and `Repository.log` over the branch."""

from __future__ import annotations

from datetime import UTC, datetime

from maestro_git.core.audit import events_for_commit, parse_rollback, rollback_message
from maestro_git.core.models import CommitInfo, SourceFile
from maestro_git.core.snapshot import build_snapshot, diff_snapshots
from maestro_git.repo.repository import Repository
from maestro_git.settings import Settings
from tests.factories import GitRepoFactory, mirror_sql, persona_md

SETTINGS = Settings()
WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
UUID_A = "3f0f3c1e-8a51-4a53-9d38-5b8c7c1e0a11"


def _info(message: str = "change") -> CommitInfo:
    return CommitInfo(id="c" * 40, parents=("p" * 40,), author_name="Ada",
                      author_email="ada@example.com", committer_name="Bot",
                      committer_email="bot@example.com", time=WHEN, message=message)


def _snap(files: dict[str, str]) -> object:
    return build_snapshot([SourceFile(path=p, data=t.encode()) for p, t in files.items()],
                          SETTINGS)


def test_each_changed_entity_becomes_one_event_by_the_author() -> None:
    old = build_snapshot([
        SourceFile(path="personas/acme/a.md", data=persona_md("A", id="id-a").encode()),
        SourceFile(path="personas/acme/b.md", data=persona_md("B").encode()),
        SourceFile(path="personas/acme/c.md", data=persona_md("C", id="id-c").encode()),
    ], SETTINGS)
    new = build_snapshot([
        SourceFile(path="personas/acme/a.md", data=persona_md("A2", id="id-a").encode()),
        SourceFile(path="personas/beta/c.md", data=persona_md("C", id="id-c").encode()),
        SourceFile(path="templates/t.md", data=persona_md("T").encode()),
    ], SETTINGS)
    events = events_for_commit(_info(), diff_snapshots(old, new), old, new)
    assert sorted((e.action, e.kind, e.key, e.old_key) for e in events) == [
        ("created", "template", "t", None),
        ("deleted", "persona", "acme/b", None),
        ("renamed", "persona", "beta/c", "acme/c"),
        ("updated", "persona", "acme/a", None),
    ]
    assert {(e.actor_name, e.actor_email, e.time, e.commit) for e in events} == {
        ("Ada", "ada@example.com", WHEN, "c" * 40)}


def test_a_rollback_commit_yields_rolled_back_for_its_key_only() -> None:
    old = build_snapshot([
        SourceFile(path="personas/acme/a.md", data=persona_md("A").encode()),
        SourceFile(path="personas/acme/b.md", data=persona_md("B").encode())], SETTINGS)
    new = build_snapshot([
        SourceFile(path="personas/acme/a.md", data=persona_md("A2").encode()),
        SourceFile(path="personas/acme/b.md", data=persona_md("B2").encode())], SETTINGS)
    message = rollback_message("acme/a", "1.2.0", "abcdef1234567")
    events = events_for_commit(_info(message), diff_snapshots(old, new), old, new)
    assert sorted((e.key, e.action) for e in events) == [("acme/a", "rolled_back"),
                                                         ("acme/b", "updated")]


def test_rollback_message_round_trips() -> None:
    text = rollback_message("acme/a", "1.2.0", "abcdef1234567890")
    assert "Rollback to version 1.2.0 (commit abcdef1)" in text
    found = parse_rollback(text)
    assert found is not None
    assert (found.version, found.commit, found.keys) == ("1.2.0", "abcdef1", ("acme/a",))
    assert parse_rollback("Update acme/a") is None


def test_a_root_commit_has_no_old_snapshot() -> None:
    new = build_snapshot([SourceFile(path="personas/acme/a.md",
                                     data=persona_md("A").encode())], SETTINGS)
    empty = build_snapshot([], SETTINGS)
    events = events_for_commit(_info(), diff_snapshots(empty, new), None, new)
    assert [(e.action, e.key) for e in events] == [("created", "acme/a")]


def test_log_lists_the_branch_events_newest_first(git_repo: GitRepoFactory) -> None:
    git_repo.commit({"personas/acme/a.md": persona_md("A", id=UUID_A)}, "create a",
                    author=("Ada", "ada@example.com"), time=1_767_225_600)  # 2026-01-01
    repo = Repository(Settings(repo_path=git_repo.path))
    repo.create("acme/b", "# B\n\nBe brief.\n", author="Bob <bob@example.com>")
    repo.rename("acme/a", "beta/a", author="Bob <bob@example.com>")
    first_b = repo.history("acme/b")[-1].commit
    repo.update("acme/b", body="# B\n\nBe very brief.\n", author="Cy <cy@example.com>")
    repo.rollback("acme/b", first_b, author="Cy <cy@example.com>")
    events = repo.log()
    assert [(e.action, e.key, e.actor_name) for e in events] == [
        ("rolled_back", "acme/b", "Cy"), ("updated", "acme/b", "Cy"),
        ("renamed", "beta/a", "Bob"), ("created", "acme/b", "Bob"),
        ("created", "acme/a", "Ada")]
    assert [e.key for e in repo.log("beta/a")] == ["beta/a", "acme/a"]
    assert [e.action for e in repo.log(author="CY@")] == ["rolled_back", "updated"]
    since = datetime(2026, 1, 2, tzinfo=UTC)
    assert "acme/a" not in {e.key for e in repo.log(since=since)}
    assert repo.commit_events(events[0].commit) == [events[0]]


def test_log_agrees_with_the_mirrors_audit_events(git_repo: GitRepoFactory,
                                                  database_url: str) -> None:

    from maestro_git.mirror import sync

    uuid_b = "9d1e6b0a-4c2f-4f7e-8a3d-2b5c6d7e8f90"
    git_repo.commit({"personas/acme/a.md": persona_md("A", id=UUID_A),
                     "personas/acme/b.md": persona_md("B", id=uuid_b)}, "create")
    git_repo.commit({"personas/acme/a.md": "---\ndisplay_name: [broken\n---\nbody\n"}, "break a")
    git_repo.commit({"personas/acme/a.md": persona_md("A fixed", id=UUID_A)}, "fix a")
    settings = Settings(repo_path=git_repo.path, database_url=database_url)
    repo = Repository(settings)
    repo.rename("acme/b", "beta/b")
    first = repo.history("acme/a")[-1].commit
    repo.rollback("acme/a", first)
    repo.delete("beta/b")
    sync.sync(settings)
    with mirror_sql(database_url) as conn:
        mirrored = conn.execute(
            "SELECT commit, action, kind, key, old_key, actor_email FROM audit_events "
            "WHERE kind <> 'repository' ORDER BY id").fetchall()
    logged = [(e.commit, e.action, e.kind, e.key, e.old_key, e.actor_email)
              for e in reversed(repo.log())]
    assert sorted(logged) == sorted(mirrored)
    assert [row[1] for row in logged] == ["created", "created", "updated", "renamed",
                                          "rolled_back", "deleted"]
