"""Owner commands: `maestro owners codeowners` and `maestro owners list`.

Both read `[owners]` from maestro.toml (see `maestro_git.ops.owners`); neither commits.
"""

from __future__ import annotations

import click

from maestro_git.cli import AppContext, cli, format_option, pass_app
from maestro_git.errors import UsageError
from maestro_git.ops.owners import CODEOWNERS_PATH, list_owners, read_codeowners, write_codeowners
from maestro_git.output import format_problems, table


@cli.group()
def owners() -> None:
    """Who reviews each owner folder personas/<owner>/, from [owners] in maestro.toml.

    \b
    [owners]
    "*" = ["@platform-team"]              # default; also templates/ and persona_sets/
    acme = ["@acme/persona-reviewers"]
    """


@owners.command()
@click.option("--write", is_flag=True, help=f"Write the block into {CODEOWNERS_PATH}.")
@click.option("--check", "check_only", is_flag=True,
              help=f"Exit 1 and print the diff when {CODEOWNERS_PATH} is out of date (CI).")
@pass_app
def codeowners(app: AppContext, write: bool, check_only: bool) -> None:
    """Print, write or check the CODEOWNERS block generated from [owners].

    The block sits between '# BEGIN maestro' and '# END maestro' in .github/CODEOWNERS (the
    file is created when missing); every other line of the file is kept byte for byte.

    \b
    Examples:
      maestro owners codeowners            # print the block
      maestro owners codeowners --write    # update .github/CODEOWNERS
      maestro owners codeowners --check    # in CI: exit 1 with a diff when stale
    """
    if write and check_only:
        raise UsageError("--write and --check cannot be combined",
                         hint="use --check in CI and --write to fix what it reports")
    if write:
        state = write_codeowners(app.settings)
        app.echo(f"{'unchanged' if state.up_to_date else 'wrote'} {CODEOWNERS_PATH}", err=True)
        return
    state = read_codeowners(app.settings)
    if not check_only:
        click.echo(state.block, nl=False)
        return
    if state.up_to_date:
        app.echo(f"{CODEOWNERS_PATH} is up to date", err=True)
        return
    click.echo(state.diff(), nl=False)
    app.echo(f"{CODEOWNERS_PATH} is out of date: run 'maestro owners codeowners --write'",
             err=True)
    raise click.exceptions.Exit(1)


@owners.command("list")
@format_option("table", "json")
@pass_app
def list_(app: AppContext, fmt: str) -> None:
    """Each owner folder, its persona count (working tree) and its reviewers.

    A folder holding personas with no reviewer (no entry and no "*" default) is reported as
    an owner-without-reviewer warning on stderr (in the JSON as "problems"); exit 0.
    """
    report = list_owners(app.settings)
    def human(_: object) -> None:
        rows = [{"owner": r.owner, "personas": r.personas,
                 "reviewers": " ".join(r.reviewers) or "-", "source": r.source}
                for r in report.rows]
        if rows:
            click.echo(table(rows, ["owner", "personas", "reviewers", "source"], max_width=100))
        else:
            app.echo("no owner folders under personas/ and no [owners] in maestro.toml", err=True)
        if report.problems:
            click.echo(format_problems(report.problems), err=True)
    app.render({"owners": [{"owner": r.owner, "personas": r.personas,
                            "reviewers": r.reviewers, "source": r.source}
                           for r in report.rows], "problems": report.problems}, fmt, human)
