"""Rules on a persona set's records: duplicate members, score ranges, image paths.

Pure: records in, `Problem`s out. Whether a set's image file exists is a cross-file rule
(`validate.cross_file_problems`), which resolves paths with `image_target` from here.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Mapping
from typing import Any

from maestro_git.core.models import PersonaSet, Problem
from maestro_git.core.rules.catalogue import problem as _p

__all__ = ["image_target", "set_problems"]

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):")


def _numbers(value: Any, where: str) -> Iterable[tuple[str, Any]]:
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, int | float):
        yield where, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _numbers(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _numbers(item, f"{where}[{i}]")


def image_target(set_path: str, url: str) -> tuple[str | None, str | None]:
    """(repository path of a set's image, or None for a web URL; the reason it is refused).

    Relative paths are relative to the set file's folder; a leading `/` means the
    repository root. Web URLs (`http:`, `https:`, `//host`) are not checked."""
    scheme = _SCHEME.match(url)
    if scheme:
        if scheme.group(1).lower() in ("http", "https"):
            return None, None
        return None, f"uses the '{scheme.group(1).lower()}:' scheme"
    if url.startswith("//"):
        return None, None
    if "\\" in url:
        return None, "uses backslashes"
    base = "" if url.startswith("/") else posixpath.dirname(set_path)
    target = posixpath.normpath(posixpath.join(base, url.lstrip("/")))
    if target == ".." or target.startswith("../"):
        return None, "leaves the repository"
    if not target.startswith("persona_sets/"):
        return None, "is outside persona_sets/"
    return target, None


def set_problems(rec: PersonaSet, lines: Mapping[str, int], text: str) -> list[Problem]:
    """The single-file rules of a set; `lines` are `ParsedFile.field_lines`, `text` its JSON."""
    path = rec.path
    problems: list[Problem] = []
    counts: dict[str, int] = {}
    for index, member in enumerate(rec.members):
        nth = counts.get(member.name, 0)
        counts[member.name] = nth + 1
        line = lines.get(f"members[{index}]")
        if nth == 1:
            problems.append(_p("set-duplicate-member", path,
                               f"member name '{member.name}' is used more than once",
                               "give every member of the set a unique name", line=line))
        scored = _numbers(member.similarity_score, f"member '{member.name}': similarity_score")
        for where, number in scored:
            if not 0 <= number <= 1:
                problems.append(_p("set-score-range", path,
                                   f"{where} is {number}, outside 0..1",
                                   "scores are fractions between 0 and 1", line=line))
        if member.image_url:
            _, reason = image_target(path, member.image_url)
            if reason:
                problems.append(_p("set-image-path", path,
                                   f"image_url '{member.image_url}' {reason}",
                                   "use an http(s) URL or a path inside "
                                   "persona_sets/<set>/images/", line=line))
    for field in ("rqe_scores", "diversity_score", "validation_scores"):
        for where, number in _numbers(rec.metadata.get(field), f"metadata.{field}"):
            if not 0 <= number <= 1:
                problems.append(_p("set-score-range", path,
                                   f"{where} is {number}, outside 0..1",
                                   "scores are fractions between 0 and 1",
                                   line=_field_json_line(text, field)))
    return problems


def _field_json_line(text: str, key: str) -> int | None:
    match = re.search(r'"' + re.escape(key) + r'"\s*:', text)
    return text.count("\n", 0, match.start()) + 1 if match else None
