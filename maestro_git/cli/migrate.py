"""Migrations off the database-first systems: `maestro migrate themaestro|persona-sets`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from maestro_git.cli import AppContext, cli, format_option, pass_app

if TYPE_CHECKING:
    from maestro_git.ops.migrate import MigrationReport


@cli.group("migrate")
def migrate_group() -> None:
    """Bring a database-first system into the repository, with its history.

    Each version becomes a commit with its original author and time, so 'maestro history'
    shows the old version table. A migration only adds files; run it in a new repository
    ('maestro init') or on a new branch (--branch).
    """


def _render(app: AppContext, report: MigrationReport, fmt: str) -> None:
    def human(report: MigrationReport) -> None:
        verb = "would write" if report.dry_run else "wrote"
        span = (f" from {report.first_time} to {report.last_time}" if report.first_time else "")
        app.echo(f"{verb} {report.commits} commits{span}")
        if report.source == "themaestro":
            app.echo(f"  {report.personas} personas ({report.inactive} inactive), "
                     f"{report.versions} versions, {report.templates} templates, "
                     f"{len(report.authors)} authors, {report.usage_rows} usage counters")
        else:
            app.echo(f"  {report.sets} sets, {report.members} members, {report.images} images")
        for note in report.notes:
            app.echo(f"note: {note}")
        if report.head:
            app.echo(f"head {report.head[:7]} on {app.settings.branch}; "
                     f"{report.errors_at_head} errors at the head (maestro check)")
    app.render(report, fmt, human)

@migrate_group.command("themaestro")
@click.option("--from-url", "url", required=True, metavar="URL",
              help="TheMaestro's PostgreSQL (its DATABASE_URL); read only.")
@click.option("--users", "users", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Authors by user id: a JSON object {id: 'Name <email>'} or lines "
                   "'ID Name <email>' (default: the users table).")
@click.option("--dry-run", is_flag=True, help="Read and plan, write nothing.")
@format_option("text", "json")
@pass_app
def themaestro_cmd(app: AppContext, url: str, users: Path | None, dry_run: bool,
                   fmt: str) -> None:
    """Migrate TheMaestro's personas, versions and templates.

    One file per persona under its owner's folder (parent_persona_id as extends), every
    persona_versions row a commit in time order with its version, author and timestamp,
    is_active and soft deletes kept, templates under templates/, and the usage counters
    (application_count, last_applied_at) into the mirror's persona_usage.

    \b
    Example:
      maestro migrate themaestro --from-url postgresql://maestro@db/the_maestro --dry-run
    """
    from maestro_git.ops.migrate import run_themaestro

    _render(app, run_themaestro(app.settings, url, users_file=users, dry_run=dry_run), fmt)


@migrate_group.command("persona-sets")
@click.option("--from-url", "url", required=True, metavar="URL",
              help="The persona-set service's PostgreSQL (its DATABASE_URL); read only.")
@click.option("--static", "static", required=True, metavar="DIR",
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="The service's static folder (holding images/personas/).")
@click.option("--dry-run", is_flag=True, help="Read and plan, write nothing.")
@format_option("text", "json")
@pass_app
def persona_sets_cmd(app: AppContext, url: str, static: Path, dry_run: bool,
                     fmt: str) -> None:
    """Migrate the persona-set service's sets, members and images.

    One set per persona_sets row (persona_sets/<set>/set.json, the service's JSON shape),
    its members from the personas table, each image copied into the set's images/ folder;
    created_at and updated_at are the commit dates.

    \b
    Example:
      maestro migrate persona-sets --from-url postgresql://pep_user@localhost/pep_db \\
          --static ~/pep-be/static
    """
    from maestro_git.ops.migrate import run_persona_sets

    _render(app, run_persona_sets(app.settings, url, static=static, dry_run=dry_run), fmt)
