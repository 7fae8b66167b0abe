from __future__ import annotations

from maestro_git.core.models import ChangeAction, SourceFile
from maestro_git.core.snapshot import build_snapshot, diff_snapshots, update_snapshot
from maestro_git.settings import Settings
from tests.factories import persona_md

S = Settings()


def src(path: str, text: str) -> SourceFile:
    return SourceFile(path=path, data=text.encode())


def test_snapshot_indexes_personas_by_owner_and_name() -> None:
    snap = build_snapshot([src("personas/acme/reviewer.md", persona_md(tags=["review"]))], S)
    assert list(snap.personas) == ["acme/reviewer"]
    assert snap.personas["acme/reviewer"].tags == ("review",)
    assert snap.ok


def test_rename_with_same_id_is_one_change() -> None:
    ident = "2f1c6f0e-8a4b-4d59-9c43-1f4f1a8f2c11"
    old = build_snapshot([src("personas/acme/a.md", persona_md(id=ident))], S)
    new = update_snapshot(old, [src("personas/beta/b.md", persona_md(id=ident))],
                          ["personas/acme/a.md"], S)
    changes = diff_snapshots(old, new)
    assert [(c.action, c.key, c.old_key) for c in changes] == [
        (ChangeAction.RENAMED, "beta/b", "acme/a")]


def test_missing_parent_makes_the_file_invalid() -> None:
    snap = build_snapshot([src("personas/acme/a.md", persona_md(extends="acme/nope"))], S)
    assert snap.invalid_paths == {"personas/acme/a.md"}
    assert [p.rule for p in snap.problems if p.severity.value == "error"] == ["missing-parent"]


# -- incremental updates equal a fresh build ------------------------------------------------

import json  # noqa: E402

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from maestro_git.core.snapshot import Snapshot  # noqa: E402

IDS = ["0b7e4c52-1d8f-4a3e-9b6c-2e5f7a8d9c10", "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f"]


def same(a: Snapshot, b: Snapshot) -> None:
    assert {p: f.content_hash for p, f in a.files.items()} == {
        p: f.content_hash for p, f in b.files.items()}
    assert dict(a.personas) == dict(b.personas)
    assert dict(a.templates) == dict(b.templates)
    assert dict(a.sets) == dict(b.sets)
    assert set(a.asset_paths) == set(b.asset_paths)
    assert a.problems == b.problems
    assert a.invalid_paths == b.invalid_paths


FILES = {
    "personas/a/p.md": [persona_md(id=IDS[0]), persona_md(id=IDS[1], extends="a/q"),
                        persona_md(extends="a/r"), "---\nbad: [\n---\n"],
    "personas/a/q.md": [persona_md(id=IDS[0], extends="a/p"), persona_md(extends="a/r"),
                        persona_md(id=IDS[1])],
    "personas/a/r.md": [persona_md(), persona_md(extends="a/p"), persona_md(id=IDS[1])],
    "templates/t.md": [persona_md(id=IDS[0]), persona_md(category="x")],
    "persona_sets/s.json": [json.dumps({"personas": [{"name": "m", "image_url":
                                                      "s/images/m.png"}]}), "{"],
    "persona_sets/s/set.json": [json.dumps({"personas": [{"name": "m", "image_url":
                                                          "images/m.png"}]})],
    "persona_sets/s/images/m.png": ["\x89PNG"],
    "personas/stray.md": ["x"],
}
OPS = st.lists(st.tuples(st.sampled_from(sorted(FILES)), st.integers(0, 3), st.booleans()),
               min_size=1, max_size=12)


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(ops=OPS)
def test_update_snapshot_equals_build_snapshot(ops: list[tuple[str, int, bool]]) -> None:
    current: dict[str, str] = {}
    snap = build_snapshot([], S)
    for path, variant, remove in ops:
        if remove:
            current.pop(path, None)
            snap = update_snapshot(snap, [], [path], S)
        else:
            text = FILES[path][variant % len(FILES[path])]
            current[path] = text
            snap = update_snapshot(snap, [src(path, text)], [], S)
        same(snap, build_snapshot([src(p, t) for p, t in current.items()], S))


def test_removing_a_parent_invalidates_its_children_and_restoring_it_heals_them() -> None:
    snap = build_snapshot([src("personas/a/p.md", persona_md()),
                           src("personas/a/c.md", persona_md(extends="a/p")),
                           src("personas/a/g.md", persona_md(extends="a/c"))], S)
    assert snap.invalid_paths == set()
    gone = update_snapshot(snap, [], ["personas/a/p.md"], S)
    assert gone.invalid_paths == {"personas/a/c.md", "personas/a/g.md"}
    back = update_snapshot(gone, [src("personas/a/p.md", persona_md())], [], S)
    assert back.invalid_paths == set()
    assert snap.invalid_paths == set()  # the old snapshot is untouched


def test_an_image_added_later_makes_the_set_valid() -> None:
    body = json.dumps({"personas": [{"name": "m", "image_url": "images/m.png"}]})
    snap = build_snapshot([src("persona_sets/s/set.json", body)], S)
    assert [p.rule for p in snap.problems] == ["set-image-missing"]
    fixed = update_snapshot(snap, [SourceFile(path="persona_sets/s/images/m.png",
                                              data=b"\x89PNG\x00")], [], S)
    assert fixed.problems == () and "persona_sets/s/images/m.png" in fixed.asset_paths


def test_descendants_of_a_key_come_from_the_snapshot_index() -> None:
    snap = build_snapshot([src("personas/a/p.md", persona_md()),
                           src("personas/a/c.md", persona_md(extends="a/p")),
                           src("personas/b/g.md", persona_md(extends="a/c"))], S)
    assert snap.children_of("a/p") == ["a/c"]
    assert snap.descendants_of("a/p") == ["a/c", "b/g"]


def test_a_hand_built_snapshot_still_answers_lookups() -> None:
    built = build_snapshot([src("personas/a/p.md", persona_md(id=IDS[0]))], S)
    bare = Snapshot(None, built.files, built.personas, built.templates, built.sets, ())
    assert bare.paths_for_id(IDS[0]) == ("personas/a/p.md",)
    assert bare.problems_for("personas/a/p.md") == built.problems_for("personas/a/p.md")


def test_coalesced_changes_name_each_entity_once_with_its_last_change() -> None:
    from maestro_git.core.models import Change
    from maestro_git.core.snapshot import coalesce_changes

    def ch(action: ChangeAction, key: str, old_key: str | None = None) -> Change:
        return Change(action=action, kind="persona", key=key, old_key=old_key,
                      path=None if action is ChangeAction.REMOVED else f"personas/{key}.md",
                      old_path=f"personas/{old_key or key}.md")

    out = coalesce_changes([
        ch(ChangeAction.ADDED, "a/x"), ch(ChangeAction.MODIFIED, "a/x"),
        ch(ChangeAction.RENAMED, "a/y", old_key="a/x"), ch(ChangeAction.MODIFIED, "a/y"),
        ch(ChangeAction.ADDED, "a/z"), ch(ChangeAction.REMOVED, "a/z"),
    ])
    assert [(c.action, c.key) for c in out] == [
        (ChangeAction.REMOVED, "a/x"), (ChangeAction.MODIFIED, "a/y"),
        (ChangeAction.REMOVED, "a/z")]
    brought_back = coalesce_changes([ch(ChangeAction.RENAMED, "a/y", old_key="a/x"),
                                     ch(ChangeAction.ADDED, "a/x")])
    assert [(c.action, c.key) for c in brought_back] == [
        (ChangeAction.RENAMED, "a/y"), (ChangeAction.ADDED, "a/x")]
