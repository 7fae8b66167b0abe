"""The login redirect target never leaves the site."""

from __future__ import annotations

import pytest

from maestro_git.server.web import session


@pytest.mark.parametrize("target, expected", [
    ("/personas/acme/x?view=raw", "/personas/acme/x?view=raw"),
    ("/", "/"),
    (None, "/"),
    ("", "/"),
    ("//evil.example/x", "/"),
    ("https://evil.example/", "/"),
    ("/\\evil.example", "/"),
    ("javascript:alert(1)", "/"),
])
def test_next_is_a_path_on_this_site(target: str | None, expected: str) -> None:
    assert session.safe_next(target) == expected


def test_the_login_url_carries_the_page_asked_for() -> None:
    assert session.login_url("/sets/a b") == "/login?next=/sets/a%20b"
    assert session.login_url("//evil") == "/login?next=/"
