"""Versions of one persona, template or set, read from git; and the audit events of a commit.

A version is a commit that changed the entity's file (`GitRepo.file_history`: only commits
that touch its path are examined, renames and moves between owner folders are followed by the
frontmatter `id`, else by git's rename detection). Merges follow git's default history
simplification: a merge is a version only when its file differs from the file in every
parent (a conflict resolution, or an edit made in the merge); a clean merge of a branch that
edited the file shows the branch's own commit instead.

`commit_events` is one commit's audit trail, read from git the way the mirror sees it. (The
diff between two versions is `core.diff`'s, called by `Repository.diff`.)
"""

from __future__ import annotations

from maestro_git.core import inherit
from maestro_git.core.audit import events_for_commit, parse_rollback
from maestro_git.core.formats import classify, content_hash, parse_file
from maestro_git.core.models import (
    AuditEvent,
    Persona,
    PersonaSet,
    Severity,
    SourceFile,
    Template,
    Version,
)
from maestro_git.core.rules.validate import apply_severities, validate_file
from maestro_git.core.snapshot import build_snapshot, diff_snapshots
from maestro_git.errors import InheritanceError
from maestro_git.git.repo import FileVersion, GitRepo, TreeDelta
from maestro_git.settings import Limits, Settings

__all__ = ["commit_events", "document_identity", "read_history", "resolved_body"]

_ACTIONS = {"added": "created", "modified": "updated", "renamed": "renamed",
            "deleted": "deleted"}
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


def resolved_body(git: GitRepo, settings: Settings, doc: Persona | Template,
                  commit: str) -> str:
    """The effective instruction of `doc` at `commit` (its `extends` chain read from that
    commit, composed by `inherit.resolve`); its own body when the chain does not resolve."""
    if not isinstance(doc, Persona) or not doc.extends:
        return doc.body
    chain: dict[str, Persona] = {doc.key: doc}
    current: Persona = doc
    for _ in range(settings.limits.max_inheritance_depth + 1):
        if not current.extends or current.extends in chain:
            break
        path = f"personas/{current.extends}.md"
        data = git.read_file(commit, path)
        parent = _record(path, data) if data is not None else None
        if not isinstance(parent, Persona):
            break
        chain[parent.key] = parent
        current = parent
    try:
        return inherit.resolve(doc.key, chain, settings.limits.max_inheritance_depth).body
    except InheritanceError:
        return doc.body


def commit_events(git: GitRepo, settings: Settings, commit: str,
                  paths: set[str] | None = None) -> list[AuditEvent]:
    """The audit events of one commit against its first parent: `audit.events_for_commit`
    on partial snapshots holding just the files the commit changed (or those of them in
    `paths`).

    As in the mirror, an invalid file is not a change: a commit that breaks a file has no
    event for it, and the parent side of a later commit uses the file's last valid content.
    Validity here is the single-file rules; cross-file rules need a whole snapshot.
    """
    info = git.commit_info(commit)
    parent = info.parents[0] if info.parents else None
    if paths is not None and parent is None:
        found = ((p, git.read_file(commit, p)) for p in sorted(paths))
        delta = TreeDelta(changed=[SourceFile(path=p, data=d) for p, d in found
                                   if d is not None])
    else:
        delta = git.changed_files(parent, commit)
    if paths is not None and parent is not None:
        delta = TreeDelta(changed=[f for f in delta.changed if f.path in paths],
                          removed=[p for p in delta.removed if p in paths],
                          renames={o: n for o, n in delta.renames.items()
                                   if o in paths or n in paths})
    new_sources = [f for f in delta.changed if _file_ok(f, settings)]
    old_sources: list[SourceFile] = []
    if parent is not None:
        for path in [*delta.removed, *(f.path for f in new_sources)]:
            data = git.read_file(parent, path)
            if data is None:
                continue
            src = SourceFile(path=path, data=data)
            good = src if _file_ok(src, settings) else _last_good(git, settings, parent, path)
            if good is not None:
                old_sources.append(good)
    old = build_snapshot(old_sources, settings, parent)
    new = build_snapshot(new_sources, settings, commit)
    changes = diff_snapshots(old, new, delta.renames)
    return events_for_commit(info, changes, old if parent else None, new)


def _file_ok(src: SourceFile, settings: Settings) -> bool:
    parsed = parse_file(src, settings.limits)
    if parsed.record is None:
        return False
    problems = apply_severities([*parsed.problems, *validate_file(parsed, src, settings)],
                                settings)
    return not any(p.severity is Severity.ERROR for p in problems)


def _last_good(git: GitRepo, settings: Settings, commit: str, path: str) -> SourceFile | None:
    """`path`'s newest valid content at or before `commit`, if it ever had one."""
    for step in git.file_history(commit, path, identity=document_identity):
        if step.blob is not None:
            src = SourceFile(path=path, data=git.read_blob(step.blob))
            if _file_ok(src, settings):
                return src
    return None
