"""What changed between two snapshots, entity by entity, for people to review.

Pure: snapshots and records in, frozen records out (no git, no clock).

Rules of this module:
- Entities are paired as `snapshot.diff_snapshots` pairs them (by key, and across a rename by
  frontmatter `id` or git's rename detection), so `maestro diff`, `maestro review`, the audit
  trail and the mirror agree on what was added, renamed or deleted.
- Frontmatter changes are reported by key path (`metadata.category`, `tags`), never as the
  repr of a whole mapping; a set's members are paired by `name` and their fields compared
  the same way (`similarity_score`, `persona_data.age`).
- Bodies are compared line by line (a unified diff). Records keep the text as it is; the
  renderers (`output.render_diff`, `output.render_review`) pass it through `visible`, which
  writes invisible and bidi-control characters (`rules.content.HIDDEN_CHARS`, what
  `hidden-unicode` reports) as `<U+200B>`, so a reviewer sees what a hidden-character
  attack added.
- The inheritance impact is computed from effective instructions (`inherit.resolve_bodies`)
  on both sides: every persona whose effective instruction differs and that inherits from a
  changed persona is listed, with the diff of its effective instruction.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from maestro_git.core import inherit
from maestro_git.core.models import (
    Change,
    ChangeAction,
    EntityKind,
    Persona,
    PersonaSet,
    PersonaSetMember,
    Template,
)
from maestro_git.core.rules.content import HIDDEN_CHARS, estimate_tokens
from maestro_git.core.snapshot import Snapshot, diff_snapshots

__all__ = [
    "EntityDiff",
    "FieldChange",
    "Impact",
    "MemberChange",
    "diff_entities",
    "diff_records",
    "inheritance_impact",
    "unified",
    "visible",
]

Record = Persona | Template | PersonaSet
Action = Literal["added", "modified", "renamed", "deleted", "unchanged"]
_ACTIONS: dict[ChangeAction, Action] = {
    ChangeAction.ADDED: "added", ChangeAction.MODIFIED: "modified",
    ChangeAction.RENAMED: "renamed", ChangeAction.REMOVED: "deleted"}
# Frontmatter compared (name/owner come from the path: a path change is a rename).
_DOC_FIELDS = ("id", "display_name", "description", "version", "extends", "tags", "active",
               "category", "metadata")
_SET_FIELDS = ("title", "description", "status", "generation_cycle", "rqe_scores",
               "diversity_score", "validation_scores", "metadata")


def visible(text: str) -> str:
    """`text` with every invisible or bidi-control character written as `<U+XXXX>`."""
    if text.isascii():
        return text
    return HIDDEN_CHARS.sub(lambda m: f"<U+{ord(m.group(0)):04X}>", text)


@dataclass(frozen=True)
class FieldChange:
    """One value that differs, by key path (`metadata.category`); None: absent."""

    field: str
    old: Any
    new: Any


@dataclass(frozen=True)
class MemberChange:
    """One member of a persona set that was added, removed or changed."""

    name: str
    action: Literal["added", "removed", "modified"]
    fields: tuple[FieldChange, ...] = ()


@dataclass(frozen=True)
class EntityDiff:
    """What changed in one persona, template or persona set between two revisions."""

    kind: EntityKind
    key: str
    action: Action
    old_key: str | None = None  # the key at the old side, for a rename
    old_path: str | None = None  # None: absent at the old side
    new_path: str | None = None  # None: absent at the new side
    old_version: str | None = None
    new_version: str | None = None
    fields: tuple[FieldChange, ...] = ()
    body_diff: str = ""  # unified diff of the body (the effective instruction if resolved)
    old_size: int | None = None  # body bytes
    new_size: int | None = None
    old_tokens: int | None = None  # estimated tokens of the body
    new_tokens: int | None = None
    members: tuple[MemberChange, ...] = ()
    resolved: bool = False
    rev_a: str = ""  # the revisions compared: commit ids, "worktree" or "empty"
    rev_b: str = ""

    @property
    def changed(self) -> bool:
        return bool(self.fields or self.body_diff or self.members
                    or self.old_path != self.new_path)


@dataclass(frozen=True)
class Impact:
    """A persona whose effective instruction changes because an ancestor changed."""

    key: str
    via: tuple[str, ...]  # the changed ancestors on its chain, nearest first
    diff: str  # unified diff of its effective instruction
    removed: tuple[str, ...] = field(default=())  # lines its effective instruction lost
    added: tuple[str, ...] = field(default=())  # lines it gained


# -- values by key path ----------------------------------------------------------------------
def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping) and value:
        for key in value:
            _flatten(value[key], f"{prefix}.{key}" if prefix else str(key), out)
    else:
        out[prefix] = value


def field_changes(before: Mapping[str, Any], after: Mapping[str, Any],
                  names: Sequence[str] | None = None) -> tuple[FieldChange, ...]:
    """Changed values by key path; nested mappings are compared key by key."""
    flat_a: dict[str, Any] = {}
    flat_b: dict[str, Any] = {}
    for name in names or sorted(set(before) | set(after)):
        if name in before:
            _flatten(before[name], name, flat_a)
        if name in after:
            _flatten(after[name], name, flat_b)
    order = list(dict.fromkeys([*flat_a, *flat_b]))
    return tuple(FieldChange(p, flat_a.get(p), flat_b.get(p))
                 for p in order if flat_a.get(p) != flat_b.get(p))


def _doc_fields(rec: Persona | Template | None) -> dict[str, Any]:
    if rec is None:
        return {}
    dumped = rec.model_dump(mode="json")
    return {name: dumped[name] for name in _DOC_FIELDS if name in dumped}


def _set_fields(rec: PersonaSet | None) -> dict[str, Any]:
    if rec is None:
        return {}
    dumped = rec.model_dump(mode="json")
    return {name: dumped[name] for name in _SET_FIELDS}


def _members(old: PersonaSet | None, new: PersonaSet | None) -> tuple[MemberChange, ...]:
    before: dict[str, PersonaSetMember] = {m.name: m for m in (old.members if old else ())}
    after: dict[str, PersonaSetMember] = {m.name: m for m in (new.members if new else ())}
    out: list[MemberChange] = []
    for name in after:
        if name not in before:
            out.append(MemberChange(name, "added"))
        elif before[name] != after[name]:
            out.append(MemberChange(name, "modified", field_changes(
                before[name].persona_data, after[name].persona_data)))
    out += [MemberChange(name, "removed") for name in before if name not in after]
    return tuple(out)


# -- bodies ----------------------------------------------------------------------------------
def unified(old: str, new: str, old_label: str, new_label: str) -> str:
    """A unified diff of two texts ("" when equal); `visible` shows its hidden characters."""
    if old == new:
        return ""
    lines = difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                 fromfile=old_label, tofile=new_label)
    out: list[str] = []
    for line in lines:
        out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)


def _label(side: str, path: str | None, rev: str) -> str:
    if path is None:
        return "/dev/null"
    if len(rev) == 40:
        rev = rev[:7]
    return f"{side}/{path}@{rev}" if rev else f"{side}/{path}"


def _body(rec: Record | None) -> str | None:
    return rec.body if isinstance(rec, Persona | Template) else None


def diff_records(old: Record | None, new: Record | None, *, action: Action | None = None,
                 old_body: str | None = None, new_body: str | None = None,
                 resolved: bool = False, rev_a: str = "", rev_b: str = "") -> EntityDiff:
    """The diff of one entity's two sides (either may be None: added or deleted).

    `old_body` / `new_body` replace the records' bodies (the effective instructions, with
    `resolved`); `rev_a` / `rev_b` label the diff (`a/personas/acme/x.md@1a2b3c4`).
    """
    rec = new if new is not None else old
    assert rec is not None, "diff_records needs at least one side"
    if isinstance(rec, PersonaSet):
        a_set = old if isinstance(old, PersonaSet) else None
        b_set = new if isinstance(new, PersonaSet) else None
        fields = field_changes(_set_fields(a_set), _set_fields(b_set), _SET_FIELDS)
        members = _members(a_set, b_set)
    else:
        a_doc = old if isinstance(old, Persona | Template) else None
        b_doc = new if isinstance(new, Persona | Template) else None
        fields = field_changes(_doc_fields(a_doc), _doc_fields(b_doc), _DOC_FIELDS)
        members = ()
    a_text = old_body if old_body is not None else _body(old)
    b_text = new_body if new_body is not None else _body(new)
    body = ""
    if a_text is not None or b_text is not None:
        body = unified(a_text or "", b_text or "", _label("a", old.path if old else None, rev_a),
                       _label("b", new.path if new else None, rev_b))
    if action is None:
        action = ("added" if old is None else "deleted" if new is None
                  else "renamed" if old.key != new.key else "modified")
    diff = EntityDiff(
        kind=rec.kind, key=rec.key, action=action,
        old_key=old.key if old is not None and new is not None and old.key != new.key
        else None,
        old_path=old.path if old else None, new_path=new.path if new else None,
        old_version=old.version if isinstance(old, Persona | Template) else None,
        new_version=new.version if isinstance(new, Persona | Template) else None,
        fields=fields, body_diff=body,
        old_size=len(a_text.encode()) if a_text is not None and old is not None else None,
        new_size=len(b_text.encode()) if b_text is not None and new is not None else None,
        old_tokens=estimate_tokens(a_text) if a_text is not None and old is not None else None,
        new_tokens=estimate_tokens(b_text) if b_text is not None and new is not None else None,
        members=members, resolved=resolved, rev_a=rev_a, rev_b=rev_b)
    if action == "modified" and not diff.changed:
        return replace(diff, action="unchanged")
    return diff


def _side(snap: Snapshot, kind: EntityKind, key: str | None) -> Record | None:
    return snap.record(kind, key) if key is not None else None


def diff_entities(old: Snapshot, new: Snapshot, renames: Mapping[str, str] | None = None,
                  *, rev_a: str = "", rev_b: str = "") -> list[EntityDiff]:
    """Every entity that differs from `old` to `new`: personas, then templates, then sets,
    each sorted by key."""
    out: list[EntityDiff] = []
    for change in diff_snapshots(old, new, renames):
        out.append(_diff_change(old, new, change, rev_a, rev_b))
    rank = {"persona": 0, "template": 1, "persona_set": 2}
    out.sort(key=lambda d: (rank[d.kind], d.key))
    return out


def _diff_change(old: Snapshot, new: Snapshot, change: Change, rev_a: str,
                 rev_b: str) -> EntityDiff:
    before_key = change.old_key or (None if change.action is ChangeAction.ADDED
                                    else change.key)
    after_key = None if change.action is ChangeAction.REMOVED else change.key
    return diff_records(_side(old, change.kind, before_key), _side(new, change.kind, after_key),
                        action=_ACTIONS[change.action], rev_a=rev_a, rev_b=rev_b)


# -- inheritance -----------------------------------------------------------------------------
def inheritance_impact(old: Snapshot, new: Snapshot, changes: Iterable[EntityDiff],
                       max_depth: int = inherit.DEFAULT_MAX_DEPTH, *, rev_a: str = "",
                       rev_b: str = "") -> list[Impact]:
    """Every persona of `new` that inherits from a changed persona and whose effective
    instruction differs from its effective instruction in `old` (read under its old key
    when it was renamed), sorted by key."""
    changed = [c for c in changes if c.kind == "persona"]
    renamed_from = {c.key: c.old_key for c in changed if c.old_key}
    roots = {c.key for c in changed if c.new_path is not None}
    index = inherit.children_index(new.personas)
    affected: set[str] = set()
    for root in roots:
        affected.update(inherit.descendants(root, index=index))
    if not affected:
        return []
    old_keys = {k: renamed_from.get(k, k) for k in affected}
    after = inherit.resolve_bodies(sorted(affected), new.personas, max_depth)
    before = inherit.resolve_bodies(sorted(set(old_keys.values())), old.personas, max_depth)
    out: list[Impact] = []
    for key in sorted(affected):
        a_body = before.get(old_keys[key], "")
        b_body = after.get(key, "")
        if a_body == b_body:
            continue
        a_path = old.personas[old_keys[key]].path if old_keys[key] in old.personas else None
        diff = unified(a_body, b_body, _label("a", a_path, rev_a),
                       _label("b", new.personas[key].path, rev_b))
        via = tuple(k for k in reversed(_chain(key, new.personas, max_depth)[:-1])
                    if k in roots)
        a_lines, b_lines = a_body.splitlines(), b_body.splitlines()
        a_set, b_set = set(a_lines), set(b_lines)
        out.append(Impact(key, via, diff,
                          removed=tuple(x for x in a_lines if x not in b_set),
                          added=tuple(x for x in b_lines if x not in a_set)))
    return out


def _chain(key: str, personas: Mapping[str, Persona], max_depth: int) -> tuple[str, ...]:
    return inherit.ancestry(key, personas, max_depth).chain
