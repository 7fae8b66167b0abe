"""Persona-set JSON ⇄ `PersonaSet`, in the shape of the persona-set service.

Rules of this module (pure: text in, records and `Problem`s out):
- JSON is read with duplicate keys and NaN/Infinity rejected; a set nested too deeply is a
  `json-syntax` problem, never a `RecursionError`.
- A number outside a double's range (`1e400`, `-1e999`, an integer of 310 digits) is the
  error `number-out-of-range`: Python, JavaScript and every JSON reader that uses doubles read
  it as infinity, which `jsonb` cannot store, so the file would poison the mirror. Integers
  within that range are kept exactly (`jsonb` numbers are arbitrary precision), and a number
  too small for a double (`1e-400`) reads as 0, as everywhere.
- A set is an object with a `personas` array (members need a `name` string) and an optional
  `metadata` object (`status`, `generation_cycle`, scores). Wrong types are `set-schema`
  problems; the semantic set rules (duplicate members, score ranges, image paths) live in
  `set_rules`.
- JSON locations are a best effort found in the text: the line of a member's
  `"name": "<name>"`, of a key's first (or repeated) occurrence.
"""

from __future__ import annotations

import json
import math
import re
import sys
from typing import Any

from maestro_git.core.models import PersonaSet, PersonaSetMember, Problem, Severity, SourceFile

__all__ = ["SET_STATUSES", "parse_set"]

SET_STATUSES = ("generated", "expanded", "validated")


def _problem(rule: str, path: str, message: str, fix: str, line: int | None = None,
             column: int | None = None) -> Problem:
    return Problem(rule=rule, severity=Severity.ERROR, path=path, message=message, fix=fix,
                   line=line, column=column)


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


_MAX_INT = int(sys.float_info.max)
_MAX_DIGITS = len(str(_MAX_INT))


class _Numbers:
    """`parse_float`/`parse_int` hooks that note each number out of a double's range (and
    read it as None, so no record ever holds an infinity)."""

    def __init__(self) -> None:
        self.out_of_range: list[str] = []

    def float(self, literal: str) -> float | None:
        value = float(literal)
        if math.isinf(value):
            self.out_of_range.append(literal)
            return None
        return value

    def int(self, literal: str) -> int | None:
        digits = literal.lstrip("-")
        if len(digits) > _MAX_DIGITS or (len(digits) == _MAX_DIGITS and int(digits) > _MAX_INT):
            self.out_of_range.append(literal)
            return None
        return int(literal)


def _number_problems(path: str, text: str, literals: list[str]) -> list[Problem]:
    problems = []
    for literal in dict.fromkeys(literals):
        shown = literal if len(literal) <= 24 else f"{literal[:12]}...({len(literal)} " \
            "characters)"
        match = re.search(r"(?<![\w.+-])" + re.escape(literal) + r"(?![\w.])", text)
        line, column = (None, None) if match is None else (
            text.count("\n", 0, match.start()) + 1,
            match.start() - (text.rfind("\n", 0, match.start()) + 1) + 1)
        problems.append(_problem(
            "number-out-of-range", path,
            f"number {shown} is beyond a double's range (about 1.8e308): JSON readers take "
            "it for infinity, which PostgreSQL jsonb cannot store",
            "write a number within range, or a string if it is an identifier", line, column))
    return problems


def _json_line(text: str, pattern: str, nth: int = 0) -> int | None:
    """Line of the `nth` match of `pattern` in `text` (a best effort for JSON locations)."""
    for i, match in enumerate(re.finditer(pattern, text)):
        if i == nth:
            return text.count("\n", 0, match.start()) + 1
    return None


_NAME_VALUE = re.compile(r'"name"\s*:\s*("(?:[^"\\\n]|\\.)*")')


def _member_lines(text: str) -> dict[str, list[int]]:
    """name -> lines of each `"name": "<name>"` in a set's JSON text, in order (one pass)."""
    out: dict[str, list[int]] = {}
    line, pos = 1, 0
    for match in _NAME_VALUE.finditer(text):
        line += text.count("\n", pos, match.start())
        pos = match.start()
        try:
            name = json.loads(match.group(1))
        except ValueError:
            continue
        out.setdefault(name, []).append(line)
    return out


def parse_set(
    src: SourceFile, name: str, text: str, digest: str
) -> tuple[PersonaSet | None, list[Problem], dict[str, int]]:
    """A persona set from its JSON text: the record (None when the file cannot be read as a
    set), its problems, and the file line of each member (`"members[3]"`, by position in
    `PersonaSet.members`). `name` is the set's name from its path."""
    numbers = _Numbers()
    try:
        doc = json.loads(text, object_pairs_hook=_pairs, parse_constant=_reject_constant,
                         parse_float=numbers.float, parse_int=numbers.int)
    except json.JSONDecodeError as exc:
        return None, [_problem("json-syntax", src.path, f"not valid JSON: {exc.msg}",
                               "fix the JSON syntax (a trailing comma or a missing quote?)",
                               line=exc.lineno, column=exc.colno)], {}
    except _DuplicateKey as exc:
        key_re = r'"' + re.escape(exc.key) + r'"\s*:'
        return None, [_problem(
            "duplicate-field", src.path, f"JSON key '{exc.key}' appears twice in one object",
            "keep one of the entries (JSON readers disagree on which one wins)",
            line=_json_line(text, key_re, 1))], {}
    except RecursionError:
        return None, [_problem("json-syntax", src.path, "JSON is nested too deeply",
                               "flatten the persona set")], {}
    except ValueError as exc:
        return None, [_problem("json-syntax", src.path, f"not valid JSON: {exc}",
                               "write numbers as finite decimals (NaN and Infinity are "
                               "not JSON)")], {}
    if not isinstance(doc, dict) or not isinstance(doc.get("personas"), list):
        return None, [_problem("set-schema", src.path,
                               "a persona set must be an object with a 'personas' array",
                               'write {"name": ..., "personas": [...], "metadata": {...}}',
                               line=1)], {}
    problems: list[Problem] = _number_problems(src.path, text, numbers.out_of_range)
    name_lines = _member_lines(text)
    seen: dict[str, int] = {}
    lines: dict[str, int] = {}

    def schema(message: str, fix: str, line: int | None = None) -> None:
        problems.append(_problem("set-schema", src.path, message, fix, line=line))

    metadata = doc.get("metadata")
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        schema("'metadata' must be an object", 'write "metadata": {"status": "generated"}',
               _json_line(text, r'"metadata"\s*:'))
        metadata = {}
    for key in ("name", "description"):
        if key in doc and doc[key] is not None and not isinstance(doc[key], str):
            schema(f"'{key}' must be a string", f'write "{key}": "..."',
                   _json_line(text, rf'"{key}"\s*:'))
    members: list[PersonaSetMember] = []
    for index, raw in enumerate(doc["personas"]):
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            schema(f"personas[{index}] must be an object with a 'name' string",
                   'give every member a "name" string')
            continue
        nth = seen.get(raw["name"], 0)
        seen[raw["name"]] = nth + 1
        found = name_lines.get(raw["name"], [])
        line = found[nth] if nth < len(found) else None
        if line is not None:
            lines[f"members[{len(members)}]"] = line
        for key in ("image_url", "image_prompt", "validation_status"):
            if raw.get(key) is not None and not isinstance(raw[key], str):
                schema(f"personas[{index}].{key} must be a string",
                       f'write "{key}": "..." or remove it', line)
        members.append(PersonaSetMember(
            name=raw["name"], persona_data=raw,
            image_url=raw.get("image_url") if isinstance(raw.get("image_url"), str) else None,
            image_prompt=raw.get("image_prompt")
            if isinstance(raw.get("image_prompt"), str) else None,
            similarity_score=raw.get("similarity_score"),
            validation_status=raw.get("validation_status")
            if isinstance(raw.get("validation_status"), str) else None,
        ))
    status = metadata.get("status")
    if status is not None and status not in SET_STATUSES:
        schema(f"metadata.status '{status}' is not a known status",
               "use one of: generated, expanded, validated", _json_line(text, r'"status"\s*:'))
        status = None
    cycle = metadata.get("generation_cycle")
    if cycle is not None and (not isinstance(cycle, int) or isinstance(cycle, bool)):
        schema("metadata.generation_cycle must be an integer", "write a whole number, e.g. 1",
               _json_line(text, r'"generation_cycle"\s*:'))
        cycle = None
    title = doc.get("name") if isinstance(doc.get("name"), str) else None
    description = doc.get("description") if isinstance(doc.get("description"), str) else None
    record = PersonaSet(
        name=name, path=src.path, title=title, description=description,
        members=tuple(members), rqe_scores=metadata.get("rqe_scores"),
        diversity_score=metadata.get("diversity_score"),
        validation_scores=metadata.get("validation_scores"), generation_cycle=cycle,
        status=status, metadata=metadata, content_hash=digest,
        size_bytes=len(src.data))
    return record, problems, lines
