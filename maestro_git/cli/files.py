"""Working-tree commands: init, new, check, fmt, show, list, templates."""

from __future__ import annotations

from pathlib import Path

import click

from maestro_git.cli import AppContext, cli, format_option, pass_app
from maestro_git.output import format_problems, to_json
from maestro_git.snapshot import build_snapshot
from maestro_git.worktree import read_worktree


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@format_option("text", "json", "github")
@pass_app
def check(app: AppContext, paths: tuple[Path, ...], fmt: str) -> None:
    """Validate personas, templates and persona sets; exit 1 when any error is found.

    PATHS limits the report to those files or folders (cross-file rules still see the whole
    repository). --format github prints GitHub Actions annotations.
    """
    root = app.settings.repo_path
    snap = build_snapshot(read_worktree(root), app.settings)
    problems = list(snap.problems)
    if paths:
        wanted = [p.resolve().relative_to(root).as_posix() for p in paths]
        problems = [p for p in problems
                    if any(p.path == w or p.path.startswith(w.rstrip("/") + "/")
                           for w in wanted)]
    errors = sum(1 for p in problems if p.severity.value == "error")
    if fmt == "json":
        click.echo(to_json({"files": len(snap.files), "errors": errors,
                            "problems": problems}))
    else:
        out = format_problems(problems, fmt)
        if out:
            click.echo(out)
        if fmt == "text":
            app.echo(f"{len(snap.files)} files checked, {errors} errors, "
                     f"{len(problems) - errors} warnings", err=True)
    if errors:
        raise click.exceptions.Exit(1)
