"""The repository's own content: templates, demo personas and persona sets, maestro.toml."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest

from maestro_git.core.inherit import resolve
from maestro_git.core.models import Severity
from maestro_git.core.snapshot import Snapshot, build_snapshot
from maestro_git.git.worktree import read_worktree
from maestro_git.repo.scaffold import BUILTIN_TEMPLATES_DIR, DEFAULT_CONFIG, format_files
from maestro_git.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]

# The four templates of story 8.1, metadata as the story gives it.
SEED_TEMPLATES = {
    "developer_assistant": (
        "Developer Assistant",
        "A technical assistant focused on software development, code review, and architecture",
        "development", ("coding", "technical", "development"),
        "# Developer Assistant Persona\n\nYou are an expert software developer and technical "
        "advisor with deep knowledge across multiple programming languages, frameworks, and "
        "architectural patterns.\n"),
    "creative_writer": (
        "Creative Writer",
        "A creative writing assistant for storytelling, content creation, and narrative "
        "development",
        "writing", ("creative", "writing", "storytelling"),
        "# Creative Writer Persona\n\nYou are a skilled creative writer with expertise in "
        "storytelling, narrative structure, and engaging content creation.\n"),
    "business_analyst": (
        "Business Analyst",
        "A strategic business advisor focused on analysis, planning, and operational "
        "improvement",
        "business", ("business", "strategy", "analysis"),
        "# Business Analyst Persona\n\nYou are an experienced business analyst with expertise "
        "in strategic planning, process optimization, and data-driven decision making.\n"),
    "research_assistant": (
        "Research Assistant",
        "An academic research assistant focused on thorough analysis and evidence-based "
        "insights",
        "research", ("research", "academic", "analysis"),
        "# Research Assistant Persona\n\nYou are a meticulous research assistant with strong "
        "analytical skills and commitment to academic rigor.\n"),
}


@pytest.fixture(scope="module")
def snap() -> Snapshot:
    return build_snapshot(read_worktree(ROOT), load_settings(ROOT, environ={}))


def test_builtin_and_repository_templates_are_identical() -> None:
    packaged = {p.name: p.read_bytes() for p in BUILTIN_TEMPLATES_DIR.glob("*.md")}
    root = {p.name: p.read_bytes() for p in (ROOT / "templates").glob("*.md")}
    assert packaged == root


def test_at_least_eight_templates_with_the_seed_four_verbatim(snap: Snapshot) -> None:
    assert len(snap.templates) >= 8
    for name, (display, description, category, tags, opening) in SEED_TEMPLATES.items():
        tpl = snap.templates[name]
        assert (tpl.display_name, tpl.description, tpl.category, tpl.tags) == (
            display, description, category, tags)
        assert tpl.body.startswith(opening)
        assert tpl.body.count("\n## ") == 3  # Core Principles, Communication Style, Expertise
    for tpl in snap.templates.values():
        assert tpl.id and tpl.category and tpl.tags and tpl.description
        assert "\nYou are " in tpl.body


def test_the_repository_checks_clean(snap: Snapshot) -> None:
    errors = [f"{p.location()} {p.rule}: {p.message}" for p in snap.problems
              if p.severity is Severity.ERROR]
    assert errors == []
    assert snap.ok


def test_the_repository_is_already_formatted() -> None:
    report = format_files(ROOT, check=True)
    assert report.changes == ()


def test_demo_personas_span_two_owners_with_a_deep_chain(snap: Snapshot) -> None:
    assert len(snap.personas) >= 5
    assert {p.owner for p in snap.personas.values()} >= {"acme", "platform"}
    chain = resolve("acme/python_reviewer", snap.personas).chain
    assert chain == ("platform/base_assistant", "acme/developer_assistant",
                     "acme/python_reviewer")
    ids = [p.id for p in snap.personas.values()] + [t.id for t in snap.templates.values()]
    assert len(set(ids)) == len(ids)


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and zlib.crc32(data[12:16 + length]) == struct.unpack(
        ">I", data[16 + length:20 + length])[0]
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_persona_set_has_ten_members_with_images(snap: Snapshot) -> None:
    research = snap.sets["clinic_booking_research"]
    assert len(research.members) >= 10
    assert research.status == "validated" and research.generation_cycle == 3
    assert research.rqe_scores and research.diversity_score and research.validation_scores
    for member in research.members:
        assert member.image_url is not None and member.image_prompt
        assert member.image_url.startswith("images/")  # relative to the set's folder
        image = ROOT / "persona_sets/clinic_booking_research" / member.image_url
        assert _png_size(image.read_bytes()) == (16, 16)
        assert member.validation_status in ("validated", "pending")
        assert {"age", "occupation", "goals", "pain_points"} <= member.persona_data.keys()
    nurses = [m for m in research.members if "Nurse" in m.persona_data["occupation"]
              and 50 <= m.persona_data["age"] < 60]
    assert [n.name for n in nurses] == ["Margaret Okafor"]
    assert "fintech_early_adopters" in snap.sets


def test_root_maestro_toml_is_the_scaffolded_default() -> None:
    assert (ROOT / "maestro.toml").read_text() == DEFAULT_CONFIG
