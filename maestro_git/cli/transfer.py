"""Import, export, backup and restore: moving personas and usage counters in and out."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import cast

import click

from maestro_git.cli import AppContext, cli, format_option, pass_app
from maestro_git.errors import UsageError
from maestro_git.output import format_problems, table


@cli.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--owner", help="Owner folder for imported personas (personas/OWNER/...); "
              "default: the frontmatter's owner.")
@click.option("--name", help="Name of the imported entity (one file only); default: the "
              "frontmatter's name, else the file name.")
@click.option("--template-category", metavar="C",
              help="Import as a template (templates/NAME.md) with this category.")
@click.option("--dry-run", is_flag=True, help="Convert and validate, write nothing.")
@click.option("--commit", "commit", is_flag=True,
              help="Commit the imported files (one compare-and-swap commit on the branch) "
                   "instead of writing them into the working tree.")
@click.option("--author", help="Commit author 'Name <email>' (with --commit).")
@click.option("-m", "--message", help="Commit message (with --commit).")
@click.option("--static", "static", metavar="DIR",
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="The persona-set service's static folder: each member's image "
                   "(/static/images/personas/...) is copied into persona_sets/SET/images/ "
                   "and its image_url rewritten.")
@format_option("text", "json")
@pass_app
def import_cmd(app: AppContext, paths: tuple[Path, ...], owner: str | None, name: str | None,
               template_category: str | None, dry_run: bool, commit: bool,
               author: str | None, message: str | None, static: Path | None,
               fmt: str) -> None:
    """Bring existing system instructions and persona sets into the repository.

    PATHS are instruction files (any Markdown named explicitly), agent-tool files (Claude
    Code subagents, Copilot agents, prompts and instructions, Cursor rules, Continue and
    Windsurf rules, CLAUDE.md, AGENTS.md, GEMINI.md) and persona-set JSON files
    (default_personas.json, default_personas_<set>.json, default_personas/<set>.json), or
    project folders: a folder is searched for the tools' files (.claude/agents/,
    .github/..., .cursor/rules/, ...) and persona sets, and every other file (a README,
    docs/, package.json) is skipped with a one-line note. Each persona gets a fresh id and
    version 1.0.0; its body is kept byte for byte, a tool's own keys under metadata.<tool>.
    Everything is validated first: on any error nothing is written, and an existing key is
    never overwritten.

    \b
    Example:
      maestro import ~/src/app/GEMINI.md --owner acme --name app_assistant
      maestro import ~/src/app --owner acme
      maestro import default_personas_set1.json --static ~/pep-be/static --commit
    """
    from maestro_git.ops.importer import describe, import_paths

    result = import_paths(app.settings, paths, owner=owner, name=name,
                          template_category=template_category, dry_run=dry_run,
                          commit=commit, author=author, message=message, static=static)
    def human(_: object) -> None:
        verb = "would import" if dry_run else "imported"
        for item in result.items:
            app.echo(f"{verb} {item.source} -> {item.path}")
        for path, reason in result.skipped:
            app.echo(f"skipped {path}: {reason}")
        if result.problems:
            click.echo(format_problems(result.problems))
        if result.commit:
            app.echo(f"committed {result.commit[:7]} on {app.settings.branch}")
        elif result.written:
            app.echo("review the files, then commit them (git add, git commit)")
    app.render({"written": result.written, "commit": result.commit,
                "items": describe(result.items), "problems": result.problems,
                "skipped": [{"path": p, "reason": r} for p, r in result.skipped]}, fmt, human)


@cli.command("export")
@click.argument("key", required=False)
@click.option("--target", metavar="TOOL",
              help="Render personas into a consuming repository (KEY is then its folder) in "
                   "an agent tool's layout: claude, claude-md, copilot, copilot-instructions, "
                   "copilot-scoped, copilot-prompt, copilot-chatmode, cursor, agents-md, "
                   "gemini, continue, windsurf.")
@click.option("--only", "only", multiple=True, metavar="KEY",
              help="With --target: export only these personas (repeatable).")
@click.option("--owner", metavar="OWNER", help="With --target: only this owner's personas.")
@click.option("--check", is_flag=True,
              help="With --target: write nothing, exit 1 when the folder is stale.")
@click.option("--json", "as_json", is_flag=True,
              help="With --target: print the result as JSON.")
@click.option("--all", "all_dir", type=click.Path(file_okay=False, path_type=Path),
              metavar="DIR", help="Export every valid persona, template and set into DIR.")
@click.option("--resolved", is_flag=True,
              help="The effective instruction, with the extends chain applied.")
@click.option("--frontmatter", is_flag=True,
              help="Markdown with the shareable frontmatter (name, owner, display_name, "
                   "tags, ...), for 'maestro import' elsewhere.")
@click.option("--format", "fmt", type=click.Choice(["md", "json"]), default=None,
              help="md (default for personas and templates) or json (default for sets).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file instead of standard output.")
@click.option("--rev", metavar="REV", help="Read from this commit instead of the working tree.")
@pass_app
def export_cmd(app: AppContext, key: str | None, target: str | None, only: tuple[str, ...],
               owner: str | None, check: bool, as_json: bool, all_dir: Path | None,
               resolved: bool, frontmatter: bool, fmt: str | None, output: Path | None,
               rev: str | None) -> None:
    """Export KEY (a persona OWNER/NAME, a template or a persona set) for use elsewhere.

    A persona exports as its instruction (Markdown, ready to save as GEMINI.md or AGENTS.md)
    or as its JSON record; a persona set as its JSON, the persona-set service's shape. With
    --all DIR, everything is written into DIR in the repository layout. With --target TOOL
    DIR, the personas (resolved) are written into the consuming repository DIR in that
    tool's layout, each with a generated-by line naming its key and commit; a second run
    changes nothing, and --check exits 1 when DIR is stale (for the consuming repository's
    CI).

    \b
    Example:
      maestro export acme/python_reviewer --resolved -o AGENTS.md
      maestro export clinic_booking_research -o default_personas/clinic.json
      maestro export --all shared/ --rev v1.2
      maestro export --target claude ../app --owner acme
      maestro export --target agents-md ../app --only acme/python_reviewer --check
    """
    from maestro_git.atomic import write_atomic
    from maestro_git.ops.exporter import ExportFormat, export_all, export_entity

    if target is not None:
        _export_target(app, target, key, only, owner, check, as_json, rev)
        return
    if only or owner or check or as_json:
        raise UsageError("--only, --owner, --check and --json go with --target",
                         hint="maestro export --target claude DIR --check")
    if all_dir is not None:
        if key is not None or output is not None or fmt == "json" or frontmatter:
            raise UsageError("--all takes a folder and writes files with frontmatter",
                             hint="drop KEY, -o, --format and --frontmatter")
        from maestro_git.output import progress_callback

        with progress_callback("exporting") as advance:
            result = export_all(app.settings, all_dir, resolved=resolved, rev=rev,
                                progress=advance)
        app.echo(f"exported {len(result.written)} files into {all_dir}"
                 + (f" ({len(result.skipped)} invalid skipped: "
                    f"{', '.join(result.skipped)})" if result.skipped else ""))
        return
    if key is None:
        raise UsageError("export needs a KEY or --all DIR",
                         hint="maestro export acme/reviewer, or maestro export --all out/")
    data = export_entity(app.settings, key, fmt=cast("ExportFormat | None", fmt),
                         resolved=resolved, frontmatter=frontmatter, rev=rev)
    if output is None:
        click.echo(data, nl=False)
    else:
        write_atomic(output, data)
        app.echo(f"wrote {output}", err=True)


def _export_target(app: AppContext, target: str, folder: str | None, only: tuple[str, ...],
                   owner: str | None, check: bool, as_json: bool, rev: str | None) -> None:
    from maestro_git.ops.exporter import export_target

    if folder is None:
        raise UsageError("--target needs the consuming repository's folder",
                         hint=f"maestro export --target {target} ../app")
    result = export_target(app.settings, target, Path(folder), keys=only, owner=owner,
                           check=check, rev=rev)
    errors = [p for p in result.problems if p.severity == "error"]
    def human(_: object) -> None:
        if result.problems:
            click.echo(format_problems(result.problems), err=True)
        if check:
            for path in result.stale:
                app.echo(f"stale {path}")
            app.echo(f"{folder}: {len(result.stale)} stale, {len(result.unchanged)} up to date "
                     f"({result.target})")
        else:
            for path in result.written:
                app.echo(f"wrote {path}")
            for path in result.removed:
                app.echo(f"removed {path}")
            app.echo(f"{result.target}: {len(result.written)} written, "
                     f"{len(result.unchanged)} unchanged, {len(result.removed)} removed in "
                     f"{folder}")
    app.render(result, "json" if as_json else "text", human)
    if (check and result.stale) or errors:
        raise click.exceptions.Exit(1)


@cli.command("backup")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@format_option("text", "json")
@pass_app
def backup_cmd(app: AppContext, file: Path, fmt: str) -> None:
    """Save what git cannot hold: usage counters and the GDPR erasure register.

    The content itself is backed up by git (push the repository to a remote). FILE gets the
    branch head, every persona's key, id and content hash, every persona_usage row, and the
    erasure register (hashes and pseudonyms, never the erased identities).

    \b
    Example:
      maestro backup usage.json
    """
    from maestro_git.mirror import db
    from maestro_git.ops.backup import create_backup, write_backup

    with db.connect(app.settings) as conn:
        backup = create_backup(app.settings, conn)
    write_backup(file, backup)
    def human(_: object) -> None:
        head = backup.head[:7] if backup.head else "an empty branch"
        erasures = len(backup.erasures)
        app.echo(f"backed up {len(backup.usage)} usage rows, {erasures} erasure register "
                 f"entr{'y' if erasures == 1 else 'ies'} and {len(backup.personas)} personas at "
                 f"{head} to {file}")
    app.render({"file": str(file), "head": backup.head,
                "personas": len(backup.personas), "usage": len(backup.usage),
                "erasures": len(backup.erasures)}, fmt, human)


@cli.command("restore")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@format_option("text", "json")
@pass_app
def restore_cmd(app: AppContext, file: Path, fmt: str) -> None:
    """Load the usage counters and erasure register of a backup, then verify against git.

    Rows are matched by persona id; the larger count and the later time win, so restoring is
    safe to repeat. Erased identities still in the mirror are rewritten to their pseudonyms. Run it after 'maestro sync' on a new database (or after 'maestro
    rebuild'). Exits 1 when the mirror still differs from git.

    \b
    Example:
      maestro sync && maestro restore usage.json
    """
    from maestro_git.mirror import db
    from maestro_git.ops.backup import read_backup, restore_usage

    backup = read_backup(file)
    with db.connect(app.settings) as conn:
        report = restore_usage(app.settings, conn, backup)
    drift = [dataclasses.asdict(d) for d in report.verify.drift]
    def human(_: object) -> None:
        app.echo(f"restored {report.restored} usage rows"
                 + (f" ({report.remapped} moved to their key's current id)"
                    if report.remapped else ""))
        if backup.erasures:
            app.echo(f"erasure register: {report.erasures_added} new of "
                     f"{len(backup.erasures)}; {report.pseudonymised} mirror rows "
                     "pseudonymised")
        if report.orphaned:
            click.echo(f"warning: {len(report.orphaned)} rows belong to no persona in the "
                       "mirror (kept; run 'maestro sync' first?)", err=True)
        if not report.head_known:
            click.echo(f"warning: the backup's head {backup.head} is not in this repository "
                       "(fetch it, or the counters may belong to another repository)",
                       err=True)
        if drift:
            click.echo(table(drift, ["problem", "kind", "key", "detail"]))
            app.echo(f"{len(drift)} differences between the mirror and git; run "
                     "'maestro sync' or 'maestro rebuild' (usage is kept)", err=True)
        else:
            app.echo("mirror matches git")
    app.render({"restored": report.restored, "remapped": report.remapped,
                "orphaned": list(report.orphaned), "erasures_added": report.erasures_added,
                "pseudonymised": report.pseudonymised, "head_known": report.head_known,
                "drift": drift, "ok": report.verify.ok}, fmt, human)
    if not report.verify.ok:
        raise click.exceptions.Exit(1)
