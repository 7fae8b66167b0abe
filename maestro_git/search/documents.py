"""Search documents: what the index stores for each record, and the hit a stored document
gives back (pure; no whoosh, no I/O).

Rules of this module:
- One document per agent persona, template and persona set, and one per member of a persona
  set (a member document carries its set's key, so a hit names the set).
- A document is a plain dict of field name to value; `index.py` owns the schema that reads it.
- Readers see a valid file's record, or the last good record of a file that is invalid now,
  never the record parsed from an invalid file (`shown`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from maestro_git.core.models import (
    Change,
    Persona,
    PersonaSet,
    PersonaSetMember,
    SearchHit,
    Template,
)
from maestro_git.core.snapshot import Snapshot
from maestro_git.search.query import Matcher, snippet

__all__ = [
    "META_UID",
    "IndexStatus",
    "MirroredLike",
    "SnapshotSource",
    "commit_id",
    "indexable",
    "member_terms",
    "record_docs",
    "shown",
    "stored_hit",
    "tool_terms",
    "uid",
]

META_UID = "__meta__"  # the document that records the commit an index reflects



@dataclass(frozen=True)
class IndexStatus:
    """What `maestro index status` reports."""

    path: str
    exists: bool
    commit: str | None
    documents: int
    segments: int
    healthy: bool
    reason: str = ""


def _flatten(value: Any, out: list[str], prefix: str = "") -> None:
    """Every scalar of a JSON-like value as text, keys included (`occupation nurse`)."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            _flatten(v, out, str(k))
    elif isinstance(value, list | tuple):
        for v in value:
            _flatten(v, out, prefix)
    elif value is None or isinstance(value, bool):
        return
    else:
        out.append(f"{prefix.replace('_', ' ')} {value}".strip())


_FEMALE = {"female", "f", "woman", "w"}
_MALE = {"male", "m", "man"}
_DECADES = {20: "twenties", 30: "thirties", 40: "forties", 50: "fifties", 60: "sixties",
            70: "seventies", 80: "eighties", 90: "nineties"}


def member_terms(data: Mapping[str, Any]) -> list[str]:
    """Words a person would search for that the member's JSON implies but does not spell:
    the age's decade (`54` -> `50s fifties`) and pronouns from `gender`/`sex`."""
    words: list[str] = []
    age = data.get("age")
    if isinstance(age, int | float) and not isinstance(age, bool) and 0 < age < 130:
        decade = int(age) // 10 * 10
        words.append(f"{decade}s")
        if decade in _DECADES:
            words.append(_DECADES[decade])
    gender = str(data.get("gender") or data.get("sex") or "").strip().lower()
    if gender in _FEMALE:
        words += ["she", "her", "woman", "female"]
    elif gender in _MALE:
        words += ["he", "his", "him", "man", "male"]
    return words


def tool_terms(tools: Sequence[str]) -> list[str]:
    """The words `tools:` finds a persona's tools by: each tool's name before any argument
    list (`Bash(git:*)` -> `Bash`, `Agent(worker, researcher)` -> `Agent`), as
    `mirror/fts.py` compares them (`split_part(t, '(', 1)`, trimmed, case-insensitive)."""
    terms = [t.split("(", 1)[0].strip().replace(",", " ") for t in tools]
    return [t for t in terms if t]


def uid(kind: str, key: str, member: str | None = None) -> str:
    """The unique id of one document: `persona:acme/x`, `set_member:clinic#Maria Lopez`."""
    return f"{kind}:{key}" if member is None else f"{kind}:{key}#{member}"


def _document_doc(rec: Persona | Template) -> dict[str, Any]:
    meta: list[str] = []
    _flatten(rec.metadata, meta)
    category = rec.category if isinstance(rec, Template) else rec.metadata.get("category")
    doc: dict[str, Any] = {
        "uid": uid(rec.kind, rec.key), "kind": rec.kind, "key": rec.key,
        "name": rec.name, "display_name": rec.display_name or "",
        "description": rec.description or "", "tags": ",".join(rec.tags),
        "active": rec.active, "metadata": "\n".join(meta), "content": rec.body,
        "hash": rec.content_hash,
    }
    if isinstance(rec, Persona):
        doc["owner"] = rec.owner
        if rec.model:
            doc["model"] = rec.model
        if rec.tools:
            doc["tools"] = ",".join(tool_terms(rec.tools))
    if isinstance(category, str) and category:
        doc["category"] = category
    if rec.extends:
        doc["extends"] = rec.extends
    return doc


def _member_doc(pset: PersonaSet, member: PersonaSetMember) -> dict[str, Any]:
    text: list[str] = []
    _flatten({k: v for k, v in member.persona_data.items() if k != "name"}, text)
    data = member.persona_data
    doc: dict[str, Any] = {
        "uid": uid("set_member", pset.key, member.name), "kind": "set_member",
        "key": pset.key, "member": member.name, "name": member.name,
        "display_name": member.name, "set": pset.key,
        "content": "\n".join(text),
        "metadata": " ".join(member_terms(data)),
        "hash": pset.content_hash,
    }
    if member.validation_status:
        doc["status"] = member.validation_status
    age = data.get("age")
    if isinstance(age, int) and not isinstance(age, bool):
        doc["age"] = age
    return doc


def _set_docs(pset: PersonaSet) -> Iterator[dict[str, Any]]:
    meta: list[str] = []
    _flatten(pset.metadata, meta)
    yield {
        "uid": uid("persona_set", pset.key), "kind": "persona_set", "key": pset.key,
        "name": pset.key, "display_name": pset.title or pset.key,
        "description": pset.description or "", "set": pset.key,
        "status": pset.status or "", "metadata": "\n".join(meta),
        "content": "\n".join(m.name for m in pset.members), "hash": pset.content_hash,
    }
    for member in pset.members:
        yield _member_doc(pset, member)


def record_docs(rec: Persona | Template | PersonaSet) -> Iterator[dict[str, Any]]:
    """The documents of one record (a persona set: the set and each of its members)."""
    if isinstance(rec, PersonaSet):
        yield from _set_docs(rec)
    else:
        yield _document_doc(rec)


def shown(snapshot: Snapshot, rec: Persona | Template | PersonaSet) -> bool:
    """Whether readers see `rec`: a valid file's record, or the last good record an
    effective snapshot (`sync.MirroredCommit.snapshot`) keeps for a file that is invalid now,
    but never the record parsed from an invalid file."""
    parsed = snapshot.files.get(rec.path)
    if parsed is None or snapshot.is_valid(rec.path):
        return True
    return parsed.record is not rec and parsed.content_hash != rec.content_hash


def indexable(snapshot: Snapshot) -> Iterator[Persona | Template | PersonaSet]:
    """The records a snapshot shows to readers (see `shown`)."""
    for table in (snapshot.personas, snapshot.templates, snapshot.sets):
        for rec in table.values():
            if shown(snapshot, rec):
                yield rec


class MirroredLike(Protocol):
    """What `update` needs from `sync.MirroredCommit` (a sync listener's argument)."""

    @property
    def changes(self) -> Sequence[Change]: ...

    @property
    def snapshot(self) -> Snapshot: ...

    @property
    def commit(self) -> Any: ...  # CommitInfo (with `.id`) or a commit id


SnapshotSource = Snapshot | Callable[[], Snapshot]


def commit_id(commit: Any) -> str | None:
    """The id of a `MirroredLike.commit` (a CommitInfo or an id)."""
    if commit is None or isinstance(commit, str):
        return commit
    return str(commit.id)


def stored_hit(stored: Mapping[str, Any], score: float, marks: Mapping[str, Matcher]
               ) -> SearchHit:
    """The hit for a document's stored fields: its snippet from the first field a query
    matcher marks, else the start of its description or content."""
    text = ""
    for name, matcher in marks.items():
        if stored.get(name):
            text = snippet(stored[name], matcher)
            if text:
                break
    if not text:
        text = (stored.get("description") or stored.get("content") or "")[:160]
    title = stored.get("display_name") or stored.get("name") or stored["key"]
    return SearchHit(kind=stored["kind"], key=stored["key"], title=title,
                     score=round(float(score), 4),
                     snippet=" ".join(text.split()), member=stored.get("member"))
