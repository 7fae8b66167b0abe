"""Owners: who reviews which owner folder, and the CODEOWNERS block that says so.

A persona's owner is its folder, `personas/<owner>/`. The optional `[owners]` table of
`maestro.toml` maps each owner folder to its reviewers (GitHub users, teams or e-mails);
`"*"` is the default for every folder without its own entry, and for `templates/` and
`persona_sets/`:

```toml
[owners]
"*" = ["@platform-team"]
acme = ["@acme/persona-reviewers", "@alice"]
sandbox = []                  # explicitly unowned: no review required
```

From it this module derives the block maestro keeps between `# BEGIN maestro` and
`# END maestro` in `.github/CODEOWNERS` (every other line of that file is kept byte for byte),
and a report of each owner folder, its persona count and its reviewers, with a warning for a
folder that holds personas and has no reviewer. The block depends only on `[owners]`, so adding
an owner folder never makes `--check` fail; the default's `/personas/` rule covers it.

`parse_owners`, `codeowners_block`, `merge_codeowners`, `codeowners_diff` and `owner_report`
are pure; `load_owners` reads the table `load_settings` kept (`Settings.owners`: the toml is
read once, by settings); `read_codeowners`, `write_codeowners` and `list_owners` are the
edges.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from maestro_git.atomic import write_atomic
from maestro_git.core.models import Problem
from maestro_git.core.rules.catalogue import problem
from maestro_git.core.snapshot import Snapshot
from maestro_git.errors import ConfigError
from maestro_git.settings import CONFIG_FILE, Settings

__all__ = [
    "BEGIN_MARKER",
    "CODEOWNERS_PATH",
    "END_MARKER",
    "CodeownersState",
    "OwnerRow",
    "OwnersConfig",
    "OwnersReport",
    "codeowners_block",
    "codeowners_diff",
    "list_owners",
    "load_owners",
    "merge_codeowners",
    "owner_report",
    "parse_owners",
    "read_codeowners",
    "write_codeowners",
]

CODEOWNERS_PATH = ".github/CODEOWNERS"
BEGIN_MARKER = "# BEGIN maestro"
END_MARKER = "# END maestro"
DEFAULT_KEY = "*"
RULE_NO_REVIEWER = "owner-without-reviewer"

_OWNER = re.compile(r"[a-z0-9_-]{1,100}")
# @user, @org/team, or an e-mail address: the owner forms CODEOWNERS accepts.
_REVIEWER = re.compile(r"@[A-Za-z0-9](?:[A-Za-z0-9-]*)(?:/[A-Za-z0-9][A-Za-z0-9._-]*)?"
                       r"|[^@\s]+@[^@\s]+\.[^@\s]+")

Source = Literal["owners", "default", "none"]


@dataclass(frozen=True)
class OwnersConfig:
    """The `[owners]` table: reviewers per owner folder, and the default (`"*"`) if any."""

    reviewers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    default: tuple[str, ...] | None = None

    def reviewers_of(self, owner: str) -> tuple[tuple[str, ...], Source]:
        """The reviewers of `owner` and where they come from (its entry, the default, none)."""
        if owner in self.reviewers:
            return self.reviewers[owner], "owners"
        if self.default is not None:
            return self.default, "default"
        return (), "none"


def _reviewer_list(key: str, value: Any) -> tuple[str, ...]:
    where = f"{CONFIG_FILE}: owners.{key}" if key != DEFAULT_KEY else f'{CONFIG_FILE}: owners."*"'
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where} must be a list of reviewers",
                          hint='e.g. acme = ["@acme/persona-reviewers", "@alice"]')
    for reviewer in value:
        if not _REVIEWER.fullmatch(reviewer):
            raise ConfigError(f"{where}: {reviewer!r} is not a GitHub user, team or e-mail",
                              hint='write "@user", "@org/team" or "name@example.com"')
    return tuple(dict.fromkeys(value))  # drop repeats, keep order


def parse_owners(data: Mapping[str, Any]) -> OwnersConfig:
    """The `[owners]` table of a parsed `maestro.toml` (an empty config when it is absent).

    Raises `ConfigError` with a one-line reason when the table has the wrong shape.
    """
    table = data.get("owners", {})
    if not isinstance(table, Mapping):
        raise ConfigError(f"{CONFIG_FILE}: [owners] must be a table",
                          hint='e.g. [owners] acme = ["@acme/persona-reviewers"]')
    reviewers: dict[str, tuple[str, ...]] = {}
    default: tuple[str, ...] | None = None
    for key, value in table.items():
        if key == DEFAULT_KEY:
            default = _reviewer_list(key, value)
        elif not _OWNER.fullmatch(key):
            raise ConfigError(f"{CONFIG_FILE}: owners.{key!r} is not an owner folder name",
                              hint='owner folders are 1-100 of a-z, 0-9, "_" and "-"; '
                                   'use "*" for the default')
        else:
            reviewers[key] = _reviewer_list(key, value)
    return OwnersConfig(reviewers=dict(sorted(reviewers.items())), default=default)


def load_owners(settings: Settings) -> OwnersConfig:
    """The `[owners]` table of the repository's `maestro.toml`, as `load_settings` kept it
    (empty when there is none). Raises `ConfigError` like `parse_owners`."""
    return parse_owners({"owners": settings.owners})


# --- CODEOWNERS ----------------------------------------------------------------------------

def _rule(pattern: str, reviewers: tuple[str, ...]) -> str:
    return " ".join((pattern, *reviewers))


def codeowners_block(config: OwnersConfig) -> str:
    """The generated CODEOWNERS block, markers included, ending with a newline.

    With a default: `/personas/`, `/templates/` and `/persona_sets/` go to it. Then one rule
    per configured owner folder (CODEOWNERS takes the last matching rule, so these win); an
    empty reviewer list gives an explicit unowned rule.
    """
    lines = [f"{BEGIN_MARKER}: generated from [owners] in maestro.toml; do not edit"]
    if config.default is not None:
        lines += [_rule(f"/{folder}/", config.default)
                  for folder in ("personas", "templates", "persona_sets")]
    lines += [_rule(f"/personas/{owner}/", reviewers)
              for owner, reviewers in config.reviewers.items()]
    lines.append(END_MARKER)
    return "\n".join(lines) + "\n"


def _marker_lines(lines: list[str], marker: str) -> list[int]:
    return [i for i, line in enumerate(lines) if line.rstrip("\r\n").startswith(marker)]


def merge_codeowners(existing: str | None, block: str) -> str:
    """`existing` CODEOWNERS text with its maestro block replaced by `block` (appended at the
    end when there is none). Every line outside the block is kept byte for byte."""
    if not existing:
        return block
    lines = existing.splitlines(keepends=True)
    begins, ends = _marker_lines(lines, BEGIN_MARKER), _marker_lines(lines, END_MARKER)
    if not begins and not ends:
        sep = "" if existing.endswith("\n") else "\n"
        gap = "" if existing.endswith("\n\n") or existing == "\n" else "\n"
        return existing + sep + gap + block
    if len(begins) != 1 or len(ends) != 1 or ends[0] < begins[0]:
        raise ConfigError(
            f"{CODEOWNERS_PATH}: expected one '{BEGIN_MARKER}' line followed by one "
            f"'{END_MARKER}' line",
            hint="remove the stray marker lines, then run 'maestro owners codeowners --write'")
    before = "".join(lines[: begins[0]])
    after = "".join(lines[ends[0] + 1:])
    return before + block + after


def codeowners_diff(current: str | None, wanted: str, path: str = CODEOWNERS_PATH) -> str:
    """A unified diff from the file as it is to the file as it should be ("" when equal)."""
    return "".join(difflib.unified_diff(
        (current or "").splitlines(keepends=True), wanted.splitlines(keepends=True),
        fromfile=f"a/{path}" if current is not None else "/dev/null", tofile=f"b/{path}"))


@dataclass(frozen=True)
class CodeownersState:
    """The CODEOWNERS file as it is (`current`, None when missing) and as `[owners]` wants it."""

    path: Path
    current: str | None
    wanted: str
    block: str

    @property
    def up_to_date(self) -> bool:
        return self.current == self.wanted

    def diff(self) -> str:
        return codeowners_diff(self.current, self.wanted)


def read_codeowners(settings: Settings) -> CodeownersState:
    """Compare `.github/CODEOWNERS` with the block `[owners]` generates."""
    path = settings.repo_path / CODEOWNERS_PATH
    current: str | None = None
    if path.is_file():
        try:
            current = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{CODEOWNERS_PATH} is not UTF-8 text") from exc
    block = codeowners_block(load_owners(settings))
    return CodeownersState(path, current, merge_codeowners(current, block), block)


def write_codeowners(settings: Settings) -> CodeownersState:
    """Write the wanted CODEOWNERS (atomically: temp file, then `os.replace`) when it differs;
    returns the state before the write (`up_to_date` False means the file changed)."""
    state = read_codeowners(settings)
    if not state.up_to_date:
        write_atomic(state.path, state.wanted.encode("utf-8"))
    return state


# --- the owner report ----------------------------------------------------------------------

@dataclass(frozen=True)
class OwnerRow:
    """One owner folder: how many personas it holds and who reviews it."""

    owner: str
    personas: int
    reviewers: tuple[str, ...]
    source: Source  # "owners": its own entry; "default": the "*" entry; "none": no reviewer


@dataclass(frozen=True)
class OwnersReport:
    rows: tuple[OwnerRow, ...]
    problems: tuple[Problem, ...]


def _owner_folders(snapshot: Snapshot) -> Counter[str]:
    """Owner folder -> persona count, for every folder under personas/ holding any file."""
    counts: Counter[str] = Counter(p.owner for p in snapshot.personas.values())
    for path in (*snapshot.files, *snapshot.asset_paths):
        parts = path.split("/")
        if len(parts) >= 3 and parts[0] == "personas":
            counts.setdefault(parts[1], 0)
    return counts


def owner_report(config: OwnersConfig, snapshot: Snapshot) -> OwnersReport:
    """Every owner folder in the snapshot or in `[owners]`, sorted, with a warning for each
    folder that holds personas but has no reviewer. A configured owner without a folder is
    fine (its rule waits for its first persona)."""
    counts = _owner_folders(snapshot)
    rows: list[OwnerRow] = []
    problems: list[Problem] = []
    for owner in sorted(set(counts) | set(config.reviewers)):
        reviewers, source = config.reviewers_of(owner)
        rows.append(OwnerRow(owner, counts.get(owner, 0), reviewers, source))
        if counts.get(owner, 0) and not reviewers:
            problems.append(problem(
                RULE_NO_REVIEWER, f"personas/{owner}/",
                f"owner folder '{owner}' has {counts[owner]} persona(s) and no reviewer",
                f'add {owner} = ["@team"] (or a "*" default) to [owners] in maestro.toml'))
    return OwnersReport(tuple(rows), tuple(problems))


def list_owners(settings: Settings) -> OwnersReport:
    """The owner report of the working tree at `settings.repo_path`."""
    config = load_owners(settings)
    from maestro_git.repo.snapshots import snapshot_of

    snapshot = snapshot_of(settings)
    return owner_report(config, snapshot)
