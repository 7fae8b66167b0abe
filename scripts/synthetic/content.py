"""The text of synthetic persona repositories: seeded persona bodies, persona sets, names.

Pure: every value comes from the `random.Random` handed in, so the same seed gives the same
bytes. Nothing here touches git or the file system; `synthetic.history` decides
which files change in which commit, and `synthetic.pack` stores them.
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass, field

__all__ = [
    "ADJECTIVES",
    "CITIES",
    "JOBS",
    "OBJECTS",
    "OWNER_NAMES",
    "ROLES",
    "STATUSES",
    "TAGS",
    "TEMPLATES",
    "ContentSource",
    "SyntheticPersona",
    "SyntheticSet",
]

OWNER_NAMES = ("acme", "platform", "research", "support", "marketing", "data", "security",
                "sales", "design", "legal", "finance", "growth", "infra", "mobile", "web",
                "docs", "qa", "ml", "partners", "people", "ops", "edu", "health", "retail")
TAGS = ("coding", "review", "writing", "analysis", "research", "support", "sales", "legal",
         "finance", "security", "devops", "data", "ml", "design", "ux", "marketing", "seo",
         "education", "health", "retail", "python", "elixir", "rust", "sql", "cloud", "mobile",
         "web", "api", "testing", "docs", "onboarding", "strategy", "planning", "creative",
         "storytelling", "academic", "compliance", "gdpr", "privacy", "translation", "german",
         "french", "spanish", "summaries", "email", "chat", "voice", "triage", "escalation")
ADJECTIVES = ("careful", "concise", "friendly", "senior", "junior", "pragmatic", "rigorous",
        "patient", "curious", "strict", "helpful", "calm", "bold", "thorough", "quick")
ROLES = ("code-reviewer", "tech-writer", "data-analyst", "support-agent", "researcher",
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
OBJECTS = ("the trade-offs of each option", "assumptions behind the request",
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
_FIRST_NAMES = ("Alex", "Sam", "Priya", "Chen", "Maria", "Jonas", "Aisha", "Tom", "Lena", "Omar",
          "Yuki", "Carlos", "Fatima", "Ivan", "Grace", "Noah", "Elif", "Kwame", "Sofia", "Raj")
_LAST_NAMES = ("Smith", "Garcia", "Müller", "Okafor", "Tanaka", "Rossi", "Nguyen", "Kowalski",
         "Haddad", "Silva", "Johansson", "Patel", "Dubois", "Kim", "Ivanova", "Brown")
JOBS = ("nurse", "software engineer", "teacher", "small business owner", "student",
         "accountant", "farmer", "designer", "retired engineer", "pharmacist", "driver",
         "marketing manager", "researcher", "chef", "lawyer", "electrician")
CITIES = ("Berlin", "Lagos", "Osaka", "São Paulo", "Toronto", "Mumbai", "Lyon", "Austin",
           "Nairobi", "Krakow", "Melbourne", "Seoul", "Dublin", "Cairo", "Lima")
TEMPLATES = (("developer_assistant", "Developer Assistant", "development",
               ["coding", "review", "devops"]),
              ("creative_writer", "Creative Writer", "writing", ["creative", "writing"]),
              ("business_analyst", "Business Analyst", "business", ["strategy", "analysis"]),
              ("research_assistant", "Research Assistant", "research",
               ["research", "academic", "analysis"]))
STATUSES = ("generated", "expanded", "validated")


@dataclass
class SyntheticPersona:
    """A persona (or template) being generated; mutable, edited in place by `ContentSource.edit`."""

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


class ContentSource:
    """Seeded text: persona bodies, set members, names."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.bullets = [f"{v} {o} {q}." for v in _VERBS for o in OBJECTS for q in _QUALIFIERS]
        rng.shuffle(self.bullets)

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def sections(self) -> list[tuple[str, list[str]]]:
        rng = self.rng
        titles = rng.sample(_SECTIONS, rng.randint(5, 7))
        return [(t, rng.sample(self.bullets, rng.randint(4, 8))) for t in titles]

    def persona(self, owner: str, name: str, extends: str | None) -> SyntheticPersona:
        rng = self.rng
        role = rng.choice(ROLES).replace("-", " ")
        display = f"{rng.choice(ADJECTIVES).title()} {role.title()}"
        intro = (f"You are a {rng.choice(ADJECTIVES)} {role} working with the {owner} team. "
                 + " ".join(rng.sample(self.bullets, 3)))
        return SyntheticPersona(
            owner=owner, name=name, id=self.uuid(), display_name=display,
            description=f"A {role} that {rng.choice(_VERBS).lower()}s "
                        f"{rng.choice(OBJECTS)} {rng.choice(_QUALIFIERS)}",
            category=rng.choice(_CATEGORIES), tags=sorted(rng.sample(TAGS, rng.randint(2, 6))),
            extends=extends, sections=self.sections(), intro=intro)

    def edit(self, p: SyntheticPersona) -> str:
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
            p.tags = sorted(set(p.tags[:-1]) | {rng.choice(TAGS)})
            what = "retag"
        elif roll < 0.95:
            p.description = f"{p.description.split(' that ')[0]} that {rng.choice(_VERBS).lower()}s {rng.choice(OBJECTS)}"
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
        name = f"{rng.choice(_FIRST_NAMES)} {rng.choice(_LAST_NAMES)}"
        while name in taken:
            name = f"{rng.choice(_FIRST_NAMES)} {rng.choice('ABCDEFGHJKLMNPRSTW')}. {name.split()[-1]}"
        job = rng.choice(JOBS)
        return {
            "name": name, "age": rng.randint(18, 84), "gender": rng.choice(("female", "male", "non-binary")),
            "occupation": job, "location": rng.choice(CITIES),
            "background": f"{name.split()[0]} works as a {job} and {rng.choice(self.bullets).lower()}",
            "goals": rng.sample(self.bullets, 2), "frustrations": rng.sample(OBJECTS, 2),
            "personality_traits": rng.sample(list(ADJECTIVES), 3),
            "tech_savviness": rng.choice(("low", "medium", "high")),
            "image_url": f"https://images.example.com/personas/persona_{n}.png",
            "image_prompt": f"Portrait photo of a {job} in {rng.choice(CITIES)}, natural light",
            "similarity_score": {"overall": round(rng.uniform(0.6, 0.99), 3),
                                 "demographic": round(rng.uniform(0.5, 0.99), 3)},
            "validation_status": rng.choice(("validated", "pending", "validated")),
        }


@dataclass
class SyntheticSet:
    """A persona set being generated, rendered in the persona-set service's JSON shape."""

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
