"""Compare the mirror with the branch head (`verify`), and recreate it from git (`rebuild`).

`verify` reads the head's files from git, and every row of personas, persona_templates and
persona_sets, and reports drift: a valid file with no row (`missing`), a row with no file
(`extra`), a row whose content hash differs from the file (`hash_mismatch`), a persona whose
resolved content is not its `extends` chain's (`resolved_mismatch`), and a cursor that is
not the head (`behind`). A file that is invalid at the head is not drift: the mirror keeps
its last good row (or none), by design.

`rebuild` empties every table derived from git, keeps `persona_usage` (operational counters
git cannot hold), and mirrors the branch again from its first commit (or just the head).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from psycopg import sql

from maestro_git.core import inherit
from maestro_git.core.formats import classify
from maestro_git.core.models import Persona, PersonaSet, Template
from maestro_git.core.snapshot import build_snapshot
from maestro_git.errors import InheritanceError
from maestro_git.git.repo import GitRepo
from maestro_git.mirror import apply as mirror
from maestro_git.mirror import db
from maestro_git.mirror.sync import (
    UNSTORABLE_RULE,
    Listener,
    Syncer,
    SyncReport,
    with_invalid_paths,
)
from maestro_git.settings import Settings

__all__ = ["Drift", "VerifyReport", "rebuild", "verify"]

_TABLES = {"persona": ("personas", "key"), "template": ("persona_templates", "name"),
           "persona_set": ("persona_sets", "key")}


@dataclass(frozen=True)
class Drift:
    """One difference between the mirror and git."""

    problem: str  # missing | extra | hash_mismatch | resolved_mismatch | behind
    kind: str  # persona | template | persona_set | repository
    key: str
    detail: str = ""


@dataclass(frozen=True)
class VerifyReport:
    head: str | None
    cursor: str | None
    checked: int  # rows and files compared
    drift: tuple[Drift, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return not self.drift


def verify(settings: Settings, conn: db.Connection) -> VerifyReport:
    """Drift between the mirror and the branch head (see the module docstring)."""
    repo = GitRepo(settings.repo_path)
    head = repo.head(settings.branch)
    with db.translate_errors("verifying the mirror"):
        cursor = mirror.read_cursor(conn, settings.branch)
        rows: dict[str, dict[str, tuple[str, str]]] = {}
        for kind, (table, col) in _TABLES.items():
            rows[kind] = {r[0]: (r[1], r[2]) for r in conn.execute(
                sql.SQL("SELECT {}, path, content_hash FROM {}").format(
                    sql.Identifier(col), sql.Identifier(table)))}
        resolved_rows = {r[0]: r[1] for r in conn.execute(
            sql.SQL("SELECT key, resolved_hash FROM personas"))}
        # Files PostgreSQL itself refused (valid to the rules, which may be turned off): the
        # mirror keeps their last good state, as for an invalid file.
        refused = mirror.invalid_paths(conn, UNSTORABLE_RULE)
    drift: list[Drift] = []
    if head is None:
        for kind, table_rows in rows.items():
            drift.extend(Drift("extra", kind, key, "the branch has no commit")
                         for key in sorted(table_rows))
        return VerifyReport(head, cursor, sum(map(len, rows.values())), tuple(drift))
    if cursor != head:
        drift.append(Drift("behind", "repository", settings.branch,
                           f"mirror at {cursor[:7] if cursor else 'nothing'}, "
                           f"head at {head[:7]}"))
    snap = build_snapshot(repo.files_at(head), settings, head)
    checked = 0
    invalid_keys: dict[str, set[str]] = {k: set() for k in _TABLES}
    for path in (*snap.invalid_paths, *refused):
        loc = classify(path)
        if loc is not None:
            invalid_keys[loc.kind].add(loc.key)
    valid_personas: dict[str, Persona] = {}
    for kind in _TABLES:
        by_kind: dict[str, Mapping[str, Persona | Template | PersonaSet]] = {
            "persona": snap.personas, "template": snap.templates, "persona_set": snap.sets}
        records = by_kind[kind]
        expected = {k: r for k, r in records.items() if snap.is_valid(r.path)}
        if kind == "persona":
            valid_personas = {k: r for k, r in snap.personas.items() if snap.is_valid(r.path)}
        have = rows[kind]
        for key in sorted(expected.keys() | have.keys()):
            checked += 1
            rec = expected.get(key)
            if key in invalid_keys[kind]:
                continue  # invalid at the head: the last good row (or none) is correct
            if rec is None:
                drift.append(Drift("extra", kind, key, f"no valid file {have[key][0]}"))
            elif key not in have:
                drift.append(Drift("missing", kind, key, f"{rec.path} has no row"))
            elif have[key][1] != rec.content_hash:
                drift.append(Drift("hash_mismatch", kind, key,
                                   f"row {have[key][1][:12]} != file {rec.content_hash[:12]}"))
    for key, persona in valid_personas.items():
        if key not in resolved_rows or persona.extends is None and not persona.body:
            continue
        try:
            body = inherit.resolve(key, valid_personas, settings.limits.max_inheritance_depth).body
        except InheritanceError:
            continue
        if hashlib.sha256(body.encode("utf-8")).hexdigest() != resolved_rows[key]:
            drift.append(Drift("resolved_mismatch", "persona", key,
                               "resolved_content differs from its extends chain"))
    return VerifyReport(head, cursor, checked, tuple(drift))


def rebuild(settings: Settings, conn: db.Connection, *, head_only: bool = False,
            listeners: tuple[Listener, ...] = (),
            progress: Callable[[int, int], None] | None = None,
            files: Callable[[int, int], None] | None = None) -> SyncReport:
    """Empty the derived tables (keeping `persona_usage`) and mirror the branch again
    (`progress` and `files` as for `Syncer.catch_up`).

    Takes the writer lock on `conn` for its duration (`LockHeldError` when a daemon holds
    it). A crash part-way leaves a mirror at a commit boundary; `maestro sync` finishes it.
    """
    db.migrate(conn)
    with db.WriterLock(conn):
        with db.translate_errors("emptying the mirror"), conn.transaction():
            mirror.clear_derived(conn)
        with Syncer(settings, conn, listeners) as syncer:
            report = syncer.catch_up(head_only=head_only, progress=progress, files=files)
        return with_invalid_paths(conn, report)
