from __future__ import annotations

from maestro_git.models import ChangeAction, SourceFile
from maestro_git.settings import Settings
from maestro_git.snapshot import build_snapshot, diff_snapshots, update_snapshot
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
