"""GDPR: the right of access (`export_subject`) and the right to erasure (`erase_subject`).

Where personal data lives in a file-first persona repository:

- commit identities: author and committer names and e-mail addresses in the git history,
  mirrored into `persona_versions.author_name/author_email` and
  `audit_events.actor_name/actor_email`;
- content: persona-set members (synthetic people, but a team may paste real ones), persona
  and template frontmatter metadata, and any text of a file at the head.

A data subject is an e-mail address, optionally with a name. Matching rules (decided here):
commit identities and mirror rows match when the e-mail is equal ignoring case, or the name is
equal ignoring case and surrounding spaces; content matches when the address or the name
occurs anywhere in a value or line, ignoring case.

Erasure pseudonymises the mirror's rows of the subject in one transaction: the name becomes
`erased-<h>` and the e-mail `erased-<h>@invalid`, where `<h>` is the first 12 hex digits of
SHA-256 of the lower-cased address. The pseudonym is stable (erasing twice, or again after a
`maestro rebuild`, gives the same rows) but it is a pseudonym, not anonymisation: whoever knows
the address can recompute it. The tool never rewrites git history, so erasure is complete only
after a human rewrites it (`git filter-repo --mailmap`, force push) and the content files
that still name the subject are edited and committed. Until then the erasure register
(`gdpr_erasures`, `mirror/erasures.py`: hashes of the address and name, and the pseudonym; kept by `maestro
rebuild`) makes the mirror write the pseudonym for the subject's commits, old and new
(`Erasures.apply` on each commit the syncer mirrors).

The matching functions are pure; `export_subject` and `erase_subject` do the I/O (git through
`maestro_git.git.repo`, the mirror through a connection from `maestro_git.mirror.db.connect`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from maestro_git.core.models import CommitInfo, SourceFile
from maestro_git.core.snapshot import Snapshot, build_snapshot
from maestro_git.core.subject import DataSubject, pseudonym
from maestro_git.git.repo import GitRepo
from maestro_git.mirror import db, erasures
from maestro_git.settings import Settings

__all__ = [
    "ContentHit",
    "ErasureReport",
    "MirrorRows",
    "RecordHit",
    "SubjectCommit",
    "SubjectExport",
    "commit_roles",
    "content_hits",
    "erase_subject",
    "export_subject",
    "mailmap_lines",
    "mirror_rows",
    "record_hits",
    "subject_commits",
]

# -- records ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SubjectCommit:
    """A commit on the branch that carries the subject's identity."""

    commit: str
    roles: tuple[str, ...]  # "author" and/or "committer"
    author_name: str
    author_email: str
    committer_name: str
    committer_email: str
    time: datetime
    message: str


@dataclass(frozen=True)
class RecordHit:
    """A value of a parsed record at the head that contains the address or the name."""

    kind: str  # persona | template | persona_set
    key: str
    path: str
    field: str  # where in the record, e.g. `members[2].contact.email` or `metadata.owner`
    value: str


@dataclass(frozen=True)
class ContentHit:
    """A line of a file at the head that contains the address or the name."""

    path: str
    line: int
    text: str


@dataclass(frozen=True)
class MirrorRows:
    """The mirror's rows naming the subject, per table (each row a column -> value mapping)."""

    persona_versions: tuple[Mapping[str, Any], ...] = ()
    audit_events: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class SubjectExport:
    """Everything maestro holds about one data subject (the right of access)."""

    subject: DataSubject
    branch: str
    head: str | None
    commits: tuple[SubjectCommit, ...]
    records: tuple[RecordHit, ...]
    files: tuple[ContentHit, ...]
    mirror: MirrorRows | None  # None: no mirror was read

    def as_json(self) -> dict[str, Any]:
        return {"subject": {"email": self.subject.email, "name": self.subject.name},
                "branch": self.branch, "head": self.head,
                "commits": [asdict(c) for c in self.commits],
                "records": [asdict(r) for r in self.records],
                "files": [asdict(h) for h in self.files],
                "mirror": None if self.mirror is None else {
                    "persona_versions": list(self.mirror.persona_versions),
                    "audit_events": list(self.mirror.audit_events)}}


@dataclass(frozen=True)
class ErasureReport:
    """What `erase_subject` changed, and what is left for a human to do."""

    subject: DataSubject
    pseudonym_name: str
    pseudonym_email: str
    updated: Mapping[str, int]  # table -> rows pseudonymised
    commits: int  # commits on the branch that still carry the identity (git is not rewritten)
    files: tuple[ContentHit, ...] = field(default=())  # head lines that still name the subject
    mailmap: tuple[str, ...] = ()  # `git filter-repo --mailmap` lines for the history rewrite

    @property
    def total(self) -> int:
        return sum(self.updated.values())


# -- pure matching ----------------------------------------------------------------------------
def commit_roles(info: CommitInfo, subject: DataSubject) -> tuple[str, ...]:
    """The roles ("author", "committer") in which a commit names the subject."""
    roles = []
    if subject.names_identity(info.author_name, info.author_email):
        roles.append("author")
    if subject.names_identity(info.committer_name, info.committer_email):
        roles.append("committer")
    return tuple(roles)


def _strings(value: Any, where: str) -> Iterator[tuple[str, str]]:
    """(path, text) of every string (and key) inside a JSON-like value."""
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, Mapping):
        for k, v in value.items():
            inner = f"{where}.{k}" if where else str(k)
            yield inner, str(k)
            yield from _strings(v, inner)
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from _strings(v, f"{where}[{i}]")


def record_hits(snapshot: Snapshot, subject: DataSubject) -> list[RecordHit]:
    """Persona-set members and persona/template frontmatter values naming the subject."""
    hits: list[RecordHit] = []

    def scan(kind: str, key: str, path: str, value: Any, where: str) -> None:
        seen: set[str] = set()
        for at, text in _strings(value, where):
            if at not in seen and subject.occurs_in(text):
                seen.add(at)
                hits.append(RecordHit(kind, key, path, at, text))

    for key, s in sorted(snapshot.sets.items()):
        for i, member in enumerate(s.members):
            scan("persona_set", key, s.path, member.persona_data, f"members[{i}]")
        scan("persona_set", key, s.path, s.metadata, "metadata")
        scan("persona_set", key, s.path, {"name": s.title, "description": s.description}, "")
    documents = [("persona", k, d) for k, d in snapshot.personas.items()] + [
        ("template", k, d) for k, d in snapshot.templates.items()]
    for kind, key, doc in sorted(documents, key=lambda t: (t[0], t[1])):
        scan(kind, key, doc.path, doc.metadata, "metadata")
        scan(kind, key, doc.path, {"display_name": doc.display_name,
                                   "description": doc.description, "tags": list(doc.tags)}, "")
    return hits


def content_hits(files: Iterable[SourceFile], subject: DataSubject) -> list[ContentHit]:
    """Every line of the files (bodies included) that contains the address or the name."""
    hits: list[ContentHit] = []
    for src in sorted(files, key=lambda f: f.path):
        if src.is_symlink:
            continue
        text = src.data.decode("utf-8", errors="replace")
        if not subject.occurs_in(text):
            continue
        for n, line in enumerate(text.splitlines(), start=1):
            if subject.occurs_in(line):
                hits.append(ContentHit(src.path, n, line.strip()[:200]))
    return hits


# -- git --------------------------------------------------------------------------------------
def subject_commits(git: GitRepo, head: str | None, subject: DataSubject
                    ) -> list[SubjectCommit]:
    """Commits reachable from `head` (every parent, not only the first) naming the subject,
    newest first."""
    if head is None:
        return []
    found: list[SubjectCommit] = []
    seen = {head}
    todo = [head]
    while todo:
        info = git.commit_info(todo.pop())
        roles = commit_roles(info, subject)
        if roles:
            found.append(SubjectCommit(info.id, roles, info.author_name, info.author_email,
                                       info.committer_name, info.committer_email, info.time,
                                       info.message))
        for parent in info.parents:
            if parent not in seen:
                seen.add(parent)
                todo.append(parent)
    found.sort(key=lambda c: c.time, reverse=True)  # stable: walk order breaks ties
    return found


def _head_reads(settings: Settings) -> tuple[GitRepo, str | None, list[SourceFile]]:
    git = GitRepo(settings.repo_path)
    head = git.head(settings.branch)
    files = list(git.files_at(head)) if head is not None else []
    return git, head, files


# -- the mirror -------------------------------------------------------------------------------
def mirror_rows(conn: db.Connection, subject: DataSubject) -> MirrorRows:
    """The persona_versions and audit_events rows naming the subject (empty without a
    migrated mirror)."""
    with db.translate_errors("reading the mirror"):
        if not erasures.has_identity_tables(conn):
            return MirrorRows()
        return MirrorRows(**erasures.identity_rows(conn, subject))


# -- the two requests -------------------------------------------------------------------------
def export_subject(settings: Settings, subject: DataSubject,
                   conn: db.Connection | None = None) -> SubjectExport:
    """Everything about `subject`: commits on the branch, record values and file lines at the
    head, and (with `conn`) the mirror's rows."""
    git, head, files = _head_reads(settings)
    from maestro_git.repo.snapshots import snapshot_of

    snapshot = snapshot_of(settings, head) if head is not None else build_snapshot((), settings)
    return SubjectExport(
        subject=subject, branch=settings.branch, head=head,
        commits=tuple(subject_commits(git, head, subject)),
        records=tuple(record_hits(snapshot, subject)),
        files=tuple(content_hits(files, subject)),
        mirror=mirror_rows(conn, subject) if conn is not None else None)


def erase_subject(settings: Settings, conn: db.Connection, subject: DataSubject, *,
                  dry_run: bool = False) -> ErasureReport:
    """Pseudonymise the subject's identity in `persona_versions` and `audit_events`, in one
    transaction (with `dry_run`, only count the rows). Git is not touched: the report counts
    the commits that still carry the identity and lists the head's lines that name the
    subject, for a human to rewrite history and edit the files."""
    git, head, files = _head_reads(settings)
    name, email = pseudonym(subject)
    updated: dict[str, int] = dict.fromkeys(erasures.IDENTITY_COLUMNS, 0)
    if erasures.has_identity_tables(conn):
        if not dry_run:
            db.migrate(conn)  # the register (0003, 0004) must exist
        with db.translate_errors("erasing from the mirror"), conn.transaction():
            if dry_run:
                updated = erasures.count_identity_rows(conn, subject)
            else:  # the register, then its pseudonyms: later syncs and rebuilds use it too
                erasures.add_to_register(conn, [erasures.register_entry(subject)])
                updated = erasures.apply_register(conn)
    commits = subject_commits(git, head, subject)
    return ErasureReport(subject=subject, pseudonym_name=name, pseudonym_email=email,
                         updated=updated, commits=len(commits),
                         files=tuple(content_hits(files, subject)),
                         mailmap=tuple(mailmap_lines(subject, commits)))


def mailmap_lines(subject: DataSubject, commits: Iterable[SubjectCommit]) -> list[str]:
    """`git filter-repo --mailmap` lines mapping every address the subject committed with
    (plus the given one) to the pseudonym."""
    name, email = pseudonym(subject)
    addresses = {subject.email}
    for c in commits:
        if "author" in c.roles:
            addresses.add(c.author_email)
        if "committer" in c.roles:
            addresses.add(c.committer_email)
    return [f"{name} <{email}> <{a}>" for a in sorted(addresses, key=str.lower)]
