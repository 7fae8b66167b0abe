"""Rules on a persona set's records: duplicate members, member values, score ranges, image
paths.

Pure: records in, `Problem`s out. Whether a set's image file exists is a cross-file rule
(`validate.cross_file_problems`), which resolves paths with `image_target` from here.

Member values: a member's `name` must have text, and its `age`, when there is one, must be a
whole number of years from 0 to 150 (`set-member-value`); the rest of a member is free-form.

The persona-set service's real data is accepted as it is:
- `image_url` as the service writes it, a URL path its application serves
  (`/static/images/personas/persona_7.png`), is information (`set-image-url-path`), or, with
  `[sets] static_dir` set, resolved into that repository folder and checked like a file;
- score objects are free-form JSON (`"flagged": 3` is a count): only a number known to be a
  fraction is range-checked, one whose field or key names a similarity, ratio, rate,
  fraction, probability or share (`similarity_score`, `mean_similarity`, `pass_rate`), unless
  its own key names a count (`count`, `total`, `flagged`, `n_…`).
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Iterable, Mapping
from typing import Any

from maestro_git.core.models import PersonaSet, Problem
from maestro_git.core.rules.catalogue import problem as _p

__all__ = ["StaticMap", "image_target", "is_served_path", "set_problems"]

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):")
_FRACTION = re.compile(r"(?:^|[^a-z])(?:similarity|ratio|rate|fraction|probability|share)"
                       r"(?:$|[^a-z])", re.IGNORECASE)
_COUNT = re.compile(r"^(n|num|n_.*|num_.*|.*_count|count|total|flagged|.*_total)$",
                    re.IGNORECASE)
# (URL prefix the application serves, repository folder that holds it): `[sets] static_dir`.
StaticMap = tuple[str, str]


def _is_fraction(where: str, number: float) -> bool:
    """Whether the number at `where` (`metadata.validation_scores.pass_rate`, or
    `member 'Ann': similarity_score.overall`) is known to be a fraction. A whole number is
    one only when its own key names a fraction (`"matches": 4` is a count)."""
    field_path = where.partition("': ")[2] or where
    own = re.split(r"[.\[]", field_path)[-1].rstrip("]")
    if _COUNT.match(own):
        return False
    return bool(_FRACTION.search(own if isinstance(number, int) else field_path))


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


def is_served_path(url: str) -> bool:
    """A root-absolute URL path outside `persona_sets/`: what a web application serves
    (`/static/images/personas/persona_7.png`), not a repository path."""
    if not url.startswith("/") or url.startswith("//") or "\\" in url:
        return False
    target = posixpath.normpath(url.lstrip("/"))
    return not (target == ".." or target.startswith("../") or target.startswith("persona_sets/"))


def image_target(set_path: str, url: str, static: StaticMap | None = None
                 ) -> tuple[str | None, str | None]:
    """(repository path of a set's image, or None for a web URL; the reason it is refused).

    Relative paths are relative to the set file's folder; a leading `/` means the
    repository root, except a URL path under `static`'s prefix, which is resolved into its
    folder. Web URLs (`http:`, `https:`, `//host`) are not checked; nor are other URL paths
    an application serves (`is_served_path`), which `set_problems` notes as information."""
    if static is not None and url.startswith(static[0].rstrip("/") + "/"):
        url = "/" + static[1].strip("/") + "/" + url[len(static[0].rstrip("/")) + 1:]
    elif is_served_path(url):
        return None, None
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


MAX_AGE = 150


def _member_values(path: str, index: int, name: str, data: Mapping[str, Any],
                   line: int | None) -> list[Problem]:
    """`set-member-value`: a name with no text, an age that is not a whole number 0..150."""
    problems: list[Problem] = []
    if not name.strip():
        problems.append(_p("set-member-value", path,
                           f"member {index + 1} of the set has an empty name",
                           'give every member a name, e.g. "name": "Maria Lopez"', line=line))
    age = data.get("age")
    if age is None or (type(age) is int and 0 <= age <= MAX_AGE):
        return problems
    who = f"member '{name}'" if name.strip() else f"member {index + 1}"
    if isinstance(age, bool) or not isinstance(age, int):
        shown = json.dumps(age, ensure_ascii=False, default=str)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        problems.append(_p("set-member-value", path,
                           f"{who}: age {shown} is not a whole number",
                           'write the age as a whole number of years, e.g. "age": 34',
                           line=line))
    else:
        problems.append(_p("set-member-value", path, f"{who}: age {age} is outside "
                           f"0..{MAX_AGE}", f"write an age between 0 and {MAX_AGE} years",
                           line=line))
    return problems


def set_problems(rec: PersonaSet, lines: Mapping[str, int], text: str,
                 static: StaticMap | None = None) -> list[Problem]:
    """The single-file rules of a set; `lines` are `ParsedFile.field_lines`, `text` its JSON,
    `static` the `[sets] static_dir` mapping."""
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
        problems.extend(_member_values(path, index, member.name, member.persona_data, line))
        scored = _numbers(member.similarity_score, f"member '{member.name}': similarity_score")
        for where, number in scored:
            if _is_fraction(where, number) and not 0 <= number <= 1:
                problems.append(_p("set-score-range", path,
                                   f"{where} is {number}, outside 0..1",
                                   "scores are fractions between 0 and 1", line=line))
        if member.image_url:
            target, reason = image_target(path, member.image_url, static)
            if target is None and reason is None and is_served_path(member.image_url):
                problems.append(_p("set-image-url-path", path,
                                   f"image_url '{member.image_url}' is a URL path an "
                                   "application serves; the image is not checked",
                                   "set [sets] static_dir in maestro.toml to check it, or "
                                   "import the set with --static DIR to bring the images",
                                   line=line))
            if reason:
                problems.append(_p("set-image-path", path,
                                   f"image_url '{member.image_url}' {reason}",
                                   "use an http(s) URL or a path inside "
                                   "persona_sets/<set>/images/", line=line))
    for field in ("rqe_scores", "diversity_score", "validation_scores"):
        for where, number in _numbers(rec.metadata.get(field), f"metadata.{field}"):
            if _is_fraction(where, number) and not 0 <= number <= 1:
                problems.append(_p("set-score-range", path,
                                   f"{where} is {number}, outside 0..1",
                                   "scores are fractions between 0 and 1",
                                   line=_field_json_line(text, field)))
    return problems


def _field_json_line(text: str, key: str) -> int | None:
    match = re.search(r'"' + re.escape(key) + r'"\s*:', text)
    return text.count("\n", 0, match.start()) + 1 if match else None
