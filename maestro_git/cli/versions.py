"""Git commands: history, diff, rollback, log, review, rename, delete.

Each parses options, makes one `maestro_git.repo.repository.Repository` call and renders the
result. Editing a persona is done by editing its file; `rename` and `delete` exist because a
file-first user cannot do them in one safe step (a rename must keep the `id` and repoint the
personas that extend it; a delete must be refused while personas extend it).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

import click

from maestro_git.cli import AppContext, cli, format_option, pass_app, report_problems
from maestro_git.output import table, to_json
from maestro_git.repo.repository import Repository

_DATES = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S%z"]


def _author_option(f: Any) -> Any:
    return click.option(
        "--author", default=None, metavar="'NAME <EMAIL>'",
        help="Author of the commit (default: MAESTRO_AUTHOR_NAME/EMAIL, else git config).")(f)


def _message_option(f: Any) -> Any:
    return click.option("-m", "--message", default=None,
                        help="Commit message (default: one written for you).")(f)


def _written(app: AppContext, fmt: str, commit: str, text: str, **extra: Any) -> None:
    if fmt == "json":
        click.echo(to_json({"commit": commit, **extra}))
    else:
        app.echo(f"{text} in {commit[:7]}")


@cli.command()
@click.argument("key")
@click.option("--rev", default="HEAD", show_default=True, help="Read history up to this revision.")
@format_option("table", "json")
@pass_app
def history(app: AppContext, key: str, rev: str, fmt: str) -> None:
    """Every version of KEY, newest first: the commits that changed it, following renames.

    KEY is owner/name for a persona, name for a template or persona set.
    """
    versions = Repository(app.settings).history(key, rev)
    if fmt == "json":
        click.echo(to_json(versions))
        return
    click.echo(table([{
        "commit": v.commit[:7], "date": v.time.strftime("%Y-%m-%d %H:%M"),
        "version": v.version or "", "action": v.action, "key": v.key,
        "author": v.author_name, "message": v.message.splitlines()[0] if v.message else "",
    } for v in versions]))


@cli.command()
@click.argument("key")
@click.argument("rev_a", required=False)
@click.argument("rev_b", required=False)
@click.option("--resolved", is_flag=True,
              help="Compare the effective instructions, with inheritance applied.")
@format_option("text", "json")
@pass_app
def diff(app: AppContext, key: str, rev_a: str | None, rev_b: str | None, resolved: bool,
         fmt: str) -> None:
    """Frontmatter changes and a unified body diff of KEY between two versions.

    REV_A and REV_B are revisions or semver versions of KEY. Defaults: REV_B is the branch
    head, REV_A the version before the one at REV_B.
    """
    result = Repository(app.settings).diff(key, rev_a, rev_b, resolved=resolved)
    if fmt == "json":
        click.echo(to_json(dataclasses.asdict(result)))
        return
    lines = [f"{key}: {result.rev_a[:7]} -> {result.rev_b[:7]}"]
    if result.old_path != result.new_path:
        lines.append(f"  path: {result.old_path} -> {result.new_path}")
    for change in result.fields:
        lines.append(f"  {change.field}: {_show(change.old)} -> {_show(change.new)}")
    if not result.changed:
        lines.append("  no changes")
    click.echo("\n".join(lines))
    if result.body_diff:
        click.echo(result.body_diff, nl=False)


def _show(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return str(value)


@cli.command()
@click.argument("key")
@click.option("--to", "to", required=True, metavar="REV|VERSION",
              help="The version to restore: a semver version of KEY or a revision.")
@_author_option
@_message_option
@format_option("text", "json")
@pass_app
def rollback(app: AppContext, key: str, to: str, author: str | None, message: str | None,
             fmt: str) -> None:
    """Restore KEY to an earlier version in a new commit (history is never rewritten).

    The file gets that version's content and the next patch version; the commit message
    records 'Rollback to version X (commit abc1234)'.
    """
    repo = Repository(app.settings)
    commit = repo.rollback(key, to, author=author, message=message)
    version = repo.history(key, commit)[0].version
    _written(app, fmt, commit, f"rolled back {key} to {to} as version {version}", key=key,
             version=version)


@cli.command()
@click.argument("key", required=False)
@click.option("--since", type=click.DateTime(_DATES), default=None,
              help="Only events at or after this date (YYYY-MM-DD, UTC unless an offset is "
                   "given).")
@click.option("--author", default=None, help="Only events whose actor name or e-mail "
              "contains this text.")
@format_option("table", "json")
@pass_app
def log(app: AppContext, key: str | None, since: datetime | None, author: str | None,
        fmt: str) -> None:
    """The audit trail: created / updated / renamed / deleted / rolled_back events.

    Derived from the commits on the branch (first-parent line, as the mirror sees them),
    newest first; KEY limits it to one persona, template or set under any of its names.
    """
    events = Repository(app.settings).log(key, since=since, author=author)
    if fmt == "json":
        click.echo(to_json(events))
        return
    click.echo(table([{
        "date": e.time.strftime("%Y-%m-%d %H:%M"), "action": e.action, "kind": e.kind,
        "key": e.key if not e.old_key else f"{e.old_key} -> {e.key}",
        "actor": f"{e.actor_name} <{e.actor_email}>", "commit": e.commit[:7],
    } for e in events]))


@cli.command()
@click.option("--against", default=None, metavar="REV",
              help="Compare with this revision (default: the merge base with the branch, "
                   "origin/<branch> when it exists).")
@format_option("text", "json", "github")
@pass_app
def review(app: AppContext, against: str | None, fmt: str) -> None:
    """Validate the working tree and check version discipline for a pull request.

    Every persona or template whose content changed since the base must have a higher
    semver there (rule version-not-raised). Exits 1 on any error.
    """
    base_commit, problems = Repository(app.settings).review(against)
    report_problems(app, problems, fmt, f"reviewed against {base_commit[:7]}",
                    base=base_commit)


@cli.command()
@click.argument("old_key")
@click.argument("new_key")
@_author_option
@_message_option
@format_option("text", "json")
@pass_app
def rename(app: AppContext, old_key: str, new_key: str, author: str | None,
           message: str | None, fmt: str) -> None:
    """Rename or move a persona (e.g. to another owner) in one commit, keeping its id and
    history; personas that extend it are repointed in the same commit."""
    commit = Repository(app.settings).rename(old_key, new_key, author=author, message=message)
    _written(app, fmt, commit, f"renamed {old_key} to {new_key}", key=new_key,
             old_key=old_key)


@cli.command()
@click.argument("key")
@_author_option
@_message_option
@format_option("text", "json")
@pass_app
def delete(app: AppContext, key: str, author: str | None, message: str | None,
           fmt: str) -> None:
    """Delete a persona or template in one commit (refused while personas extend it)."""
    commit = Repository(app.settings).delete(key, author=author, message=message)
    _written(app, fmt, commit, f"deleted {key}", key=key)
