"""Server commands: `maestro serve`, `maestro token create|list|revoke`, `maestro webhooks`."""

from __future__ import annotations

import dataclasses
from typing import Any

import click

from maestro_git.cli import AppContext, cli, format_option, pass_app
from maestro_git.output import table


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind (loopback by default; 0.0.0.0 for every interface).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Server processes.")
@click.option("--public", is_flag=True,
              help="Answer requests without a token (they read every owner).")
@pass_app
def serve(app: AppContext, host: str, port: int, workers: int, public: bool) -> None:
    """Serve the HTTP API over the mirror (OpenAPI at /docs and /openapi.json).

    Requests need 'Authorization: Bearer <token>' (see 'maestro token create'); a token
    reads only its owners' personas, sets and history. Stop with Ctrl-C.

    \b
    Examples:
      maestro serve
      maestro serve --port 9000 --workers 2
      curl -H "Authorization: Bearer $TOKEN" localhost:8000/api/v1/personas
    """
    from maestro_git.server import serve as run

    app.echo(f"serving http://{host}:{port} ({'public' if public else 'tokens required'})",
             err=True)
    run(app.settings, host=host, port=port, workers=workers, public=public,
        log_level="warning" if app.quiet else "info")


@cli.group()
def token() -> None:
    """API tokens for 'maestro serve': each reads only the owners it was created for."""


@token.command()
@click.option("--owner", "owners", multiple=True, required=True,
              help="An owner folder the token may read (repeat for several).")
@click.option("--expires", default=None, help="A duration (30d, 12h) or an ISO date.")
@click.option("--description", default="", help="What the token is for.")
@pass_app
def create(app: AppContext, owners: tuple[str, ...], expires: str | None,
           description: str) -> None:
    """Create a token; it is printed once, alone on the last line, and stored only as a hash.

    \b
    Example:
      TOKEN=$(maestro token create --owner acme --expires 90d | tail -1)
    """
    from maestro_git.server.tokens import create_token

    made = create_token(app.settings, owners, expires, description)
    when = made.row.expires_at.isoformat() if made.row.expires_at else "never"
    app.echo(f"token {made.row.token_id} for {', '.join(made.row.owners)} "
             f"(expires: {when}); it is shown only now:")
    click.echo(made.secret)


@token.command("list")
@format_option("table", "json")
@pass_app
def list_(app: AppContext, fmt: str) -> None:
    """Every token: id, owners, created, expires, revoked (never the secret)."""
    from maestro_git.server.tokens import list_tokens

    rows = list_tokens(app.settings)
    def human(_: object) -> None:
        if not rows:
            app.echo("no tokens (create one with 'maestro token create --owner OWNER')", err=True)
            return
        click.echo(table([{"id": r.token_id, "owners": ",".join(r.owners),
                           "created": r.created_at.isoformat(timespec="seconds"),
                           "expires": r.expires_at.isoformat(timespec="seconds")
                           if r.expires_at else "never",
                           "revoked": r.revoked_at.isoformat(timespec="seconds")
                           if r.revoked_at else "-",
                           "description": r.description or "-"} for r in rows],
                         ["id", "owners", "created", "expires", "revoked", "description"]))
    app.render({"tokens": [dataclasses.asdict(r) for r in rows]}, fmt, human)


@token.command()
@click.argument("token_id")
@pass_app
def revoke(app: AppContext, token_id: str) -> None:
    """Revoke a token by its id (from 'maestro token list'); servers refuse it within 2 s."""
    from maestro_git.server.tokens import revoke_token

    row = revoke_token(app.settings, token_id)
    app.echo(f"revoked token {row.token_id}")


@cli.command()
@click.option("--status", type=click.Choice(["pending", "delivered", "failed"]), default=None,
              help="Only deliveries in this state.")
@click.option("--limit", "-n", type=click.IntRange(1, 10_000), default=50, show_default=True,
              help="Most deliveries to show.")
@format_option("table", "json")
@pass_app
def webhooks(app: AppContext, status: str | None, limit: int, fmt: str) -> None:
    """The signed-webhook delivery log, newest first: one row per mirrored commit and URL.

    Shows each delivery's state (pending, delivered, failed after 8 attempts), attempts, the
    receiver's last HTTP status or error and when it is tried next. 'maestro serve' sends
    them ([webhooks] in maestro.toml).

    \b
    Example:
      maestro webhooks --status failed
    """
    from maestro_git.server.webhooks import delivery_log

    rows = delivery_log(app.settings, limit, status)

    def human(rows: list[Any]) -> None:
        if not rows:
            app.echo("no webhook deliveries" + (f" {status}" if status else "")
                     + " (configure [webhooks] urls and run 'maestro serve')", err=True)
            return
        click.echo(table([{
            "id": r.id, "status": r.status, "url": r.url, "commit": r.commit[:7],
            "attempts": r.attempts,
            "last": r.last_status_code if r.last_status_code is not None
            else (r.last_error or "-"),
            "next": r.next_attempt_at.isoformat(timespec="seconds")
            if r.status == "pending" else "-",
            "delivered": r.delivered_at.isoformat(timespec="seconds")
            if r.delivered_at else "-"} for r in rows], max_width=70))
    app.render(rows, fmt, human)
