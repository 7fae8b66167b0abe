"""The history of a synthetic persona repository: which files change in which commit.

`SyntheticHistory(path, seed, ...)` lays out one slot per commit (the initial import, ordinary
commits on main, side-branch episodes closed by a merge commit, broken-then-fixed pairs, a
final reconciling commit) and runs them: each ordinary commit edits, adds, deletes, renames
(also between owners, keeping the frontmatter `id`) or retags personas, or edits persona sets
and templates. The text comes from `synthetic.content`; the commits, trees and
blobs go into one pack (`synthetic.pack`). Everything is drawn from one seeded
`random.Random`, so the same arguments give the same commit ids.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

from .content import (
    ADJECTIVES,
    CITIES,
    JOBS,
    OBJECTS,
    OWNER_NAMES,
    ROLES,
    STATUSES,
    TAGS,
    TEMPLATES,
    ContentSource,
    SyntheticPersona,
    SyntheticSet,
)
from .pack import BLOB, COMMIT, PackWriter, TreeState

__all__ = ["SyntheticHistory"]

_BASE_TIME = 1_704_067_200  # 2024-01-01T00:00:00Z
_AUTHORS = (("Ada Reviewer", "ada@example.com"), ("Bo Writer", "bo@example.com"),
            ("Cy Ops", "cy@example.com"), ("Di Research", "di@example.com"),
            ("Ed Product", "ed@example.com"))


class _KeyBag:
    """Keys with O(1) add, remove and seeded random choice."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self.pos: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.items)

    def add(self, key: str) -> None:
        self.pos[key] = len(self.items)
        self.items.append(key)

    def remove(self, key: str) -> None:
        i = self.pos.pop(key)
        last = self.items.pop()
        if last != key:
            self.items[i] = last
            self.pos[last] = i

    def pick(self, rng: random.Random, ok: Callable[[str], bool], tries: int = 40) -> str | None:
        for _ in range(min(tries, len(self.items) * 3)):
            key = self.items[rng.randrange(len(self.items))]
            if ok(key):
                return key
        return None


# (weight, operation) for ordinary commits; `SyntheticHistory` has one method per operation.
_MIX = ((0.46, "edit"), (0.10, "add"), (0.04, "delete"), (0.08, "rename"), (0.06, "retag"),
        (0.16, "edit_set"), (0.03, "add_set"), (0.01, "delete_set"), (0.02, "edit_template"))
_NET_PERSONAS = 0.10 - 0.04  # expected personas gained per ordinary commit
_NET_SETS = 0.03 - 0.01
_Result = tuple[dict[str, bytes | None], str] | None  # an operation's changes and message


def _schedule(rng: random.Random, commits: int, invalid: bool) -> list[str]:
    """One slot per commit: init, main, side, merge, break, fix; the last is `final`."""
    slots = ["init"]
    next_episode = rng.randint(4, 12)
    next_break = max(3, min(60, commits // 3))
    while len(slots) < commits - 1:
        left = commits - 1 - len(slots)
        if invalid and len(slots) >= next_break and left >= 2:
            slots += ["break", "fix"]
            next_break = len(slots) + rng.randint(80, 120)
        elif len(slots) >= next_episode and left >= 3:
            side = rng.randint(1, 3)
            main = min(rng.randint(0, 2), left - side - 1)
            if main < 0:
                side, main = left - 1, 0
            slots += ["side"] * side + ["main"] * main + ["merge"]
            next_episode = len(slots) + rng.randint(12, 40)
        else:
            slots.append("main")
    if commits > 1:
        slots.append("final")
    return slots


class SyntheticHistory:
    """The logical state (personas, sets, templates) and the branches' trees and heads."""

    def __init__(self, path: Path, seed: int, personas: int, sets: int, commits: int,
                 invalid: bool) -> None:
        self.rng = random.Random(seed)
        self.text = ContentSource(self.rng)
        self.pack = PackWriter(path / ".git")
        self.target_personas, self.target_sets = personas, sets
        self.slots = _schedule(self.rng, commits, invalid)
        ordinary = sum(1 for s in self.slots if s in ("main", "side"))
        self.owners = list(OWNER_NAMES[:max(3, min(len(OWNER_NAMES), personas // 500))])
        self.personas: dict[str, SyntheticPersona] = {}
        self.bag = _KeyBag()
        self.children: dict[str, set[str]] = {}
        self.depth: dict[str, int] = {}
        self.sets: dict[str, SyntheticSet] = {}
        self.templates: dict[str, SyntheticPersona] = {}
        self.hot: list[str] = []
        self.serial = 0
        self.time = _BASE_TIME
        self.trees = {"main": TreeState()}
        self.heads: dict[str, bytes | None] = {"main": None}
        self.locks: dict[str, set[str]] = {"main": set(), "side": set()}
        self.side_changes: dict[str, bytes | None] = {}
        self.branch_name = ""
        self.counts = {"merges": 0, "renames": 0, "moves": 0, "deletes": 0, "adds": 0}
        self.invalid: list[str] = []
        self.pending_fix: str | None = None
        self.initial_personas = max(1, min(personas, personas - round(ordinary * _NET_PERSONAS)))
        self.initial_sets = max(0, min(sets, sets - round(ordinary * _NET_SETS))) if sets else 0

    # -- the run -------------------------------------------------------------------------
    def run(self) -> bytes:
        for slot in self.slots:
            getattr(self, f"_slot_{slot}")()
        self.pack.finish()
        head = self.heads["main"]
        assert head is not None
        return head

    def _commit(self, branch: str, changes: dict[str, bytes | None], message: str,
                parents: list[bytes] | None = None, *, blobs: bool = False) -> bytes:
        """Commit file contents (or, with `blobs`, blob ids) on top of `branch`."""
        if not blobs:
            changes = {p: (None if data is None else self.pack.add(BLOB, data))
                       for p, data in changes.items()}
        tree = self.trees[branch].apply(self.pack, changes)
        if branch == "side":
            self.side_changes.update(changes)
        if parents is None:
            head = self.heads[branch]
            parents = [] if head is None else [head]
        self.time += self.rng.randint(300, 14_400)
        name, email = self.rng.choice(_AUTHORS)
        sig = f"{name} <{email}> {self.time} +0000".encode()
        body = b"tree " + tree.hex().encode() + b"\n"
        body += b"".join(b"parent " + p.hex().encode() + b"\n" for p in parents)
        body += b"author " + sig + b"\ncommitter " + sig + b"\n\n" + message.encode() + b"\n"
        sha = self.pack.add(COMMIT, body)
        self.heads[branch] = sha
        return sha

    def _slot_init(self) -> None:
        changes: dict[str, bytes | None] = {
            "README.md": b"# Synthetic persona repository\n\nGenerated by synthetic.\n",
            ".gitignore": b".maestro/\n"}
        for name, display, category, tags in TEMPLATES:
            tpl = self.text.persona("templates", name, None)
            tpl.display_name, tpl.category, tpl.tags = display, category, tags
            self.templates[name] = tpl
            changes[f"templates/{name}.md"] = tpl.render(template=True)
        for _ in range(self.initial_personas):
            p = self._new_persona(set())
            changes[p.path] = p.render()
        self.hot = self.bag.items[:min(8, len(self.bag) // 25)]
        for _ in range(self.initial_sets):
            s = self._new_set()
            changes[s.path] = s.render()
        self._commit("main", changes, "Import personas, persona sets and templates")

    def _slot_main(self) -> None:
        self._ordinary("main")

    def _slot_side(self) -> None:
        if "side" not in self.trees:
            self.trees["side"] = self.trees["main"].copy()
            self.heads["side"] = self.heads["main"]
            self.side_changes = {}
            self.branch_name = f"feature/{self.rng.choice(ROLES)}-{self.serial}"
        self._ordinary("side")

    def _slot_merge(self) -> None:
        side_head = self.heads.pop("side")
        main_head = self.heads["main"]
        assert side_head is not None and main_head is not None
        del self.trees["side"]
        self._commit("main", dict(self.side_changes), f"Merge branch '{self.branch_name}'",
                     parents=[main_head, side_head], blobs=True)
        self.locks = {"main": set(), "side": set()}
        self.counts["merges"] += 1

    def _slot_break(self) -> None:
        if self.sets and self.rng.random() < 0.5:
            s = self.sets[self.rng.choice(sorted(self.sets))]
            self.pending_fix = "set:" + s.name
            broken = s.render()[:-40] + b",\n"
            head = self._commit("main", {s.path: broken}, f"WIP: rework persona set {s.name}")
        else:
            key = self.bag.items[self.rng.randrange(len(self.bag))]
            p = self.personas[key]
            self.pending_fix = key
            broken = p.render().replace(b"tags: [", b"tags: [unclosed, ", 1).replace(b"]", b"", 1)
            head = self._commit("main", {p.path: broken}, f"WIP: retag {key}")
        self.invalid.append(head.hex())

    def _slot_fix(self) -> None:
        target, self.pending_fix = self.pending_fix, None
        if target is not None and target.startswith("set:"):
            s = self.sets[target[4:]]
            s.cycle += 1
            self._commit("main", {s.path: s.render()}, f"Fix persona set {s.name} JSON")
        elif target is not None:
            p = self.personas[target]
            self.text.edit(p)
            self._commit("main", {p.path: p.render()}, f"Fix frontmatter of {target}")

    def _slot_final(self) -> None:
        changes: dict[str, bytes | None] = {}
        while len(self.personas) < self.target_personas:
            p = self._new_persona(set())
            changes[p.path] = p.render()
            self.counts["adds"] += 1
        while len(self.personas) > self.target_personas:
            key = self.bag.pick(self.rng, lambda k: not self.children[k] and k not in self.hot,
                                tries=200) or next(k for k in self.bag.items if not self.children[k])
            changes[self.personas[key].path] = None
            self._drop_persona(key)
            self.counts["deletes"] += 1
        while len(self.sets) < self.target_sets:
            s = self._new_set()
            changes[s.path] = s.render()
        while len(self.sets) > self.target_sets:
            s = self.sets.pop(self.rng.choice(sorted(self.sets)))
            changes[s.path] = None
        if changes:
            self._commit("main", changes, "Reconcile personas and sets with the catalogue")
        else:
            self._ordinary("main")

    # -- ordinary commits ------------------------------------------------------------------
    def _ordinary(self, branch: str) -> None:
        weights = [w if (self.target_sets or "set" not in op) else 0.0 for w, op in _MIX]
        op = self.rng.choices([op for _, op in _MIX], weights)[0]
        blocked = self.locks["side" if branch == "main" else "main"]
        mine = self.locks[branch]
        for attempt in (op, "edit", "add"):
            done = getattr(self, f"_op_{attempt}")(blocked, mine)
            if done is not None:
                changes, message = done
                self._commit(branch, changes, message)
                return
        raise AssertionError("adding a persona is always possible")  # pragma: no cover

    def _free(self, blocked: set[str], leaf: bool = False) -> Callable[[str], bool]:
        return lambda k: k not in blocked and (not leaf or (not self.children[k]
                                                            and k not in self.hot))

    def _op_edit(self, blocked: set[str], mine: set[str]) -> _Result:
        key = None
        if self.hot and self.rng.random() < 0.35:
            key = self.rng.choice(self.hot)
            key = key if key not in blocked else None
        key = key or self.bag.pick(self.rng, self._free(blocked))
        if key is None:
            return None
        mine.add(key)
        p = self.personas[key]
        what = self.text.edit(p)
        return {p.path: p.render()}, f"Update {key}: {what}"

    def _op_retag(self, blocked: set[str], mine: set[str]) -> _Result:
        keys = {k for k in (self.bag.pick(self.rng, self._free(blocked)) for _ in range(4)) if k}
        if not keys:
            return None
        tag = self.rng.choice(TAGS)
        changes: dict[str, bytes | None] = {}
        for key in sorted(keys):
            mine.add(key)
            p = self.personas[key]
            p.tags = sorted(set(p.tags[:5]) | {tag})
            p.version[2] += 1
            p.versions += 1
            changes[p.path] = p.render()
        return changes, f"Tag {len(keys)} personas with '{tag}'"

    def _op_add(self, blocked: set[str], mine: set[str]) -> _Result:
        p = self._new_persona(blocked)
        mine.add(p.key)
        if p.extends:
            mine.add(p.extends)
        self.counts["adds"] += 1
        return {p.path: p.render()}, f"Add {p.key}"

    def _op_delete(self, blocked: set[str], mine: set[str]) -> _Result:
        key = self.bag.pick(self.rng, self._free(blocked, leaf=True))
        if key is None or len(self.personas) <= 1:
            return None
        mine.add(key)
        path = self.personas[key].path
        self._drop_persona(key)
        self.counts["deletes"] += 1
        return {path: None}, f"Delete {key}"

    def _op_rename(self, blocked: set[str], mine: set[str]) -> _Result:
        key = self.bag.pick(self.rng, self._free(blocked, leaf=True))
        if key is None:
            return None
        p = self.personas[key]
        old_path = p.path
        move = self.rng.random() < 0.5
        parent = p.extends
        self._drop_persona(key)
        if move:
            p.owner = self.rng.choice([o for o in self.owners if o != p.owner])
        else:
            p.name = self._name()
        self._register(p, parent)
        mine.update((key, p.key))
        self.counts["renames"] += 1
        self.counts["moves"] += move
        return {old_path: None, p.path: p.render()}, f"{'Move' if move else 'Rename'} {key} to {p.key}"

    def _op_edit_set(self, blocked: set[str], mine: set[str]) -> _Result:
        names = [n for n in sorted(self.sets) if "set:" + n not in blocked]
        if not names:
            return None
        s = self.sets[self.rng.choice(names)]
        mine.add("set:" + s.name)
        roll = self.rng.random()
        if roll < 0.4:
            self.serial += 1
            s.members.append(self.text.member(self.serial, {m["name"] for m in s.members}))
            what = "add a member"
        elif roll < 0.6 and len(s.members) > 1:
            s.members.pop(self.rng.randrange(len(s.members)))
            what = "drop a member"
        elif roll < 0.8:
            s.status = STATUSES[min(2, STATUSES.index(s.status) + 1)]
            s.cycle += 1
            what = f"cycle {s.cycle}, {s.status}"
        else:
            s.scores = {k: round(min(0.99, v + self.rng.uniform(-0.05, 0.05)), 3)
                        for k, v in s.scores.items()}
            what = "rescore"
        return {s.path: s.render()}, f"Persona set {s.name}: {what}"

    def _op_add_set(self, blocked: set[str], mine: set[str]) -> _Result:
        s = self._new_set()
        mine.add("set:" + s.name)
        return {s.path: s.render()}, f"Add persona set {s.name}"

    def _op_delete_set(self, blocked: set[str], mine: set[str]) -> _Result:
        names = [n for n in sorted(self.sets) if "set:" + n not in blocked]
        if not names or len(self.sets) <= 1:
            return None
        s = self.sets.pop(self.rng.choice(names))
        mine.add("set:" + s.name)
        return {s.path: None}, f"Delete persona set {s.name}"

    def _op_edit_template(self, blocked: set[str], mine: set[str]) -> _Result:
        names = [n for n in sorted(self.templates) if "template:" + n not in blocked]
        if not names:
            return None
        name = self.rng.choice(names)
        mine.add("template:" + name)
        tpl = self.templates[name]
        self.text.edit(tpl)
        return {f"templates/{name}.md": tpl.render(template=True)}, f"Template {name}: refresh"

    # -- logical state ---------------------------------------------------------------------
    def _name(self) -> str:
        self.serial += 1
        return f"{self.rng.choice(ADJECTIVES)}-{self.rng.choice(ROLES)}-{self.serial}"

    def _new_persona(self, blocked: set[str]) -> SyntheticPersona:
        parent = None
        if self.bag and self.rng.random() < 0.35:
            parent = self.bag.pick(self.rng, lambda k: k not in blocked and self.depth[k] < 4)
        p = self.text.persona(self.rng.choice(self.owners), self._name(), parent)
        self._register(p, parent)
        return p

    def _register(self, p: SyntheticPersona, parent: str | None) -> None:
        self.personas[p.key] = p
        self.bag.add(p.key)
        self.children[p.key] = set()
        self.depth[p.key] = 0 if parent is None else self.depth[parent] + 1
        if parent is not None:
            self.children[parent].add(p.key)

    def _drop_persona(self, key: str) -> None:
        p = self.personas.pop(key)
        self.bag.remove(key)
        del self.children[key], self.depth[key]
        if p.extends is not None:
            self.children[p.extends].discard(key)

    def _new_set(self) -> SyntheticSet:
        self.serial += 1
        rng = self.rng
        members: list[dict[str, object]] = []
        for _ in range(rng.randint(10, 40)):
            self.serial += 1
            members.append(self.text.member(self.serial, {m["name"] for m in members}))
        s = SyntheticSet(name=f"{rng.choice(CITIES).lower().replace(' ', '-').replace('ã', 'a')}-"
                      f"{rng.choice(JOBS).replace(' ', '-')}s-{self.serial}",
                 title=f"{rng.choice(JOBS).title()}s of {rng.choice(CITIES)}",
                 description=f"Synthetic users for {rng.choice(OBJECTS)} studies",
                 members=members, cycle=1, status=rng.choice(STATUSES),
                 scores={k: round(rng.uniform(0.4, 0.95), 3)
                         for k in ("rqe_1", "rqe_2", "diversity", "age", "similarity")})
        self.sets[s.name] = s
        return s

