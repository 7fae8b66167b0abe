"""Version discipline for review: a changed persona or template must raise its semver.

Pure: two snapshots in, problems out. `maestro review` (and `maestro check --against REV`)
compare the snapshot under review (`head`) with the one it will be merged into (`base`).

Rule `version-not-raised` (an error by default):
- a persona or template whose content hash differs from `base` must have a higher semver than
  it had there (records are paired by key, or by frontmatter `id` across a rename; a rename
  that leaves the bytes alone needs no new version);
- a version must never go down, whether the content changed or not.
New records, deleted records and persona sets are not judged; versions that are not semver
are left to the validation rules.
"""

from __future__ import annotations

import re

from maestro_git.core.models import Persona, Problem, Severity, Template
from maestro_git.core.snapshot import Snapshot

__all__ = ["RULE", "bump_patch", "compare_versions", "parse_semver", "version_problems"]

RULE = "version-not-raised"

_SEMVER = re.compile(
    r"^(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)"
    r"(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z.-]+)?$")

_Key = tuple[tuple[int, int, int], tuple[tuple[int, int | str], ...] | None]


def parse_semver(text: str | None) -> _Key | None:
    """A sortable key for a semver string (precedence as in semver.org 2.0), or None."""
    if text is None:
        return None
    match = _SEMVER.match(text.strip())
    if match is None:
        return None
    core = (int(match["major"]), int(match["minor"]), int(match["patch"]))
    pre = None
    if match["pre"]:
        pre = tuple((0, int(p)) if p.isdigit() else (1, p) for p in match["pre"].split("."))
    return core, pre


def compare_versions(a: str, b: str) -> int | None:
    """-1, 0 or 1 as `a` is lower than, equal to or higher than `b`; None when either is not
    semver. A pre-release sorts below its release (`1.1.0-rc.1` < `1.1.0`); build metadata is
    ignored."""
    ka, kb = parse_semver(a), parse_semver(b)
    if ka is None or kb is None:
        return None
    if ka[0] != kb[0]:
        return -1 if ka[0] < kb[0] else 1
    pa, pb = ka[1], kb[1]
    if pa == pb:
        return 0
    if pa is None:
        return 1
    if pb is None:
        return -1
    return -1 if _pre_lt(pa, pb) else 1


def _pre_lt(a: tuple[tuple[int, int | str], ...], b: tuple[tuple[int, int | str], ...]) -> bool:
    for (ka, va), (kb, vb) in zip(a, b, strict=False):
        if ka != kb:
            return ka < kb
        if va != vb:
            return va < vb  # type: ignore[operator]  # same kind, so comparable
    return len(a) < len(b)


def bump_patch(version: str | None) -> str:
    """The next patch release: `1.2.3` -> `1.2.4`, `1.3.0-rc.1` -> `1.3.0` (the release it
    precedes); anything that is not semver starts again at `1.0.0`."""
    key = parse_semver(version)
    if key is None:
        return "1.0.0"
    (major, minor, patch), pre = key
    if pre is not None:
        return f"{major}.{minor}.{patch}"
    return f"{major}.{minor}.{patch + 1}"


def version_problems(base: Snapshot, head: Snapshot) -> list[Problem]:
    """`version-not-raised` problems of `head` against `base`, sorted by path, on the
    line of the `version` field when the file has one."""
    problems: list[Problem] = []
    for label, before_table, after_table in (
        ("persona", base.personas, head.personas),
        ("template", base.templates, head.templates),
    ):
        by_id = {rec.id: rec for rec in before_table.values() if rec.id}
        for key, after in after_table.items():
            before = before_table.get(key)
            if before is None and after.id:
                before = by_id.get(after.id)
            if before is None:
                continue
            problem = _judge(label, before, after, base.commit)
            if problem is not None:
                parsed = head.files.get(after.path)
                line = parsed.field_lines.get("version") if parsed is not None else None
                problems.append(problem.model_copy(update={"line": line}) if line else problem)
    problems.sort(key=lambda p: p.path)
    return problems


def _judge(label: str, before: Persona | Template, after: Persona | Template,
           base_commit: str | None) -> Problem | None:
    order = compare_versions(after.version, before.version)
    if order is None:
        return None
    where = f"at {base_commit[:7]}" if base_commit else "at the base"
    since = f"since {base_commit[:7]}" if base_commit else "since the base"
    if order < 0:
        return Problem(
            rule=RULE, severity=Severity.ERROR, path=after.path,
            message=f"{label} {_key(after)} version went down from {before.version} "
                    f"{where} to {after.version}",
            fix=f"set version to {bump_patch(before.version)} or higher")
    if order == 0 and after.content_hash != before.content_hash:
        return Problem(
            rule=RULE, severity=Severity.ERROR, path=after.path,
            message=f"{label} {_key(after)} changed {since} but its version is still "
                    f"{after.version}",
            fix=f"raise version to {bump_patch(before.version)} (patch), or the minor/major "
                "version for bigger changes")
    return None


def _key(rec: Persona | Template) -> str:
    return rec.key

