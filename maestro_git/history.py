"""Versions of one persona, template or set, read from git; and the diff between two of them.

A version is a commit that changed the entity's file (`GitRepo.file_history`: only commits
that touch its path are examined, renames and moves between owner folders are followed by the
frontmatter `id`, else by git's rename detection). Merges follow git's default history
simplification: a merge is a version only when its file differs from the file in every
parent (a conflict resolution, or an edit made in the merge); a clean merge of a branch that
edited the file shows the branch's own commit instead.

`diff_versions` is pure: two parsed records in, the frontmatter field changes and a unified
diff of the body out.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from maestro_git.audit import parse_rollback
from maestro_git.formats import classify, content_hash, parse_file
from maestro_git.git import FileVersion, GitRepo
from maestro_git.models import Persona, PersonaSet, SourceFile, Template, Version
from maestro_git.settings import Limits

__all__ = ["FieldChange", "PersonaDiff", "diff_versions", "document_identity", "read_history"]

_ACTIONS = {"added": "created", "modified": "updated", "renamed": "renamed",
            "deleted": "deleted"}
# Fields compared by `diff_versions` (name/owner come from the path, shown as a path change).
_FIELDS = ("id", "display_name", "description", "version", "extends", "tags", "active",
           "category", "metadata")
_IDENTITY_PATH = "personas/_/_.md"


def _record(path: str, data: bytes) -> Persona | Template | PersonaSet | None:
    return parse_file(SourceFile(path=path, data=data), Limits()).record


def document_identity(data: bytes) -> str | None:
    """The frontmatter `id` of a persona or template file's bytes (None when it has none)."""
    rec = _record(_IDENTITY_PATH, data)
    return rec.id if isinstance(rec, Persona | Template) else None


def read_history(git: GitRepo, start: str, path: str) -> list[Version]:
    """Every version of the file at `path` (as of commit `start`), newest first."""
    versions: list[Version] = []
    for step in git.file_history(start, path, identity=document_identity):
        versions.append(_version(git, step))
    return versions


def _version(git: GitRepo, step: FileVersion) -> Version:
    info = git.commit_info(step.commit)
    where = step.path or step.old_path or ""
    loc = classify(where)
    key = loc.key if loc is not None else where
    semver = digest = None
    if step.blob is not None:
        data = git.read_blob(step.blob)
        digest = content_hash(data)
        rec = _record(where, data)
        if isinstance(rec, Persona | Template):
            semver = rec.version
    action = _ACTIONS[step.status]
    rollback = parse_rollback(info.message)
    if (rollback is not None and step.status != "deleted"
            and (not rollback.keys or key in rollback.keys)):
        action = "rolled_back"
    return Version(
        key=key, path=where, commit=info.id, author_name=info.author_name,
        author_email=info.author_email, committer_name=info.committer_name,
        committer_email=info.committer_email, time=info.time, message=info.message.strip(),
        content_hash=digest, version=semver, action=action)


@dataclass(frozen=True)
class FieldChange:
    """One frontmatter field that differs between two versions (None: absent)."""

    field: str
    old: Any
    new: Any


@dataclass(frozen=True)
class PersonaDiff:
    """What changed in one persona (or template) from `rev_a` to `rev_b`."""

    key: str
    rev_a: str  # full commit ids
    rev_b: str
    old_path: str | None  # None: the entity did not exist at rev_a
    new_path: str | None  # None: it did not exist at rev_b
    old_version: str | None
    new_version: str | None
    fields: tuple[FieldChange, ...]
    body_diff: str  # a unified diff of the body (of the resolved instruction with resolved)
    resolved: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.fields or self.body_diff or self.old_path != self.new_path)


def _fields(rec: Persona | Template | None) -> dict[str, Any]:
    if rec is None:
        return {}
    dumped = rec.model_dump(mode="json")
    return {name: dumped[name] for name in _FIELDS if name in dumped}


def diff_versions(key: str, rev_a: str, rev_b: str, old: Persona | Template | None,
                  new: Persona | Template | None, *, old_body: str | None = None,
                  new_body: str | None = None, resolved: bool = False) -> PersonaDiff:
    """Field changes and a unified body diff between two records (either may be None).

    `old_body` / `new_body` replace the records' bodies in the diff (the resolved, inherited
    instruction when `resolved`).
    """
    before, after = _fields(old), _fields(new)
    changes = tuple(
        FieldChange(name, before.get(name), after.get(name))
        for name in _FIELDS
        if before.get(name) != after.get(name))
    a_text = old_body if old_body is not None else (old.body if old is not None else "")
    b_text = new_body if new_body is not None else (new.body if new is not None else "")
    a_label = f"a/{old.path}@{rev_a[:7]}" if old is not None else "/dev/null"
    b_label = f"b/{new.path}@{rev_b[:7]}" if new is not None else "/dev/null"
    body = "".join(difflib.unified_diff(
        a_text.splitlines(keepends=True), b_text.splitlines(keepends=True),
        fromfile=a_label, tofile=b_label))
    if body and not body.endswith("\n"):
        body += "\n\\ No newline at end of file\n"
    return PersonaDiff(
        key=key, rev_a=rev_a, rev_b=rev_b,
        old_path=old.path if old is not None else None,
        new_path=new.path if new is not None else None,
        old_version=old.version if old is not None else None,
        new_version=new.version if new is not None else None,
        fields=changes, body_diff=body, resolved=resolved)
