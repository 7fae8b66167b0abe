"""Accelerated paths over Whoosh internals, bounded here and version-guarded.

Everything in this package reaches into whoosh-reloaded's private names (the codec's posting
writer and matchers, the segment writer, the length columns), so it is only right for the
version it was written and pinned against. Nothing here is active on import:

- `install()` (called by `SearchIndex` when it is created) turns the speed paths on, once per
  process, when `importlib.metadata.version("whoosh-reloaded") == PINNED` and they are not
  switched off (`switch_off`); on any other version it logs one line and plain Whoosh serves.
- `enabled()` says whether they are on; every caller (`search.engine`, `search.index`)
  chooses between the accelerated and the plain path with it, at the time of the call.
- `switch_off()` removes the patches again (tests run the search suite both ways).

The paths: the patched posting reader and block cache (`postings`), the bulk segment writer
(`bulk`), the posting arrays and numpy scorer (`arrays`, `words`) and the tokenizer replicas
of the text fields with their memo caches (`fields`). Tests pin each against plain Whoosh.
"""

from __future__ import annotations

import importlib.metadata
import logging
import threading

__all__ = ["PINNED", "enabled", "install", "switch_off"]

PINNED = "2.7.5"  # the whoosh-reloaded these paths were written and pinned against

log = logging.getLogger("maestro_git.search.speedups")

_state = {"on": False, "decided": False, "wanted": True}
_guard = threading.Lock()


def _installed_version() -> str | None:
    try:
        return importlib.metadata.version("whoosh-reloaded")
    except importlib.metadata.PackageNotFoundError:
        return None


def install() -> bool:
    """Turn the speed paths on if this whoosh is the pinned one; return whether they are on.
    Idempotent; the decision (and its log line) is made once per process."""
    with _guard:
        if _state["decided"]:
            return _state["on"]
        _state["decided"] = True
        if not _state["wanted"]:
            log.info("search speedups switched off: plain Whoosh serves")
            return False
        version = _installed_version()
        if version != PINNED:
            log.warning("search speedups off: they are pinned to whoosh-reloaded %s, this is %s;"
                        " plain Whoosh serves", PINNED, version or "not installed")
            return False
        from maestro_git.search.speedups import postings

        postings.patch()
        _state["on"] = True
        return True


def enabled() -> bool:
    """Whether the speed paths are on (False until `install` has turned them on)."""
    return _state["on"]


def switch_off() -> None:
    """Remove the patches and keep the speed paths off until `switch_on`."""
    with _guard:
        if _state["on"]:
            from maestro_git.search.speedups import postings

            postings.unpatch()
        _state.update(on=False, decided=True, wanted=False)


def switch_on() -> bool:
    """Allow the speed paths again and install them (subject to the version guard)."""
    with _guard:
        _state.update(decided=False, wanted=True)
    return install()
