"""The rule catalogue: pure functions from parsed files and snapshots to `Problem`s.

Entry points, all pure (bytes and records in, problems out):
- `validate_file(parsed, source, settings)`: rules that need only one file (names, ids,
  semver, tags, sizes, content, hidden Unicode, dangerous HTML, symlinks, set schema, ...).
- `cross_file_problems(view, path, settings)`: rules across files for one path (duplicate
  keys and ids, missing parents, inheritance cycles and depth, set images that do not exist).
  `snapshot` calls it only for the paths a change can affect, so mirroring a long history
  does not re-check 10,000 personas per commit.
- `validate_snapshot(snapshot, sources, settings)`: the cross-file rules over every file.
- `apply_severities(problems, settings)`: `[rules]` from maestro.toml (a rule set to "off"
  is dropped).

Every rule has a stable id in `RULES` with its default severity and a one-line summary; the
README's rule table is checked against it by the tests. Parse-time rules (`yaml-syntax`,
`frontmatter-type`, ...) are raised by `formats` but listed here too.

Heuristics, stated once:
- hidden Unicode: one compiled regex for zero-width and invisible characters, bidi
  embeddings/overrides/isolates, Unicode tag characters and supplementary variation
  selectors. A zero-width joiner between emoji (family emoji) or after an Arabic/Indic letter,
  and a zero-width non-joiner after an Arabic/Indic letter, are ordinary text and allowed; a
  byte-order mark is allowed only as the file's first character.
- dangerous HTML: Markdown bodies are parsed with markdown-it (never rewritten); `html_block`
  and `html_inline` tokens are searched for dangerous tags, `on*=` event handlers and
  `javascript:`/`vbscript:`/`data:` (non-image) URLs, and links/images for such URLs. Code
  spans and fences are not HTML tokens, so examples in code are fine. Bodies with no `<`, `&`
  or `script:`/`data:` are not parsed at all.
- instruction content: a body is taken for a system instruction when it has a Markdown
  heading or one of the phrases "you are", "you're", "your role", "your task", "your job",
  "your goal", "act as", "you will", "you should", "you must" (any case).
- tokens are estimated as one per 4 ASCII characters plus one per other character.
"""

from __future__ import annotations

import html
import math
import posixpath
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence, Set
from typing import TYPE_CHECKING, Any, Protocol

from markdown_it import MarkdownIt

from maestro_git import inherit
from maestro_git.formats import NAME_RE, ParsedFile, classify, decode_text
from maestro_git.models import (
    EntityKind,
    Persona,
    PersonaSet,
    Problem,
    Severity,
    SourceFile,
    Template,
)
from maestro_git.settings import Settings

if TYPE_CHECKING:
    from maestro_git.snapshot import Snapshot

__all__ = [
    "RULES",
    "CrossView",
    "apply_severities",
    "cross_file_problems",
    "estimate_tokens",
    "unknown_rules",
    "validate_file",
    "validate_snapshot",
]

E, W = Severity.ERROR, Severity.WARNING

# rule id -> (default severity, summary)
RULES: dict[str, tuple[Severity, str]] = {
    # reading files
    "file-too-large": (E, "a file is larger than limits.max_file_bytes"),
    "binary-file": (E, "a file contains NUL bytes"),
    "invalid-utf8": (E, "a file is not valid UTF-8"),
    "symlink-escape": (E, "a symlink points outside the repository"),
    "symlink": (W, "a persona, template or set is a symlink (not read; copy the file)"),
    "hidden-unicode": (E, "invisible or bidi-control characters (the rules-file backdoor)"),
    # names and paths
    "invalid-name": (E, "a name or owner uses characters outside [a-z0-9_-] or is too long"),
    "misplaced-file": (W, "a file in a content folder that maestro does not read"),
    "duplicate-key": (E, "two files map to the same key"),
    # frontmatter
    "frontmatter-too-large": (E, "frontmatter over limits.max_frontmatter_bytes"),
    "yaml-syntax": (E, "frontmatter is not valid YAML or is never closed"),
    "yaml-alias": (E, "frontmatter uses YAML anchors/aliases (alias bombs)"),
    "duplicate-field": (E, "a key appears twice in frontmatter or in a JSON object"),
    "frontmatter-type": (E, "a frontmatter field has the wrong type"),
    "name-mismatch": (E, "frontmatter name differs from the file name"),
    "owner-mismatch": (E, "frontmatter owner differs from the folder"),
    "missing-id": (W, "no `id` (run `maestro fmt` to assign one)"),
    "invalid-id": (E, "`id` is not a UUID"),
    "duplicate-id": (E, "two files share one `id`"),
    "invalid-semver": (E, "`version` is not semver (MAJOR.MINOR.PATCH)"),
    "too-many-tags": (E, "more tags than limits.max_tags"),
    "invalid-tag": (E, "a tag is empty, too long, repeated or outside [a-z0-9._+-]"),
    "field-too-long": (E, "display_name over 200 or description over 1000 characters"),
    # content
    "content-too-large": (E, "the body is over limits.max_content_bytes"),
    "too-many-tokens": (W, "the body's estimated tokens are over limits.max_tokens"),
    "empty-content": (E, "the body is empty (and nothing is inherited)"),
    "non-instruction-content": (W, "the body does not read as a system instruction"),
    "dangerous-html": (E, "script/iframe/event handlers/javascript: URLs outside code"),
    # inheritance
    "missing-parent": (E, "`extends` names a persona that does not exist"),
    "inheritance-cycle": (E, "`extends` links form a cycle"),
    "inheritance-depth": (E, "an `extends` chain longer than limits.max_inheritance_depth"),
    # persona sets
    "json-syntax": (E, "a persona set is not valid JSON"),
    "set-schema": (E, "a persona set does not have the persona-set shape"),
    "set-duplicate-member": (E, "two members of a set share a name"),
    "set-score-range": (E, "a score is not a finite number between 0 and 1"),
    "set-image-path": (E, "an image_url is not http(s) or leaves persona_sets/"),
    "set-image-missing": (E, "an image_url points at a file that does not exist"),
}

MAX_DISPLAY_NAME = 200
MAX_DESCRIPTION = 1000
MAX_HIDDEN_REPORTS = 20
TAG_RE = re.compile(r"^[a-z0-9][a-z0-9._+-]{0,49}$")
SEMVER_RE = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$")
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                     r"[0-9a-fA-F]{12}$")

_EMOJI = "\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff"
_JOINING_SCRIPTS = "\u0600-\u06ff\u0750-\u077f\u08a0-\u08ff\u0900-\u0dff\ua8e0-\ua8ff"
_HIDDEN = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b\u200e\u200f"
    "\u202a-\u202e\u2060-\u2064\u2066-\u206f\u3164\ufeff\uffa0\ufff9-\ufffb"
    "\U0001d173-\U0001d17a\U000e0000-\U000e007f\U000e0100-\U000e01ef]"
    f"|(?<![{_JOINING_SCRIPTS}])\u200c"
    f"|(?<![{_JOINING_SCRIPTS}])(?:(?<![{_EMOJI}\ufe0f\U0001f3fb-\U0001f3ff])\u200d"
    f"|\u200d(?![{_EMOJI}]))")

_SCHEME_HINT = re.compile(r"(?:script|data)\s*:")
_HIDDEN_HINT = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u2064\u2066-\u206f\u3164\ufeff\uffa0\ufff9-\ufffb\U0001d173-\U0001d17a"
    "\U000e0000-\U000e007f\U000e0100-\U000e01ef]")
_DANGEROUS_TAGS = frozenset({"script", "iframe", "frame", "frameset", "object", "embed",
                             "applet", "base", "meta", "form"})
_TAG = re.compile(r"<\s*([a-zA-Z][a-zA-Z0-9:-]*)((?:[^>\"']|\"[^\"]*\"|'[^']*')*)>?")
_EVENT_ATTR = re.compile(r"(?:^|[\s\"'/])(on[a-z]+)\s*=", re.IGNORECASE)
_URL_ATTR = re.compile(
    r"(?:^|[\s\"'/])(href|src|action|formaction|xlink:href|background|poster|data|srcdoc)"
    r"\s*=\s*(\"[^\"]*\"|'[^']*'|[^\s>]+)", re.IGNORECASE)
_INSTRUCTION = re.compile(
    r"^ {0,3}#{1,6}\s|\b(?:you are|you're|your (?:role|task|job|goal)|act as|you will|"
    r"you should|you must)\b", re.IGNORECASE | re.MULTILINE)
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):")
_CONTENT_DIRS = ("personas", "templates", "persona_sets")
_ALLOWED_EXTRA = frozenset({"README.md", "README", "CODEOWNERS", ".gitkeep", ".gitignore"})

_MD = MarkdownIt("commonmark", {"html": True})
# See every link, whatever its scheme: judging them is this module's job.
_MD.validateLink = lambda url: True  # type: ignore[method-assign]


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


def _p(rule: str, path: str, message: str, fix: str, line: int | None = None,
       column: int | None = None) -> Problem:
    return Problem(rule=rule, severity=RULES[rule][0], path=path, message=message, fix=fix,
                   line=line, column=column)


def estimate_tokens(text: str) -> int:
    """About one token per 4 ASCII characters plus one per other character."""
    if text.isascii():
        return math.ceil(len(text) / 4)
    other = sum(1 for ch in text if ord(ch) > 127)
    return math.ceil((len(text) - other) / 4) + other


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
    return []


def _misplaced(path: str) -> list[Problem]:
    parts = path.split("/")
    name = parts[-1]
    if name in _ALLOWED_EXTRA or name.startswith(".") or parts[0] not in _CONTENT_DIRS:
        return []
    expected = {"personas": "personas/<owner>/<name>.md", "templates": "templates/<name>.md",
                "persona_sets": "persona_sets/<set>.json or persona_sets/<set>/set.json"}
    if parts[0] == "persona_sets" and not name.endswith((".json", ".md", ".yaml", ".yml")):
        return []  # images and other assets of a set
    return [_p("misplaced-file", path, f"is not read by maestro (expected {expected[parts[0]]})",
               f"move it to {expected[parts[0]]}, or out of {parts[0]}/", line=1)]


_ESCAPE = re.compile(r"\\(?:u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8})")


def _escaped_hidden(path: str, text: str, end_line: int | None) -> list[Problem]:
    """Hidden characters written as `\\u202e` escapes (JSON strings, double-quoted YAML),
    which the readers decode. Only lines before `end_line` are looked at."""
    problems: list[Problem] = []
    for match in _ESCAPE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        if end_line is not None and line >= end_line:
            break
        code = int(match.group(0)[2:], 16)
        char = chr(code) if code < 0x110000 else ""
        if char and _HIDDEN_HINT.match(char):
            column = match.start() - (text.rfind("\n", 0, match.start()) + 1) + 1
            problems.append(_p(
                "hidden-unicode", path,
                f"escape {match.group(0)} writes hidden Unicode character U+{code:04X} "
                f"{unicodedata.name(char, 'INVISIBLE CHARACTER')}: invisible text can hide "
                "instructions from reviewers", "delete the escape", line=line, column=column))
            if len(problems) >= MAX_HIDDEN_REPORTS:
                break
    return problems


def _hidden_unicode(path: str, text: str) -> list[Problem]:
    if text.isascii() or not _HIDDEN_HINT.search(text):
        return []
    by_line: dict[int, tuple[int, list[str]]] = {}  # line -> (first column, characters)
    for match in _HIDDEN.finditer(text):
        start = match.start()
        char = text[start]
        if start == 0 and char == "\ufeff":
            continue
        line = text.count("\n", 0, start) + 1
        if line not in by_line:
            if len(by_line) >= MAX_HIDDEN_REPORTS:
                break
            by_line[line] = (start - (text.rfind("\n", 0, start) + 1) + 1, [])
        chars = by_line[line][1]
        if char not in chars:
            chars.append(char)
    problems = []
    for line, (column, chars) in by_line.items():
        names = ", ".join(f"U+{ord(c):04X} {unicodedata.name(c, 'INVISIBLE CHARACTER')}"
                          for c in chars)
        plural = "s" if len(chars) > 1 else ""
        problems.append(_p(
            "hidden-unicode", path,
            f"hidden Unicode character{plural} {names}: invisible text can hide instructions "
            "from reviewers", "delete the invisible characters (turn on 'show invisible "
            "characters' in your editor to see them)", line=line, column=column))
    return problems


def _dangerous_url(value: str) -> str | None:
    cleaned = re.sub(r"[\x00-\x20]+", "", html.unescape(value)).lower()
    for scheme in ("javascript:", "vbscript:"):
        if cleaned.startswith(scheme):
            return scheme
    if cleaned.startswith("data:") and not cleaned.startswith(
            ("data:image/png", "data:image/gif", "data:image/jpeg", "data:image/webp")):
        return "data:"
    return None


def _html_findings(fragment: str) -> list[tuple[str, str]]:
    """(what, needle) for each dangerous thing in an HTML fragment."""
    found: list[tuple[str, str]] = []
    for tag in _TAG.finditer(fragment):
        name, attrs = tag.group(1).lower(), tag.group(2)
        if name in _DANGEROUS_TAGS:
            found.append((f"<{name}> tag", tag.group(0)[:len(name) + 1]))
        for event in _EVENT_ATTR.finditer(attrs):
            found.append((f"event handler attribute '{event.group(1)}'", event.group(1)))
        for attr in _URL_ATTR.finditer(attrs):
            value = attr.group(2).strip("\"'")
            scheme = _dangerous_url(value)
            if attr.group(1).lower() == "srcdoc":
                found.append(("srcdoc attribute", attr.group(1)))
            elif scheme:
                found.append((f"{scheme} URL in '{attr.group(1)}'", attr.group(1)))
    return found


def _dangerous_html(path: str, body: str, body_line: int) -> list[Problem]:
    if "<" not in body and "&" not in body and not _SCHEME_HINT.search(body.lower()):
        return []
    lines = body.splitlines()
    problems: list[Problem] = []

    def report(what: str, needle: str, span: list[int] | None) -> None:
        start, end = (span[0], span[1]) if span else (0, len(lines))
        line, column = start, None
        for i in range(start, min(end, len(lines))):
            at = lines[i].lower().find(needle.lower())
            if at >= 0:
                line, column = i, at + 1
                break
        problems.append(_p(
            "dangerous-html", path, f"dangerous HTML outside code: {what}",
            "remove it, or put it in a code span or fenced code block if it is an example",
            line=body_line + line, column=column))

    for token in _MD.parse(body):
        if token.type == "html_block":
            for what, needle in _html_findings(token.content):
                report(what, needle, token.map)
        elif token.type == "inline" and token.children:
            for child in token.children:
                if child.type == "html_inline":
                    for what, needle in _html_findings(child.content):
                        report(what, needle, token.map)
                elif child.type in ("link_open", "image"):
                    attr = "href" if child.type == "link_open" else "src"
                    url = str(child.attrs.get(attr, ""))
                    scheme = _dangerous_url(url)
                    if scheme:
                        report(f"{scheme} URL in a {'link' if attr == 'href' else 'image'}",
                               scheme.rstrip(":"), token.map)
    return problems


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
    size = len(rec.body.encode("utf-8"))
    if size > limits.max_content_bytes:
        problems.append(_p("content-too-large", path,
                           f"body is {size} bytes, over the limit of {limits.max_content_bytes}",
                           "shorten the instruction, split it with `extends`, or raise "
                           "limits.max_content_bytes", line=rec.body_line))
    tokens = estimate_tokens(rec.body)
    if tokens > limits.max_tokens:
        problems.append(_p("too-many-tokens", path,
                           f"body is about {tokens} tokens, over the limit of "
                           f"{limits.max_tokens}", "shorten the instruction, or raise "
                           "limits.max_tokens", line=rec.body_line))
    inherits = isinstance(rec, Persona) and rec.extends
    if not rec.body.strip():
        if not inherits:
            problems.append(_p("empty-content", path, "has no instruction text after the "
                               "frontmatter", "write the system instruction in Markdown "
                               "below the frontmatter", line=rec.body_line))
    elif not inherits and not _INSTRUCTION.search(rec.body):
        problems.append(_p(
            "non-instruction-content", path,
            "body does not read as a system instruction (no heading, no 'You are ...')",
            "start with a '# Title' heading and address the model, e.g. 'You are a ...'",
            line=rec.body_line))
    problems.extend(_dangerous_html(path, rec.body, rec.body_line))
    return problems


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


def _set_rules(rec: PersonaSet, lines: Mapping[str, int], text: str) -> list[Problem]:
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


def validate_file(parsed: ParsedFile, source: SourceFile, settings: Settings) -> list[Problem]:
    """Single-file rules beyond what parsing already found."""
    if source.is_symlink:
        return _symlink(source, parsed)
    if parsed.kind is None:
        return _misplaced(parsed.path)
    problems: list[Problem] = []
    rec = parsed.record
    loc = classify(parsed.path)
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
    text = decode_text(source, settings.limits)
    if text is None:
        return problems
    problems.extend(_hidden_unicode(parsed.path, text))
    if "\\" in text:
        end = rec.body_line if isinstance(rec, Persona | Template) else None
        problems.extend(_escaped_hidden(parsed.path, text, end))
    if isinstance(rec, Persona | Template):
        problems.extend(_document_rules(rec, parsed.field_lines, settings))
    elif isinstance(rec, PersonaSet):
        problems.extend(_set_rules(rec, parsed.field_lines, text))
    return problems


# -- cross-file rules -----------------------------------------------------------------------

def cross_file_problems(view: CrossView, path: str, settings: Settings) -> list[Problem]:
    """Cross-file rules for the file at `path` (which must be in `view.files`)."""
    parsed = view.files[path]
    rec = parsed.record
    problems: list[Problem] = []
    loc = classify(path)
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
    if isinstance(rec, PersonaSet):
        assets = view.asset_paths
        for index, member in enumerate(rec.members):
            if not member.image_url:
                continue
            target, reason = image_target(path, member.image_url)
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
