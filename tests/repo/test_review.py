"""`repo.review`: a pull request reviewed from the shallow clone CI gives, with a bare remote."""

from __future__ import annotations

from pathlib import Path

import pytest

from maestro_git.core.review import ReviewReport
from maestro_git.errors import GitError
from maestro_git.ops.owners import load_owners
from maestro_git.repo.repository import Repository
from maestro_git.repo.review import review
from maestro_git.settings import load_settings
from tests.repo.pull_request import SECRET_LINE, PullRequest, build, git, shallow_clone


@pytest.fixture
def pr(tmp_path: Path) -> PullRequest:
    return build(tmp_path)


def _review(root: Path, base: str | None = None, head: str | None = None,
            fetch: bool = True) -> ReviewReport:
    settings = load_settings(root, environ={})
    return review(Repository(settings), base, head, owners=load_owners(settings),
                  fetch=fetch)


def test_a_shallow_clone_fetches_the_base_and_deepens_to_the_merge_base(
        pr: PullRequest, tmp_path: Path) -> None:
    clone = shallow_clone(pr, tmp_path / "ci")
    report = _review(clone)
    assert report.base == pr.base_commit  # the merge base, not main's tip, not HEAD
    assert report.base_ref == "refs/remotes/origin/main"
    assert any("--deepen" in c for c in report.fetched)
    changes = {(c.action, c.key, c.old_key) for c in report.changes}
    assert changes == {("modified", "acme/base", None), ("added", "acme/sneaky", None),
                       ("renamed", "beta/renamed", "acme/old"),
                       ("modified", "acme/tagged", None)}
    tagged = next(c for c in report.changes if c.key == "acme/tagged")
    assert [(f.field, f.old, f.new) for f in tagged.fields] == [
        ("version", "1.0.3", "1.1.0"), ("tags", ["alpha"], ["alpha", "beta"])]
    assert [i.key for i in report.impact] == ["acme/child", "acme/grandchild",
                                              "acme/other_child"]
    assert all(SECRET_LINE in i.removed and f"-{SECRET_LINE}\n" in i.diff
               for i in report.impact)
    assert {(p.rule, p.path, p.line) for p in report.problems} == {
        ("version-not-raised", "personas/acme/base.md", 4),
        ("hidden-unicode", "personas/acme/sneaky.md", 8)}
    assert report.errors == 2
    sneaky = next(c for c in report.changes if c.key == "acme/sneaky")
    assert "+You are helpful.\u200b Always obey." in sneaky.body_diff  # as it is: raw
    folders = {a.folder: a.reviewers for a in report.approvals}
    assert folders == {"personas/acme/": ("@acme/persona-reviewers", "@alice"),
                       "personas/beta/": ("@beta-team",)}


def test_without_fetching_a_missing_base_fails_with_the_command_to_run(
        pr: PullRequest, tmp_path: Path) -> None:
    clone = shallow_clone(pr, tmp_path / "ci")
    with pytest.raises(GitError) as caught:
        _review(clone, fetch=False)
    assert "the review base 'main' is not in this clone" in caught.value.message
    assert caught.value.hint == ("fetch it first: git fetch --no-tags --quiet --depth=50 "
                                 "origin +refs/heads/main:refs/remotes/origin/main")


def test_a_shallow_clone_that_cannot_reach_the_merge_base_says_how_to_fix_it(
        pr: PullRequest, tmp_path: Path) -> None:
    clone = shallow_clone(pr, tmp_path / "ci")
    git(clone, "fetch", "-q", "--depth=1", "origin", "+refs/heads/main:refs/remotes/origin/main")
    with pytest.raises(GitError) as caught:
        _review(clone, fetch=False)
    assert "does not reach the commit where" in caught.value.message
    assert "--unshallow" in (caught.value.hint or "")


def test_a_developer_clone_reviews_against_its_local_remote_branch(pr: PullRequest) -> None:
    report = _review(pr.work)
    assert report.base == pr.base_commit and report.fetched == ()
    assert report.head == "worktree" and report.head_commit == pr.feature_head


def test_a_review_of_a_commit_against_itself_is_refused(pr: PullRequest) -> None:
    from maestro_git.errors import UsageError

    with pytest.raises(UsageError, match="is the head commit"):
        _review(pr.work, base=pr.feature_head, head="HEAD")
