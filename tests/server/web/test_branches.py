"""Browsing another mirrored branch: `?branch=` on every page, kept on every link.

A real repository with `main` and `production` (`[sync] branches`), each mirrored by
`maestro sync` into its own schema, served by a real `maestro serve --public` process.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pygit2
import pytest

from tests.conftest import _make_database, _server_url
from tests.factories import GitRepoFactory, persona_md
from tests.server.conftest import start_server, stop_server
from tests.server.web.conftest import _maestro

TOML = '[sync]\nbranch = "main"\nbranches = ["main", "production"]\n'


@dataclass
class TwoBranches:
    base: str
    repo: GitRepoFactory


@pytest.fixture(scope="module")
def two_branches(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoBranches]:
    tmp_path = tmp_path_factory.mktemp("branches")
    for database_url in _make_database(_server_url()):
        yield from _serve(tmp_path, database_url)


def _serve(tmp_path: Path, database_url: str) -> Iterator[TwoBranches]:
    repo = GitRepoFactory.create(tmp_path / "repo")
    repo.commit({"maestro.toml": TOML,
                 "personas/acme/helper.md": persona_md(
                     "Helper", body="# Helper\n\nYou help with the stable release notes.\n",
                     version="1.0.0", tags=["stable"]),
                 "personas/acme/writer.md": persona_md(
                     "Writer", body="# Writer\n\nYou write release notes for everyone.\n",
                     version="1.0.0")}, message="first")
    git = repo.repo
    git.branches.local.create("production", git.head.peel(pygit2.Commit))
    repo.commit({"personas/acme/helper.md": persona_md(
        "Helper", body="# Helper\n\nYou help with the next release, still in review.\n",
        version="1.1.0", tags=["next"]),
        "personas/acme/draft.md": persona_md(
            "Draft", body="# Draft\n\nYou are a draft persona only main has.\n",
            version="0.1.0")}, message="main moves on")
    _maestro(repo.path, database_url, "sync")
    base, proc = start_server(repo.path, database_url, "--public")
    try:
        yield TwoBranches(base, repo)
    finally:
        stop_server(proc)


def _links(html: str) -> list[str]:
    return [h.replace("&amp;", "&") for h in re.findall(r'href="([^"]+)"', html)]


def test_the_branches_page_lists_every_mirrored_branch_with_a_link(
        two_branches: TwoBranches) -> None:
    page = httpx.get(two_branches.base + "/branches").text
    assert "main</a> (served)" in page
    assert 'href="/?branch=production"' in page
    prod_head = two_branches.repo.repo.branches.local["production"].target
    assert str(prod_head) in page


def test_a_page_of_another_branch_shows_that_mirror_and_keeps_the_branch_on_links(
        two_branches: TwoBranches) -> None:
    home = httpx.get(two_branches.base + "/?branch=production")
    assert home.status_code == 200
    assert "acme/helper" in home.text and "acme/draft" not in home.text
    persona_links = [h for h in _links(home.text) if h.startswith("/personas/")]
    assert persona_links and all(h.endswith("?branch=production") for h in persona_links)
    assert "not the served" in home.text

    page = httpx.get(two_branches.base + "/personas/acme/helper?branch=production").text
    assert "stable release notes" in page and "next release" not in page
    tag_links = [h for h in _links(page) if h.startswith("/?tag=")]
    assert tag_links == ["/?tag=stable&branch=production"]

    served = httpx.get(two_branches.base + "/personas/acme/helper").text
    assert "next release" in served and "stable release notes" not in served
    assert "/personas/acme/draft" in httpx.get(two_branches.base + "/").text


def test_search_and_filters_on_another_branch_read_that_branch(
        two_branches: TwoBranches) -> None:
    found = httpx.get(two_branches.base + "/", params={"q": "release", "branch": "production"})
    assert found.status_code == 200
    assert "acme/helper" in found.text and "acme/draft" not in found.text
    assert '<input type="hidden" name="branch" value="production">' in found.text
    # "review" is only in main's helper, and main's local Whoosh index has it: production's
    # search must not answer from that index.
    only_main = httpx.get(two_branches.base + "/", params={"q": "review",
                                                           "branch": "production"})
    assert "acme/helper" not in only_main.text
    assert "acme/helper" in httpx.get(two_branches.base + "/", params={"q": "review"}).text
    tagged = httpx.get(two_branches.base + "/", params={"tag": "next", "branch": "production"})
    assert "acme/helper" not in tagged.text


def test_a_branch_that_is_not_mirrored_is_a_404_naming_the_mirrored_ones(
        two_branches: TwoBranches) -> None:
    answer = httpx.get(two_branches.base + "/?branch=feature")
    assert answer.status_code == 404
    assert "branch &#39;feature&#39; is not mirrored" in answer.text
    assert "mirrored: main, production" in answer.text
    assert httpx.get(two_branches.base + "/personas/acme/helper?branch=feature"
                     ).status_code == 404
