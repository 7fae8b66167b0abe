"""Validation: the rules a file or a snapshot must pass, as `Problem` values.

Entry points, all pure (bytes and records in, problems out):
- `validate_file(parsed, source, settings)`: rules that need only one file (names, ids,
  semver, tags, field lengths, symlinks, misplaced files), plus the body and text rules of
  `content_rules` (sizes, tokens, hidden Unicode, dangerous HTML, instruction content) and
  the set rules of `set_rules` (duplicate members, scores, image paths).
- `cross_file_problems(view, path, settings)`: rules across files for one path (duplicate
  keys and ids, missing parents, inheritance cycles and depth, set images that do not exist).
  `snapshot` calls it only for the paths a change can affect, so mirroring a long history
  does not re-check 10,000 personas per commit.
- `validate_snapshot(snapshot, sources, settings)`: the cross-file rules over every file.
- `apply_severities(problems, settings)`: `[rules]` from maestro.toml (a rule set to "off"
  is dropped); `unknown_rules(settings)`: the `[rules]` ids that no rule has.

Every rule has a stable id in `RULES` (the catalogue lives in `rules`, re-exported here) with
its default severity and a one-line summary; the README's rule table is checked against it by
the tests. Parse-time rules (`yaml-syntax`, `frontmatter-type`, ...) are raised by `formats`
but listed there too.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence, Set
from typing import TYPE_CHECKING, Protocol

from maestro_git.core import inherit
from maestro_git.core.chars import HIDDEN, UNSTORABLE, char_name
from maestro_git.core.formats import NAME_RE, ParsedFile
from maestro_git.core.models import (
    EntityKind,
    Persona,
    PersonaSet,
    Problem,
    Severity,
    SourceFile,
    Template,
)
from maestro_git.core.rules import content as content_rules
from maestro_git.core.rules.catalogue import RULES
from maestro_git.core.rules.catalogue import problem as _p
from maestro_git.core.rules.content import estimate_tokens
from maestro_git.core.rules.overrides import placeholder_overrides
from maestro_git.core.rules.sets import image_target, set_problems
from maestro_git.settings import Settings

if TYPE_CHECKING:
    from maestro_git.core.snapshot import Snapshot

__all__ = [
    "RULES",
    "CrossView",
    "apply_severities",
    "cross_file_problems",
    "estimate_tokens",
    "image_target",
    "unknown_rules",
    "validate_file",
    "validate_snapshot",
]

MAX_DISPLAY_NAME = 200
MAX_DESCRIPTION = 1000
TAG_RE = re.compile(r"^[a-z0-9][a-z0-9._+-]{0,49}$")
SEMVER_RE = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$")
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                     r"[0-9a-fA-F]{12}$")

_CONTENT_DIRS = ("personas", "templates", "persona_sets")
_ALLOWED_EXTRA = frozenset({"README.md", "README", "CODEOWNERS", ".gitkeep", ".gitignore"})


class CrossView(Protocol):
    """What the cross-file rules read (a `Snapshot` provides it)."""

    @property
    def files(self) -> Mapping[str, ParsedFile]: ...
    @property
    def personas(self) -> Mapping[str, Persona]: ...
    @property
    def asset_paths(self) -> Set[str]: ...
    def paths_for_key(self, kind: EntityKind, key: str) -> Sequence[str]: ...
    def paths_for_id(self, ident: str) -> Sequence[str]: ...


# -- single-file rules ----------------------------------------------------------------------

def _symlink(source: SourceFile, parsed: ParsedFile) -> list[Problem]:
    target = source.link_target or ""
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(source.path), target))
    if target.startswith("/") or joined == ".." or joined.startswith("../") or (
            len(target) > 1 and target[1] == ":"):
        return [_p("symlink-escape", source.path,
                   f"symlink points outside the repository (to '{target}')",
                   "replace the link with the file itself", line=1)]
    if parsed.kind is not None:
        return [_p("symlink", source.path,
                   f"is a symlink to '{target}'; maestro does not read links",
                   "replace the link with a copy, or use `extends` to share instructions",
                   line=1)]
    if _is_asset(source.path):
        return []  # an image of a set, inside the repository: as good as the file
    return [_p("symlink", source.path,
               f"is a symlink to '{target}'; maestro does not follow links, so nothing "
               "through it is read or checked", "replace the link with the folder or file "
               "itself (a copy), or remove it", line=1)]


def _is_asset(path: str) -> bool:
    """A set's image or other file: `persona_sets/<set>/...`, not JSON, Markdown or YAML."""
    parts = path.split("/")
    return parts[0] == "persona_sets" and len(parts) >= 3 and \
        not parts[-1].endswith((".json", ".md", ".yaml", ".yml"))


def _misplaced(path: str) -> list[Problem]:
    parts = path.split("/")
    name = parts[-1]
    if name in _ALLOWED_EXTRA or parts[0] not in _CONTENT_DIRS:
        return []
    hidden = next((part for part in parts[1:] if part.startswith(".")), None)
    if hidden is not None:
        what = "file" if hidden == name else "folder"
        return [_p("hidden-file", path,
                   f"is hidden (the {what} '{hidden}' starts with a dot): maestro does not "
                   "read it, and file browsers and reviews easily miss it",
                   f"rename the {what} without the leading dot, or delete it", line=1)]
    expected = {"personas": "personas/<owner>/<name>.md", "templates": "templates/<name>.md",
                "persona_sets": "persona_sets/<set>.json or persona_sets/<set>/set.json"}
    if _is_asset(path) or (parts[0] == "persona_sets" and not name.endswith(
            (".json", ".md", ".yaml", ".yml"))):
        return []  # images and other assets of a set
    return [_p("misplaced-file", path, f"is not read by maestro (expected {expected[parts[0]]})",
               f"move it to {expected[parts[0]]}, or out of {parts[0]}/", line=1)]


def _path_problems(path: str) -> list[Problem]:
    """`hidden-unicode` for invisible characters in a file or folder name, `unstorable-text`
    for a name that is not UTF-8."""
    if path.isascii() and path.isprintable():
        return []
    problems: list[Problem] = []
    if UNSTORABLE.search(path):  # git names may be any bytes; pygit2 escapes non-UTF-8 ones
        shown = path.encode("utf-8", "surrogateescape" if all(
            not 0xD800 <= ord(c) < 0xDC80 for c in path) else "surrogatepass").decode(
            "utf-8", "backslashreplace")
        problems.append(_p("unstorable-text", path,
                           f"the path '{shown}' is not valid UTF-8: PostgreSQL cannot store "
                           "it, and tools show it differently", "rename it in UTF-8",
                           line=1))
    chars = dict.fromkeys(m.group(0) for m in HIDDEN.finditer(path))
    if not chars:
        return problems
    names = ", ".join(char_name(c) for c in chars)
    plural = "s" if len(chars) > 1 else ""
    return [*problems, _p("hidden-unicode", path,
               f"the path has hidden Unicode character{plural} {names}: a file or folder "
               "name can pass for another one in reviews", "rename it without the invisible "
               "characters", line=1)]


def _document_rules(rec: Persona | Template, lines: Mapping[str, int],
                    settings: Settings) -> list[Problem]:
    limits = settings.limits
    path = rec.path
    problems: list[Problem] = []
    if rec.id is None:
        problems.append(_p("missing-id", path, "has no id",
                           "run `maestro fmt` to assign a stable UUID", line=1))
    elif not UUID_RE.match(rec.id):
        problems.append(_p("invalid-id", path, f"id '{rec.id}' is not a UUID",
                           "remove the id and run `maestro fmt` to assign one",
                           line=lines.get("id")))
    if not SEMVER_RE.match(rec.version):
        problems.append(_p("invalid-semver", path,
                           f"version '{rec.version}' is not semver (MAJOR.MINOR.PATCH)",
                           'write it as "1.0.0"', line=lines.get("version")))
    if len(rec.tags) > limits.max_tags:
        problems.append(_p("too-many-tags", path,
                           f"has {len(rec.tags)} tags, over the limit of {limits.max_tags}",
                           "keep the most useful tags, or raise limits.max_tags",
                           line=lines.get("tags")))
    seen: set[str] = set()
    for tag in rec.tags:
        if tag in seen:
            problems.append(_p("invalid-tag", path, f"tag '{tag}' is listed twice",
                               "remove the repeated tag", line=lines.get("tags")))
        elif not TAG_RE.match(tag):
            suggestion = re.sub(r"[^a-z0-9._+-]+", "-", tag.lower()).strip("-._+")[:50]
            problems.append(_p(
                "invalid-tag", path,
                f"tag '{tag}' must be 1-50 characters of a-z, 0-9, '.', '_', '+', '-'",
                f"write it as '{suggestion or 'tag'}'", line=lines.get("tags")))
        seen.add(tag)
    for field, value, limit in (("display_name", rec.display_name, MAX_DISPLAY_NAME),
                                ("description", rec.description, MAX_DESCRIPTION)):
        if value is not None and len(value) > limit:
            problems.append(_p("field-too-long", path,
                               f"{field} is {len(value)} characters, over {limit}",
                               f"shorten {field}; long text belongs in the body",
                               line=lines.get(field)))
    problems.extend(content_rules.body_problems(rec, limits))
    return problems


def validate_file(parsed: ParsedFile, source: SourceFile, settings: Settings) -> list[Problem]:
    """Single-file rules beyond what parsing already found."""
    named = _path_problems(parsed.path)
    if source.is_symlink:
        return named + _symlink(source, parsed)
    if parsed.kind is None:
        return named + _misplaced(parsed.path)
    problems: list[Problem] = named
    rec = parsed.record
    loc = parsed.location
    assert loc is not None  # parsed.kind is set only for classified paths
    names = [("owner", loc.owner), ("name", loc.name)] if loc.owner else [("name", loc.name)]
    for label, value in names:
        if value is not None and not NAME_RE.match(value):
            what = "folder" if label == "owner" or parsed.path.endswith("/set.json") else "file"
            suggestion = re.sub(r"[^a-z0-9_-]+", "_", value.lower())[:100] or "name"
            problems.append(_p(
                "invalid-name", parsed.path,
                f"{label} '{value}' must be 1-100 characters of a-z, 0-9, _ and -",
                f"rename the {what} in lowercase, e.g. '{suggestion}'", line=1))
    if any(p.rule in ("file-too-large", "binary-file", "invalid-utf8") for p in parsed.problems):
        return problems
    text = parsed.text
    if text is None:
        return problems
    problems.extend(content_rules.hidden_unicode(parsed.path, text))
    if rec is not None and "\\" in text:
        end = rec.body_line if isinstance(rec, Persona | Template) else None
        if end is None or "\\" in text[:_offset_of_line(text, end)]:
            problems.extend(content_rules.decoded_problems(
                parsed.path, text, _decoded_values(rec, parsed.field_lines), end))
    if isinstance(rec, Persona | Template):
        problems.extend(_document_rules(rec, parsed.field_lines, settings))
    elif isinstance(rec, PersonaSet):
        problems.extend(set_problems(rec, parsed.field_lines, text, settings.sets_static))
    return problems


def _offset_of_line(text: str, line: int) -> int:
    """Offset of the start of 1-based `line` in `text` (its length when there is none)."""
    at = 0
    for _ in range(line - 1):
        at = text.find("\n", at) + 1
        if at == 0:
            return len(text)
    return at


_NOT_DECODED = frozenset({"name", "path", "owner", "body", "body_line", "content_hash",
                          "size_bytes", "members", "metadata"})


def _decoded_values(rec: Persona | Template | PersonaSet, lines: Mapping[str, int]
                    ) -> list[tuple[str, object, int | None]]:
    """(label, value, file line) of every value a record took from decoded frontmatter or
    JSON, for `content_rules.decoded_problems`."""
    out: list[tuple[str, object, int | None]] = []
    for field in type(rec).model_fields:
        if field not in _NOT_DECODED:
            value = getattr(rec, field)
            if value is not None:
                label = "the set's 'name'" if field == "title" else f"'{field}'"
                out.append((label, value, lines.get(field)))
    meta_line = lines.get("metadata")
    for key, value in rec.metadata.items():
        out.append((f"'{key}'", {key: value}, lines.get(key, meta_line)))
    if isinstance(rec, PersonaSet):
        for index, member in enumerate(rec.members):
            out.append((f"personas[{index}]", member.persona_data,
                        lines.get(f"members[{index}]")))
    return out


# -- cross-file rules -----------------------------------------------------------------------

def cross_file_problems(view: CrossView, path: str, settings: Settings) -> list[Problem]:
    """Cross-file rules for the file at `path` (which must be in `view.files`)."""
    parsed = view.files[path]
    rec = parsed.record
    problems: list[Problem] = []
    loc = parsed.location
    if loc is not None:
        same = view.paths_for_key(loc.kind, loc.key)
        if len(same) > 1:
            others = ", ".join(p for p in same if p != path)
            problems.append(_p("duplicate-key", path,
                               f"{loc.kind.replace('_', ' ')} '{loc.key}' is also defined by "
                               f"{others}", "keep one file per key; delete or rename the "
                               "other", line=1))
    if isinstance(rec, Persona | Template) and rec.id:
        same = view.paths_for_id(rec.id)
        if len(same) > 1:
            others = ", ".join(p for p in same if p != path)
            problems.append(_p("duplicate-id", path, f"id {rec.id} is also used by {others}",
                               "give the copy a new id: delete its `id` line and run "
                               "`maestro fmt`", line=parsed.field_lines.get("id")))
    if isinstance(rec, Persona) and rec.extends and view.personas.get(rec.key) is rec:
        problems.extend(_inheritance(view, rec, parsed.field_lines.get("extends"), settings))
        problems.extend(placeholder_overrides(rec, view.personas,
                                              settings.limits.max_inheritance_depth))
    if isinstance(rec, PersonaSet):
        assets = view.asset_paths
        for index, member in enumerate(rec.members):
            if not member.image_url:
                continue
            target, reason = image_target(path, member.image_url, settings.sets_static)
            if target is not None and reason is None and target not in assets:
                problems.append(_p("set-image-missing", path,
                                   f"image_url '{member.image_url}' of '{member.name}' does "
                                   f"not exist ({target})",
                                   "add the image file to the repository, or fix the path",
                                   line=parsed.field_lines.get(f"members[{index}]")))
    return problems


def _inheritance(view: CrossView, rec: Persona, line: int | None,
                 settings: Settings) -> list[Problem]:
    max_depth = settings.limits.max_inheritance_depth
    found = inherit.ancestry(rec.key, view.personas, max_depth)
    if found.issue is None:
        return []
    rule, fix = {
        "missing": ("missing-parent", "create that persona or correct `extends` (owner/name)"),
        "cycle": ("inheritance-cycle", "remove `extends` from one persona of the cycle"),
        "depth": ("inheritance-depth",
                  f"flatten the chain to at most {max_depth} extends links, or raise "
                  "limits.max_inheritance_depth"),
    }[found.issue]
    if found.issue == "missing" and found.via == rec.key:
        message = f"extends '{rec.extends}', which does not exist"
        if "/" not in (rec.extends or ""):
            fix = "write the parent's key as owner/name, e.g. 'acme/base'"
    else:
        message = found.describe()
    return [_p(rule, rec.path, message, fix, line=line)]


def validate_snapshot(snapshot: Snapshot, sources: Mapping[str, SourceFile],
                      settings: Settings) -> list[Problem]:
    """The cross-file rules over every file of `snapshot` (`sources` is not needed: the
    rules read parse results only; it is kept for callers of the first version)."""
    return [p for path in snapshot.files for p in cross_file_problems(snapshot, path, settings)]


def unknown_rules(settings: Settings) -> list[str]:
    """Rule ids configured in maestro.toml's `[rules]` that no rule has (typos), sorted."""
    return sorted(set(settings.rule_severity) - set(RULES))


def apply_severities(problems: Iterable[Problem], settings: Settings) -> list[Problem]:
    """Problems with the severities configured in maestro.toml; rules set to "off" removed."""
    out: list[Problem] = []
    configured_all = settings.rule_severity
    for problem in problems:
        configured = configured_all.get(problem.rule)
        if configured == "off":
            continue
        if configured is not None and configured != problem.severity.value:
            problem = problem.model_copy(update={"severity": Severity(configured)})
        out.append(problem)
    return out
