"""Search and query commands: search, sets list/show, index rebuild/status."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import click

from maestro_git.cli import AppContext, cli, format_option, pass_app
from maestro_git.core.models import SearchHit
from maestro_git.core.snapshot import Snapshot
from maestro_git.mirror import db, query
from maestro_git.output import progress_callback, table, to_json
from maestro_git.search.documents import IndexStatus
from maestro_git.search.index import SearchIndex
from maestro_git.settings import Settings


def head_snapshot(settings: Settings) -> tuple[str | None, Callable[[], Snapshot]]:
    """The branch head and a loader of its snapshot (the working tree when the branch has
    no commit yet): what the local index should reflect."""
    from maestro_git.git.repo import GitRepo
    from maestro_git.repo.snapshots import snapshot_of

    try:
        repo = GitRepo(settings.repo_path)
        head = repo.head(settings.branch)
    except Exception:  # not a git repository: index the working tree
        repo, head = None, None
    if repo is None or head is None:
        return None, lambda: snapshot_of(settings)
    return head, lambda: snapshot_of(settings, head)


def _hit_rows(hits: list[SearchHit]) -> list[dict[str, Any]]:
    return [{"kind": h.kind, "key": h.key + (f"#{h.member}" if h.member else ""),
             "score": f"{h.score:.2f}", "snippet": h.snippet} for h in hits]


@cli.command("search")
@click.argument("text", metavar="QUERY")
@click.option("--limit", "-n", type=click.IntRange(1, 1000), default=10, show_default=True,
              help="Most hits to show.")
@click.option("--backend", type=click.Choice(["whoosh", "postgres"]), default="whoosh",
              show_default=True,
              help="whoosh: the local index in .maestro/index (built or updated when missing, "
                   "corrupted or behind the branch); postgres: the mirror's full-text index.")
@format_option("table", "json")
@pass_app
def search_cmd(app: AppContext, text: str, limit: int, backend: str, fmt: str) -> None:
    """Search personas, templates, persona sets and set members.

    \b
    One query language on both backends: words (all must match), "a phrase",
    OR / AND / NOT / -word, (groups), prefix*, fields: name: display_name: title:
    description: tag: owner: key: kind: category: metadata: set: status: extends:
    active: content: and age:54 age:>50 age:[50 TO 59]
    Examples:
      maestro search 'tag:coding owner:acme'
      maestro search '"pull request" OR review*'
      maestro search 'nurse in her 50s'          (set members; hits name their set)
    Limits: 1,000 characters, 32 words, 100 characters a word.
    """
    if backend == "postgres":
        with db.connect(app.settings) as conn:
            hits = query.search(conn, text, limit)
    else:
        head, loader = head_snapshot(app.settings)
        with SearchIndex(app.settings, source=loader) as index:
            index.ensure(loader, commit=head)
            hits = index.search(text, limit)
    app.render(hits, fmt, lambda hits: click.echo(table(_hit_rows(hits), max_width=90))
               if hits else app.echo("no matches", err=True))


@cli.group("sets")
def sets_group() -> None:
    """Persona sets in the mirror: list them, show one with its members and scores."""


@sets_group.command("list")
@click.option("--status", type=click.Choice(["generated", "expanded", "validated"]),
              default=None, help="Only sets with this status.")
@format_option("table", "json")
@pass_app
def sets_list(app: AppContext, status: str | None, fmt: str) -> None:
    """Every persona set at the last mirrored commit."""
    with db.connect(app.settings) as conn:
        rows = query.list_sets(conn, status)
    app.render(rows, fmt, lambda rows: click.echo(table(
        [{"key": r.key, "name": r.name, "status": r.status, "members": r.member_count,
          "cycle": r.generation_cycle, "updated": r.updated_at.date()} for r in rows])
        or "no persona sets"))


@sets_group.command("show")
@click.argument("key")
@format_option("table", "json")
@pass_app
def sets_show(app: AppContext, key: str, fmt: str) -> None:
    """One persona set: its scores and every member with its similarity score."""
    with db.connect(app.settings) as conn:
        detail = query.get_set(conn, key)
    app.render({**asdict(detail.set), "members": detail.members}, fmt,
               lambda _: _show_set(detail))


def _show_set(detail: query.SetDetail) -> None:
    s = detail.set
    lines = [f"{s.key}: {s.name}  ({s.status or 'no status'}, {s.member_count} members)"]
    if s.description:
        lines.append(s.description)
    for label, value in (("rqe scores", s.rqe_scores), ("diversity", s.diversity_score),
                         ("validation", s.validation_scores)):
        if value is not None:
            lines.append(f"{label}: {to_json(value).replace(chr(10), ' ')}")
    click.echo("\n".join(lines))
    if detail.members:
        click.echo("")
        click.echo(table([{"#": m.position, "name": m.name,
                           "similarity": m.similarity_score, "status": m.validation_status,
                           "summary": ", ".join(f"{k}={v}" for k, v in m.persona_data.items()
                                                if k != "name" and not isinstance(v, dict | list))}
                          for m in detail.members], max_width=70))


@cli.group("index")
def index_group() -> None:
    """The local Whoosh search index (.maestro/index), a rebuildable cache."""


@index_group.command("rebuild")
@format_option("text", "json")
@pass_app
def index_rebuild(app: AppContext, fmt: str) -> None:
    """Rebuild the index from the branch head (multiprocess writer for large repositories)."""
    head, loader = head_snapshot(app.settings)
    with SearchIndex(app.settings) as index, progress_callback("indexing") as advance:
        count = index.rebuild(loader(), progress=advance)
        status = index.status()
    app.render({"documents": count, **asdict(status)}, fmt, lambda _: app.echo(
        f"indexed {count} documents at {(head or 'the working tree')[:12]} into {status.path}"))


@index_group.command("status")
@format_option("text", "json")
@pass_app
def index_status(app: AppContext, fmt: str) -> None:
    """Where the index is, the commit it reflects, whether it is current and readable."""
    head, _ = head_snapshot(app.settings)
    with SearchIndex(app.settings) as index:
        status = index.status()
    current = status.healthy and status.commit == head
    app.render({**asdict(status), "head": head, "current": current}, fmt,
               lambda _: _show_status(status, head, current))


def _show_status(status: IndexStatus, head: str | None, current: bool) -> None:
    click.echo(f"index:    {status.path}")
    if not status.healthy:
        click.echo(f"state:    unusable: {status.reason} (rebuilt on next search)")
        return
    click.echo(f"commit:   {(status.commit or 'working tree')[:12]}"
               f"{'' if current else f' (branch head is {(head or chr(63))[:12]}: stale)'}")
    click.echo(f"content:  {status.documents} documents in {status.segments} segments")

