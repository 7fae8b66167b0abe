"""One typed `Settings`, resolved once and passed down.

Precedence: command-line flag > environment > `maestro.toml` > default. Nothing below the CLI
reads the environment or the toml file again.

`maestro.toml` (every key optional):

```toml
[limits]
max_content_bytes = 50000      # persona body size (the seed's token-overflow guard)
max_tokens = 12500             # estimated tokens of the body (1 per 4 ASCII chars, 1 per other char)
max_file_bytes = 1000000       # any file; larger files are refused before parsing
max_frontmatter_bytes = 16384  # YAML frontmatter
max_tags = 20
max_inheritance_depth = 8

[rules]                        # severity per rule id: "error" | "warning" | "info" | "off"
non-instruction-content = "warning"

[sync]
branch = "main"               # the default branch (readers' default; first of `branches`)
branches = ["main", "production"]  # every branch mirrored, each in a schema of its own
name = "acme-personas"        # the mirror's name (default: the repository folder's name)
schema = "acme_main"          # the schema of the mirror (one branch), or a table per branch:
# schema = {main = "acme_main", production = "acme_prod"}

[hooks]
commands = ["./scripts/notify.sh"]          # run with the event JSON on stdin
entry_points = ["maestro_git.hooks:slack"]   # or names in the `maestro_git.hooks` group

[search]
index_dir = ".maestro/index"

[cache]
size = 1024
ttl_seconds = 300

[webhooks]                     # signed webhooks, delivered by `maestro serve`
urls = ["https://ci.example.com/maestro"]
secret_env = "MAESTRO_WEBHOOK_SECRET"       # the environment variable holding the secret

[sets]                         # persona-set images the service serves as URL paths
static_dir = "persona_sets/static"  # repository folder served at static_url (under persona_sets/)
static_url = "/static"              # default; `/static/images/x.png` -> <static_dir>/images/x.png

[owners]                       # reviewers per owner folder (see owners.py), kept raw here
"*" = ["@platform-team"]
```
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from maestro_git.errors import ConfigError

__all__ = ["Limits", "Settings", "find_root", "load_settings"]

CONFIG_FILE = "maestro.toml"
_SEVERITIES = {"error", "warning", "info", "off"}


@dataclass(frozen=True)
class Limits:
    max_content_bytes: int = 50_000
    max_tokens: int = 12_500
    max_file_bytes: int = 1_000_000
    max_frontmatter_bytes: int = 16_384
    max_tags: int = 20
    max_inheritance_depth: int = 8


@dataclass(frozen=True)
class Settings:
    """Everything maestro-git needs to know about where it runs."""

    repo_path: Path = field(default_factory=Path.cwd)
    database_url: str | None = None  # None: the embedded PostgreSQL
    branch: str = "main"
    # True when `branch` is only the default ([sync] branch or "main", not a flag or
    # MAESTRO_BRANCH): git commands then work on the checked-out branch (`Repository`).
    branch_is_default: bool = field(default=False, compare=False)
    # Every branch `maestro sync` and the daemon mirror; `branch` is one of them. Empty: just
    # `branch`.
    branches: tuple[str, ...] = ()
    mirror_name: str | None = None  # [sync] name; None: the repository folder's name
    schemas: Mapping[str, str] = field(default_factory=dict)  # branch -> explicit schema
    limits: Limits = field(default_factory=Limits)
    rule_severity: Mapping[str, str] = field(default_factory=dict)  # rule id -> severity/"off"
    hook_commands: tuple[str, ...] = ()
    hook_entry_points: tuple[str, ...] = ()
    index_dir: Path | None = None  # None: <repo>/.maestro/index
    cache_size: int = 1024
    cache_ttl_seconds: float = 300.0
    author_name: str | None = None  # None: git config user.name
    author_email: str | None = None
    webhook_urls: tuple[str, ...] = ()
    webhook_secret: str | None = None  # from the environment variable [webhooks] secret_env
    # The raw [owners] table; `owners.load_owners` checks and reads it.
    owners: Mapping[str, Any] = field(default_factory=dict)
    sets_static_dir: str | None = None  # [sets] static_dir: where served image URLs live
    sets_static_url: str = "/static"  # [sets] static_url: the URL prefix of that folder

    @property
    def sets_static(self) -> tuple[str, str] | None:
        """(URL prefix, repository folder) for set images served as URL paths, or None."""
        if self.sets_static_dir is None:
            return None
        return self.sets_static_url, self.sets_static_dir

    @property
    def mirrored_branches(self) -> tuple[str, ...]:
        """The branches to mirror: `branches`, always including `branch`."""
        if not self.branches:
            return (self.branch,)
        return self.branches if self.branch in self.branches else (self.branch, *self.branches)

    def schema_for(self, branch: str) -> str | None:
        """The schema `[sync] schema` sets for `branch`, or None (maestro chooses)."""
        return self.schemas.get(branch)

    @property
    def state_dir(self) -> Path:
        """Local, git-ignored state of this repository (index, caches)."""
        return self.repo_path / ".maestro"

    @property
    def resolved_index_dir(self) -> Path:
        if self.index_dir is None:
            return self.state_dir / "index"
        return self.index_dir if self.index_dir.is_absolute() else self.repo_path / self.index_dir

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with some fields replaced (tests and the CLI use this); a `branch` given
        here is named, not a default."""
        if "branch" in changes:
            changes.setdefault("branch_is_default", False)
        return replace(self, **changes)


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"{path.name}: {exc}", hint="fix the TOML syntax (https://toml.io)"
        ) from exc


def _section(data: Mapping[str, Any], name: str, hint: str | None = None) -> Mapping[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, Mapping):
        raise ConfigError(f"{CONFIG_FILE}: [{name}] must be a table", hint=hint)
    return value


def _limits(section: Mapping[str, Any]) -> Limits:
    known = Limits.__dataclass_fields__
    values: dict[str, int] = {}
    for key, value in section.items():
        if key not in known:
            raise ConfigError(
                f"{CONFIG_FILE}: unknown key limits.{key}",
                hint=f"known keys: {', '.join(sorted(known))}",
            )
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ConfigError(f"{CONFIG_FILE}: limits.{key} must be a positive integer")
        values[key] = value
    return Limits(**values)


def _rules(section: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for rule, severity in section.items():
        if severity not in _SEVERITIES:
            raise ConfigError(
                f"{CONFIG_FILE}: rules.{rule} = {severity!r} is not a severity",
                hint='use "error", "warning", "info" or "off"',
            )
        out[rule] = severity
    return out


def _str_tuple(section: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = section.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{CONFIG_FILE}: {key} must be a list of strings")
    return tuple(value)


def find_root(start: Path) -> Path:
    """The repository root that contains `start`, found as git finds it: the nearest folder
    at or above `start` holding `.git` (a folder, or the file of a linked worktree). A
    folder outside any git repository is its own root."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return start


_SCHEMA_RE = r"^[a-z_][a-z0-9_]{0,62}$"


def _sync(section: Mapping[str, Any], branch: str | None) -> dict[str, Any]:
    """branch, branches, mirror_name and schemas from [sync] (`branch`: the flag or the
    environment, which narrows the mirrored branches to that one)."""
    branches = _str_tuple(section, "branches")
    default = str(section.get("branch", branches[0] if branches else "main"))
    name = section.get("name")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise ConfigError(f"{CONFIG_FILE}: sync.name must be a non-empty string")
    raw = section.get("schema")
    schemas: dict[str, str] = {}
    if isinstance(raw, str):
        if len(branches) > 1:
            raise ConfigError(f"{CONFIG_FILE}: sync.schema names one schema but "
                              f"{len(branches)} branches are mirrored",
                              hint='use a table: schema = {main = "a_main", production = '
                                   '"a_prod"}')
        schemas[default] = raw
    elif isinstance(raw, Mapping):
        schemas = {str(k): v for k, v in raw.items()}
    elif raw is not None:
        raise ConfigError(f"{CONFIG_FILE}: sync.schema must be a string or a table")
    for value in schemas.values():
        if not isinstance(value, str) or not re.match(_SCHEMA_RE, value) or \
                value.startswith("pg_") or value == "maestro":
            raise ConfigError(f"{CONFIG_FILE}: sync.schema {value!r} is not a usable schema "
                              "name", hint="lower-case letters, digits and _, at most 63, "
                                           "not pg_* or maestro")
    if branch:
        return {"branch": branch, "branches": (), "mirror_name": name, "schemas": schemas}
    return {"branch": default, "branches": branches, "mirror_name": name, "schemas": schemas}


def _sets(section: Mapping[str, Any]) -> dict[str, Any]:
    static_dir, static_url = section.get("static_dir"), section.get("static_url", "/static")
    if static_dir is not None and not (
            isinstance(static_dir, str) and static_dir.strip("/").startswith("persona_sets/")
            and ".." not in static_dir.split("/")):
        raise ConfigError(f"{CONFIG_FILE}: sets.static_dir must be a folder under persona_sets/",
                          hint='e.g. static_dir = "persona_sets/static" (maestro reads '
                               "content folders only)")
    if not isinstance(static_url, str) or not static_url.startswith("/"):
        raise ConfigError(f"{CONFIG_FILE}: sets.static_url must be a URL path such as /static")
    return {"sets_static_dir": static_dir.strip("/") if static_dir else None,
            "sets_static_url": static_url}


def load_settings(
    repo_path: Path | str | None = None,
    *,
    database_url: str | None = None,
    branch: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve settings for the repository at `repo_path` (default: the current directory).

    Explicit arguments (the CLI's flags) win over the environment (`DATABASE_URL`,
    `MAESTRO_BRANCH`, `MAESTRO_AUTHOR_NAME`, `MAESTRO_AUTHOR_EMAIL`), which wins over
    `maestro.toml`, which wins over the defaults.
    """
    env = os.environ if environ is None else environ
    root = Path(repo_path).resolve() if repo_path is not None else find_root(Path.cwd())
    data = _read_toml(root / CONFIG_FILE)
    sync = _section(data, "sync")
    hooks = _section(data, "hooks")
    search = _section(data, "search")
    cache = _section(data, "cache")
    index_dir = search.get("index_dir")
    webhooks = _section(data, "webhooks")
    secret_env = webhooks.get("secret_env", "MAESTRO_WEBHOOK_SECRET")
    if not isinstance(secret_env, str) or not secret_env:
        raise ConfigError(f"{CONFIG_FILE}: webhooks.secret_env must be a variable name")
    webhook_urls = _str_tuple(webhooks, "urls")
    for url in webhook_urls:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"{CONFIG_FILE}: webhook URL {url!r} is not http(s)")
    return Settings(
        repo_path=root,
        database_url=database_url or env.get("DATABASE_URL") or data.get("database_url") or None,
        branch_is_default=not (branch or env.get("MAESTRO_BRANCH")),
        **_sync(sync, branch or env.get("MAESTRO_BRANCH")),
        limits=_limits(_section(data, "limits")),
        rule_severity=_rules(_section(data, "rules")),
        hook_commands=_str_tuple(hooks, "commands"),
        hook_entry_points=_str_tuple(hooks, "entry_points"),
        index_dir=Path(index_dir) if isinstance(index_dir, str) else None,
        cache_size=int(cache.get("size", 1024)),
        cache_ttl_seconds=float(cache.get("ttl_seconds", 300.0)),
        author_name=env.get("MAESTRO_AUTHOR_NAME") or None,
        author_email=env.get("MAESTRO_AUTHOR_EMAIL") or None,
        webhook_urls=webhook_urls,
        webhook_secret=env.get(secret_env) or None,
        owners=_section(data, "owners", 'e.g. [owners] acme = ["@acme/persona-reviewers"]'),
        **_sets(_section(data, "sets")),
    )
