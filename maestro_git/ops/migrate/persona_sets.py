"""Migration from the persona-set service's database and its `static/images/personas/`.

`plan_persona_sets(data, images)` is pure: rows in (`mirror.foreign.read_persona_sets`),
commits out. Each `persona_sets` row is one set, `persona_sets/<set>/set.json` in the
service's own JSON shape (`name`, `description`, `personas`, `metadata` with the score
objects, `generation_cycle` and `status`), its members the `personas` rows of that set:
`persona_data` (the member's full data) with the columns `name`, `image_url`,
`image_prompt`, `similarity_score`, `validation_status` over it. Each member's image (the
service's URL path `/static/images/personas/persona_<id>.png`) is copied to
`persona_sets/<set>/images/` and its `image_url` rewritten to `images/<file>`; an image not
found keeps its URL and is reported.

History: the set's first commit is at its `created_at` with the members created by then;
members added later (an expansion) come in one commit per distinct `created_at`. What the
service sets on a later update, the score objects and the status, is dated by the set's
`updated_at`: when that is later than every member, the commits before it hold the members
without them and one last commit at `updated_at` adds them (the service keeps no older
values, so none are invented). The set name is the row's `name` made a valid name (`set_<id>` when empty; a
second set of one name gets `_<id>`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any

from maestro_git.core.rules.sets import is_served_path
from maestro_git.git.repo import Identity
from maestro_git.mirror.foreign import PersonaSetData, ServiceMember, ServiceSet
from maestro_git.ops.migrate.replay import PlannedCommit, slug

__all__ = ["SERVICE", "SetsPlan", "plan_persona_sets"]

SERVICE = Identity("Persona-set service", "persona-sets@migration.invalid")
# A served URL path -> the image's bytes, or None when the static folder does not hold it.
ImageReader = Callable[[str], bytes | None]


@dataclass(frozen=True)
class SetsPlan:
    commits: tuple[PlannedCommit, ...]
    keys: Mapping[int, str]  # service set id -> set key
    members: int
    images: int
    notes: tuple[str, ...] = ()


def _member(m: ServiceMember, image: str | None) -> dict[str, Any]:
    doc: dict[str, Any] = dict(m.persona_data) if isinstance(m.persona_data, dict) else {}
    if m.name is not None:
        doc["name"] = m.name
    doc.setdefault("name", f"persona_{m.id}")
    for key, value in (("image_url", image if image is not None else m.image_url),
                       ("image_prompt", m.image_prompt),
                       ("similarity_score", m.similarity_score),
                       ("validation_status", m.validation_status)):
        if value is not None:
            doc[key] = value
    return doc


def _document(s: ServiceSet, members: Sequence[dict[str, Any]], scored: bool = True) -> bytes:
    """The set's JSON; without `scored`, before its last update: no scores, no status."""
    fields = [("rqe_scores", s.rqe_scores), ("diversity_score", s.diversity_score),
              ("validation_scores", s.validation_scores),
              ("generation_cycle", s.generation_cycle), ("status", s.status)]
    metadata = {k: v for k, v in fields
                if v is not None and (scored or k == "generation_cycle")}
    doc: dict[str, Any] = {"name": s.name, "description": s.description,
                           "personas": list(members), "metadata": metadata}
    doc = {k: v for k, v in doc.items() if v is not None}
    return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _set_keys(sets: Sequence[ServiceSet]) -> dict[int, str]:
    keys: dict[int, str] = {}
    used: set[str] = set()
    for s in sets:
        base = slug(s.name or "") or f"set_{s.id}"
        key = base if base not in used else f"{base}_{s.id}"
        used.add(key)
        keys[s.id] = key
    return keys


def plan_persona_sets(data: PersonaSetData, images: ImageReader,
                      author: Identity = SERVICE) -> SetsPlan:
    """The commits that replay the service's sets (module docstring)."""
    keys = _set_keys(data.sets)
    by_set: dict[int, list[ServiceMember]] = {}
    notes: list[str] = []
    for m in data.members:
        by_set.setdefault(m.persona_set_id, []).append(m)
    planned: list[tuple[datetime, int, PlannedCommit]] = []
    copied = 0
    for s in data.sets:
        key = keys[s.id]
        folder = f"persona_sets/{key}"
        docs: list[tuple[datetime, dict[str, Any]]] = []
        assets: dict[str, tuple[datetime, bytes]] = {}
        for m in by_set.get(s.id, []):
            rel = None
            if m.image_url and is_served_path(m.image_url):
                blob = images(m.image_url)
                if blob is None:
                    notes.append(f"{key}: image {m.image_url} of '{m.name}' not found; URL kept")
                else:
                    rel = f"images/{PurePosixPath(m.image_url).name}"
                    assets[f"{folder}/{rel}"] = (m.created_at, blob)
                    copied += 1
            docs.append((max(m.created_at, s.created_at), _member(m, rel)))
        times = sorted({t for t, _ in docs} | {s.created_at})
        late = s.updated_at is not None and s.updated_at > times[-1]
        for n, when in enumerate(times):
            now = [d for t, d in docs if t <= when]
            data_now = _document(s, now, scored=not late)
            changes: dict[str, bytes | None] = {f"{folder}/set.json": data_now}
            changes.update((p, b) for p, (t, b) in assets.items()
                           if t <= when and (n == 0 or t > times[n - 1]))
            what = "created" if n == 0 else f"{len(now)} members"
            planned.append((when, s.id, PlannedCommit(
                when, author, f"Persona set {key}: {what}\n\nPersona-Set-Id: {s.id}", changes)))
        if s.updated_at is not None and s.updated_at > times[-1]:
            planned.append((s.updated_at, s.id, PlannedCommit(
                s.updated_at, author, f"Persona set {key}: scores and status "
                f"({s.status or 'none'})\n\nPersona-Set-Id: {s.id}",
                {f"{folder}/set.json": _document(s, [d for _, d in docs])})))
    planned.sort(key=lambda x: (x[0], x[1]))
    return SetsPlan(tuple(p for _, _, p in planned), keys, len(data.members), copied,
                    tuple(notes))
