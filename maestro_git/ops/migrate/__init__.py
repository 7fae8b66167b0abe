"""Migrations off the two database-first systems, with their history (`maestro migrate`).

- `run_themaestro(settings, url, …)`: TheMaestro's database (`themaestro.plan_themaestro`);
- `run_persona_sets(settings, url, static, …)`: the persona-set service's database and its
  static folder (`persona_sets.plan_persona_sets`).

Each reads the old database in one read-only transaction (`mirror.foreign`), plans the
commits (pure), and unless `dry_run` replays them onto the branch with their original
authors and times (`replay`), then validates the new head. A migration only adds files: a
path already on the branch refuses it before anything is written.

Usage counters (TheMaestro's `application_count`, `last_applied_at`) go into the mirror's
`persona_usage` at once, by persona id: the personas keep their TheMaestro ids as
frontmatter `id`s, which are their mirror row ids, and `persona_usage` is the operational
table that needs no mirrored row and survives `maestro rebuild`; so the counters are right
whether the mirror is synced before or after. Rows merge as `maestro restore` does (the
larger count and the later time win), so a repeated migration never doubles them. With no
database reachable the migration fails before writing (use `--dry-run` to plan without one).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from maestro_git.core.models import Severity
from maestro_git.mirror import db, foreign, usage
from maestro_git.ops.migrate.persona_sets import SERVICE, ImageReader, plan_persona_sets
from maestro_git.ops.migrate.replay import PlannedCommit, replay
from maestro_git.ops.migrate.themaestro import plan_themaestro, read_users_file
from maestro_git.settings import Settings

__all__ = ["MigrationReport", "run_persona_sets", "run_themaestro"]


@dataclass(frozen=True)
class MigrationReport:
    """What a migration did (or, with `dry_run`, would do)."""

    source: str  # "themaestro" | "persona-sets"
    dry_run: bool
    commits: int
    first_time: str | None
    last_time: str | None
    head: str | None
    personas: int = 0
    versions: int = 0
    inactive: int = 0
    templates: int = 0
    authors: tuple[str, ...] = ()
    usage_rows: int = 0
    sets: int = 0
    members: int = 0
    images: int = 0
    errors_at_head: int = 0  # `maestro check` errors in the migrated files
    notes: tuple[str, ...] = field(default_factory=tuple)


def _span(commits: tuple[PlannedCommit, ...]) -> tuple[str | None, str | None]:
    if not commits:
        return None, None
    return commits[0].time.isoformat(), commits[-1].time.isoformat()


def _errors_at_head(settings: Settings, prefixes: tuple[str, ...]) -> int:
    from maestro_git.repo.repository import Repository

    repo = Repository(settings)
    head = repo.head()
    if head is None:
        return 0
    snap = repo.snapshot(head)
    return sum(p.severity is Severity.ERROR and p.path.startswith(prefixes)
               for p in snap.problems)


def _templates_present(settings: Settings) -> set[str]:
    """Template names at the branch head or in the working tree (`maestro init`'s)."""
    from maestro_git.repo.repository import Repository

    repo = Repository(settings)
    head = repo.head()
    names = set(repo.snapshot(head).templates) if head else set()
    folder = settings.repo_path / "templates"
    if folder.is_dir():
        names |= {p.stem for p in folder.glob("*.md")}
    return names


def run_themaestro(settings: Settings, url: str, *, users_file: Path | None = None,
                   dry_run: bool = False) -> MigrationReport:
    """Migrate TheMaestro's database at `url` into the repository (module docstring)."""
    data = foreign.read_themaestro(url)
    users = read_users_file(users_file) if users_file is not None else {}
    plan = plan_themaestro(data, users, _templates_present(settings))
    head = None
    if not dry_run and plan.commits:
        db.connect(db.database_url(settings)).close()  # no database: fail before writing
        head = replay(settings, plan.commits)[-1]
        # Bound after the replay: a mirror knows its repository by the migrated history.
        conn = db.connect(settings)
        try:
            db.migrate(conn)
            with db.translate_errors("store the usage counters"), conn.transaction():
                usage.merge_usage(conn, [(u.persona_id, u.application_count,
                                          u.last_applied_at) for u in plan.usage])
        finally:
            conn.close()
    first, last = _span(plan.commits)
    return MigrationReport(
        "themaestro", dry_run, len(plan.commits), first, last, head,
        personas=len(plan.keys), versions=plan.versions, inactive=plan.inactive,
        templates=plan.templates, authors=plan.authors, usage_rows=len(plan.usage),
        errors_at_head=0 if head is None else _errors_at_head(
            settings, ("personas/", "templates/")), notes=plan.notes)


def _reader(static: Path | None) -> ImageReader:
    """Served URL path -> the image's bytes under the service's static folder: the path
    below it (`/static/images/x.png` in `static/`), or the same path, or the file name."""

    def read(url: str) -> bytes | None:
        if static is None:
            return None
        rel = PurePosixPath(url.lstrip("/"))
        for candidate in (static / rel.as_posix(), static.joinpath(*rel.parts[1:]),
                          static / rel.name):
            if candidate.is_file():
                return candidate.read_bytes()
        return None
    return read


def run_persona_sets(settings: Settings, url: str, *, static: Path | None,
                     dry_run: bool = False) -> MigrationReport:
    """Migrate the persona-set service's database at `url` and its static folder."""
    data = foreign.read_persona_sets(url)
    plan = plan_persona_sets(data, _reader(static), SERVICE)
    head = replay(settings, plan.commits)[-1] if plan.commits and not dry_run else None
    first, last = _span(plan.commits)
    return MigrationReport(
        "persona-sets", dry_run, len(plan.commits), first, last, head, sets=len(plan.keys),
        members=plan.members, images=plan.images,
        errors_at_head=0 if head is None else _errors_at_head(settings, ("persona_sets/",)),
        notes=plan.notes)
