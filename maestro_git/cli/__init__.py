"""The `maestro` command: a thin click shell over the library.

Each command parses options, makes one library call and renders the result with
`maestro_git.output`. Commands live in one module per area:

- `cli/files.py`     init, new, check, fmt, show, list, templates  (the working tree)
- `cli/versions.py`  history, diff, rollback, log                    (git)
- `cli/mirror.py`    db, sync, verify, rebuild                       (PostgreSQL mirror)
- `cli/daemon.py`    daemon                                          (the sync daemon)
- `cli/find.py`      search, sets, index                             (search and queries)
- `cli/transfer.py`  import, export, backup, restore                (moving data in and out)
- `cli/gdpr.py`      gdpr export, gdpr erase                         (personal data)
- `cli/migrate.py`   migrate themaestro, migrate persona-sets         (leaving database-first systems)
- `cli/server.py`    serve, token                                    (the HTTP API)

`main()` is the one error handler: a `MaestroError` becomes `error: <reason>` on stderr and its
exit code; no traceback reaches a user for a user's mistake.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from maestro_git.errors import MaestroError, UsageError
from maestro_git.settings import Settings, find_root, load_settings

if TYPE_CHECKING:  # pydantic's import is most of a command's start-up: only when needed
    from maestro_git.core.models import Problem

__all__ = ["AppContext", "cli", "format_option", "main", "pass_app", "report_problems"]

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


@dataclass
class AppContext:
    """What every command receives: the settings resolved once from flags, env and toml."""

    settings: Settings
    quiet: bool = False
    repo_flag: Path | None = None  # --repo as given (None: found from the current folder)

    def echo(self, text: str = "", err: bool = False) -> None:
        if text and not (self.quiet and not err):
            click.echo(text, err=err)

    def render(self, result: T, fmt: str, human: Callable[[T], object]) -> None:
        """`output.render` on stdout: JSON of `result`, or `human(result)` for the others."""
        from maestro_git.output import render

        render(result, fmt, human, write=click.echo)


pass_app = click.make_pass_decorator(AppContext)


def format_option(*choices: str, default: str | None = None) -> Callable[[F], F]:
    """The shared `--format` option; the first choice is the default."""
    return click.option(
        "--format", "fmt", type=click.Choice(list(choices)), default=default or choices[0],
        show_default=True, help="Output format: " + ", ".join(choices) + ".")


# Command name -> the module under maestro_git.cli that defines it. Modules are imported only
# when one of their commands runs (or for the full `--help` listing), so `maestro check` does
# not pay for psycopg, whoosh or watchdog. tests/test_cli.py checks this map is complete.
COMMAND_MODULES: dict[str, str] = {
    **dict.fromkeys(("init", "new", "check", "fmt", "show", "list", "templates"), "files"),
    **dict.fromkeys(("history", "diff", "rollback", "log", "review", "rename", "delete",
                     "promote"), "versions"),
    **dict.fromkeys(("db", "sync", "verify", "rebuild"), "mirror"),
    **dict.fromkeys(("search", "sets", "index"), "find"),
    "daemon": "daemon",
    "owners": "owners",
    **dict.fromkeys(("import", "export", "backup", "restore"), "transfer"),
    "gdpr": "gdpr",
    **dict.fromkeys(("serve", "token", "webhooks"), "server"),
    "migrate": "migrate",
}


def report_problems(app: AppContext, problems: Sequence[Problem], fmt: str, summary: str,
                    **json_fields: Any) -> None:
    """Print problems as text, JSON (`json_fields` plus error count and problems) or GitHub
    annotations, then `summary` on stderr (text only); exit 1 when any is an error."""
    from maestro_git.output import format_problems

    errors = sum(1 for p in problems if p.severity.value == "error")

    def human(_: object) -> None:
        out = format_problems(problems, fmt)
        if out:
            click.echo(out)
        if fmt == "text":
            app.echo(f"{summary}, {errors} errors, {len(problems) - errors} warnings", err=True)
    app.render({**json_fields, "errors": errors, "problems": problems}, fmt, human)
    if errors:
        raise click.exceptions.Exit(1)


class LazyGroup(click.Group):
    """A click group that imports a command's module the first time the command is needed."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMAND_MODULES) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMAND_MODULES.get(cmd_name)
        if module is not None and cmd_name not in self.commands:
            import_module(f"maestro_git.cli.{module}")
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--repo", "repo", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="The persona repository, or a folder inside it (default: the one that "
                   "contains the current folder, found as git finds it).")
@click.option("--database-url", envvar="DATABASE_URL", default=None,
              help="PostgreSQL URL of the mirror (default: $DATABASE_URL, else the embedded "
                   "server).")
@click.option("--branch", default=None, help="The branch to read and mirror (default: "
              "[sync] branch in maestro.toml, else main).")
@click.option("-q", "--quiet", is_flag=True, help="Print only errors and requested data.")
@click.version_option(package_name="maestro-git")
@click.pass_context
def cli(ctx: click.Context, repo: Path | None, database_url: str | None, branch: str | None,
        quiet: bool) -> None:
    """maestro: a git repository as the source of truth for AI agent personas.

    Personas live as Markdown files in personas/<owner>/<name>.md, persona sets as JSON in
    persona_sets/, templates in templates/. maestro validates them, reads their history from
    git, mirrors every commit into PostgreSQL and indexes them for search.
    """
    creating = ctx.invoked_subcommand == "init"  # init may create the folder
    if repo is not None and not repo.is_dir() and not creating:
        raise UsageError(f"--repo {repo}: no such folder",
                         hint="pass the folder of a persona repository")
    root = find_root(repo) if repo is not None and not creating else repo
    ctx.obj = AppContext(load_settings(root, database_url=database_url, branch=branch),
                         quiet=quiet, repo_flag=repo)


def import_all_commands() -> None:
    """Import every command module (their decorators add the commands to `cli`)."""
    for module in sorted(set(COMMAND_MODULES.values())):
        import_module(f"maestro_git.cli.{module}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (the console script exits with it)."""
    try:
        result = cli.main(args=list(argv) if argv is not None else None, prog_name="maestro",
                          standalone_mode=False)
        # Without standalone mode click turns `Exit(n)` raised in a command into a return value.
        if isinstance(result, int) and not isinstance(result, bool):
            return result
    except MaestroError as err:
        click.echo(f"error: {err.message}", err=True)
        if err.hint:
            click.echo(f"hint: {err.hint}", err=True)
        return err.exit_code
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception:  # a bug, not a user's mistake: keep the traceback, show one line
        return _report_bug()
    return 0


def _report_bug() -> int:
    """Exit 70 (EX_SOFTWARE; 3 is taken by NotFoundError) for an unexpected error, with its traceback written to a log file (as pre-commit)."""
    import tempfile
    import traceback

    exc = sys.exc_info()[1]
    text = traceback.format_exc()
    try:
        log = Path(tempfile.gettempdir()) / "maestro-error.log"
        log.write_text(f"maestro {' '.join(sys.argv[1:])}\n{text}", encoding="utf-8")
        where = f"; the traceback is in {log}"
    except OSError:
        where = ""
    click.echo(f"error: an unexpected error ({type(exc).__name__}: {exc}){where}", err=True)
    click.echo("hint: this is a bug in maestro; please report it with that log", err=True)
    return 70


def entry() -> None:  # pragma: no cover - console script shim
    sys.exit(main())
