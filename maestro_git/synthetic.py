"""Deterministic synthetic persona repositories, for the benchmarks and the tests.

`generate_repository(path, personas=N, sets=M, commits=C, seed=S)` writes a real git
repository whose history edits, adds, renames (also between owners, keeping the frontmatter
`id`), deletes and merges (a side branch merged with a merge commit every few dozen commits).
The same arguments always give the same commit ids.

Shape of the content:
- `personas/<owner>/<name>.md`: Markdown bodies of a few KB in the sections of the seed
  templates, `extends` chains (depth <= 4, never a cycle), tags from a fixed vocabulary, a
  version raised on every edit. A few "hot" personas collect many versions (history benchmarks).
- `persona_sets/<set>/set.json`: the persona-set service's JSON shape (`personas` members with
  name/age/occupation/..., `metadata` with rqe_scores, diversity_score, validation_scores,
  generation_cycle, status).
- `templates/<name>.md`: the four seed templates.
- With `invalid_commits=True`, every ~100 commits a broken file is committed and fixed by the
  next commit (for mirror tests); the head is always valid.

Counts are exact at the head: `personas` personas, `sets` sets, `commits` commits reachable
from the head (merges and side-branch commits included).

Why it does not write objects with pygit2: writing ~25k loose objects costs far more than
generating them (file creation per object), so objects are hashed and compressed here and
streamed into one pack (with its v2 index) that libgit2 reads like any cloned repository.
pygit2 then sets the branch and checks the head out. Nothing here depends on the modules it
benchmarks.
"""

from __future__ import annotations

import hashlib
import json
import random
import struct
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pygit2

__all__ = ["GENERATOR_VERSION", "GeneratedRepo", "generate_repository"]

GENERATOR_VERSION = 2  # raise when the output for given arguments changes (bench caches key on it)

_BASE_TIME = 1_704_067_200  # 2024-01-01T00:00:00Z
_AUTHORS = (("Ada Reviewer", "ada@example.com"), ("Bo Writer", "bo@example.com"),
            ("Cy Ops", "cy@example.com"), ("Di Research", "di@example.com"),
            ("Ed Product", "ed@example.com"))
_OWNER_NAMES = ("acme", "platform", "research", "support", "marketing", "data", "security",
                "sales", "design", "legal", "finance", "growth", "infra", "mobile", "web",
                "docs", "qa", "ml", "partners", "people", "ops", "edu", "health", "retail")
_TAGS = ("coding", "review", "writing", "analysis", "research", "support", "sales", "legal",
         "finance", "security", "devops", "data", "ml", "design", "ux", "marketing", "seo",
         "education", "health", "retail", "python", "elixir", "rust", "sql", "cloud", "mobile",
         "web", "api", "testing", "docs", "onboarding", "strategy", "planning", "creative",
         "storytelling", "academic", "compliance", "gdpr", "privacy", "translation", "german",
         "french", "spanish", "summaries", "email", "chat", "voice", "triage", "escalation")
_ADJ = ("careful", "concise", "friendly", "senior", "junior", "pragmatic", "rigorous",
        "patient", "curious", "strict", "helpful", "calm", "bold", "thorough", "quick")
_ROLES = ("code-reviewer", "tech-writer", "data-analyst", "support-agent", "researcher",
          "sales-coach", "legal-advisor", "security-auditor", "devops-helper", "tutor",
          "copywriter", "product-manager", "ux-critic", "sql-expert", "translator",
          "architect", "qa-engineer", "recruiter", "financial-analyst", "story-editor")
_CATEGORIES = ("development", "writing", "business", "research", "support", "education")
_SECTIONS = ("Core Principles", "Communication Style", "Expertise Areas", "Workflow",
             "Constraints", "Output Format", "Examples", "Escalation", "Tone and Voice",
             "Quality Checklist")
_VERBS = ("Explain", "Review", "Summarise", "Question", "Document", "Prioritise", "Compare",
          "Validate", "Refactor", "Estimate", "Challenge", "Clarify", "Translate", "Outline",
          "Check", "Cite", "Test", "Measure", "Simplify", "Flag")
_OBJECTS = ("the trade-offs of each option", "assumptions behind the request",
            "security implications", "edge cases and failure modes", "the user's real goal",
            "performance characteristics", "data quality issues", "regulatory constraints",
            "open questions", "the smallest useful next step", "naming and structure",
            "sources and their reliability", "costs and benefits", "risks to stakeholders",
            "the expected output format", "test coverage gaps", "accessibility concerns",
            "migration paths", "dependencies between tasks", "the audience's prior knowledge")
_QUALIFIERS = ("before proposing a solution", "in plain language", "with concrete examples",
               "using short bullet points", "when the request is ambiguous",
               "without speculating beyond the evidence", "and state your confidence",
               "in order of impact", "with references where possible",
               "and keep the answer under a page", "as a numbered checklist",
               "and ask one clarifying question if needed", "for a non-expert reader",
               "with the reasoning made explicit", "and propose a measurable outcome")
_FIRST = ("Alex", "Sam", "Priya", "Chen", "Maria", "Jonas", "Aisha", "Tom", "Lena", "Omar",
          "Yuki", "Carlos", "Fatima", "Ivan", "Grace", "Noah", "Elif", "Kwame", "Sofia", "Raj")
_LAST = ("Smith", "Garcia", "Müller", "Okafor", "Tanaka", "Rossi", "Nguyen", "Kowalski",
         "Haddad", "Silva", "Johansson", "Patel", "Dubois", "Kim", "Ivanova", "Brown")
_JOBS = ("nurse", "software engineer", "teacher", "small business owner", "student",
         "accountant", "farmer", "designer", "retired engineer", "pharmacist", "driver",
         "marketing manager", "researcher", "chef", "lawyer", "electrician")
_CITIES = ("Berlin", "Lagos", "Osaka", "São Paulo", "Toronto", "Mumbai", "Lyon", "Austin",
           "Nairobi", "Krakow", "Melbourne", "Seoul", "Dublin", "Cairo", "Lima")
_TEMPLATES = (("developer_assistant", "Developer Assistant", "development",
               ["coding", "review", "devops"]),
              ("creative_writer", "Creative Writer", "writing", ["creative", "writing"]),
              ("business_analyst", "Business Analyst", "business", ["strategy", "analysis"]),
              ("research_assistant", "Research Assistant", "research",
               ["research", "academic", "analysis"]))
_STATUSES = ("generated", "expanded", "validated")


@dataclass(frozen=True)
class GeneratedRepo:
    """What `generate_repository` wrote (counts are at the head unless named otherwise)."""

    path: Path
    branch: str
    head: str  # commit id at refs/heads/<branch>
    seed: int
    personas: int
    sets: int
    templates: int
    commits: int  # commits reachable from the head
    merges: int
    renames: int  # rename commits (one persona each), moves between owners included
    moves: int  # renames that changed the owner
    deletes: int  # personas deleted in the history
    adds: int  # personas added after the first commit
    invalid_commits: tuple[str, ...]  # commits with a deliberately broken file
    sample_personas: tuple[str, ...]  # persona keys at the head
    sample_sets: tuple[str, ...]
    hot_persona: str  # the persona key with the most versions
    hot_persona_versions: int
    bytes_at_head: int  # content bytes of every file at the head
    checked_out: bool


# -- git objects, packed -------------------------------------------------------------------
_TYPES = {1: b"commit", 2: b"tree", 3: b"blob"}


class _PackWriter:
    """Streams git objects into one pack file and writes its v2 index on `finish`."""

    def __init__(self, git_dir: Path) -> None:
        self.dir = git_dir / "objects" / "pack"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.tmp = self.dir / "tmp_synthetic.pack"
        self.fh = self.tmp.open("wb")
        self.fh.write(b"PACK" + struct.pack(">II", 2, 0))
        self.offset = 12
        self.entries: dict[bytes, tuple[int, int]] = {}  # sha -> (offset, crc32)

    def add(self, type_code: int, body: bytes) -> bytes:
        sha = hashlib.sha1(_TYPES[type_code] + b" %d\x00" % len(body) + body).digest()
        if sha in self.entries:
            return sha
        size = len(body)
        header = bytearray()
        byte = (type_code << 4) | (size & 0x0F)
        size >>= 4
        while size:
            header.append(byte | 0x80)
            byte = size & 0x7F
            size >>= 7
        header.append(byte)
        data = bytes(header) + zlib.compress(body, 1)
        self.entries[sha] = (self.offset, zlib.crc32(data))
        self.fh.write(data)
        self.offset += len(data)
        return sha

    def finish(self) -> None:
        self.fh.seek(8)
        self.fh.write(struct.pack(">I", len(self.entries)))
        self.fh.close()
        digest = hashlib.sha1()
        with self.tmp.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        pack_sha = digest.digest()
        with self.tmp.open("ab") as fh:
            fh.write(pack_sha)
        shas = sorted(self.entries)
        fanout = [0] * 256
        for sha in shas:
            fanout[sha[0]] += 1
        total, counts = 0, []
        for n in fanout:
            total += n
            counts.append(total)
        small: list[int] = []
        large: list[int] = []
        for sha in shas:
            off = self.entries[sha][0]
            if off < 1 << 31:
                small.append(off)
            else:
                small.append((1 << 31) | len(large))
                large.append(off)
        idx = b"".join((
            b"\xfftOc", struct.pack(">I", 2), struct.pack(">256I", *counts), *shas,
            struct.pack(f">{len(shas)}I", *(self.entries[s][1] for s in shas)),
            struct.pack(f">{len(shas)}I", *small), struct.pack(f">{len(large)}Q", *large),
            pack_sha))
        idx += hashlib.sha1(idx).digest()
        name = f"pack-{pack_sha.hex()}"
        self.tmp.replace(self.dir / f"{name}.pack")
        (self.dir / f"{name}.idx").write_bytes(idx)


class _Tree:
    """A branch's tree as directories of entries; only changed directories are re-hashed."""

    def __init__(self) -> None:
        self.dirs: dict[str, dict[str, tuple[bool, bytes]]] = {"": {}}  # dir -> name -> entry

    def copy(self) -> _Tree:
        other = _Tree()
        other.dirs = {d: dict(entries) for d, entries in self.dirs.items()}
        return other

    def apply(self, pack: _PackWriter, changes: dict[str, bytes | None]) -> bytes:
        dirty: set[str] = set()
        for path, sha in changes.items():
            parent, _, name = path.rpartition("/")
            if sha is None:
                self.dirs.get(parent, {}).pop(name, None)
            else:
                self._ensure(parent)[name] = (False, sha)
            while True:
                dirty.add(parent)
                if not parent:
                    break
                parent = parent.rpartition("/")[0]
        for d in sorted(dirty, key=lambda p: -p.count("/") if p else 1):
            entries = self.dirs.get(d)
            parent, _, name = d.rpartition("/")
            if d and not entries:
                self.dirs.pop(d, None)
                self.dirs.get(parent, {}).pop(name, None)
                continue
            sha = pack.add(2, _tree_body(entries or {}))
            if not d:
                return sha
            self.dirs[parent][name] = (True, sha)
        raise AssertionError("the root is always dirty")  # pragma: no cover

    def _ensure(self, d: str) -> dict[str, tuple[bool, bytes]]:
        if d not in self.dirs:
            self._ensure(d.rpartition("/")[0])
            self.dirs[d] = {}
        return self.dirs[d]


def _tree_body(entries: dict[str, tuple[bool, bytes]]) -> bytes:
    items = sorted(entries.items(), key=lambda kv: kv[0] + "/" if kv[1][0] else kv[0])
    return b"".join((b"40000 " if is_tree else b"100644 ") + name.encode() + b"\x00" + sha
                    for name, (is_tree, sha) in items)


# -- content ---------------------------------------------------------------------------------
@dataclass
class _Persona:
    owner: str
    name: str
    id: str
    display_name: str
    description: str
    category: str
    tags: list[str]
    extends: str | None
    sections: list[tuple[str, list[str]]]
    intro: str
    version: list[int] = field(default_factory=lambda: [1, 0, 0])
    active: bool = True
    versions: int = 1

    @property
    def key(self) -> str:
        return f"{self.owner}/{self.name}"

    @property
    def path(self) -> str:
        return f"personas/{self.owner}/{self.name}.md"

    def render(self, template: bool = False) -> bytes:
        """The file's bytes; a template carries `category` at the top level."""
        lines = ["---", f"id: {self.id}", f"display_name: {json.dumps(self.display_name)}",
                 f"description: {json.dumps(self.description)}",
                 f'version: "{".".join(map(str, self.version))}"']
        if self.extends:
            lines.append(f"extends: {self.extends}")
        lines += [f"tags: [{', '.join(self.tags)}]", f"active: {str(self.active).lower()}"]
        if template:
            lines.append(f"category: {self.category}")
        else:
            lines.append(f"metadata: {{category: {self.category}, locale: en}}")
        lines += ["---", f"# {self.display_name}", "", self.intro, ""]
        for title, bullets in self.sections:
            lines += [f"## {title}", *(f"- {b}" for b in bullets), ""]
        return "\n".join(lines).encode()


class _Content:
    """Seeded text: persona bodies, set members, names."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.bullets = [f"{v} {o} {q}." for v in _VERBS for o in _OBJECTS for q in _QUALIFIERS]
        rng.shuffle(self.bullets)

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def sections(self) -> list[tuple[str, list[str]]]:
        rng = self.rng
        titles = rng.sample(_SECTIONS, rng.randint(5, 7))
        return [(t, rng.sample(self.bullets, rng.randint(4, 8))) for t in titles]

    def persona(self, owner: str, name: str, extends: str | None) -> _Persona:
        rng = self.rng
        role = rng.choice(_ROLES).replace("-", " ")
        display = f"{rng.choice(_ADJ).title()} {role.title()}"
        intro = (f"You are a {rng.choice(_ADJ)} {role} working with the {owner} team. "
                 + " ".join(rng.sample(self.bullets, 3)))
        return _Persona(
            owner=owner, name=name, id=self.uuid(), display_name=display,
            description=f"A {role} that {rng.choice(_VERBS).lower()}s "
                        f"{rng.choice(_OBJECTS)} {rng.choice(_QUALIFIERS)}",
            category=rng.choice(_CATEGORIES), tags=sorted(rng.sample(_TAGS, rng.randint(2, 6))),
            extends=extends, sections=self.sections(), intro=intro)

    def edit(self, p: _Persona) -> str:
        """Change `p` in place like a person would; return what was done (commit message)."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.5:
            title, bullets = rng.choice(p.sections)
            bullets[rng.randrange(len(bullets))] = rng.choice(self.bullets)
            what = f"reword {title.lower()}"
        elif roll < 0.7:
            title, bullets = rng.choice(p.sections)
            bullets.append(rng.choice(self.bullets))
            what = f"extend {title.lower()}"
        elif roll < 0.85:
            p.tags = sorted(set(p.tags[:-1]) | {rng.choice(_TAGS)})
            what = "retag"
        elif roll < 0.95:
            p.description = f"{p.description.split(' that ')[0]} that {rng.choice(_VERBS).lower()}s {rng.choice(_OBJECTS)}"
            what = "clarify description"
        else:
            p.sections.append((rng.choice(_SECTIONS) + " (extra)", rng.sample(self.bullets, 4)))
            p.version = [p.version[0], p.version[1] + 1, -1]
            what = "add a section"
        p.version[2] += 1
        p.versions += 1
        return what

    def member(self, n: int, taken: set[object]) -> dict[str, object]:
        rng = self.rng
        name = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
        while name in taken:
            name = f"{rng.choice(_FIRST)} {rng.choice('ABCDEFGHJKLMNPRSTW')}. {name.split()[-1]}"
        job = rng.choice(_JOBS)
        return {
            "name": name, "age": rng.randint(18, 84), "gender": rng.choice(("female", "male", "non-binary")),
            "occupation": job, "location": rng.choice(_CITIES),
            "background": f"{name.split()[0]} works as a {job} and {rng.choice(self.bullets).lower()}",
            "goals": rng.sample(self.bullets, 2), "frustrations": rng.sample(_OBJECTS, 2),
            "personality_traits": rng.sample(list(_ADJ), 3),
            "tech_savviness": rng.choice(("low", "medium", "high")),
            "image_url": f"https://images.example.com/personas/persona_{n}.png",
            "image_prompt": f"Portrait photo of a {job} in {rng.choice(_CITIES)}, natural light",
            "similarity_score": {"overall": round(rng.uniform(0.6, 0.99), 3),
                                 "demographic": round(rng.uniform(0.5, 0.99), 3)},
            "validation_status": rng.choice(("validated", "pending", "validated")),
        }


@dataclass
class _Set:
    name: str
    title: str
    description: str
    members: list[dict[str, object]]
    cycle: int
    status: str
    scores: dict[str, float]

    @property
    def path(self) -> str:
        return f"persona_sets/{self.name}/set.json"

    def render(self) -> bytes:
        doc = {"name": self.title, "description": self.description, "personas": self.members,
               "metadata": {
                   "rqe_scores": {"rqe_1": self.scores["rqe_1"], "rqe_2": self.scores["rqe_2"]},
                   "diversity_score": {"overall": self.scores["diversity"],
                                       "age": self.scores["age"]},
                   "validation_scores": {"mean_similarity": self.scores["similarity"],
                                         "pass_rate": round(sum(
                                             m["validation_status"] == "validated"
                                             for m in self.members) / len(self.members), 3)},
                   "generation_cycle": self.cycle, "status": self.status}}
        return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode()


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


# (weight, operation) for ordinary commits; `_History` has one method per operation.
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


class _History:
    """The logical state (personas, sets, templates) and the branches' trees and heads."""

    def __init__(self, path: Path, seed: int, personas: int, sets: int, commits: int,
                 invalid: bool) -> None:
        self.rng = random.Random(seed)
        self.text = _Content(self.rng)
        self.pack = _PackWriter(path / ".git")
        self.target_personas, self.target_sets = personas, sets
        self.slots = _schedule(self.rng, commits, invalid)
        ordinary = sum(1 for s in self.slots if s in ("main", "side"))
        self.owners = list(_OWNER_NAMES[:max(3, min(len(_OWNER_NAMES), personas // 500))])
        self.personas: dict[str, _Persona] = {}
        self.bag = _KeyBag()
        self.children: dict[str, set[str]] = {}
        self.depth: dict[str, int] = {}
        self.sets: dict[str, _Set] = {}
        self.templates: dict[str, _Persona] = {}
        self.hot: list[str] = []
        self.serial = 0
        self.time = _BASE_TIME
        self.trees = {"main": _Tree()}
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
            changes = {p: (None if data is None else self.pack.add(3, data))
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
        sha = self.pack.add(1, body)
        self.heads[branch] = sha
        return sha

    def _slot_init(self) -> None:
        changes: dict[str, bytes | None] = {
            "README.md": b"# Synthetic persona repository\n\nGenerated by maestro_git.synthetic.\n",
            ".gitignore": b".maestro/\n"}
        for name, display, category, tags in _TEMPLATES:
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
            self.branch_name = f"feature/{self.rng.choice(_ROLES)}-{self.serial}"
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
        tag = self.rng.choice(_TAGS)
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
            s.status = _STATUSES[min(2, _STATUSES.index(s.status) + 1)]
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
        return f"{self.rng.choice(_ADJ)}-{self.rng.choice(_ROLES)}-{self.serial}"

    def _new_persona(self, blocked: set[str]) -> _Persona:
        parent = None
        if self.bag and self.rng.random() < 0.35:
            parent = self.bag.pick(self.rng, lambda k: k not in blocked and self.depth[k] < 4)
        p = self.text.persona(self.rng.choice(self.owners), self._name(), parent)
        self._register(p, parent)
        return p

    def _register(self, p: _Persona, parent: str | None) -> None:
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

    def _new_set(self) -> _Set:
        self.serial += 1
        rng = self.rng
        members: list[dict[str, object]] = []
        for _ in range(rng.randint(10, 40)):
            self.serial += 1
            members.append(self.text.member(self.serial, {m["name"] for m in members}))
        s = _Set(name=f"{rng.choice(_CITIES).lower().replace(' ', '-').replace('ã', 'a')}-"
                      f"{rng.choice(_JOBS).replace(' ', '-')}s-{self.serial}",
                 title=f"{rng.choice(_JOBS).title()}s of {rng.choice(_CITIES)}",
                 description=f"Synthetic users for {rng.choice(_OBJECTS)} studies",
                 members=members, cycle=1, status=rng.choice(_STATUSES),
                 scores={k: round(rng.uniform(0.4, 0.95), 3)
                         for k in ("rqe_1", "rqe_2", "diversity", "age", "similarity")})
        self.sets[s.name] = s
        return s


def generate_repository(path: Path | str, personas: int = 10_000, sets: int = 200,
                        commits: int = 2_000, seed: int = 0, branch: str = "main", *,
                        checkout: bool = True, invalid_commits: bool = False) -> GeneratedRepo:
    """Write a synthetic persona repository at `path` (which must not exist or be empty).

    Deterministic: the same arguments give the same commit ids. `checkout=False` leaves the
    working tree empty (reads from git need none, and it saves seconds at 10k personas).
    `invalid_commits=True` adds broken-then-fixed commits, listed in the result.
    """
    if personas < 1 or commits < 1 or sets < 0:
        raise ValueError("personas and commits must be >= 1, sets >= 0")
    root = Path(path)
    if root.exists() and any(root.iterdir()):
        raise ValueError(f"{root} is not empty")
    repo = pygit2.init_repository(str(root), initial_head=branch)
    repo.config["user.name"] = "Synthetic Generator"
    repo.config["user.email"] = "synthetic@example.com"
    history = _History(root, seed, personas, sets, commits, invalid_commits)
    head = history.run()
    repo = pygit2.Repository(str(root))  # sees the new pack
    repo.references.create(f"refs/heads/{branch}", pygit2.Oid(raw=head), force=True)
    if checkout:
        repo.checkout_head(  # type: ignore[no-untyped-call]
            strategy=pygit2.enums.CheckoutStrategy.FORCE)
    size = sum(len(p.render()) for p in history.personas.values())
    size += sum(len(s.render()) for s in history.sets.values())
    hot = max(history.personas.values(), key=lambda p: (p.versions, p.key))
    keys = sorted(history.personas)
    step = max(1, len(keys) // 20)
    return GeneratedRepo(
        path=root.resolve(), branch=branch, head=head.hex(), seed=seed,
        personas=len(history.personas), sets=len(history.sets),
        templates=len(history.templates), commits=len(history.slots),
        merges=history.counts["merges"], renames=history.counts["renames"],
        moves=history.counts["moves"], deletes=history.counts["deletes"],
        adds=history.counts["adds"], invalid_commits=tuple(history.invalid),
        sample_personas=tuple(keys[::step][:20]), sample_sets=tuple(sorted(history.sets)[:10]),
        hot_persona=hot.key, hot_persona_versions=hot.versions, bytes_at_head=size,
        checked_out=checkout)
