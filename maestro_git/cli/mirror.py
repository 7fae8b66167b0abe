"""Mirror commands: db (url, status, migrate, stop), sync, verify, rebuild."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click

from maestro_git.cli import AppContext, cli, format_option, pass_app
from maestro_git.mirror import db
from maestro_git.mirror.sync import SyncReport
from maestro_git.mirror.verify import verify
from maestro_git.ops.sync import rebuild_and_index, sync_and_index
from maestro_git.output import progress_callback, table


@cli.group("db")
def db_group() -> None:
    """The PostgreSQL mirror: its URL, status, migrations, and the embedded server.

    With neither --database-url nor DATABASE_URL, maestro runs an embedded PostgreSQL for
    this repository (data outside the work tree), started on first use and reused.
    """


@db_group.command("url")
@click.option("--server", is_flag=True,
              help="The server's URL as configured, without the mirror's search_path.")
@pass_app
def db_url(app: AppContext, server: bool) -> None:
    """Print the connection string of this branch's mirror: psql "$(maestro db url)".

    The URL sets search_path to the mirror's schema (created and migrated first), so
    `SELECT * FROM current_personas` works in psql or any driver. Starts the embedded server
    when needed. --server prints the server's URL alone (DATABASE_URL / --database-url).
    """
    click.echo(db.database_url(app.settings) if server else db.mirror_url(app.settings))


@db_group.command("status")
@format_option("table", "json")
@pass_app
def db_status(app: AppContext, fmt: str) -> None:
    """Server version; this branch's mirror (schema, migrations, cursor); every mirror in the
    database with its repository, branch and head (* marks the one these settings read)."""
    with db.connect(app.settings) as conn:
        st = db.status(app.settings, conn)
    app.render(st, fmt, _show_status)


def _show_status(st: db.DbStatus) -> None:
    lines = [f"url:         {st.url}",
             f"server:      PostgreSQL {st.server_version}"
             + (f" (embedded, {st.data_dir})" if st.embedded else ""),
             f"schema:      {st.schema or '(search_path)'}",
             f"migrations:  {', '.join(st.applied) or 'none'}"
             + (f"; pending: {', '.join(st.pending)}" if st.pending else ""),
             f"personas:    {st.personas}",
             f"sync errors: {st.sync_errors}"]
    lines += [f"cursor:      {branch} at {commit[:7]}" for branch, commit in st.cursors.items()]
    click.echo("\n".join(lines))
    if st.mirrors:
        click.echo("")
        click.echo(table([{"": "*" if m.current else "", "schema": m.schema,
                           "repository": f"{m.name} ({', '.join(r[:7] for r in m.roots)})",
                           "branch": m.branch, "head": (m.head or "")[:7],
                           "personas": m.personas if m.personas >= 0 else "",
                           "updated": m.updated_at} for m in st.mirrors],
                         ["", "schema", "repository", "branch", "head", "personas",
                          "updated"]))


@db_group.command("migrate")
@pass_app
def db_migrate(app: AppContext) -> None:
    """Create or upgrade the mirror of every mirrored branch (each migration in its own
    transaction, inside the mirror's schema; the old single-schema layout is moved in place)."""
    for branch in app.settings.mirrored_branches:
        with db.connect(app.settings.with_overrides(branch=branch)) as conn:
            applied = db.migrate(conn)
            bound = db.mirror_of(conn)
        where = f"{bound.schema} ({branch})" if bound is not None else branch
        app.echo(f"{where}: applied {', '.join(applied)}" if applied
                 else f"{where}: schema is up to date")


@db_group.command("stop")
@pass_app
def db_stop(app: AppContext) -> None:
    """Stop this repository's embedded PostgreSQL server."""
    if app.settings.database_url:
        app.echo("an external database is configured (DATABASE_URL); nothing to stop")
        return
    stopped = db.stop_embedded(app.settings)
    app.echo("embedded PostgreSQL stopped" if stopped else "embedded PostgreSQL is not running")




@contextmanager
def _bars(label: str) -> Iterator[tuple[Callable[[int, int], None], Callable[[int, int], None]]]:
    """(commits, files): `label  done/total` per mirrored commit, preceded, for a commit
    whose whole tree is parsed (a first load), by `reading files  parsed/total`."""
    with progress_callback("reading files") as files, progress_callback(label) as commits:
        yield commits, files


def _render_sync(app: AppContext, report: SyncReport, fmt: str, prefix: str = "") -> None:
    app.render(report, fmt, lambda report: _show_sync(app, report, prefix))


def _show_sync(app: AppContext, report: SyncReport, prefix: str) -> None:
    if report.head is None:
        app.echo(f"{prefix}branch {report.branch or app.settings.branch} has no commit; "
                 "nothing to mirror")
        return
    def count(n: int, word: str) -> str:
        return f"{n} {word}{'' if n == 1 else 's'}"

    parts = [f"mirrored {count(report.commits, 'commit')}",
             count(report.entities, "change")]
    if report.invalid_paths:
        parts.append(f"{count(len(report.invalid_paths), 'invalid file')} kept at the last "
                     f"good state: {', '.join(report.invalid_paths[:3])}"
                     + (" …" if len(report.invalid_paths) > 3 else "")
                     + " (see sync_errors, or run 'maestro check')")
    note = " (history was rewritten: reconciled)" if report.rewritten else ""
    app.echo(prefix + ", ".join(parts) + f"; at {report.head[:7]}{note}")


@cli.command("sync")
@click.option("--head-only", is_flag=True,
              help="Mirror just the head's tree, not every commit since the cursor.")
@click.option("--no-index", is_flag=True, help="Do not update the local search index.")
@format_option("text", "json")
@pass_app
def sync_cmd(app: AppContext, head_only: bool, no_index: bool, fmt: str) -> None:
    """Mirror every commit from the last mirrored one to the branch head, in order.

    Every branch of [sync] branches is mirrored, each into its own mirror (--branch: just
    that one). From an empty mirror the whole first-parent history is mirrored, so versions
    and the audit trail go back to the first commit. Invalid files are not applied; their
    errors go to sync_errors. Exits 7 when a daemon holds a mirror's writer lock.
    The local search index follows the default branch only.
    """
    default = app.settings.branch
    reports = []
    with _bars("mirroring") as (advance, files):
        for branch in app.settings.mirrored_branches:
            reports.append(sync_and_index(
                app.settings.with_overrides(branch=branch), head_only=head_only,
                index=not no_index and branch == default, progress=advance, files=files))
    several = len(reports) > 1
    def human(_: object) -> None:
        for r in reports:
            _show_sync(app, r, f"{r.branch}: " if several else "")
    app.render(reports if several else reports[0], fmt, human)


@cli.command("verify")
@format_option("table", "json")
@pass_app
def verify_cmd(app: AppContext, fmt: str) -> None:
    """Compare the mirror with the branch head; exit 1 and list the drift if they differ.

    Every row's content hash is checked against its file; missing and extra rows and stale
    resolved content are reported. Files invalid at the head are not drift. Every branch of
    [sync] branches is verified, each against its own mirror (--branch: just that one).
    """
    reports = []
    for branch in app.settings.mirrored_branches:
        settings = app.settings.with_overrides(branch=branch)
        with db.connect(settings) as conn:
            db.migrate(conn)
            reports.append((branch, verify(settings, conn)))
    several = len(reports) > 1
    docs = [{**dataclasses.asdict(r), "branch": b, "ok": r.ok} for b, r in reports]

    def human(_: object) -> None:
        for branch, report in reports:
            prefix = f"{branch}: " if several else ""
            if report.ok:
                app.echo(f"{prefix}mirror matches "
                         f"{report.head[:7] if report.head else 'an empty branch'} "
                         f"({report.checked} entities checked)")
                continue
            click.echo(table([dataclasses.asdict(d) for d in report.drift],
                             ["problem", "kind", "key", "detail"]))
            app.echo(f"{prefix}{len(report.drift)} differences; run 'maestro sync' or "
                     "'maestro rebuild'", err=True)
    app.render(docs if several else docs[0], fmt, human)
    if not all(r.ok for _, r in reports):
        raise click.exceptions.Exit(1)


@cli.command("rebuild")
@click.option("--head-only", is_flag=True, help="Mirror just the head, not the whole history.")
@click.option("--no-index", is_flag=True, help="Do not update the local search index.")
@format_option("text", "json")
@pass_app
def rebuild_cmd(app: AppContext, head_only: bool, no_index: bool, fmt: str) -> None:
    """Recreate the mirror from git, keeping persona_usage (application counts).

    Every table derived from git is emptied and the branch is mirrored again.
    """
    with db.connect(app.settings) as conn, _bars("rebuilding") as (advance, files):
        report = rebuild_and_index(app.settings, conn, head_only=head_only,
                                   index=not no_index, progress=advance, files=files)
    _render_sync(app, report, fmt)
