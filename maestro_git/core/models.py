"""Frozen records that flow through maestro-git: files in, records out, problems as values.

Every record is immutable (pydantic v2, `frozen=True`). Paths are repository-relative POSIX
strings (`personas/acme/reviewer.md`). Keys:

- agent persona: `<owner>/<name>` (from the path `personas/<owner>/<name>.md`)
- template: `<name>` (from `templates/<name>.md`)
- persona set: `<set>` (from `persona_sets/<set>.json` or `persona_sets/<set>/set.json`)

`content_hash` is the SHA-256 hex digest of the file's bytes, the unit of change detection
everywhere (snapshot diffs, mirror upserts, verify).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from maestro_git.core.chars import visible

__all__ = [
    "AuditEvent",
    "Change",
    "ChangeAction",
    "EntityKind",
    "Persona",
    "PersonaSet",
    "PersonaSetMember",
    "Problem",
    "Severity",
    "SourceFile",
    "Template",
    "Version",
]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Severity(StrEnum):
    """How much a problem matters. `error` blocks mirroring and makes `maestro check` exit 1."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


class Problem(_Frozen):
    """One finding of validation: which rule, where, what is wrong and how to fix it."""

    rule: str  # stable rule id, e.g. "hidden-unicode"
    severity: Severity
    path: str  # repository-relative file path
    message: str
    fix: str = ""
    line: int | None = None  # 1-based, when known
    column: int | None = None  # 1-based, when known

    @field_validator("message", "fix")
    @classmethod
    def _shown(cls, text: str) -> str:
        """A message never carries the hidden or unstorable characters it may quote (a name,
        a key): they are written as `<U+200B>`, so terminals and `sync_errors` take it."""
        return visible(text)

    def location(self) -> str:
        """`path:line:column` with the parts that are known."""
        loc = self.path
        if self.line is not None:
            loc += f":{self.line}"
            if self.column is not None:
                loc += f":{self.column}"
        return loc


class SourceFile(_Frozen):
    """One file as read from a working tree or a commit, before parsing."""

    path: str
    data: bytes
    is_symlink: bool = False
    link_target: str | None = None  # for symlinks: the target as stored


EntityKind = Literal["persona", "template", "persona_set"]


class _Document(_Frozen):
    """Fields shared by agent personas and templates (Markdown file with YAML frontmatter)."""

    name: str
    path: str
    id: str | None = None  # stable UUID from frontmatter; None until `maestro fmt` assigns one
    display_name: str | None = None
    description: str | None = None
    version: str = "1.0.0"
    extends: str | None = None  # parent persona key
    model: str | None = None  # the model an agent tool should run it on (Claude/Copilot `model`)
    tools: tuple[str, ...] | None = None  # tool allowlist; None = the tool's default (all)
    tags: tuple[str, ...] = ()
    active: bool = True
    metadata: dict[str, Any] = Field(default_factory=dict)  # unknown frontmatter keys land here
    body: str = ""  # the Markdown system instruction (after the frontmatter)
    body_line: int = 1  # line number of the body's first line in the file
    content_hash: str = ""
    size_bytes: int = 0


class Persona(_Document):
    """An agent persona: `personas/<owner>/<name>.md`."""

    owner: str

    @property
    def key(self) -> str:
        return f"{self.owner}/{self.name}"

    @property
    def kind(self) -> EntityKind:
        return "persona"


class Template(_Document):
    """A persona template: `templates/<name>.md`; same format as a persona plus `category`."""

    category: str | None = None

    @property
    def key(self) -> str:
        return self.name

    @property
    def kind(self) -> EntityKind:
        return "template"


class PersonaSetMember(_Frozen):
    """One synthetic user persona inside a persona set (free-form `persona_data`)."""

    name: str
    persona_data: dict[str, Any]  # the whole member object as written in the file
    image_url: str | None = None
    image_prompt: str | None = None
    similarity_score: Any = None  # a number or an object of scores, as the generator wrote it
    validation_status: str | None = None


class PersonaSet(_Frozen):
    """A persona set: `persona_sets/<set>.json` or `persona_sets/<set>/set.json`."""

    name: str  # the set key, from the path
    path: str
    title: str | None = None  # the `name` field inside the JSON, when it differs from the key
    description: str | None = None
    members: tuple[PersonaSetMember, ...] = ()
    rqe_scores: Any = None
    diversity_score: Any = None
    validation_scores: Any = None
    generation_cycle: int | None = None
    status: Literal["generated", "expanded", "validated"] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)  # the whole `metadata` object
    content_hash: str = ""
    size_bytes: int = 0

    @property
    def key(self) -> str:
        return self.name

    @property
    def kind(self) -> EntityKind:
        return "persona_set"


class Version(_Frozen):
    """One version of a file: a commit that changed it."""

    key: str
    path: str
    commit: str
    author_name: str
    author_email: str
    committer_name: str
    committer_email: str
    time: datetime  # commit time, timezone-aware
    message: str
    content_hash: str | None  # None when the commit deleted the file
    version: str | None  # the frontmatter semver at that commit, when parseable
    action: str  # created | updated | renamed | deleted | rolled_back | promoted


class ChangeAction(StrEnum):
    ADDED = "added"
    MODIFIED = "modified"
    REMOVED = "removed"
    RENAMED = "renamed"


class Change(_Frozen):
    """One entity that differs between two snapshots."""

    action: ChangeAction
    kind: EntityKind
    key: str
    old_key: str | None = None  # for renames
    path: str | None = None  # the new path (None for removals)
    old_path: str | None = None


class AuditEvent(_Frozen):
    """One entry of the audit trail, derived from a commit."""

    action: str  # created | updated | renamed | deleted | rolled_back | promoted | history_rewritten
    kind: EntityKind | Literal["repository"]
    key: str
    commit: str
    actor_name: str
    actor_email: str
    time: datetime
    message: str
    old_key: str | None = None


@dataclass(frozen=True)
class CommitInfo:
    id: str
    parents: tuple[str, ...]
    author_name: str
    author_email: str
    committer_name: str
    committer_email: str
    time: datetime  # author time, timezone-aware
    message: str

    @property
    def short_id(self) -> str:
        return self.id[:7]


HitKind = Literal["persona", "template", "persona_set", "set_member"]


@dataclass(frozen=True)
class SearchHit:
    """One search result. For a set member, `key` is its set's key and `member` its name."""

    kind: HitKind
    key: str
    title: str
    score: float
    snippet: str
    member: str | None = None
