"""What the pages show, computed from records: pure functions, text and values in, values out.

Rules of this module:
- No I/O, no request, no template: each function takes records or text and returns values
  (or `Markup` that is safe by construction: every piece of input text is escaped here).
- Hidden characters (format and control characters, non-breaking and other unusual spaces,
  tag characters) are never passed to the browser as they are in a diff: each becomes a
  visible, labelled marker (`⟦U+200B⟧`), so a reviewer sees what a reader's model would.
- Charts are inline SVG drawn here, on the server: a page needs no script to show scores.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import nh3
from markupsafe import Markup, escape

from maestro_git.core import inherit

__all__ = [
    "DiffLine",
    "MemberChange",
    "Section",
    "attribute_sections",
    "bar_chart",
    "for_page",
    "diff_lines",
    "hidden_characters",
    "member_changes",
    "score_items",
    "visible",
]

def _is_hidden(ch: str) -> bool:
    # str.isprintable is False exactly for the categories Cc, Cf, Cs, Co, Cn, Zl, Zp and every
    # Zs but the ASCII space: controls, format characters (zero-width, bidi), unassigned and
    # private-use code points, and unusual spaces. A line break is not hidden.
    return ch != "\n" and not ch.isprintable()


def _has_hidden(text: str) -> bool:
    return not text.replace("\n", "").isprintable()  # one pass in C for the common case


def _name(ch: str) -> str:
    special = {"\t": "TAB", "\r": "CARRIAGE RETURN"}.get(ch)
    return special if special is not None else unicodedata.name(ch, "UNNAMED")


def visible(text: str) -> Markup:
    """`text` escaped for HTML, with every hidden character shown as a labelled marker."""
    if not _has_hidden(text):
        return escape(text)
    out: list[str] = []
    plain: list[str] = []
    for ch in text:
        if not _is_hidden(ch):
            plain.append(ch)
            continue
        out.append(str(escape("".join(plain))))
        plain.clear()
        code = f"U+{ord(ch):04X}"
        out.append(f'<span class="hidden-char" title="{code} {escape(_name(ch))}">'
                   f"\u27e6{code}\u27e7</span>")
    out.append(str(escape("".join(plain))))
    return Markup("".join(out))


@lru_cache(maxsize=1024)
def hidden_characters(text: str) -> tuple[str, ...]:
    """The distinct hidden characters of `text`, as `U+XXXX NAME`, in first-seen order."""
    if not _has_hidden(text):
        return ()
    seen: dict[str, None] = {}
    for ch in text:
        if _is_hidden(ch):
            seen.setdefault(f"U+{ord(ch):04X} {_name(ch)}", None)
    return tuple(seen)


@dataclass(frozen=True)
class DiffLine:
    """One line of a unified diff: `kind` is add, del, hunk, file or context."""

    kind: str
    html: Markup


def diff_lines(unified: str) -> list[DiffLine]:
    """The lines of a unified diff, classified, with hidden characters made visible."""
    lines: list[DiffLine] = []
    for raw in unified.splitlines():
        if raw.startswith(("+++", "---")):
            kind = "file"
        elif raw.startswith("@@"):
            kind = "hunk"
        elif raw.startswith("+"):
            kind = "add"
        elif raw.startswith("-"):
            kind = "del"
        else:
            kind = "context"
        lines.append(DiffLine(kind, visible(raw)))
    return lines


@dataclass(frozen=True)
class Section:
    """One section of a resolved instruction and the persona whose body supplied it
    (`source` None: an ancestor the reader may not see)."""

    heading: str
    level: int
    source: str | None


@lru_cache(maxsize=1024)
def attribute_sections(chain: tuple[tuple[str | None, str | None], ...],
                       resolved: str) -> tuple[Section, ...]:
    """Which persona of `chain` (root first, the persona itself last; `(None, None)` for an
    ancestor outside the reader's scope) contributed each section of `resolved`.

    Composition keeps text byte for byte (`core.inherit`), so a section of the resolved body
    comes from the nearest persona, child first, whose own body has that exact section; the
    preamble likewise."""
    bodies = [(key, inherit._split_sections(body)) for key, body in chain if body is not None]
    hidden = any(body is None for _, body in chain)
    preamble, sections = inherit._split_sections(resolved)
    out: list[Section] = []

    def source_of(match: Any) -> str | None:
        for key, split in reversed(bodies):
            if match(split):
                return key
        return None if hidden else (chain[-1][0] if chain else None)

    if preamble.strip():
        out.append(Section("(text before the first heading)", 0,
                           source_of(lambda split: split[0] == preamble)))
    for sec in sections:
        heading = sec.text.splitlines()[0].lstrip(" #").rstrip(" #") if sec.text else ""
        out.append(Section(heading, sec.level, source_of(
            lambda split, text=sec.text: any(s.text.rstrip("\n") == text.rstrip("\n")
                                             for s in split[1]))))
    return tuple(out)


_HEADING_TAG = re.compile(r"<(/?)h([1-6])(?=[\s>])")


_NO_IMAGES = nh3.ALLOWED_TAGS - {"img"}
_ATTRIBUTES = {**nh3.ALLOWED_ATTRIBUTES, "code": {"class"}}


def for_page(html: str, by: int = 2) -> Markup:
    """Sanitised HTML (`core.render`) made ready for a page: images dropped (an instruction
    is text for a model; an image in it would only make the reader's browser fetch a URL the
    body chose), and headings moved `by` levels down (capped at h6), so that a persona's own
    `# Title` sits under the page's headings instead of beside its one h1."""
    cleaned = nh3.clean(html, tags=_NO_IMAGES, attributes=_ATTRIBUTES)
    return Markup(_HEADING_TAG.sub(
        lambda m: f"<{m.group(1)}h{min(6, int(m.group(2)) + by)}", cleaned))


def score_items(value: Any) -> tuple[tuple[str, float], ...]:
    """The numeric scores of a jsonb score value: a number (`score`) or an object of
    numbers (nested objects flattened as `a.b`); other values are left out."""
    items: list[tuple[str, float]] = []

    def walk(prefix: str, v: Any) -> None:
        if isinstance(v, bool):
            return
        if isinstance(v, int | float):
            items.append((prefix or "score", float(v)))
        elif isinstance(v, Mapping):
            for k, sub in v.items():
                walk(f"{prefix}.{k}" if prefix else str(k), sub)

    walk("", value)
    return tuple(items)


_BAR_H, _GAP, _LABEL_W, _BAR_W = 14, 4, 120, 150


@lru_cache(maxsize=4096)
def bar_chart(items: tuple[tuple[str, float], ...], title: str) -> Markup:
    """A small horizontal bar chart (inline SVG) of scores; a value in [0, 1] is drawn as a
    share of the full bar, a larger one against the largest value."""
    if not items:
        return Markup("")
    top = max(1.0, *(v for _, v in items))
    height = len(items) * (_BAR_H + _GAP)
    width = _LABEL_W + _BAR_W + 50
    parts = [f'<svg class="chart" role="img" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg" '
             f'aria-label="{escape(title)}"><title>{escape(title)}</title>']
    for i, (label, value) in enumerate(items):
        y = i * (_BAR_H + _GAP)
        w = max(0.0, min(1.0, value / top)) * _BAR_W
        parts.append(
            f'<text x="0" y="{y + _BAR_H - 3}" class="chart-label">{escape(label)}</text>'
            f'<rect x="{_LABEL_W}" y="{y}" width="{_BAR_W}" height="{_BAR_H}" '
            f'class="chart-track"/>'
            f'<rect x="{_LABEL_W}" y="{y}" width="{w:.1f}" height="{_BAR_H}" class="chart-bar"/>'
            f'<text x="{_LABEL_W + _BAR_W + 6}" y="{y + _BAR_H - 3}" class="chart-value">'
            f"{value:g}</text>")
    parts.append("</svg>")
    return Markup("".join(parts))


@dataclass(frozen=True)
class MemberChange:
    """How one member of a persona set differs between two versions."""

    name: str
    change: str  # added, removed, changed
    fields: tuple[tuple[str, str, str], ...] = ()  # (field, old JSON, new JSON)


def _members(doc: Any) -> dict[str, Mapping[str, Any]]:
    out: dict[str, Mapping[str, Any]] = {}
    people = doc.get("personas") if isinstance(doc, Mapping) else None
    for i, member in enumerate(people if isinstance(people, list) else []):
        if isinstance(member, Mapping):
            out.setdefault(str(member.get("name", f"#{i + 1}")), member)
    return out


def _compact(value: Any) -> str:
    return "(absent)" if value is _ABSENT else json.dumps(value, ensure_ascii=False,
                                                          sort_keys=True)


_ABSENT = object()


def member_changes(old: Any, new: Any) -> list[MemberChange]:
    """Member-level changes between two persona-set documents (parsed JSON), by member
    name: added and removed members, and the fields that changed in the others."""
    before, after = _members(old), _members(new)
    changes: list[MemberChange] = []
    for name, member in after.items():
        if name not in before:
            changes.append(MemberChange(name, "added"))
            continue
        prior = before[name]
        fields = tuple(
            (f, _compact(prior.get(f, _ABSENT)), _compact(member.get(f, _ABSENT)))
            for f in _ordered_union(prior, member)
            if prior.get(f, _ABSENT) != member.get(f, _ABSENT))
        if fields:
            changes.append(MemberChange(name, "changed", fields))
    changes.extend(MemberChange(name, "removed") for name in before if name not in after)
    return changes


def _ordered_union(a: Iterable[str], b: Iterable[str]) -> list[str]:
    return list(dict.fromkeys([*a, *b]))
