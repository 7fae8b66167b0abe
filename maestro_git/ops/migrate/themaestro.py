"""Migration from TheMaestro (the Ecto schema of story 8.1) with its history.

`plan_themaestro(data, users)` is pure: the rows read by `mirror.foreign.read_themaestro`
in, the commits to replay out. What becomes what:
- each persona is `personas/<owner>/<name>.md`; the owner folder is its user's (the e-mail's
  local part, else the name, made a valid name; `unowned` for no user); its TheMaestro id is
  its frontmatter `id`, so usage counters and links keep pointing at it;
- every `persona_versions` row is one commit, all personas' rows in time order, with the
  row's `version`, its `content` as the body, its `created_at` as author and committer
  time, its `created_by_user_id` as the author (`Name <email>` from the users table or the
  `--users` file), and `changes_summary` as the message (trailer `TheMaestro-Version-Id`);
- `parent_persona_id` is `extends: <parent key>`, written from the first commit in which
  the parent exists (a child older than its parent gets it in the parent's first commit);
- `display_name`, `description`, `tags`, `metadata` are the persona's current values (the
  old system kept no history of them); a current `content` newer than the last version row
  is one more commit at `updated_at`; `is_active = false` (TheMaestro's soft delete) is
  `active: false`, in a last commit at `updated_at` when that is later than the last version;
- a version that is not semver is made one where it is a number (`1.2` → `1.2.0`), else kept
  and reported (`maestro check` then names it);
- templates are `templates/<name>.md` (category, tags; `is_system_template` and
  `popularity_score` under `metadata.themaestro`), each one commit at its `inserted_at`; one
  the repository already has (`maestro init` writes the four seed templates) is kept;
- usage counters (`application_count`, `last_applied_at`) are returned as `UsageRow`s by
  persona id, for `persona_usage` (see `ops.migrate.run_themaestro`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from maestro_git.core.writeback import render_document, semver_from_number
from maestro_git.errors import UsageError
from maestro_git.git.repo import Identity
from maestro_git.mirror.foreign import MaestroPersona, MaestroUser, MaestroVersion, TheMaestroData
from maestro_git.ops.migrate.replay import PlannedCommit, slug

__all__ = ["MIGRATOR", "ThemaestroPlan", "UsageRow", "plan_themaestro", "read_users_file"]

MIGRATOR = Identity("TheMaestro", "themaestro@migration.invalid")
_SEMVER = re.compile(r"^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")


@dataclass(frozen=True)
class UsageRow:
    persona_id: str
    application_count: int
    last_applied_at: datetime | None


@dataclass(frozen=True)
class ThemaestroPlan:
    commits: tuple[PlannedCommit, ...]
    keys: Mapping[str, str]  # TheMaestro persona id -> persona key
    usage: tuple[UsageRow, ...]
    notes: tuple[str, ...] = ()
    templates: int = 0
    versions: int = 0
    inactive: int = 0
    authors: tuple[str, ...] = field(default_factory=tuple)


def read_users_file(path: Path) -> dict[str, Identity]:
    """A `--users` file: a JSON object `{"<user id>": "Name <email>"}`, or lines
    `<user id> Name <email>` (`#` comments and blank lines ignored)."""
    text = path.read_text(encoding="utf-8")
    pairs: list[tuple[str, str]]
    if text.lstrip().startswith("{"):
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise UsageError(f"{path}: not JSON ({exc})") from None
        pairs = [(str(k), str(v)) for k, v in doc.items()]
    else:
        pairs = []
        for line in text.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                user, _, who = line.partition(" ")
                pairs.append((user, who.strip()))
    return {user: Identity.parse(who) for user, who in pairs}


def _identities(users: Sequence[MaestroUser], given: Mapping[str, Identity]
                ) -> dict[str, Identity]:
    out: dict[str, Identity] = {}
    for user in users:
        email = user.email or f"{user.id}@themaestro.invalid"
        out[user.id] = Identity(user.name or email.split("@")[0], email)
    out.update(given)
    return out


def _owners(personas: Sequence[MaestroPersona], who: Mapping[str, Identity]) -> dict[str, str]:
    """User id (or "") -> owner folder, unique per user."""
    owners: dict[str, str] = {}
    used: set[str] = set()
    for user in sorted({p.user_id or "" for p in personas}):
        ident = who.get(user)
        base = slug(ident.email.split("@")[0]) if ident else ""
        base = base or (slug(ident.name) if ident else "") or (
            f"user_{slug(user)[:8]}" if user else "unowned")
        name, n = base, 2
        while name in used:
            name, n = f"{base}_{n}", n + 1
        used.add(name)
        owners[user] = name
    return owners


def _keys(personas: Sequence[MaestroPersona], owners: Mapping[str, str]) -> dict[str, str]:
    keys: dict[str, str] = {}
    used: set[str] = set()
    for p in personas:
        base = f"{owners[p.user_id or '']}/{slug(p.name) or 'persona'}"
        key, n = base, 2
        while key in used:
            key, n = f"{base}_{n}", n + 1
        used.add(key)
        keys[p.id] = key
    return keys


def _semver(raw: str, where: str, notes: list[str]) -> str:
    if _SEMVER.match(raw):
        return raw
    fixed = semver_from_number(raw)
    if fixed is not None:
        return fixed
    notes.append(f"{where}: version '{raw}' is not semver; kept as written")
    return raw


def _metadata(value: Any) -> dict[str, Any] | None:
    return dict(value) if isinstance(value, dict) and value else None


@dataclass
class _Step:
    time: datetime
    order: int
    persona: MaestroPersona | None
    content: str = ""
    version: str = ""
    author: str | None = None
    message: str = ""
    active: bool = True
    template: Any = None


def _persona_steps(p: MaestroPersona, rows: Sequence[MaestroVersion], key: str,
                   notes: list[str]) -> list[_Step]:
    steps = [_Step(v.created_at, 0, p, v.content, _semver(v.version, key, notes),
                   v.created_by_user_id or p.user_id,
                   (v.changes_summary or f"Version {v.version}") + f"\n\nTheMaestro-Version-Id: {v.id}")
             for v in rows]
    if not steps:
        steps.append(_Step(p.inserted_at, 0, p, p.content, _semver(p.version, key, notes),
                           p.user_id, "Initial version (no version rows in TheMaestro)"))
    last = steps[-1]
    if p.content != last.content:
        steps.append(_Step(max(p.updated_at, last.time), 0, p, p.content,
                           _semver(p.version, key, notes), p.user_id,
                           "Current content (changed without a version row in TheMaestro)"))
    if not p.is_active:
        if p.updated_at > steps[-1].time:
            steps.append(_Step(p.updated_at, 0, p, steps[-1].content, steps[-1].version,
                               p.user_id, "Deactivate (soft delete in TheMaestro)", False))
        else:
            steps[-1].active = False
    return steps


def _persona_file(p: MaestroPersona, step: _Step, extends: str | None) -> bytes:
    fields: dict[str, Any] = {
        "id": p.id, "display_name": p.display_name, "description": p.description,
        "version": step.version, "extends": extends, "tags": list(p.tags or []) or None,
        "active": None if step.active else False, "metadata": _metadata(p.metadata)}
    return render_document(fields, step.content)


def _template_file(t: Any) -> bytes:
    meta = dict(t.metadata) if isinstance(t.metadata, dict) else {}
    extra = {k: v for k, v in (("is_system_template", t.is_system_template),
                               ("popularity_score", t.popularity_score)) if v is not None}
    if extra:
        meta["themaestro"] = extra
    fields = {"id": t.id, "display_name": t.display_name, "description": t.description,
              "version": "1.0.0", "category": t.category, "tags": list(t.tags or []) or None,
              "metadata": meta or None}
    return render_document(fields, t.content)


def plan_themaestro(data: TheMaestroData, users: Mapping[str, Identity] | None = None,
                    existing_templates: Collection[str] = ()) -> ThemaestroPlan:
    """The commits that replay TheMaestro's history (module docstring). A template whose
    name the repository already has (the four seed templates are built in) is kept as it is
    and noted."""
    who = _identities(data.users, users or {})
    owners = _owners(data.personas, who)
    keys = _keys(data.personas, owners)
    by_persona: dict[str, list[MaestroVersion]] = {}
    notes: list[str] = []
    for v in data.versions:
        if v.persona_id in keys:
            by_persona.setdefault(v.persona_id, []).append(v)
        else:
            notes.append(f"version {v.id} belongs to no persona; skipped")
    steps: list[_Step] = []
    for p in data.personas:
        steps += _persona_steps(p, by_persona.get(p.id, []), keys[p.id], notes)
    for t in data.templates:
        if (slug(t.name) or "template") in existing_templates:
            notes.append(f"template {t.name} is already in the repository; kept as it is")
            continue
        steps.append(_Step(t.inserted_at, 1, None, template=t,
                           message=f"Template {t.name} from TheMaestro"))
    steps.sort(key=lambda s: (s.time, s.order))
    return _commits(data, steps, keys, who, notes)


def _commits(data: TheMaestroData, steps: Sequence[_Step], keys: Mapping[str, str],
             who: Mapping[str, Identity], notes: list[str]) -> ThemaestroPlan:
    exists: set[str] = set()
    latest: dict[str, _Step] = {}
    waiting: dict[str, list[str]] = {}  # parent id -> child ids written without extends
    persona_by_id = {p.id: p for p in data.personas}
    commits: list[PlannedCommit] = []
    used_authors: set[str] = set()
    template_names: set[str] = set()
    for step in steps:
        if step.template is not None:
            name = slug(step.template.name) or "template"
            while name in template_names:
                name += "_2"
            template_names.add(name)
            commits.append(PlannedCommit(step.time, MIGRATOR, step.message,
                                         {f"templates/{name}.md": _template_file(step.template)}))
            continue
        p = step.persona
        assert p is not None
        parent = p.parent_persona_id if p.parent_persona_id in keys else None
        if p.parent_persona_id and parent is None:
            notes.append(f"{keys[p.id]}: parent {p.parent_persona_id} is not in the database")
        extends = keys[parent] if parent and parent in exists else None
        if parent and extends is None:
            waiting.setdefault(parent, [])
            if p.id not in waiting[parent]:
                waiting[parent].append(p.id)
        changes: dict[str, bytes | None] = {
            f"personas/{keys[p.id]}.md": _persona_file(p, step, extends)}
        first = p.id not in exists
        exists.add(p.id)
        latest[p.id] = step
        if first:
            for child in waiting.pop(p.id, []):
                if child in latest:
                    changes[f"personas/{keys[child]}.md"] = _persona_file(
                        persona_by_id[child], latest[child], keys[p.id])
        author = who.get(step.author or "", MIGRATOR)
        used_authors.add(str(author))
        subject = f"{keys[p.id]} {step.version}: {step.message}"
        commits.append(PlannedCommit(step.time, author, subject, changes))
    usage = tuple(UsageRow(p.id, p.application_count or 0, p.last_applied_at)
                  for p in data.personas if (p.application_count or 0) > 0 or p.last_applied_at)
    return ThemaestroPlan(
        tuple(commits), dict(keys), usage, tuple(notes), templates=len(template_names),
        versions=len(data.versions), inactive=sum(not p.is_active for p in data.personas),
        authors=tuple(sorted(used_authors)))
