"""gdpr export and gdpr erase: a data subject's right of access and right to erasure."""

from __future__ import annotations

import sys
from contextlib import nullcontext
from typing import Any

import click

from maestro_git.cli import AppContext, cli, format_option, pass_app
from maestro_git.errors import UsageError
from maestro_git.output import table

_REWRITE = ("git history still carries the identity: rewrite it with 'git filter-repo "
            "--mailmap FILE' (lines below), force push, then run 'maestro sync'")


@cli.group("gdpr")
def gdpr_group() -> None:
    """Personal data of one person: export it (access) or pseudonymise it (erasure).

    Personal data lives in commit identities (git history, mirrored into persona_versions and
    audit_events) and in content (persona-set members, frontmatter metadata, file text).
    """


@gdpr_group.command("export")
@click.option("--email", required=True, help="The data subject's e-mail address.")
@click.option("--name", default=None, help="The subject's name (matches commit and mirror "
              "identities exactly, and content text).")
@click.option("--mirror/--no-mirror", "use_mirror", default=None,
              help="Read the mirror's rows too (default: when DATABASE_URL is set or the "
                   "embedded server is running).")
@format_option("text", "json")
@pass_app
def export_cmd(app: AppContext, email: str, name: str | None, use_mirror: bool | None,
               fmt: str) -> None:
    """Everything maestro holds about one person (the right of access).

    Lists the commits on the branch they authored or committed, the persona-set members and
    frontmatter values at the head that contain the address or name, every line of a file
    at the head that does, and the mirror's persona_versions and audit_events rows naming
    them.

    \b
    Example:
      maestro gdpr export --email jane@example.com --name "Jane Doe" --format json
    """
    from maestro_git.core.subject import DataSubject
    from maestro_git.mirror import db
    from maestro_git.ops.gdpr import export_subject

    subject = DataSubject.of(email, name)
    if use_mirror is None:
        use_mirror = app.settings.database_url is not None or db.embedded_running(app.settings)
    with db.connect(app.settings) if use_mirror else nullcontext() as conn:
        result = export_subject(app.settings, subject, conn)
    def human(_: object) -> None:
        click.echo(f"commits ({len(result.commits)}):")
        if result.commits:
            click.echo(table([{"commit": c.commit[:7], "roles": ",".join(c.roles),
                               "time": c.time.isoformat(timespec="seconds"),
                               "message": c.message.splitlines()[0] if c.message else ""}
                              for c in result.commits]))
        click.echo(f"records at the head ({len(result.records)}):")
        for r in result.records:
            click.echo(f"  {r.path}: {r.field} = {r.value}")
        click.echo(f"file lines at the head ({len(result.files)}):")
        for h in result.files:
            click.echo(f"  {h.path}:{h.line}: {h.text}")
        if result.mirror is None:
            app.echo("mirror: not read (set DATABASE_URL or pass --mirror)")
        else:
            for label, rows in (("persona_versions", result.mirror.persona_versions),
                                ("audit_events", result.mirror.audit_events)):
                click.echo(f"mirror {label} ({len(rows)}):")
                if rows:
                    click.echo(table(list(rows)))
    app.render(result.as_json(), fmt, human)


@gdpr_group.command("erase")
@click.option("--email", required=True, help="The data subject's e-mail address.")
@click.option("--name", default=None, help="The subject's name (its rows are erased too).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (required when not "
              "run from a terminal).")
@click.option("--dry-run", is_flag=True, help="Count the rows, change nothing.")
@format_option("text", "json")
@pass_app
def erase_cmd(app: AppContext, email: str, name: str | None, yes: bool, dry_run: bool,
              fmt: str) -> None:
    """Pseudonymise one person's identity in the mirror (the right to erasure).

    persona_versions.author_* and audit_events.actor_* rows of the person become
    'erased-<hash>' / 'erased-<hash>@invalid', in one transaction. Git history is never
    rewritten by maestro: the command prints the commits that still carry the identity, the
    'git filter-repo --mailmap' lines for a human to rewrite it, and the files at the head
    that still name the person, to edit and commit. The person goes into the erasure
    register (hashes only), so later syncs, the daemon and 'maestro rebuild' write the
    pseudonym for their commits too, until history is rewritten.

    \b
    Example:
      maestro gdpr erase --email jane@example.com --name "Jane Doe" --yes
    """
    from maestro_git.core.subject import DataSubject
    from maestro_git.mirror import db
    from maestro_git.ops.gdpr import erase_subject

    subject = DataSubject.of(email, name)
    confirm = not dry_run and not yes
    if confirm and not sys.stdin.isatty():
        raise UsageError("refusing to erase without --yes in a non-interactive run",
                         hint="add --yes, or --dry-run to only count the rows")
    with db.connect(app.settings) as conn:
        if confirm:
            plan = erase_subject(app.settings, conn, subject, dry_run=True)
            click.confirm(f"pseudonymise {plan.total} mirror rows of {subject.email}?",
                          abort=True)
        report = erase_subject(app.settings, conn, subject, dry_run=dry_run)
    payload: dict[str, Any] = {
        "subject": {"email": subject.email, "name": subject.name}, "dry_run": dry_run,
        "pseudonym": {"name": report.pseudonym_name, "email": report.pseudonym_email},
        "updated": dict(report.updated), "commits": report.commits,
        "files": report.files, "mailmap": list(report.mailmap)}
    def human(_: object) -> None:
        verb = "would pseudonymise" if dry_run else "pseudonymised"
        counts = ", ".join(f"{n} {t}" for t, n in report.updated.items())
        app.echo(f"{verb} {report.total} mirror rows ({counts}) as {report.pseudonym_name} "
                 f"<{report.pseudonym_email}>")
        if report.files:
            click.echo(f"{len(report.files)} lines at the head still name the person; edit and "
                       "commit them:")
            for h in report.files:
                click.echo(f"  {h.path}:{h.line}")
        if report.commits:
            click.echo(f"warning: {report.commits} commits on {app.settings.branch}: {_REWRITE}",
                       err=True)
            for line in report.mailmap:
                click.echo(f"  {line}", err=True)
        else:
            app.echo("no commit on the branch carries the identity")
    app.render(payload, fmt, human)
