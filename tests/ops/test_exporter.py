"""Exporting personas, templates and persona sets for use and sharing elsewhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from maestro_git.errors import NotFoundError, UsageError, ValidationFailed
from maestro_git.ops.exporter import export_all, export_entity
from maestro_git.ops.importer import import_paths
from maestro_git.settings import Settings, load_settings
from tests.factories import GitRepoFactory, persona_md

PARENT = persona_md("Base", body="# Base\n\n## Safety\nNever share secrets.\n\n## Style\nBe brief.\n")
CHILD = persona_md("Reviewer", extends="acme/base",
                   body="# Reviewer\n\n## Style\nBe thorough.\n\n## Checklist\n1. Tests.\n")
SET = b'{\n  "name": "Set one",\n  "personas": [{"name": "Ana"}],\n  "metadata": {}\n}\n'


def _settings(repo: GitRepoFactory) -> Settings:
    return load_settings(repo.path, environ={})


@pytest.fixture
def repo(git_repo: GitRepoFactory) -> GitRepoFactory:
    git_repo.commit({"personas/acme/base.md": PARENT, "personas/acme/reviewer.md": CHILD,
                     "persona_sets/set1/set.json": SET,
                     "templates/helper.md": "---\ncategory: general\n---\n# Helper\n\nHelp.\n"},
                    "content")
    return git_repo


def test_export_resolved_of_a_child_contains_the_parents_sections(repo: GitRepoFactory) -> None:
    text = export_entity(_settings(repo), "acme/reviewer", resolved=True).decode()
    assert "## Safety\nNever share secrets." in text  # the parent's section
    assert "Be thorough." in text and "Be brief." not in text  # the child's override
    assert text.startswith("# Reviewer") and "---" not in text.splitlines()[0]


def test_export_md_is_the_instruction_alone(repo: GitRepoFactory) -> None:
    data = export_entity(_settings(repo), "acme/reviewer")
    assert data == CHILD.split("---\n", 2)[2].encode()


def test_export_then_import_gives_the_same_body(repo: GitRepoFactory, tmp_path: Path) -> None:
    settings = _settings(repo)
    shared = tmp_path / "reviewer.md"
    shared.write_bytes(export_entity(settings, "acme/base", frontmatter=True))
    other = GitRepoFactory.create(tmp_path / "other")
    result = import_paths(_settings(other), [shared])
    assert result.items[0].key == "acme/base"  # owner and name travel in the frontmatter
    imported = export_entity(_settings(other), "acme/base")
    assert imported == export_entity(settings, "acme/base")


def test_export_json_is_the_record_with_the_resolved_body(repo: GitRepoFactory) -> None:
    doc = json.loads(export_entity(_settings(repo), "acme/reviewer", fmt="json",
                                   resolved=True))
    assert doc["key"] == "acme/reviewer" and doc["extends"] == "acme/base"
    assert doc["chain"] == ["acme/base", "acme/reviewer"]
    assert "Never share secrets." in doc["resolved_body"]


def test_a_persona_set_exports_as_its_json_bytes(repo: GitRepoFactory) -> None:
    assert export_entity(_settings(repo), "set1") == SET
    with pytest.raises(UsageError):
        export_entity(_settings(repo), "set1", fmt="md")


def test_export_reads_any_revision(repo: GitRepoFactory) -> None:
    first = repo.head()
    repo.commit({"personas/acme/base.md": PARENT.replace("Be brief.", "Be short.")}, "edit")
    settings = _settings(repo)
    assert b"Be short." in export_entity(settings, "acme/base")
    assert b"Be brief." in export_entity(settings, "acme/base", rev=first)


def test_an_unknown_or_invalid_key_is_refused(repo: GitRepoFactory) -> None:
    with pytest.raises(NotFoundError):
        export_entity(_settings(repo), "acme/nobody")
    repo.write({"personas/acme/broken.md": "---\nversion: one\n---\nx\n"})
    with pytest.raises(ValidationFailed):
        export_entity(_settings(repo), "acme/broken")


def test_export_all_writes_the_repository_layout_and_skips_invalid_files(
    repo: GitRepoFactory, tmp_path: Path
) -> None:
    repo.write({"personas/acme/broken.md": "---\nversion: one\n---\nx\n"})
    result = export_all(_settings(repo), tmp_path / "out")
    assert set(result.written) == {"personas/acme/base.md", "personas/acme/reviewer.md",
                                   "templates/helper.md", "persona_sets/set1/set.json"}
    assert result.skipped == ("personas/acme/broken.md",)
    assert (tmp_path / "out/persona_sets/set1/set.json").read_bytes() == SET
    other = GitRepoFactory.create(tmp_path / "other")
    imported = import_paths(_settings(other), [tmp_path / "out"])
    assert {i.key for i in imported.items} == {"acme/base", "acme/reviewer", "helper", "set1"}
    assert {i.kind for i in imported.items if i.key == "helper"} == {"template"}


def test_export_all_keeps_a_sets_folder_with_its_images_so_the_bundle_imports(
    git_repo: GitRepoFactory, tmp_path: Path
) -> None:
    with_image = (b'{"name": "Pictured", "personas": '
                  b'[{"name": "Ana", "image_url": "images/ana.png"}]}\n')
    png = b"\x89PNG\r\n\x1a\nnot really"
    git_repo.commit({"persona_sets/pictured/set.json": with_image,
                     "persona_sets/pictured/images/ana.png": png}, "a set with an image")
    for rev in (None, git_repo.head()):  # the working tree and a commit read the same
        out = tmp_path / f"out-{rev}"
        result = export_all(_settings(git_repo), out, rev=rev)
        assert result.written == ("persona_sets/pictured/images/ana.png",
                                  "persona_sets/pictured/set.json")
        assert (out / "persona_sets/pictured/images/ana.png").read_bytes() == png
    other = GitRepoFactory.create(tmp_path / "other")
    imported = import_paths(_settings(other), [tmp_path / "out-None"])
    assert [(i.key, i.path) for i in imported.items] == [("pictured",
                                                          "persona_sets/pictured/set.json")]
    assert imported.problems == ()
    assert (other.path / "persona_sets/pictured/images/ana.png").read_bytes() == png
    assert (other.path / "persona_sets/pictured/set.json").read_bytes() == with_image
