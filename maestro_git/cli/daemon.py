"""CLI commands of this area (see maestro_git/cli/__init__.py)."""

from __future__ import annotations

from maestro_git.cli import cli  # noqa: F401
