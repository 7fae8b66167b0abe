"""Backup and recovery of what git cannot hold: the mirror's usage counters.

Git is the backup of the content: every persona, template and set, with every version, lives
in the repository and in each of its clones (push it to a remote and you have an off-site
backup). The mirror and the search index are derived from git and are rebuilt from it
(`maestro rebuild`, `maestro sync`). The one table git cannot rebuild is `persona_usage`
(`application_count`, `last_applied_at`, keyed by the persona's id), which `rebuild` keeps but
a lost database loses; nor can it rebuild the GDPR erasure register (`gdpr_erasures`), without
which a new database would show erased identities again. So:

- `create_backup` reads the branch head, every persona's key, id (the mirror's row id,
  `mirror.persona_uuid`), path and content hash at that head, and every usage row (with the
  key its persona has in the mirror), and the erasure register (hashes and pseudonyms only, as
  the table holds them); `write_backup` stores it as one JSON file.
- `restore_usage` upserts the usage rows by persona id, keeping the larger count and the
  later time, so restoring twice, or restoring over newer counters, never loses an
  application. A row whose id is not in the mirror but whose key is (the persona got another
  id, e.g. a duplicate id was fixed) is moved to that key's id. Then `verify.verify` reports
  any drift between the mirror and git.
- `restore_usage` also adds the backup's register entries (an (address, name) pair already
  there keeps its row) and writes their pseudonyms over mirror rows that still carry those identities, in the
  same transaction.

The file format (`format: "maestro-backup"`, `version: 2`; version 1 files, which have no
register, are still read) is documented by `Backup`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from maestro_git.atomic import write_atomic
from maestro_git.errors import UsageError
from maestro_git.git.repo import GitRepo
from maestro_git.mirror import apply as mirror
from maestro_git.mirror import db, erasures, usage
from maestro_git.mirror.erasures import RegisterEntry
from maestro_git.mirror.verify import VerifyReport, verify
from maestro_git.settings import Settings

__all__ = [
    "Backup",
    "BackupPersona",
    "RestoreReport",
    "UsageRecord",
    "create_backup",
    "read_backup",
    "restore_usage",
    "write_backup",
]

FORMAT = "maestro-backup"  # the `format` value that marks a backup file


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BackupPersona(_Frozen):
    """A persona at the backed-up head: enough to check the repository and map usage."""

    key: str
    id: str  # the mirror's row id (persona_usage.persona_id)
    path: str
    content_hash: str
    version: str


class UsageRecord(_Frozen):
    """One row of `persona_usage`, with the key its persona had in the mirror."""

    persona_id: str
    key: str | None
    application_count: int
    last_applied_at: datetime | None


class Backup(_Frozen):
    """The backup file: `{"format": "maestro-backup", "version": 2, "created_at", "branch",
    "head", "mirror_commit", "personas": [...], "usage": [...], "erasures": [...]}`."""

    format: Literal["maestro-backup"] = "maestro-backup"
    version: Literal[1, 2] = 2
    created_at: datetime
    branch: str
    head: str | None  # the branch head when the backup was made
    mirror_commit: str | None  # the mirror's cursor then
    personas: tuple[BackupPersona, ...] = ()
    usage: tuple[UsageRecord, ...] = ()
    erasures: tuple[RegisterEntry, ...] = ()  # the GDPR register, as the table holds it


@dataclass(frozen=True)
class RestoreReport:
    """What `restore_usage` did, and the mirror's drift afterwards."""

    restored: int  # usage rows upserted
    remapped: int  # rows moved to their key's current id
    orphaned: tuple[str, ...]  # persona ids with no persona in the mirror (kept anyway)
    head_known: bool  # the backup's head commit is in this repository
    verify: VerifyReport
    erasures_added: int = 0  # register entries this database did not have
    pseudonymised: int = 0  # mirror rows rewritten to a pseudonym by them


def create_backup(settings: Settings, conn: db.Connection) -> Backup:
    """The head, its personas and every usage row (module docstring)."""
    db.migrate(conn)
    git = GitRepo(settings.repo_path)
    head = git.head(settings.branch)
    personas: list[BackupPersona] = []
    if head is not None:
        from maestro_git.repo.snapshots import snapshot_of

        snap = snapshot_of(settings, head)
        for key, rec in sorted(snap.personas.items()):
            if snap.is_valid(rec.path):
                personas.append(BackupPersona(
                    key=key, id=str(mirror.persona_uuid(key, rec.id)), path=rec.path,
                    content_hash=rec.content_hash, version=rec.version))
    with db.translate_errors("reading usage counters"):
        cursor = mirror.read_cursor(conn, settings.branch)
        rows = usage.read_usage(conn)
        register = erasures.read_register(conn)
    records = tuple(UsageRecord(persona_id=r.persona_id, key=r.key,
                                application_count=r.application_count,
                                last_applied_at=r.last_applied_at) for r in rows)
    return Backup(created_at=datetime.now(UTC), branch=settings.branch, head=head,
                  mirror_commit=cursor, personas=tuple(personas), usage=records,
                  erasures=tuple(register))


def write_backup(path: Path, backup: Backup) -> None:
    """Write `backup` to `path` as JSON, atomically (temp file, then `os.replace`).

    The file is readable by its owner only: it holds usage data and the erasure register."""
    data = (backup.model_dump_json(indent=2) + "\n").encode("utf-8")
    write_atomic(path, data, mode=0o600)


def read_backup(path: Path) -> Backup:
    """A backup file; `UsageError` when it is missing or not a maestro backup."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path} does not exist") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise UsageError(f"{path} is not JSON: {exc}",
                         hint="pass a file written by 'maestro backup'") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise UsageError(f"{path} is not a maestro backup",
                         hint="pass a file written by 'maestro backup'")
    try:
        return Backup.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UsageError(f"{path}: {where}: {first['msg']}",
                         hint="the backup file was edited or truncated") from None


def restore_usage(settings: Settings, conn: db.Connection, backup: Backup) -> RestoreReport:
    """Load the backup's usage rows into `persona_usage` (larger count, later time win) and
    its erasure register into `gdpr_erasures` (pseudonymising the mirror rows it names),
    then verify the mirror against git. Idempotent."""
    db.migrate(conn)
    git = GitRepo(settings.repo_path)
    head_known = backup.head is None or git.has_commit(backup.head)
    with db.translate_errors("restoring usage counters"), conn.transaction():
        by_key = usage.persona_ids_by_key(conn)
        known_ids = set(by_key.values())
        rows: list[tuple[str, int, datetime | None]] = []
        remapped = 0
        orphaned: list[str] = []
        for rec in backup.usage:
            target = rec.persona_id
            if target not in known_ids and rec.key is not None and rec.key in by_key:
                target = by_key[rec.key]
                remapped += 1
            elif target not in known_ids:
                orphaned.append(rec.persona_id)
            rows.append((target, rec.application_count, rec.last_applied_at))
        usage.merge_usage(conn, rows)
        added = erasures.add_to_register(conn, backup.erasures)
        pseudonymised = sum(erasures.apply_register(conn).values()) if backup.erasures else 0
    report = verify(settings, conn)
    return RestoreReport(len(rows), remapped, tuple(orphaned), head_known, report,
                         added, pseudonymised)
