from __future__ import annotations

from maestro_git.git import GitRepo
from tests.factories import GitRepoFactory, persona_md


def test_files_at_reads_a_commit_without_checkout(git_repo: GitRepoFactory) -> None:
    first = git_repo.commit({"personas/acme/a.md": persona_md(), "README.md": "x"})
    git_repo.commit({"personas/acme/a.md": None, "personas/acme/b.md": persona_md("B")})
    repo = GitRepo(git_repo.path)
    assert [f.path for f in repo.files_at(first)] == ["personas/acme/a.md"]


def test_changed_files_detects_renames(git_repo: GitRepoFactory) -> None:
    body = persona_md(body="# A\n\n" + "You are a careful reviewer of code.\n" * 20)
    first = git_repo.commit({"personas/acme/a.md": body})
    second = git_repo.commit({"personas/acme/a.md": None, "personas/beta/a.md": body})
    delta = GitRepo(git_repo.path).changed_files(first, second)
    assert delta.renames == {"personas/acme/a.md": "personas/beta/a.md"}
    assert delta.removed == ["personas/acme/a.md"]
    assert [f.path for f in delta.changed] == ["personas/beta/a.md"]


def test_first_parent_chain_is_oldest_first(git_repo: GitRepoFactory) -> None:
    a = git_repo.commit({"personas/acme/a.md": persona_md()})
    b = git_repo.commit({"personas/acme/b.md": persona_md()})
    c = git_repo.commit({"personas/acme/c.md": persona_md()})
    repo = GitRepo(git_repo.path)
    assert repo.first_parent_chain(None, c) == [a, b, c]
    assert repo.first_parent_chain(a, c) == [b, c]
    assert repo.is_ancestor(a, c) and not repo.is_ancestor(c, a)
