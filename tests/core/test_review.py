"""Version discipline: a changed persona or template must raise its semver."""

from __future__ import annotations

import pytest

from maestro_git.core.models import SourceFile
from maestro_git.core.rules.versions import bump_patch, compare_versions, version_problems
from maestro_git.core.snapshot import Snapshot, build_snapshot
from maestro_git.settings import Settings
from tests.factories import persona_md


def _snap(files: dict[str, str], commit: str | None = None) -> Snapshot:
    return build_snapshot([SourceFile(path=p, data=t.encode()) for p, t in files.items()],
                          Settings(), commit)


def test_changed_content_without_a_higher_version_is_an_error() -> None:
    base = _snap({"personas/acme/a.md": persona_md("A", version="1.2.0")}, "a" * 40)
    head = _snap({"personas/acme/a.md": persona_md("A changed", version="1.2.0")})
    [problem] = version_problems(base, head)
    assert problem.rule == "version-not-raised"
    assert problem.severity.value == "error"
    assert problem.path == "personas/acme/a.md"
    assert problem.message == ("persona acme/a changed since aaaaaaa but its version is "
                               "still 1.2.0")
    assert problem.fix.startswith("raise version to 1.2.1")


def test_a_raised_version_or_unchanged_content_passes() -> None:
    base = _snap({"personas/acme/a.md": persona_md("A", version="1.2.0"),
                  "templates/t.md": persona_md("T", version="1.0.0")})
    head = _snap({"personas/acme/a.md": persona_md("A changed", version="1.3.0-rc.1"),
                  "templates/t.md": persona_md("T", version="1.0.0"),
                  "personas/acme/new.md": persona_md("New", version="0.1.0")})
    assert version_problems(base, head) == []


def test_a_version_that_goes_down_is_an_error_even_without_changes() -> None:
    base = _snap({"templates/t.md": persona_md("T", version="2.0.0")})
    head = _snap({"templates/t.md": persona_md("T", version="1.9.9")})
    [problem] = version_problems(base, head)
    assert problem.message == "template t version went down from 2.0.0 at the base to 1.9.9"


def test_a_renamed_persona_is_judged_by_its_id() -> None:
    base = _snap({"personas/acme/a.md": persona_md("A", id="same", version="1.0.0")})
    head = _snap({"personas/beta/a.md": persona_md("A edited", id="same", version="1.0.0")})
    assert [p.path for p in version_problems(base, head)] == ["personas/beta/a.md"]


@pytest.mark.parametrize(("a", "b", "order"), [
    ("1.0.0", "1.0.0", 0), ("1.0.1", "1.0.0", 1), ("1.10.0", "1.9.0", 1),
    ("1.0.0-rc.1", "1.0.0", -1), ("1.0.0-rc.2", "1.0.0-rc.10", -1),
    ("1.0.0-alpha", "1.0.0-1", 1), ("1.0.0+build", "1.0.0", 0), ("x", "1.0.0", None)])
def test_versions_compare_by_semver_precedence(a: str, b: str, order: int | None) -> None:
    assert compare_versions(a, b) == order


def test_bump_patch() -> None:
    assert bump_patch("1.2.3") == "1.2.4"
    assert bump_patch("1.3.0-rc.1") == "1.3.0"
    assert bump_patch("not semver") == "1.0.0"
