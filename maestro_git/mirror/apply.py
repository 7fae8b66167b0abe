"""Apply one commit's changes to the mirror, in one transaction with the sync cursor.

Rules of this module:
- `apply_commit` is the unit of work: rows, versions, audit events, `sync_errors`, the
  `sync_state` cursor and the NOTIFYs commit together or not at all, so a crash leaves the
  mirror at a commit boundary.
- Idempotent: upserts skip rows whose hashes did not change (`WHERE … IS DISTINCT FROM`),
  versions and audit events are `ON CONFLICT DO NOTHING` (each table's columns, statement
  and row builder live in `mirror_tables`), `sync_errors` rows of the same
  commit are kept; replaying a commit writes nothing.
- Bulk first load (`bulk=`, an empty mirror, see `mirror_bulk`): rows go in with COPY and
  the GIN indexes of the loaded tables are dropped before and rebuilt after, in the same
  transaction. Most persona rows were already streamed while the files parsed, so the
  server's tsvector work overlaps the Python side.
- Any other commit: its statements go through one pipeline (one or two round trips).
- `load_state` reads the mirror back as records, so a restarted syncer diffs against what the
  database holds (including the last good state of files that are invalid now).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from psycopg import Cursor, sql

from maestro_git.core.models import (
    AuditEvent,
    Change,
    ChangeAction,
    CommitInfo,
    Persona,
    PersonaSet,
    PersonaSetMember,
    Problem,
    Severity,
    Template,
)
from maestro_git.core.snapshot import Snapshot
from maestro_git.mirror import events as events_mod
from maestro_git.mirror import registry, tables
from maestro_git.mirror.bulk import BulkLoad, copy_rows
from maestro_git.mirror.db import Connection, mirror_of
from maestro_git.mirror.tables import PERSONA_NAMESPACE, persona_uuid

__all__ = [
    "ApplyResult",
    "PERSONA_NAMESPACE",
    "MirrorState",
    "apply_commit",
    "clear_derived",
    "invalid_paths",
    "is_empty",
    "load_state",
    "persona_uuid",
    "read_cursor",
]

_DERIVED_TABLES = ("persona_set_members", "persona_sets", "persona_versions", "personas",
                   "persona_templates", "audit_events", "sync_errors", "sync_state")


def _system_templates() -> frozenset[str]:
    folder = Path(__file__).resolve().parents[1] / "builtin_templates"
    try:
        return frozenset(e.name[:-3] for e in folder.iterdir() if e.name.endswith(".md"))
    except OSError:  # pragma: no cover
        return frozenset({"developer_assistant", "creative_writer", "business_analyst",
                          "research_assistant"})


SYSTEM_TEMPLATES = _system_templates()


# -- reading the mirror back ------------------------------------------------------------------
@dataclass(frozen=True)
class MirrorState:
    """What the mirror holds: the cursor, the effective records and the persona row ids."""

    commit: str | None
    snapshot: Snapshot
    ids: Mapping[str, uuid.UUID]  # persona key -> row id


def read_cursor(conn: Connection, branch: str) -> str | None:
    row = conn.execute("SELECT commit FROM sync_state WHERE branch = %s", (branch,)).fetchone()
    return str(row[0]) if row else None


def is_empty(conn: Connection) -> bool:
    """True when no persona, template, set, version or audit event is mirrored yet."""
    row = conn.execute(
        "SELECT NOT EXISTS (SELECT 1 FROM personas) AND NOT EXISTS (SELECT 1 FROM "
        "persona_templates) AND NOT EXISTS (SELECT 1 FROM persona_sets) AND NOT EXISTS "
        "(SELECT 1 FROM persona_versions) AND NOT EXISTS (SELECT 1 FROM audit_events)"
    ).fetchone()
    return bool(row and row[0])


def load_state(conn: Connection, branch: str) -> MirrorState:
    """The mirror's current state as records (a `Snapshot` with no files or problems)."""
    personas: dict[str, Persona] = {}
    ids: dict[str, uuid.UUID] = {}
    for r in conn.execute(
            "SELECT id, key, owner, name, path, display_name, description, content, version, "
            "parent_key, tags, active, metadata, frontmatter, content_hash, size_bytes "
            "FROM personas"):
        fm = r[13] or {}
        personas[r[1]] = Persona(
            id=fm.get("id"), owner=r[2], name=r[3], path=r[4], display_name=r[5],
            description=r[6], body=r[7], version=r[8], extends=r[9], tags=tuple(r[10]),
            active=r[11], metadata=r[12], content_hash=r[14], size_bytes=r[15])
        ids[r[1]] = r[0]
    templates: dict[str, Template] = {}
    for r in conn.execute(
            "SELECT name, path, id, display_name, description, content, category, version, "
            "tags, metadata, content_hash, size_bytes FROM persona_templates"):
        templates[r[0]] = Template(
            name=r[0], path=r[1], id=str(r[2]) if r[2] else None, display_name=r[3],
            description=r[4], body=r[5], category=r[6], version=r[7], tags=tuple(r[8]),
            metadata=r[9], content_hash=r[10], size_bytes=r[11])
    members: dict[str, list[PersonaSetMember]] = {}
    for r in conn.execute(
            "SELECT set_key, name, persona_data, image_url, image_prompt, similarity_score, "
            "validation_status FROM persona_set_members ORDER BY set_key, position"):
        members.setdefault(r[0], []).append(PersonaSetMember(
            name=r[1], persona_data=r[2], image_url=r[3], image_prompt=r[4],
            similarity_score=r[5], validation_status=r[6]))
    sets: dict[str, PersonaSet] = {}
    for r in conn.execute(
            "SELECT key, path, name, description, rqe_scores, diversity_score, "
            "validation_scores, generation_cycle, status, metadata, content_hash, size_bytes "
            "FROM persona_sets"):
        sets[r[0]] = PersonaSet(
            name=r[0], path=r[1], title=r[2], description=r[3], members=tuple(members.get(
                r[0], ())), rqe_scores=r[4], diversity_score=r[5], validation_scores=r[6],
            generation_cycle=r[7], status=r[8], metadata=r[9], content_hash=r[10],
            size_bytes=r[11])
    commit = read_cursor(conn, branch)
    snap = Snapshot(commit=commit, files=MappingProxyType({}),
                    personas=MappingProxyType(personas), templates=MappingProxyType(templates),
                    sets=MappingProxyType(sets), problems=())
    return MirrorState(commit, snap, MappingProxyType(ids))


def clear_derived(conn: Connection) -> None:
    """Empty every table derived from git (not `persona_usage`), inside the caller's
    transaction."""
    conn.execute(sql.SQL("TRUNCATE {}").format(
        sql.SQL(", ").join(sql.Identifier(t) for t in _DERIVED_TABLES)))


# -- applying a commit ------------------------------------------------------------------------
@dataclass(frozen=True)
class ApplyResult:
    """What one `apply_commit` wrote (zero everywhere for a replay)."""

    commit: str
    rows: int = 0  # persona, template and set rows inserted, updated or deleted
    versions: int = 0
    audit_events: int = 0
    notifications: int = 0
    errors: tuple[Problem, ...] = field(default_factory=tuple)  # recorded in sync_errors


_VERSION_ACTION = {ChangeAction.ADDED: "created", ChangeAction.MODIFIED: "updated",
                   ChangeAction.RENAMED: "renamed", ChangeAction.REMOVED: "deleted"}


class _Counts:
    """Rows written, counted once the statements' results are in.

    In pipeline mode a cursor's `rowcount` is known only after the pipeline syncs, so the
    writes keep their cursors here and the totals are read at the end."""

    def __init__(self) -> None:
        self.known: dict[str, int] = {}
        self.cursors: dict[str, list[Cursor[Any]]] = {}

    def add(self, what: str, n: int) -> None:
        self.known[what] = self.known.get(what, 0) + n

    def later(self, what: str, cur: Cursor[Any]) -> None:
        self.cursors.setdefault(what, []).append(cur)

    def total(self, what: str) -> int:
        return self.known.get(what, 0) + sum(max(c.rowcount, 0)
                                             for c in self.cursors.get(what, ()))


def _write(conn: Connection, counts: _Counts, what: str, stmt: sql.Composed,
           rows: list[tuple[Any, ...]], copy: bool, table: str, cols: Sequence[str]) -> None:
    """`rows` into `table`: COPY (`copy`, a first load into empty tables), else `stmt` for
    each row."""
    if not rows:
        return
    if copy:
        counts.add(what, copy_rows(conn, table, cols, rows))
        return
    cur = conn.cursor()
    cur.executemany(stmt, rows)
    counts.later(what, cur)


def apply_commit(
    conn: Connection,
    info: CommitInfo,
    changes: Sequence[Change],
    old_effective: Snapshot | None,
    new_effective: Snapshot,
    events: Sequence[AuditEvent],
    problems: Mapping[str, Sequence[Problem]],
    *,
    branch: str,
    ids: Mapping[str, uuid.UUID],
    old_ids: Mapping[str, uuid.UUID] | None = None,
    resolved: Mapping[str, str] | None = None,
    version_keys: frozenset[str] | None = None,
    extra_notifications: Sequence[events_mod.EntityEvent] = (),
    bulk: BulkLoad | None = None,
    durable: bool = True,
) -> ApplyResult:
    """Mirror one commit in one transaction.

    - `changes`: what differs between the effective states (`snapshot.diff_snapshots`).
    - `old_effective` / `new_effective`: the records the mirror holds before / after.
    - `events`: the commit's audit events (`audit.events_for_commit`).
    - `problems`: path -> that path's current problems, for every path whose `sync_errors`
      must be refreshed (an empty sequence clears them). Only errors are recorded.
    - `ids` / `old_ids`: persona key -> row id in the new / old state.
    - `resolved`: persona key -> resolved content, for every changed persona and every
      persona whose resolved content must be rewritten (descendants of changed ones);
      a changed persona missing here gets its own body.
    - `version_keys`: persona keys that get a `persona_versions` row (None: every changed
      persona).
    - `bulk`: the mirror is empty and this first load runs inside that `BulkLoad` (which
      may already hold streamed persona rows): COPY the rows, copy the versions server-side
      and rebuild the GIN indexes afterwards (`mirror_bulk`).
    - `durable`: False lets the commit return before its WAL reaches the disk
      (`synchronous_commit = off` for this transaction only). A crash may then lose this
      transaction, but never part of it: the mirror stays at an earlier commit boundary and
      the syncer replays from there. The syncer passes False for every commit of a catch-up
      but the last, whose synchronous commit also makes the earlier ones durable.

    Outside a bulk load the statements go through one pipeline: the transaction costs one
    or two round trips to the server however many statements it holds.
    """
    counts = _Counts()
    errors: list[Problem] = []
    if bulk is not None:  # the server took the streamed rows while the caller worked
        bulk.end_stream()
    batch: AbstractContextManager[object] = (nullcontext() if bulk is not None
                                               else conn.pipeline())
    with batch, conn.transaction():
        if not durable:  # (inside a bulk load: that load's whole transaction)
            conn.execute("SET LOCAL synchronous_commit = off")
        _write_rows(conn, counts, info, changes, new_effective, ids, old_ids or {},
                    resolved or {}, bulk)
        _write_history(conn, counts, info, changes, old_effective, new_effective, events,
                       ids, old_ids or {}, version_keys, bulk)
        if problems:
            errors = _write_errors(conn, info, problems)
        conn.execute(
            "INSERT INTO sync_state (branch, commit) VALUES (%s, %s) ON CONFLICT (branch) "
            "DO UPDATE SET commit = excluded.commit, mirrored_at = now() "
            "WHERE sync_state.commit IS DISTINCT FROM excluded.commit", (branch, info.id))
        bound = mirror_of(conn)
        if bound is not None and not bound.legacy:
            registry.update_head(conn, info.id)
        if bulk is not None:
            bulk.rebuild_indexes()
        # No ANALYZE here (0.4-0.6 s of a 10k load, mostly tsvector statistics): the loaded
        # rows trigger autovacuum's autoanalyze within a minute, and until then the
        # planner's defaults still choose the key, GIN and owner indexes.
        n_notes = events_mod.notify(conn, [*events, *extra_notifications])
    return ApplyResult(info.id, counts.total("rows"), counts.total("versions"),
                       counts.total("events"), n_notes, tuple(errors))


def _write_rows(conn: Connection, counts: _Counts, info: CommitInfo,
                changes: Sequence[Change], new_effective: Snapshot,
                ids: Mapping[str, uuid.UUID], old_ids: Mapping[str, uuid.UUID],
                resolved: Mapping[str, str], bulk: BulkLoad | None) -> None:
    """Current rows: deletions, id moves, upserts, parent links and resolved contents."""
    personas = new_effective.personas
    if bulk is None:
        removed: dict[str, list[str]] = {"persona": [], "template": [], "persona_set": []}
        for c in changes:
            if c.action is ChangeAction.REMOVED:
                removed[c.kind].append(c.key)
            elif c.action is ChangeAction.RENAMED and c.old_key is not None \
                    and c.kind != "persona":  # templates and sets are keyed by name
                removed[c.kind].append(c.old_key)
        for kind, table, col in (("persona", "personas", "key"),
                                 ("template", "persona_templates", "name"),
                                 ("persona_set", "persona_sets", "key")):
            if removed[kind]:
                counts.later("rows", conn.execute(
                    sql.SQL("DELETE FROM {} WHERE {} = ANY(%s)").format(
                        sql.Identifier(table), sql.Identifier(col)), (removed[kind],)))
        # A key whose row id changed (an id added or edited in place): move its history.
        for c in changes:
            if c.kind != "persona" or c.action is not ChangeAction.MODIFIED:
                continue
            before, after = old_ids.get(c.key), ids.get(c.key)
            if before is not None and after is not None and before != after:
                conn.execute("UPDATE personas SET id = %s WHERE id = %s", (after, before))
                conn.execute(
                    "UPDATE persona_versions v SET persona_id = %s WHERE persona_id = %s "
                    "AND NOT EXISTS (SELECT 1 FROM persona_versions w WHERE "
                    "w.persona_id = %s AND w.commit = v.commit)", (after, before, after))
                conn.execute(
                    "UPDATE persona_usage SET persona_id = %s WHERE persona_id = %s AND "
                    "NOT EXISTS (SELECT 1 FROM persona_usage WHERE persona_id = %s)",
                    (after, before, after))

    persona_recs: list[Persona] = []
    template_rows: list[tuple[Any, ...]] = []
    set_recs: list[PersonaSet] = []
    for c in changes:
        if c.action is ChangeAction.REMOVED:
            continue
        if c.kind == "persona":
            persona_recs.append(personas[c.key])
        elif c.kind == "template":
            rec = new_effective.templates[c.key]
            template_rows.append(tables.template_row(rec, info, rec.name in SYSTEM_TEMPLATES))
        else:
            set_recs.append(new_effective.sets[c.key])
    changed_persona_keys = {p.key for p in persona_recs}
    streamed = (bulk.keep_streamed(persona_recs, ids, resolved) if bulk is not None
                else set())
    persona_rows = (tables.persona_row(p, ids[p.key],
                                       ids.get(p.extends) if p.extends else None,
                                       resolved.get(p.key, p.body), info)
                    for p in persona_recs if p.key not in streamed)
    if bulk is not None:  # a generator: rows are built while the server works
        counts.add("rows", len(streamed) + copy_rows(conn, "personas", tables.PERSONA_COLUMNS,
                                                     persona_rows))
    else:
        _write(conn, counts, "rows", tables.PERSONA_UPSERT, list(persona_rows), False, "personas",
               tables.PERSONA_COLUMNS)
    _write(conn, counts, "rows", tables.TEMPLATE_UPSERT, template_rows, bulk is not None,
           "persona_templates", tables.TEMPLATE_COLUMNS)
    if set_recs:
        if bulk is not None:
            counts.add("rows", copy_rows(conn, "persona_sets", tables.SET_COLUMNS,
                                         [tables.set_row(s, info) for s in set_recs]))
            copy_rows(conn, "persona_set_members", tables.MEMBER_COLUMNS,
                      [m for s in set_recs for m in tables.member_rows(s)])
        else:
            for s in set_recs:
                if conn.execute(tables.SET_UPSERT, tables.set_row(s, info)).fetchone() is None:
                    continue  # unchanged (a replay)
                counts.add("rows", 1)
                conn.execute("DELETE FROM persona_set_members WHERE set_key = %s", (s.name,))
                # One statement per set (not one per member): migration 0014's trigger then
                # rewrites the set's member names once.
                for stmt, params in tables.insert_rows(tables.member_rows(s),
                                                       "persona_set_members",
                                                       tables.MEMBER_COLUMNS):
                    conn.execute(stmt, params)

    if bulk is None and changed_persona_keys:
        # Children of a persona that (re)appeared point at it again.
        conn.execute(
            "UPDATE personas c SET parent_id = p.id FROM personas p WHERE "
            "p.key = ANY(%s) AND c.parent_key = p.key AND c.parent_id IS DISTINCT FROM p.id",
            (sorted(changed_persona_keys),))
    # Descendants whose resolved content changed although their file did not.
    descendant_rows = [(text, tables.sha(text), key) for key, text in resolved.items()
                       if key not in changed_persona_keys and key in personas]
    if descendant_rows:
        conn.cursor().executemany(
            "UPDATE personas SET resolved_content = %s, resolved_hash = %s "
            "WHERE key = %s AND resolved_hash IS DISTINCT FROM %s",
            [(t, h, k, h) for t, h, k in descendant_rows])


def _write_history(conn: Connection, counts: _Counts, info: CommitInfo,
                   changes: Sequence[Change], old_effective: Snapshot | None,
                   new_effective: Snapshot, events: Sequence[AuditEvent],
                   ids: Mapping[str, uuid.UUID], old_ids: Mapping[str, uuid.UUID],
                   version_keys: frozenset[str] | None, bulk: BulkLoad | None) -> None:
    """Versions (one row per changed persona and commit) and audit events."""
    old_personas = old_effective.personas if old_effective is not None else {}
    personas = new_effective.personas
    actions = {(e.kind, e.key): e.action for e in events}
    version_rows: list[tuple[Any, ...]] = []
    server_side: dict[str, list[str]] = {}  # a bulk load copies these from `personas`
    for c in changes:
        if c.kind != "persona" or (version_keys is not None and c.key not in version_keys):
            continue
        action = actions.get(("persona", c.key), _VERSION_ACTION[c.action])
        if action not in ("created", "updated", "renamed", "deleted", "rolled_back",
                          "promoted"):
            action = _VERSION_ACTION[c.action]
        if c.action is ChangeAction.REMOVED:
            old = old_personas.get(c.key)
            pid = old_ids.get(c.key)
            if pid is None:
                continue
            version_rows.append(tables.deleted_version_row(
                pid, c.key, old.path if old else c.old_path or "", info))
        elif bulk is not None:
            server_side.setdefault(action, []).append(c.key)
        else:
            version_rows.append(tables.version_row(ids[c.key], c.key, personas[c.key], action,
                                                   info))
    if bulk is not None:
        counts.add("versions", bulk.insert_versions(server_side))
    _write(conn, counts, "versions", tables.VERSION_INSERT, version_rows, bulk is not None,
           "persona_versions", tables.VERSION_COLUMNS)
    event_rows = [tables.event_row(e) for e in events]
    _write(conn, counts, "events", tables.EVENT_INSERT, event_rows, bulk is not None,
           "audit_events", tables.EVENT_COLUMNS)


def invalid_paths(conn: Connection, rule: str | None = None) -> tuple[str, ...]:
    """Files whose errors keep them at their last good state in the mirror (those with an
    error of `rule`, when given), sorted."""
    if rule is None:
        rows = conn.execute("SELECT DISTINCT path FROM sync_errors ORDER BY path").fetchall()
    else:
        rows = conn.execute("SELECT DISTINCT path FROM sync_errors WHERE rule = %s "
                            "ORDER BY path", (rule,)).fetchall()
    return tuple(row[0] for row in rows)


def stored_path(path: str) -> str:
    """A path as `sync_errors` stores it: a file name that is not UTF-8 (git allows any
    bytes; pygit2 hands them over as surrogate escapes, which PostgreSQL cannot store) is
    written with its bytes as `\\xff` escapes, so the error is recorded instead of the commit
    being refused."""
    if path.isascii():
        return path
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        raw = path.encode("utf-8", "surrogateescape") if all(
            not 0xD800 <= ord(c) < 0xDC80 for c in path) else path.encode(
            "utf-8", "surrogatepass")
        return raw.decode("utf-8", "backslashreplace")


def _write_errors(conn: Connection, info: CommitInfo,
                  problems: Mapping[str, Sequence[Problem]]) -> list[Problem]:
    """Refresh `sync_errors` for the given paths; rows of this very commit are kept (a
    replay). Returns the errors recorded."""
    errors: list[Problem] = []
    paths = sorted(problems)
    failing = [p for p in paths
               if any(prob.severity is Severity.ERROR for prob in problems[p])]
    conn.execute("DELETE FROM sync_errors WHERE path = ANY(%s) AND commit <> %s",
                 ([stored_path(p) for p in paths], info.id))
    kept: set[str] = set()
    if failing:  # only then is the answer needed (and the pipeline waited for)
        kept = {r[0] for r in conn.execute(
            "SELECT DISTINCT path FROM sync_errors WHERE commit = %s AND path = ANY(%s)",
            (info.id, [stored_path(p) for p in failing]))}
    error_rows: list[tuple[Any, ...]] = []
    for path in failing:
        for prob in problems[path]:
            if prob.severity is Severity.ERROR:
                errors.append(prob)
                if stored_path(path) not in kept:
                    error_rows.append((stored_path(prob.path), info.id, prob.rule,
                                       prob.severity.value,
                                       prob.line, prob.column, prob.message, prob.fix))
    if error_rows:
        conn.cursor().executemany(
            'INSERT INTO sync_errors (path, commit, rule, severity, line, "column", '
            "message, fix) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)", error_rows)
    return errors
