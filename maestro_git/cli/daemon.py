"""`maestro daemon`: the sync daemon (see maestro_git/daemon.py)."""

from __future__ import annotations

import click

from maestro_git.cli import AppContext, cli, pass_app
from maestro_git.daemon.loop import DaemonLog, DaemonOptions, run_once, serve


@cli.command("daemon")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text",
              show_default=True,
              help="Log lines on stderr: plain text, or one JSON object per line.")
@click.option("--poll-interval", type=click.FloatRange(min=0.05), default=2.0,
              show_default=True, metavar="SECONDS",
              help="How often the branch head is re-checked, in case a file event was lost.")
@click.option("--once", is_flag=True,
              help="Mirror every new commit, then exit (for cron). Exits 7 when a daemon "
                   "holds the writer lock.")
@pass_app
def daemon_command(app: AppContext, log_format: str, poll_interval: float, once: bool) -> None:
    """Watch the repository: mirror each new commit at once, report working-tree problems.

    \b
    - A new commit on the branch is mirrored into PostgreSQL as soon as its ref moves.
    - A saved file in personas/, templates/ or persona_sets/ is validated and its problems
      are logged (path:line: severity rule: message); uncommitted work is never mirrored.
    - Only one daemon writes to a database (a PostgreSQL advisory lock); another one waits
      as a standby and takes over when the writer stops.
    - If the database goes away, the daemon retries with back-off and catches up.
    - SIGTERM or Ctrl-C: the commit in flight finishes, then the daemon exits 0.

    \b
    Examples:
      maestro daemon                          # foreground, plain log lines on stderr
      maestro --repo /srv/personas daemon --log-format json
      maestro daemon --once                   # catch up and exit (cron)
    """
    log = DaemonLog(log_format)
    if once:
        run_once(app.settings, log)
        return
    serve(app.settings, DaemonOptions(poll_interval=poll_interval), log)
