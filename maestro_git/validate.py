"""The rule catalogue: pure functions from parsed files and snapshots to `Problem`s.

Two entry points, both pure:
- `validate_file(parsed, source, settings)`: rules that need only one file (names, semver,
  tags, size, hidden Unicode, dangerous HTML, symlinks, ...).
- `validate_snapshot(snapshot, sources, settings)`: rules across files (duplicate ids, missing
  parents, inheritance cycles, ...). `sources` holds only the files re-read for this snapshot.

`apply_severities` applies `[rules]` from maestro.toml (a rule set to "off" is dropped).
Every rule has a stable id listed in `RULES` with its default severity and a one-line summary;
the README's rule table is checked against it by the tests.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from maestro_git.formats import NAME_RE, ParsedFile
from maestro_git.models import Persona, Problem, Severity, SourceFile, Template
from maestro_git.settings import Settings

if TYPE_CHECKING:
    from maestro_git.snapshot import Snapshot

__all__ = ["RULES", "apply_severities", "validate_file", "validate_snapshot"]

# rule id -> (default severity, summary)
RULES: dict[str, tuple[Severity, str]] = {
    "file-too-large": (Severity.ERROR, "a file is larger than limits.max_file_bytes"),
    "binary-file": (Severity.ERROR, "a file contains NUL bytes"),
    "invalid-utf8": (Severity.ERROR, "a file is not valid UTF-8"),
    "frontmatter-too-large": (Severity.ERROR, "frontmatter over limits.max_frontmatter_bytes"),
    "yaml-syntax": (Severity.ERROR, "frontmatter is not valid YAML"),
    "yaml-alias": (Severity.ERROR, "frontmatter uses YAML anchors/aliases (alias bombs)"),
    "frontmatter-type": (Severity.ERROR, "a frontmatter field has the wrong type"),
    "name-mismatch": (Severity.ERROR, "frontmatter name differs from the file name"),
    "owner-mismatch": (Severity.ERROR, "frontmatter owner differs from the folder"),
    "json-syntax": (Severity.ERROR, "a persona set is not valid JSON"),
    "set-schema": (Severity.ERROR, "a persona set does not have the persona-set shape"),
    "invalid-name": (Severity.ERROR, "a name or owner uses characters outside [a-z0-9_-]"),
    "missing-parent": (Severity.ERROR, "`extends` names a persona that does not exist"),
}


def _severity(rule: str) -> Severity:
    return RULES.get(rule, (Severity.ERROR, ""))[0]


def validate_file(parsed: ParsedFile, source: SourceFile, settings: Settings) -> list[Problem]:
    """Single-file rules beyond what parsing already found."""
    problems: list[Problem] = []
    rec = parsed.record
    if isinstance(rec, Persona | Template):
        names = [("name", rec.name)]
        if isinstance(rec, Persona):
            names.append(("owner", rec.owner))
        for label, value in names:
            if not NAME_RE.match(value):
                problems.append(Problem(
                    rule="invalid-name", severity=_severity("invalid-name"), path=parsed.path,
                    message=f"{label} '{value}' must be 1-100 characters of a-z, 0-9, _ and -",
                    fix=f"rename the {'folder' if label == 'owner' else 'file'} in lowercase, "
                        "e.g. 'my_persona'"))
    return problems


def validate_snapshot(snapshot: Snapshot, sources: Mapping[str, SourceFile],
                      settings: Settings) -> list[Problem]:
    """Rules across files."""
    problems: list[Problem] = []
    for persona in snapshot.personas.values():
        if persona.extends and persona.extends not in snapshot.personas:
            problems.append(Problem(
                rule="missing-parent", severity=_severity("missing-parent"), path=persona.path,
                message=f"extends '{persona.extends}', which does not exist",
                fix="create that persona or correct the key (owner/name)"))
    return problems


def apply_severities(problems: Iterable[Problem], settings: Settings) -> list[Problem]:
    """Problems with the severities configured in maestro.toml; rules set to "off" removed."""
    out: list[Problem] = []
    for problem in problems:
        configured = settings.rule_severity.get(problem.rule)
        if configured == "off":
            continue
        if configured is not None and configured != problem.severity.value:
            problem = problem.model_copy(update={"severity": Severity(configured)})
        out.append(problem)
    return out
