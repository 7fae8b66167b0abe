from __future__ import annotations

from maestro_git.git.repo import GitRepo
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


def test_write_commit_refuses_a_stale_parent(git_repo: GitRepoFactory) -> None:
    import pytest

    from maestro_git.git.repo import Identity, StaleHeadError

    first = git_repo.commit({"personas/acme/a.md": persona_md()})
    second = git_repo.commit({"personas/acme/b.md": persona_md("B")})
    repo = GitRepo(git_repo.path)
    who = Identity("W", "w@example.com")
    with pytest.raises(StaleHeadError) as caught:
        repo.write_commit("main", first, {"personas/acme/c.md": b"x"}, who, who, "stale")
    assert caught.value.current == second
    assert repo.head("main") == second


def test_write_commit_changes_only_the_given_paths(git_repo: GitRepoFactory) -> None:
    from maestro_git.git.repo import Identity

    base = git_repo.commit({"personas/acme/a.md": persona_md(), "README.md": "readme",
                            "personas/beta/b.md": persona_md("B")})
    repo = GitRepo(git_repo.path)
    who = Identity("Writer", "writer@example.com")
    new = repo.write_commit("main", base, {"personas/beta/b.md": None,
                                           "personas/gamma/c.md": b"c"}, who, who, "edit")
    assert repo.head("main") == new
    assert repo.commit_info(new).parents == (base,)
    assert repo.commit_info(new).author_name == "Writer"
    assert repo.read_file(new, "README.md") == b"readme"
    assert repo.blob_id(new, "personas/acme/a.md") == repo.blob_id(base, "personas/acme/a.md")
    assert repo.read_file(new, "personas/gamma/c.md") == b"c"
    assert "beta" not in repo.repo[new].tree["personas"]  # an emptied folder disappears


def test_write_commit_creates_the_first_commit_of_a_branch(git_repo: GitRepoFactory) -> None:
    from maestro_git.git.repo import Identity

    repo = GitRepo(git_repo.path)
    who = Identity("W", "w@example.com")
    first = repo.write_commit("main", None, {"templates/t.md": b"t"}, who, who, "first")
    assert repo.head("main") == first
    assert repo.commit_info(first).parents == ()


def test_identity_parses_name_and_email() -> None:
    import pytest

    from maestro_git.errors import ConfigError
    from maestro_git.git.repo import Identity

    assert Identity.parse("Ada Lovelace <ada@example.com>") == Identity("Ada Lovelace",
                                                                        "ada@example.com")
    with pytest.raises(ConfigError, match="is not an identity"):
        Identity.parse("ada@example.com")


def test_write_commit_reports_a_locked_ref_as_stale_with_the_same_tip(
        git_repo: GitRepoFactory) -> None:
    import pytest

    from maestro_git.git.repo import Identity, StaleHeadError

    base = git_repo.commit({"personas/acme/a.md": persona_md()})
    (git_repo.path / ".git/refs/heads/main.lock").write_text("held by another writer\n")
    repo = GitRepo(git_repo.path)
    who = Identity("W", "w@example.com")
    with pytest.raises(StaleHeadError) as caught:
        repo.write_commit("main", base, {"personas/acme/b.md": b"b"}, who, who, "locked")
    assert caught.value.current == base
    assert repo.head("main") == base


def test_pack_files_are_mapped_in_bounded_windows(git_repo: GitRepoFactory) -> None:
    """libgit2 would keep up to 8 GB of pack files mapped (resident memory of a large
    head read); a GitRepo bounds it for the process."""
    import pygit2

    from maestro_git.git.repo import PACK_MAPPED_LIMIT, PACK_WINDOW, GitRepo

    pygit2.settings.mwindow_mapped_limit = 8 << 30
    GitRepo(git_repo.path)
    assert pygit2.settings.mwindow_mapped_limit == PACK_MAPPED_LIMIT
    assert pygit2.settings.mwindow_size == PACK_WINDOW
