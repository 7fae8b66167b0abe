"""Working-tree commands: init, new, check, fmt, show, list, templates.

They read and write the files of the working tree (never the mirror) and never commit.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import click

from maestro_git.cli import AppContext, cli, format_option, pass_app, report_problems
from maestro_git.core.inherit import resolve
from maestro_git.core.models import Persona, PersonaSet, Template
from maestro_git.core.rules.validate import unknown_rules
from maestro_git.core.snapshot import Snapshot
from maestro_git.errors import MaestroError, NotFoundError, UsageError
from maestro_git.output import table, to_jsonable
from maestro_git.repo.scaffold import (
    InitResult,
    find_template,
    format_files,
    init_repository,
    list_templates,
    new_persona,
    require_persona_repository,
)

if TYPE_CHECKING:
    from maestro_git.ops import listing


def _relative(root: Path, path: Path) -> str:
    full = path.resolve()
    if not full.is_relative_to(root):
        raise UsageError(f"{path} is outside the repository {root}",
                         hint="pass --repo, or paths inside the repository")
    return full.relative_to(root).as_posix()


def _snapshot(app: AppContext) -> Snapshot:
    from maestro_git.repo.snapshots import snapshot_of

    require_persona_repository(app.settings.repo_path)
    return snapshot_of(app.settings)


@cli.command()
@click.argument("path", required=False, type=click.Path(file_okay=False, path_type=Path))
@format_option("text", "json")
@pass_app
def init(app: AppContext, path: Path | None, fmt: str) -> None:
    """Scaffold a persona repository in PATH (default: --repo, else the current folder).

    Creates personas/, persona_sets/, templates/ (with the built-in templates), maestro.toml
    (every default written out and commented) and adds .maestro/ to .gitignore. Existing files
    are kept; running it again only adds what is missing. Outside a git repository it also
    runs 'git init' (initial branch: --branch, default main). Nothing is committed.

    \b
    Example:
      maestro init my-personas && cd my-personas && git add -A && git commit -m "personas"
    """
    where = path or app.repo_flag or Path.cwd()
    result = init_repository(where, app.settings.branch)
    def human(result: InitResult) -> None:  # JSON: root, created, is_git_repo, git_initialized
        for rel in result.created:
            app.echo(f"created {rel}")
        if not result.created:
            app.echo(f"{result.root} is already a persona repository: nothing to add")
        if result.git_initialized:
            app.echo(f"initialized a git repository (branch {app.settings.branch}): commit "
                     "the files to start versioning them")
    app.render(result, fmt, human)


@cli.command()
@click.argument("key")
@click.option("-t", "--template", help="Start from this template (see 'maestro templates').")
@click.option("--display-name", help="Display name (default: from NAME, e.g. code_reviewer "
              "-> Code Reviewer).")
@click.option("--description", help="One line on what the persona is for (default: the "
              "template's).")
@click.option("--tag", "tags", multiple=True, help="A tag; repeat for several (default: the "
              "template's tags).")
@click.option("--extends", help="Parent persona key OWNER/NAME to inherit from.")
@format_option("text", "json")
@pass_app
def new(app: AppContext, key: str, template: str | None, display_name: str | None,
        description: str | None, tags: tuple[str, ...], extends: str | None,
        fmt: str) -> None:
    """Create personas/OWNER/NAME.md for the persona KEY (OWNER/NAME).

    The file gets a fresh UUID id and version 1.0.0; with --template, the template's body,
    description, tags and category. Refuses a key that exists or is not lowercase
    [a-z0-9_-]. The file is written, not committed.

    \b
    Example:
      maestro new acme/code_reviewer --template code_reviewer --tag python
    """
    root = app.settings.repo_path
    require_persona_repository(root)
    path = new_persona(root, key, template=template, display_name=display_name,
                       description=description, tags=list(tags) if tags else None,
                       extends=extends, settings=app.settings)
    rel = path.relative_to(root).as_posix()
    app.render({"key": key, "path": rel}, fmt, lambda r: app.echo(f"created {r['path']}"))


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--against", default=None, metavar="REV",
              help="Also check version discipline against REV: a persona or template whose "
                   "content changed since REV must have a higher semver (version-not-raised).")
@format_option("text", "json", "github")
@pass_app
def check(app: AppContext, paths: tuple[Path, ...], against: str | None, fmt: str) -> None:
    """Validate personas, templates and persona sets; exit 1 when any error is found.

    PATHS limits the report to those files or folders (cross-file rules still see the whole
    repository). --format github prints GitHub Actions annotations. --against REV adds the
    version-discipline rule used in pull-request review (see also `maestro review`). When
    maestro.toml has an [owners] table, an owner folder with personas and no reviewer is a
    warning (owner-without-reviewer).

    \b
    Example:
      maestro check personas/acme --format github
      maestro check --against origin/main
    """
    root = app.settings.repo_path
    for rule in unknown_rules(app.settings):
        click.echo(f"warning: maestro.toml [rules] names unknown rule '{rule}' "
                   "(see the rule table in README.md)", err=True)
    snap = _snapshot(app)
    problems = list(snap.problems)
    if against is not None:
        from maestro_git.repo.repository import Repository

        problems = Repository(app.settings).review(against)[1]
    from maestro_git.core.rules.validate import apply_severities
    from maestro_git.ops.owners import load_owners, owner_report

    owners = load_owners(app.settings)
    if owners.reviewers or owners.default is not None:  # only where [owners] is in use
        problems += apply_severities(owner_report(owners, snap).problems, app.settings)
    if paths:
        wanted = [_relative(root, p) for p in paths]
        problems = [p for p in problems
                    if any(w in (".", "") or p.path == w
                           or p.path.startswith(w.rstrip("/") + "/") for w in wanted)]
    report_problems(app, problems, fmt, f"{len(snap.files)} files checked",
                    files=len(snap.files))


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--check", "check_only", is_flag=True,
              help="Write nothing; exit 1 when a file would change (for CI).")
@format_option("text", "json")
@pass_app
def fmt(app: AppContext, paths: tuple[Path, ...], check_only: bool, fmt: str) -> None:
    """Normalise persona and template frontmatter, changing only the lines it must.

    Assigns a UUID id where one is missing, writes a numeric version (1.2) as the quoted
    semver "1.2.0", and a comma-separated tags string as a list. Comments, key order, quoting
    and the body are kept byte for byte; a formatted file stays as it is. PATHS limits the run
    (default: the whole repository). Exits 1 when a file cannot be read (see 'maestro check')
    or, with --check, when a file would change.

    \b
    Example:
      maestro fmt --check        # in CI
    """
    root = app.settings.repo_path
    require_persona_repository(root)
    for p in paths:
        _relative(root, p)
    report = format_files(root, list(paths) or None, check=check_only)

    def human(_: object) -> None:
        verb = "would change" if check_only else "formatted"
        for change in report.changed:
            click.echo(f"{change.path}: {verb}: {'; '.join(change.changes)}")
        for failure in report.failed:
            click.echo(f"{failure.path}: error: {failure.error}", err=True)
        app.echo(f"{report.checked} files checked, {len(report.changed)} {verb}"
                 + (f", {len(report.failed)} failed" if report.failed else ""), err=True)
    app.render({"checked": report.checked, "written": report.written,
                "changed": [{"path": c.path, "changes": c.changes} for c in report.changed],
                "failed": [{"path": c.path, "error": c.error} for c in report.failed]},
               fmt, human)
    if report.failed or (check_only and report.changed):
        raise click.exceptions.Exit(1)


def _find(app: AppContext, snap: Snapshot, key: str) -> Persona | Template | PersonaSet:
    if "/" in key:
        persona = snap.personas.get(key)
        if persona is not None:
            return persona
        path = f"personas/{key}.md"
    else:
        record: Template | PersonaSet | None = snap.templates.get(key) or snap.sets.get(key)
        if record is not None:
            return record
        try:
            return find_template(app.settings.repo_path, key, app.settings.limits)
        except NotFoundError:
            pass
        path = f"templates/{key}.md"
    if path in snap.files:
        raise MaestroError(f"{path} cannot be read",
                           hint=f"run 'maestro check {path}' to see why")
    raise NotFoundError(f"no persona, template or persona set '{key}'",
                        hint="'maestro list' and 'maestro templates' show what exists")


def _source_text(app: AppContext, record: Persona | Template | PersonaSet) -> str:
    path = app.settings.repo_path / record.path
    if isinstance(record, Template) and not path.is_file():  # a built-in template
        return f"---\n(built-in template {record.name})\n---\n{record.body}"
    return path.read_text(encoding="utf-8", errors="replace")


# The mirror's sort orders (maestro_git.mirror.query.SORTS; tests/test_cli.py keeps them equal). Kept
# here so that `maestro check` does not import the database layer at start-up.
SORT_NAMES = ("applied", "created", "key", "last-applied", "name", "owner", "updated")
Source = Literal["auto", "mirror", "worktree"]

_SOURCE = click.option(
    "--source", type=click.Choice(["auto", "mirror", "worktree"]), default="auto",
    show_default=True,
    help="auto: the PostgreSQL mirror when one is configured and synced, else the working "
         "tree; mirror / worktree: only that one.")


@cli.command()
@click.argument("key")
@click.option("--resolved", is_flag=True,
              help="Apply inheritance: print the effective instruction of the extends chain.")
@_SOURCE
@format_option("md", "json", "html")
@pass_app
def show(app: AppContext, key: str, resolved: bool, source: Source, fmt: str) -> None:
    """Show a persona (OWNER/NAME), a template (NAME) or a persona set (NAME).

    A persona is read from the mirror when there is one (see --source), else from the working
    tree. --format md prints the persona (with --resolved, its effective instruction after
    inheritance); --format json prints the record (with --resolved, plus the effective body);
    --format html prints the body (or the effective one) as sanitised HTML, safe to display.

    \b
    Example:
      maestro show acme/python_reviewer --resolved
      maestro show clinic_booking_research --format json
    """
    if "/" in key:
        from maestro_git.ops.listing import get_persona

        view = get_persona(app.settings, key, resolved, source)
        if view is not None:
            _render_mirrored(app, view, fmt)
            return
    snap = _snapshot(app)
    record = _find(app, snap, key)
    effective = None
    if resolved:
        if not isinstance(record, Persona):
            raise UsageError(f"'{key}' is not a persona: only personas have an extends chain")
        effective = resolve(record.key, snap.personas,
                            app.settings.limits.max_inheritance_depth)
    if fmt == "html" and isinstance(record, PersonaSet):
        raise UsageError(f"'{key}' is a persona set: only personas and templates have a "
                         "Markdown body", hint="use --format json for a set")
    data: dict[str, Any] = {"kind": record.kind, "key": record.key, "source": "worktree",
                            **to_jsonable(record)}
    if effective is not None:
        data["resolved"] = {"chain": effective.chain, "body": effective.body}
    def human(_: object) -> None:
        if fmt == "html":
            assert not isinstance(record, PersonaSet)
            _echo(_html(effective.body if effective is not None else record.body))
        else:
            _echo(effective.body if effective is not None else _source_text(app, record))
    app.render(data, fmt, human)


def _html(markdown: str) -> str:
    from maestro_git.core.render import render_html

    return render_html(markdown)


def _echo(text: str) -> None:
    """Print `text` as it is, ending it with a newline only when it has none."""
    click.echo(text, nl=not text.endswith("\n"))


def _render_mirrored(app: AppContext, view: listing.PersonaView, fmt: str) -> None:
    data: dict[str, Any] = {"kind": "persona", "source": view.source, **view.record,
                            "body": view.body}
    if view.resolved_body is not None:
        data["resolved"] = {"body": view.resolved_body}

    def human(_: object) -> None:
        if fmt == "html":
            _echo(_html(view.resolved_body if view.resolved_body is not None else view.body))
            return
        if view.resolved_body is not None:
            text = view.resolved_body
        else:
            r = view.record
            fields = {"id": r["id"], "display_name": r["display_name"],
                      "description": r["description"], "version": r["version"],
                      "extends": r["parent_key"], "model": r.get("model"),
                      "tools": r.get("tools"), "tags": r["tags"], "active": r["active"],
                      "metadata": r["metadata"]}
            from maestro_git.core.writeback import render_document  # ruamel.yaml: only here

            text = render_document({k: v for k, v in fields.items()
                                    if v not in (None, [], {}) or k == "tools" and v == []},
                                   view.body).decode("utf-8")
        _echo(text)
    app.render(data, fmt, human)


@cli.command("list")
@click.option("--tag", "tags", multiple=True,
              help="Only personas with this tag; repeat to require several.")
@click.option("--owner", help="Only personas of this owner (the folder under personas/).")
@click.option("--active/--inactive", "active", default=None,
              help="Only active (or only inactive) personas.")
@click.option("--parent", metavar="KEY", help="Only personas that extend KEY.")
@click.option("--text", help="A substring of the key, display name or description.")
@click.option("--model", help="Only personas whose `model` is MODEL (any case).")
@click.option("--tool", "tools", multiple=True,
              help="Only personas whose `tools` list this tool; repeat to require several.")
@click.option("--since", "since", type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
              default=None, help="Only personas changed since this date (mirror only).")
@click.option("--sort", type=click.Choice(SORT_NAMES), default="key", show_default=True,
              help="Sort order (updated/created/applied/last-applied need the mirror).")
@click.option("--desc", "descending", is_flag=True, default=None, help="Reverse the order.")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True)
@_SOURCE
@format_option("table", "json")
@pass_app
def list_(app: AppContext, tags: tuple[str, ...], owner: str | None, active: bool | None,
          parent: str | None, text: str | None, model: str | None, tools: tuple[str, ...],
          since: datetime | None, sort: str,
          descending: bool | None, limit: int, offset: int, source: Source,
          fmt: str) -> None:
    """List personas: from the mirror when there is one (see --source), else the working tree.

    The working tree is read as it is on disk (committed or not); files that do not parse
    are left out ('maestro check' reports them). The mirror shows the last mirrored commit,
    with usage counters.

    \b
    Example:
      maestro list --owner acme --tag python --format json
      maestro list --sort applied --limit 10 --source mirror
      maestro list --model opus --tool Bash
    """
    from maestro_git.mirror.query import PersonaFilters
    from maestro_git.ops.listing import list_personas

    filters = PersonaFilters(
        tags=tags, owner=owner, active=active, parent=parent, text=text, model=model,
        tools=tools, updated_since=since.replace(tzinfo=UTC) if since and since.tzinfo is None else since,
        sort=sort, descending=descending, limit=limit, offset=offset)
    used, rows = list_personas(app.settings, filters, source)

    def human(rows: list[dict[str, Any]]) -> None:
        if not rows:
            app.echo(f"no personas match (read the {used})", err=True)
            return
        columns = ["key", "version", "active", "extends", "tags", "description"]
        if used == "mirror":
            columns.insert(4, "application_count")
        click.echo(table(rows, columns))
        app.echo(f"{len(rows)} personas from the {used}", err=True)
    app.render(rows, fmt, human)


@cli.command()
@format_option("table", "json")
@pass_app
def templates(app: AppContext, fmt: str) -> None:
    """List the templates 'maestro new --template' accepts.

    The repository's templates/ first; built-in templates fill in the names it lacks
    (SOURCE says which).

    \b
    Example:
      maestro templates --format json
    """
    rows = [{"name": e.template.name, "category": e.template.category, "source": e.source,
             "display_name": e.template.display_name, "description": e.template.description,
             "tags": list(e.template.tags), "version": e.template.version}
            for e in list_templates(app.settings.repo_path, app.settings.limits)]
    app.render(rows, fmt, lambda rows: click.echo(
        table(rows, ["name", "category", "source", "tags", "description"])))


__all__ = ["check", "fmt", "init", "list_", "new", "show", "templates"]
