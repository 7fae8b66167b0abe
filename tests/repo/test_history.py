"""History of one persona from git: renames, moves, merges, deletions."""

from __future__ import annotations

import shutil
import subprocess

import pygit2
import pytest

from maestro_git.errors import NotFoundError
from maestro_git.repo.repository import Repository
from maestro_git.settings import Settings
from tests.factories import DEFAULT_AUTHOR, GitRepoFactory, persona_md

ID = "0b6c3f2e-9a47-4d1c-8f55-3f1d7b2a9c01"
LONG = "".join(f"Rule {i}: review code with care and explain each finding.\n" for i in range(30))


def _repo(factory: GitRepoFactory) -> Repository:
    return Repository(Settings(repo_path=factory.path))


def _doc(version: str, body: str = LONG, **extra: object) -> str:
    return persona_md("Reviewer", body="# Reviewer\n\n" + body, id=ID, version=version,
                      **extra)


def test_history_lists_only_commits_that_changed_the_persona(git_repo: GitRepoFactory) -> None:
    a = git_repo.commit({"personas/acme/rev.md": _doc("1.0.0")}, "create")
    git_repo.commit({"personas/acme/other.md": persona_md("Other")}, "unrelated")
    b = git_repo.commit({"personas/acme/rev.md": _doc("1.0.1", LONG + "More.\n")}, "edit")
    versions = _repo(git_repo).history("acme/rev")
    assert [(v.commit, v.action, v.version) for v in versions] == [
        (b, "updated", "1.0.1"), (a, "created", "1.0.0")]
    assert versions[0].message == "edit"
    assert versions[0].author_email == DEFAULT_AUTHOR[1]
    assert versions[0].content_hash is not None and len(versions[0].content_hash) == 64


def test_rename_and_edit_in_one_commit_keep_identity_and_history(
        git_repo: GitRepoFactory) -> None:
    a = git_repo.commit({"personas/acme/rev.md": _doc("1.0.0")}, "create")
    # A new name and a rewritten body: too different for git's similarity, same id.
    b = git_repo.commit({"personas/acme/rev.md": None,
                         "personas/acme/critic.md": _doc("2.0.0", "Completely new text.\n")},
                        "rename and rewrite")
    versions = _repo(git_repo).history("acme/critic")
    assert [(v.commit, v.action, v.key) for v in versions] == [
        (b, "renamed", "acme/critic"), (a, "created", "acme/rev")]
    assert versions[1].path == "personas/acme/rev.md"


def test_history_follows_a_move_between_owners(git_repo: GitRepoFactory) -> None:
    a = git_repo.commit({"personas/acme/rev.md": _doc("1.0.0")}, "create")
    b = git_repo.commit({"personas/acme/rev.md": _doc("1.1.0", LONG + "x\n")}, "edit")
    c = git_repo.commit({"personas/acme/rev.md": None, "personas/beta/rev.md": _doc("1.1.0",
                         LONG + "x\n")}, "move to beta")
    d = git_repo.commit({"personas/beta/rev.md": _doc("1.2.0", LONG + "y\n")}, "edit again")
    versions = _repo(git_repo).history("beta/rev")
    assert [v.commit for v in versions] == [d, c, b, a]
    assert [v.key for v in versions] == ["beta/rev", "beta/rev", "acme/rev", "acme/rev"]
    assert versions[1].action == "renamed"


def test_history_follows_git_rename_detection_without_an_id(git_repo: GitRepoFactory) -> None:
    text = persona_md("Plain", body="# Plain\n\n" + LONG)  # no `id` in the frontmatter
    a = git_repo.commit({"personas/acme/plain.md": text})
    b = git_repo.commit({"personas/acme/plain.md": None, "personas/zeta/plain.md": text + "z\n"})
    assert [v.commit for v in _repo(git_repo).history("zeta/plain")] == [b, a]


def _branch_commit(factory: GitRepoFactory, parent: str, files: dict[str, str | None],
                   message: str) -> str:
    """A commit on a side line, built from `parent` without moving HEAD."""
    repo = factory.repo
    index = pygit2.Index()
    index.read_tree(repo[parent].tree)
    for path, text in files.items():
        if text is None:
            index.remove(path)
        else:
            index.add(pygit2.IndexEntry(path, repo.create_blob(text.encode()),
                                        pygit2.enums.FileMode.BLOB))
    tree = index.write_tree(repo)
    sig = pygit2.Signature("Branch Author", "branch@example.com")
    return str(repo.create_commit(None, sig, sig, message, tree, [repo[parent].id]))


def _merge(factory: GitRepoFactory, theirs: str, files: dict[str, str | None] | None = None,
           message: str = "merge") -> str:
    repo = factory.repo
    ours = factory.head()
    index = repo.merge_trees(repo.merge_base(ours, theirs), ours, theirs)
    for path, text in (files or {}).items():
        if index.conflicts is not None and path in index.conflicts:
            del index.conflicts[path]
        if text is not None:
            index.add(pygit2.IndexEntry(path, repo.create_blob(text.encode()),
                                        pygit2.enums.FileMode.BLOB))
    assert index.conflicts is None or files
    tree = index.write_tree(repo)
    sig = pygit2.Signature("Merger", "merger@example.com")
    merge = repo.create_commit("HEAD", sig, sig, message, tree, [repo[ours].id, repo[theirs].id])
    repo.checkout_head(strategy=pygit2.enums.CheckoutStrategy.FORCE)
    return str(merge)


def test_clean_merge_reports_the_branch_commit_not_the_merge(git_repo: GitRepoFactory) -> None:
    a = git_repo.commit({"personas/acme/rev.md": _doc("1.0.0")}, "create")
    side = _branch_commit(git_repo, a, {"personas/acme/rev.md": _doc("1.1.0", LONG + "b\n")},
                          "edit on a branch")
    git_repo.commit({"personas/acme/other.md": persona_md("Other")}, "main moves on")
    _merge(git_repo, side)
    versions = _repo(git_repo).history("acme/rev")
    assert [v.commit for v in versions] == [side, a]
    assert versions[0].author_name == "Branch Author"


def test_merge_that_resolves_a_conflict_is_a_version(git_repo: GitRepoFactory) -> None:
    a = git_repo.commit({"personas/acme/rev.md": _doc("1.0.0")}, "create")
    side = _branch_commit(git_repo, a, {"personas/acme/rev.md": _doc("1.1.0", "Theirs.\n")},
                          "theirs")
    ours = git_repo.commit({"personas/acme/rev.md": _doc("1.2.0", "Ours.\n")}, "ours")
    merge = _merge(git_repo, side, {"personas/acme/rev.md": _doc("1.3.0", "Both.\n")})
    versions = _repo(git_repo).history("acme/rev")
    assert [v.commit for v in versions][0] == merge
    assert {v.commit for v in versions} == {merge, ours, side, a}
    assert versions[-1].commit == a


@pytest.mark.skipif(shutil.which("git") is None, reason="needs the git command as an oracle")
def test_history_agrees_with_git_log_on_a_merged_history(git_repo: GitRepoFactory) -> None:
    a = git_repo.commit({"personas/acme/rev.md": _doc("1.0.0")}, "create", time=1_700_000_000)
    s1 = _branch_commit(git_repo, a, {"personas/acme/rev.md": _doc("1.1.0", LONG + "1\n")}, "s1")
    s2 = _branch_commit(git_repo, s1, {"personas/acme/x.md": persona_md("X")}, "s2")
    git_repo.commit({"personas/acme/y.md": persona_md("Y")}, "main", time=1_700_000_100)
    _merge(git_repo, s2)
    git_repo.commit({"personas/acme/rev.md": _doc("1.2.0", LONG + "2\n")}, "after",
                    time=1_700_000_200)
    ours = [v.commit for v in _repo(git_repo).history("acme/rev")]
    theirs = subprocess.run(["git", "log", "--format=%H", "--", "personas/acme/rev.md"],
                            cwd=git_repo.path, capture_output=True, text=True, check=True)
    assert ours == theirs.stdout.split()


def test_history_of_a_deleted_persona_starts_with_its_deletion(
        git_repo: GitRepoFactory) -> None:
    a = git_repo.commit({"personas/acme/rev.md": _doc("1.0.0")}, "create")
    b = git_repo.commit({"personas/acme/rev.md": None, "README.md": "x"}, "delete")
    versions = _repo(git_repo).history("acme/rev")
    assert [(v.commit, v.action, v.content_hash) for v in versions][0] == (b, "deleted", None)
    assert versions[1].commit == a


def test_history_of_an_unknown_key_is_not_found(git_repo: GitRepoFactory) -> None:
    git_repo.commit({"personas/acme/rev.md": _doc("1.0.0")})
    with pytest.raises(NotFoundError, match="'acme/nobody' has no history"):
        _repo(git_repo).history("acme/nobody")


def test_diff_shows_field_changes_and_a_unified_body_diff(git_repo: GitRepoFactory) -> None:
    git_repo.commit({"personas/acme/rev.md": _doc("1.0.0", "Line one.\nLine two.\n")})
    git_repo.commit({"personas/acme/rev.md": _doc("1.1.0", "Line one.\nLine 2.\n",
                                                  tags=["review"])})
    result = _repo(git_repo).diff("acme/rev")
    assert [(f.field, f.old, f.new) for f in result.fields] == [
        ("version", "1.0.0", "1.1.0"), ("tags", [], ["review"])]
    assert "-Line two.\n+Line 2.\n" in result.body_diff
    assert result.body_diff.startswith("--- a/personas/acme/rev.md@")


def test_diff_accepts_semver_versions_across_a_rename(git_repo: GitRepoFactory) -> None:
    git_repo.commit({"personas/acme/rev.md": _doc("1.0.0", "Old.\n")})
    git_repo.commit({"personas/acme/rev.md": None,
                     "personas/beta/rev.md": _doc("1.1.0", "New.\n")})
    result = _repo(git_repo).diff("beta/rev", "1.0.0", "1.1.0")
    assert (result.old_path, result.new_path) == ("personas/acme/rev.md",
                                                  "personas/beta/rev.md")
    assert "-Old.\n+New.\n" in result.body_diff


def test_diff_resolved_compares_inherited_instructions(git_repo: GitRepoFactory) -> None:
    base = persona_md("Base", body="# Base\n\n## Tone\nBe kind.\n", version="1.0.0")
    git_repo.commit({"personas/acme/base.md": base,
                     "personas/acme/kid.md": _doc("1.0.0", "## Extra\nKid.\n",
                                                  extends="acme/base")})
    git_repo.commit({"personas/acme/base.md": persona_md("Base", body="# Base\n\n## Tone\nBe brief.\n",
                                                         version="1.1.0")})
    git_repo.commit({"personas/acme/kid.md": _doc("1.0.1", "## Extra\nKid!\n",
                                                  extends="acme/base")})
    plain = _repo(git_repo).diff("acme/kid")
    assert "Be brief" not in plain.body_diff
    resolved = _repo(git_repo).diff("acme/kid", resolved=True)
    assert resolved.resolved
    assert "-Be kind.\n+Be brief.\n" in resolved.body_diff  # the parent at each version
    assert "-Kid.\n+Kid!\n" in resolved.body_diff
