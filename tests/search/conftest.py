"""The search suite runs both ways: with the speed paths (the default) and with plain Whoosh
(`MAESTRO_SEARCH_SPEEDUPS=0`, the second run of `tests/search/` in `make test`). Tests that
pin a speed path against plain Whoosh ask for `speedups_on`, which turns them on for that
test whatever the run."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from maestro_git.search import speedups

SPEEDUPS = os.environ.get("MAESTRO_SEARCH_SPEEDUPS", "1") != "0"


def _set(on: bool) -> None:
    if on:
        assert speedups.switch_on(), "the speed paths did not install"
    else:
        speedups.switch_off()


@pytest.fixture(autouse=True)
def speedups_mode() -> Iterator[bool]:
    """This run's mode, set before each test and restored after it."""
    _set(SPEEDUPS)
    yield SPEEDUPS
    _set(SPEEDUPS)


@pytest.fixture
def speedups_on(speedups_mode: bool) -> Iterator[None]:
    _set(True)
    yield
