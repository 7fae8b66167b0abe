"""The commit plan, without a database: effective state, changes, events, problems."""

from __future__ import annotations

from datetime import UTC, datetime

from maestro_git.core.models import ChangeAction, CommitInfo, SourceFile
from maestro_git.core.plan import plan_commit
from maestro_git.core.snapshot import Snapshot, build_snapshot
from maestro_git.settings import Settings
from tests.factories import persona_md

S = Settings()
NOW = datetime(2026, 1, 2, tzinfo=UTC)


def info(commit: str) -> CommitInfo:
    return CommitInfo(commit, (), "Ada", "ada@example.com", "Ada", "ada@example.com", NOW,
                      "change")


def snap(commit: str, files: dict[str, str]) -> Snapshot:
    return build_snapshot([SourceFile(path=p, data=t.encode()) for p, t in files.items()], S,
                          commit)


def empty() -> Snapshot:
    return build_snapshot((), S, None)


def test_a_first_commit_plans_every_record_as_created() -> None:
    raw = snap("c1", {"personas/acme/a.md": persona_md("A"), "personas/acme/b.md": persona_md("B")})
    plan = plan_commit(info("c1"), empty(), raw, set(raw.files), {}, full=True, branch="main",
                       previously_invalid=None, now=NOW)
    assert sorted((c.action, c.key) for c in plan.changes) == [
        (ChangeAction.ADDED, "acme/a"), (ChangeAction.ADDED, "acme/b")]
    assert sorted((e.action, e.key) for e in plan.events) == [
        ("created", "acme/a"), ("created", "acme/b")]
    assert set(plan.new_effective.personas) == {"acme/a", "acme/b"}
    # every path of a full step maps to its problems (here a warning; apply records errors)
    assert {p: [x.rule for x in v] for p, v in plan.problems.items()} == {
        "personas/acme/a.md": ["missing-id"], "personas/acme/b.md": ["missing-id"]}


def test_an_invalid_edit_keeps_the_last_good_record_and_records_its_errors() -> None:
    good = snap("c1", {"personas/acme/a.md": persona_md("A", body="# A\n\nYou help.\n")})
    first = plan_commit(info("c1"), empty(), good, set(good.files), {}, full=True,
                        branch="main", previously_invalid=None, now=NOW)
    bad = snap("c2", {"personas/acme/a.md": "---\ndisplay_name: [x\n---\nbody\n"})
    plan = plan_commit(info("c2"), first.new_effective, bad, {"personas/acme/a.md"}, {},
                       full=False, branch="main", previously_invalid=good.invalid_paths,
                       now=NOW)
    assert plan.changes == () and plan.events == ()
    assert plan.new_effective.personas["acme/a"].body == "# A\n\nYou help.\n"
    assert "yaml-syntax" in [p.rule for p in plan.problems["personas/acme/a.md"]]
    fixed = snap("c3", {"personas/acme/a.md": persona_md("A", body="# A\n\nYou help more.\n")})
    again = plan_commit(info("c3"), plan.new_effective, fixed, {"personas/acme/a.md"}, {},
                        full=False, branch="main", previously_invalid=bad.invalid_paths,
                        now=NOW)
    assert [(c.action, c.key) for c in again.changes] == [(ChangeAction.MODIFIED, "acme/a")]
    assert [p.severity.value for p in again.problems["personas/acme/a.md"]] == ["warning"]


def test_a_rename_from_git_is_one_renamed_change() -> None:
    before = snap("c1", {"personas/acme/a.md": persona_md("A")})
    first = plan_commit(info("c1"), empty(), before, set(before.files), {}, full=True,
                        branch="main", previously_invalid=None, now=NOW)
    after = snap("c2", {"personas/acme/z.md": persona_md("A")})
    plan = plan_commit(info("c2"), first.new_effective, after,
                       {"personas/acme/a.md", "personas/acme/z.md"},
                       {"personas/acme/a.md": "personas/acme/z.md"}, full=False,
                       branch="main", previously_invalid=frozenset(), now=NOW)
    assert [(c.action, c.key, c.old_key) for c in plan.changes] == [
        (ChangeAction.RENAMED, "acme/z", "acme/a")]
    assert [e.action for e in plan.events] == ["renamed"]


def test_a_reconciled_rewrite_adds_a_history_rewritten_event_at_the_given_time() -> None:
    raw = snap("c9", {"personas/acme/a.md": persona_md("A")})
    plan = plan_commit(info("c9"), empty(), raw, set(raw.files), {}, full=True,
                       branch="main", previously_invalid=None, now=NOW,
                       rewritten_from="deadbeef0000")
    rewritten = [e for e in plan.events if e.action == "history_rewritten"]
    assert [(e.key, e.time, e.message) for e in rewritten] == [
        ("main", NOW, "deadbee is no longer on main; reconciled at c9")]
