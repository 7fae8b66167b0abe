"""Working-tree authoring: `maestro init`, `maestro new`, `maestro fmt` and the templates.

These functions write files in a working tree and never commit: the user reviews and commits
(or the library's `Repository` writes commit for them). Every file is written to a temporary
file beside it and `os.replace`d, so an interrupted write never leaves half a persona.

Templates come from the repository's `templates/` folder first, then from the templates built
into the package (`maestro_git/builtin_templates/`, which `maestro init` copies into a new
repository), so a repository can override a built-in template by name.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from maestro_git.atomic import write_atomic
from maestro_git.core.formats import NAME_RE, classify, parse_file
from maestro_git.core.models import Severity, SourceFile, Template
from maestro_git.core.rules.overrides import SCAFFOLD_LINES
from maestro_git.core.rules.validate import validate_file
from maestro_git.errors import (
    GitError,
    MaestroError,
    NotFoundError,
    UsageError,
    ValidationFailed,
)
from maestro_git.git.worktree import read_worktree
from maestro_git.settings import CONFIG_FILE, Limits, Settings

__all__ = [
    "BUILTIN_TEMPLATES_DIR",
    "DEFAULT_CONFIG",
    "FormatChange",
    "FormatReport",
    "InitResult",
    "TemplateEntry",
    "builtin_templates",
    "find_template",
    "format_files",
    "init_repository",
    "list_templates",
    "new_persona",
    "require_persona_repository",
]

DEFAULT_CONFIG = """\
# maestro.toml: settings of this persona repository. Every key is optional; the values
# below are the defaults. Precedence: command-line flag > environment > this file > default.

[limits]
max_content_bytes = 50000      # persona body size in bytes (guards against token overflow)
max_tokens = 12500             # estimated tokens of the body (1 per 4 ASCII chars, 1 per other char)
max_file_bytes = 1000000       # any file; larger files are refused before parsing
max_frontmatter_bytes = 16384  # the YAML frontmatter of a persona or template
max_tags = 20                  # tags per persona
max_inheritance_depth = 8      # longest `extends` chain

[rules]
# Severity per rule id: "error", "warning", "info" or "off" (`maestro check` lists rule ids).
# non-instruction-content = "warning"

[sync]
branch = "main"                # the branch `maestro sync` and the daemon mirror

[hooks]
commands = []                  # run after each mirrored commit, the event JSON on stdin
entry_points = []              # "module:function", or names in the maestro_git.hooks group

[search]
index_dir = ".maestro/index"   # the Whoosh index (local state, git-ignored)

[cache]
size = 1024                    # entries in the Python client's in-process cache
ttl_seconds = 300
"""

# Shipped as package data (pyproject: builtin_templates/*.md); `maestro init` copies them.
BUILTIN_TEMPLATES_DIR = Path(__file__).resolve().parents[1] / "builtin_templates"
_GITIGNORE_LINES = (".maestro/",)
_KEEP = ".gitkeep"


# -- templates ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TemplateEntry:
    """A template and where it comes from: the repository's `templates/` or the package."""

    template: Template
    source: Literal["repository", "builtin"]


def builtin_templates() -> dict[str, bytes]:
    """The templates shipped with maestro-git: name -> file bytes."""
    return {entry.name[:-3]: entry.read_bytes()
            for entry in sorted(BUILTIN_TEMPLATES_DIR.glob("*.md"))}


def _parse_template(path: str, data: bytes, limits: Limits) -> Template | None:
    record = parse_file(SourceFile(path=path, data=data), limits).record
    return record if isinstance(record, Template) else None


def list_templates(root: Path, limits: Limits | None = None) -> list[TemplateEntry]:
    """Every template available in the repository at `root`, by name.

    A template in `<root>/templates/` hides the built-in template of the same name. Files
    that do not parse are left out (`maestro check` reports them).
    """
    limits = limits or Limits()
    found: dict[str, TemplateEntry] = {}
    for name, data in builtin_templates().items():
        template = _parse_template(f"templates/{name}.md", data, limits)
        if template is not None:
            found[name] = TemplateEntry(template, "builtin")
    folder = root / "templates"
    if folder.is_dir():
        for src in read_worktree(root, [folder]):
            if src.is_symlink or classify(src.path) is None:
                continue
            template = _parse_template(src.path, src.data, limits)
            if template is not None:
                found[template.name] = TemplateEntry(template, "repository")
    return [found[name] for name in sorted(found)]


def find_template(root: Path, name: str, limits: Limits | None = None) -> Template:
    """The template called `name` (the repository's first, then the built-in one)."""
    entries = {e.template.name: e.template for e in list_templates(root, limits)}
    if name not in entries:
        raise NotFoundError(f"no template named '{name}'",
                            hint="available: " + ", ".join(sorted(entries)))
    return entries[name]


# -- init ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class InitResult:
    """What `init_repository` did."""

    root: Path
    created: tuple[str, ...]  # repository-relative paths created or changed, in order
    is_git_repo: bool  # whether `root` is inside a git repository (always True afterwards)
    git_initialized: bool = False  # whether this call ran `git init`


def init_repository(path: Path, branch: str = "main") -> InitResult:
    """Scaffold a persona repository at `path`; existing files are never overwritten.

    Creates `personas/` and `persona_sets/` (each with a `.gitkeep`), `templates/` with the
    built-in templates, `maestro.toml` with every default written out and commented, and adds
    `.maestro/` (local state) to `.gitignore`. Running it again only fills in what is missing.
    When `path` is not inside a git repository yet, it runs `git init` with `branch` as the
    initial branch (`git_initialized` in the result says so); nothing is committed.
    """
    root = path.resolve()
    if root.exists() and not root.is_dir():
        raise UsageError(f"{path} exists and is not a folder")
    root.mkdir(parents=True, exist_ok=True)
    created: list[str] = []

    def create(rel: str, data: bytes) -> None:
        target = root / rel
        if not target.exists() and not target.is_symlink():
            write_atomic(target, data)
            created.append(rel)

    for folder in ("personas", "persona_sets"):
        create(f"{folder}/{_KEEP}", b"")
    for name, data in builtin_templates().items():
        create(f"templates/{name}.md", data)
    create(CONFIG_FILE, DEFAULT_CONFIG.encode())
    gitignore = root / ".gitignore"
    existing = gitignore.read_text(encoding="utf-8") if gitignore.is_file() else ""
    present = {line.strip() for line in existing.splitlines()}
    missing = [line for line in _GITIGNORE_LINES if line not in present
               and line.rstrip("/") not in present]
    if missing:
        prefix = existing if not existing or existing.endswith("\n") else existing + "\n"
        header = "" if existing else "# maestro: local state (search index, caches)\n"
        write_atomic(gitignore, (prefix + header + "\n".join(missing) + "\n").encode())
        created.append(".gitignore")
    try:
        from maestro_git.git.repo import GitRepo  # pygit2: only for init
        from maestro_git.git.repo import init_repository as init_git

        GitRepo(root)
        initialized = False
    except GitError:
        init_git(root, branch)
        initialized = True
    return InitResult(root, tuple(created), True, initialized)


def require_persona_repository(root: Path) -> None:
    """Refuse (`UsageError`) a folder that is not a persona repository: one without
    `maestro.toml` and without any of `personas/`, `persona_sets/` and `templates/`."""
    markers = (CONFIG_FILE, "personas", "persona_sets", "templates")
    if not root.is_dir():
        raise UsageError(f"{root}: no such folder", hint="pass --repo with a persona repository")
    if not any((root / m).exists() for m in markers):
        raise UsageError(f"{root} is not a persona repository (no maestro.toml, personas/, "
                         "persona_sets/ or templates/)",
                         hint="run 'maestro init' there, or pass --repo with a persona "
                              "repository")


# -- new ----------------------------------------------------------------------------------


def _split_key(key: str) -> tuple[str, str]:
    owner, sep, name = key.partition("/")
    if not sep or not owner or not name:
        raise UsageError(f"'{key}' is not a persona key",
                         hint="write OWNER/NAME, e.g. acme/code_reviewer")
    for label, value in (("owner", owner), ("name", name)):
        if not NAME_RE.match(value):
            raise UsageError(
                f"{label} '{value}' must be 1-100 characters of a-z, 0-9, _ and -",
                hint=f"use lowercase, e.g. {value.lower().replace(' ', '_') or 'my_persona'}")
    return owner, name


def _title(name: str) -> str:
    return " ".join(word.capitalize() for word in name.replace("-", "_").split("_") if word)


def _blank_body(display_name: str) -> str:
    return (
        f"# {display_name}\n\n"
        f"You are {display_name}. Describe here who you are, whom you help and what you help "
        "them achieve.\n\n"
        "## Core Principles\n"
        f"{SCAFFOLD_LINES[0]}\n\n"
        "## Communication Style\n"
        f"{SCAFFOLD_LINES[1]}\n"
    )


def _child_body(display_name: str, parent: str) -> str:
    """A child's first body: one appended section, no title, no preamble, no section named
    like the parent's (those would replace the parent's, see `inherit`)."""
    return (
        f"## {display_name}\n\n"
        f"- You are {display_name}. Everything {parent} says applies; write below only what "
        "this persona adds. A section titled like one of the parent's replaces it.\n"
    )


def new_persona(
    root: Path,
    key: str,
    *,
    template: str | None = None,
    display_name: str | None = None,
    description: str | None = None,
    tags: Sequence[str] | None = None,
    extends: str | None = None,
    settings: Settings | None = None,
    new_id: str | None = None,
) -> Path:
    """Write `personas/<owner>/<name>.md` for `key` and return its path.

    The new persona gets a fresh UUID `id`, version "1.0.0" and, from `template` (when given),
    its description, tags, body and `metadata: {category, template}`; the arguments override
    them. Refuses an invalid key, a key that exists, an unknown template and a parent
    (`extends`) that does not exist. The file is validated before it is written.
    """
    owner, name = _split_key(key)
    limits = settings.limits if settings is not None else Limits()
    target = root / "personas" / owner / f"{name}.md"
    if target.exists() or target.is_symlink():
        raise UsageError(f"persona {key} already exists ({target.relative_to(root)})",
                         hint="choose another name, or edit the existing file")
    if extends is not None:
        _split_key(extends)
        if not (root / "personas" / f"{extends}.md").is_file():
            raise NotFoundError(f"parent persona '{extends}' does not exist",
                                hint="create it first, or check the OWNER/NAME spelling")
    fields: dict[str, Any] = {"id": new_id or str(uuid.uuid4())}
    display = display_name or _title(name)
    fields["display_name"] = display
    body = _blank_body(display) if extends is None else _child_body(display, extends)
    if template is not None:
        tpl = find_template(root, template, limits)
        fields["description"] = tpl.description
        fields["tags"] = list(tpl.tags)
        metadata: dict[str, Any] = {}
        if tpl.category:
            metadata["category"] = tpl.category
        metadata["template"] = tpl.name
        fields["metadata"] = metadata
        body = tpl.body
    if description is not None:
        fields["description"] = description
    if tags is not None:
        fields["tags"] = list(tags)
    fields["version"] = "1.0.0"
    fields["extends"] = extends
    if not fields.get("tags"):
        fields.pop("tags", None)
    rel = f"personas/{owner}/{name}.md"
    from maestro_git.core.writeback import render_document  # ruamel.yaml: only for writes

    data = render_document(fields, body)
    _refuse_invalid(rel, data, settings or Settings(repo_path=root))
    write_atomic(target, data)
    return target


def _refuse_invalid(rel: str, data: bytes, settings: Settings) -> None:
    src = SourceFile(path=rel, data=data)
    parsed = parse_file(src, settings.limits)
    problems = [*parsed.problems, *validate_file(parsed, src, settings)]
    errors = [p for p in problems if p.severity is Severity.ERROR]
    if errors:
        first = errors[0]
        raise ValidationFailed(f"the new persona would not validate: {first.message}", errors,
                               hint=first.fix or None)


# -- fmt ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FormatChange:
    """One file `maestro fmt` changed (or would change), or could not format."""

    path: str
    changes: tuple[str, ...] = ()
    error: str | None = None


@dataclass(frozen=True)
class FormatReport:
    """The outcome of `format_files`: how many files were looked at, and the changes."""

    checked: int
    changes: tuple[FormatChange, ...]
    written: bool  # False in check mode

    @property
    def changed(self) -> tuple[FormatChange, ...]:
        return tuple(c for c in self.changes if c.error is None)

    @property
    def failed(self) -> tuple[FormatChange, ...]:
        return tuple(c for c in self.changes if c.error is not None)


def format_files(root: Path, paths: Iterable[Path] | None = None, *,
                 check: bool = False) -> FormatReport:
    """Normalise persona and template files (see `writeback.format_document`).

    `paths` limits the run to those files or folders (default: the whole repository). With
    `check=True` nothing is written: the report says what would change. Symlinks are never
    followed or written through. Files whose frontmatter cannot be read are reported with an
    `error` and left untouched.
    """
    root = root.resolve()
    wanted = list(paths) if paths is not None else None
    tops = [Path(p) if Path(p).is_absolute() else root / p for p in wanted] if wanted else None
    for top in tops or ():
        if not top.resolve().is_relative_to(root):
            raise UsageError(f"{top} is outside the repository {root}")
    from maestro_git.core import writeback  # ruamel.yaml: only for the commands that write

    checked = 0
    changes: list[FormatChange] = []
    for src in read_worktree(root, tops):
        loc = classify(src.path)
        if src.is_symlink or loc is None or loc.kind == "persona_set":
            continue
        checked += 1
        try:
            new, what = writeback.format_document(src.data, str(uuid.uuid4()))
        except MaestroError as err:
            changes.append(FormatChange(src.path, error=err.message))
            continue
        if new != src.data:
            if not check:
                write_atomic(root / src.path, new)
            changes.append(FormatChange(src.path, what))
    return FormatReport(checked, tuple(changes), written=not check)

