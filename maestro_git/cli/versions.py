"""Git commands: history, diff, rollback, promote, log, review, rename, delete.

Each parses options, makes one `maestro_git.repo.repository.Repository` call and renders the
result. Editing a persona is done by editing its file; `rename` and `delete` exist because a
file-first user cannot do them in one safe step (a rename must keep the `id` and repoint the
personas that extend it; a delete must be refused while personas extend it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from maestro_git.cli import AppContext, cli, format_option, pass_app
from maestro_git.output import render_diff, table
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
    app.render({"commit": commit, **extra}, fmt, lambda _: app.echo(f"{text} in {commit[:7]}"))


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
    app.render(versions, fmt, lambda versions: click.echo(table([{
        "commit": v.commit[:7], "date": v.time.strftime("%Y-%m-%d %H:%M"),
        "version": v.version or "", "action": v.action, "key": v.key,
        "author": v.author_name, "message": v.message.splitlines()[0] if v.message else "",
    } for v in versions])))


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
    """What changed in KEY (persona, template or persona set), like git diff.

    REV_A and REV_B are revisions or semver versions of KEY. Both: one with the other. REV_A
    only: REV_A with the working tree. Neither: on a branch other than the base branch
    ([sync] branch), what the branch changed since it left it, up to the working tree; on
    the base branch, the uncommitted change, else the version before the current one. Added,
    deleted and renamed entities are shown; frontmatter changes print by key path
    (metadata.category) and invisible characters as <U+200B>.

    \b
    Example:
      maestro diff acme/base                      # what this branch did to it
      maestro diff acme/child --resolved          # ... to its effective instruction
      maestro diff acme/base 1.0.0 1.1.0
    """
    result = Repository(app.settings).diff(key, rev_a, rev_b, resolved=resolved)
    app.render(result, fmt, lambda result: click.echo(render_diff(result), nl=False))


@cli.command()
@click.argument("key")
@click.option("--from", "source", required=True, metavar="BRANCH",
              help="The branch whose head holds the version to promote (e.g. main).")
@click.option("--to", "target", required=True, metavar="BRANCH",
              help="The label branch to move (e.g. production); nothing else moves.")
@_author_option
@_message_option
@format_option("text", "json")
@pass_app
def promote(app: AppContext, key: str, source: str, target: str, author: str | None,
            message: str | None, fmt: str) -> None:
    """Promote KEY from one branch to another in one commit on the target branch.

    The persona's file, and the parents its effective instruction needs where they differ,
    are copied from the head of --from onto --to with compare-and-swap; the commit carries
    'Maestro-Action: promoted', so the audit trail records a 'promoted' event and
    'maestro history KEY --rev production' reads as the label's history.

    \b
    Example:
      maestro promote acme/code_reviewer --from main --to production
    """
    repo = Repository(app.settings)
    commit = repo.promote(key, source, target, author=author, message=message)
    version = repo.history(key, commit)[0].version
    _written(app, fmt, commit, f"promoted {key} {version} from {source} to {target}",
             key=key, version=version, branch=target)


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
    app.render(events, fmt, lambda events: click.echo(table([{
        "date": e.time.strftime("%Y-%m-%d %H:%M"), "action": e.action, "kind": e.kind,
        "key": e.key if not e.old_key else f"{e.old_key} -> {e.key}",
        "actor": f"{e.actor_name} <{e.actor_email}>", "commit": e.commit[:7],
    } for e in events])))


@cli.command()
@click.option("--base", "--against", "base", default=None, metavar="REV|BRANCH",
              help="Compare with this branch or revision (default: the [sync] branch, "
                   "origin/<branch> when it exists); the merge base with it is the base.")
@click.option("--head", "head", default=None, metavar="REV",
              help="Review this revision instead of the working tree.")
@click.option("--remote", default="origin", show_default=True,
              help="Where a missing base or history is fetched from.")
@click.option("--no-fetch", "no_fetch", is_flag=True,
              help="Never fetch; fail with the command to run instead.")
@format_option("text", "json", "github", "markdown")
@pass_app
def review(app: AppContext, base: str | None, head: str | None, remote: str, no_fetch: bool,
           fmt: str) -> None:
    """Review a change as a pull request: what changed, what it affects, who approves.

    Compares the working tree (or --head) with the merge base of the base branch: the
    personas, templates and sets added, modified, renamed or deleted (frontmatter fields,
    version old -> new, size and token deltas against the limits, set members), every
    persona whose effective instruction changes through inheritance (with its diff), the
    reviewers [owners] names for each touched folder, and every validation problem on its
    line, plus version-not-raised. In a shallow CI clone the base branch is fetched and the
    history deepened until the merge base is found. --format github prints annotations,
    markdown a pull-request comment. Exits 1 on any error.

    \b
    Example:
      maestro review --base main --format markdown >> "$GITHUB_STEP_SUMMARY"
    """
    from maestro_git.ops.owners import load_owners
    from maestro_git.output import render_review
    from maestro_git.repo.review import review as run_review

    report = run_review(Repository(app.settings), base, head, owners=load_owners(app.settings),
                        remote=remote, fetch=not no_fetch)
    out = render_review(report, fmt)
    if out:
        click.echo(out, nl=not out.endswith("\n"))
    if fmt == "text":
        app.echo(f"reviewed against {report.base[:7]}, {report.errors} errors, "
                 f"{report.warnings} warnings", err=True)
    if report.errors:
        raise click.exceptions.Exit(1)


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
