"""Rules on a file's text and a persona's body: hidden Unicode, dangerous HTML, size, tokens,
and whether the body reads as a system instruction.

Pure: text and records in, `Problem`s out. Heuristics, stated once:
- hidden Unicode: one compiled regex for zero-width and invisible characters, bidi
  embeddings/overrides/isolates, Unicode tag characters and supplementary variation
  selectors. A zero-width joiner between emoji (family emoji) or after an Arabic/Indic letter,
  and a zero-width non-joiner after an Arabic/Indic letter, are ordinary text and allowed; a
  byte-order mark is allowed only as the file's first character. The same characters written
  as `\\u202e` escapes (JSON strings, double-quoted YAML) count too.
- dangerous HTML: Markdown bodies are parsed with markdown-it (never rewritten); `html_block`
  and `html_inline` tokens are searched for dangerous tags, `on*=` event handlers and
  `javascript:`/`vbscript:`/`data:` (non-image) URLs, and links/images for such URLs. Code
  spans and fences are not HTML tokens, so examples in code are fine. Bodies with no `<`, `&`
  or `script:`/`data:` are not parsed at all, and markdown-it is imported only for the first
  body that needs it (most bodies do not, and the import costs a CLI run time).
- instruction content: a body is taken for a system instruction when it has a Markdown
  heading or one of the phrases "you are", "you're", "your role", "your task", "your job",
  "your goal", "act as", "you will", "you should", "you must" (any case).
- tokens are estimated as one per 4 ASCII characters plus one per other character.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from functools import cache
from typing import TYPE_CHECKING, Any

from maestro_git.core.chars import (
    HIDDEN,
    HIDDEN_HINT,
    UNSTORABLE,
    char_name,
    char_references,
    escapes,
    may_hide,
)
from maestro_git.core.models import Persona, Problem, Template
from maestro_git.core.rules.catalogue import problem as _p
from maestro_git.settings import Limits

if TYPE_CHECKING:
    from markdown_it import MarkdownIt

__all__ = [
    "HIDDEN_CHARS",
    "MAX_HIDDEN_REPORTS",
    "body_problems",
    "dangerous_html",
    "decoded_problems",
    "estimate_tokens",
    "hidden_unicode",
    "reference_problems",
]

MAX_HIDDEN_REPORTS = 20

_HIDDEN = HIDDEN
_HIDDEN_HINT = HIDDEN_HINT
HIDDEN_CHARS = HIDDEN_HINT  # every character `hidden_unicode` may report (diffs show them)
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


@cache
def _markdown() -> MarkdownIt:
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": True})
    # See every link, whatever its scheme: judging them is this module's job.
    md.validateLink = lambda url: True  # type: ignore[method-assign]
    return md


def estimate_tokens(text: str) -> int:
    """About one token per 4 ASCII characters plus one per other character."""
    if text.isascii():
        return math.ceil(len(text) / 4)
    other = sum(1 for ch in text if ord(ch) > 127)
    return math.ceil((len(text) - other) / 4) + other


def _strings(value: Any) -> Iterator[str]:
    """Every string inside a decoded value: mapping keys and values, list items."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(key, str):
                yield key
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def _bad_chars(value: Any) -> dict[str, None]:
    """The hidden and unstorable characters inside `value`'s strings, in order found."""
    found: dict[str, None] = {}
    for text in _strings(value):
        if text.isascii() and text.isprintable():
            continue
        for match in HIDDEN.finditer(text):
            found.setdefault(match.group(0))
        for match in UNSTORABLE.finditer(text):
            found.setdefault(match.group(0))
    return found


def _position(text: str, start: int) -> tuple[int, int]:
    return (text.count("\n", 0, start) + 1, start - (text.rfind("\n", 0, start) + 1) + 1)


def _char_problem(path: str, char: str, what: str, fix_hidden: str, line: int | None,
                  column: int | None) -> Problem:
    """`hidden-unicode` or `unstorable-text` for `char`, which `what` writes."""
    if UNSTORABLE.match(char):
        if char == "\x00":
            reason = "PostgreSQL cannot store it (the mirror would refuse this file)"
            fix = f"delete the {what.split()[0]}"
        else:
            reason = "UTF-8 cannot encode it, so PostgreSQL cannot store it (the mirror " \
                     "would refuse this file)"
            fix = f"delete the {what.split()[0]}, or write the character itself (for " \
                  "JSON, a high surrogate escape followed by its low one)"
        return _p("unstorable-text", path, f"{what} writes {char_name(char)}: {reason}", fix,
                  line=line, column=column)
    return _p("hidden-unicode", path,
              f"{what} writes hidden Unicode character {char_name(char)}: invisible text can "
              "hide instructions from reviewers", fix_hidden, line=line, column=column)


def decoded_problems(path: str, text: str, values: Iterable[tuple[str, Any, int | None]],
                     end_line: int | None = None) -> list[Problem]:
    """`hidden-unicode` and `unstorable-text` problems of what a file's frontmatter or JSON
    decodes to: characters written as escapes (`\\u202e`, `\\udb40\\udc49`, YAML `\\xad`,
    `\\0`, `\\L`, ...), in values and in keys, which the text itself does not show.

    `values` are (label, decoded value, file line) per top-level field or member. The
    decoded values decide (so a `\\\\u200b`, an escaped backslash, is not reported, and an
    escaped family emoji is as fine as a typed one); each escape in the text (lines before
    `end_line`) that writes a reported character is named with its line and column, and a
    character no escape accounts for is reported at its field's line."""
    units = [(label, _bad_chars(value), line) for label, value, line in values]
    found: dict[str, tuple[str, int | None]] = {}
    for label, chars, line in units:
        for char in chars:
            found.setdefault(char, (label, line))
    if not found:
        return []
    head = text
    if end_line is not None:
        cut = -1
        for _ in range(end_line - 1):
            cut = text.find("\n", cut + 1)
            if cut < 0:
                break
        head = text if cut < 0 else text[:cut + 1]
    raw = {head[m.start()] for m in HIDDEN.finditer(head)
           if not (m.start() == 0 and head[0] == "\ufeff")}
    problems: list[Problem] = []
    located: set[str] = set()
    for code, start, spelling in escapes(head):
        char = chr(code)
        if char in found:
            located.add(char)
            if len(problems) < MAX_HIDDEN_REPORTS:
                line, column = _position(head, start)
                problems.append(_char_problem(path, char, f"escape {spelling}",
                                              "delete the escape", line, column))
    for char, (label, line) in found.items():
        if char not in located and char not in raw and len(problems) < MAX_HIDDEN_REPORTS:
            problems.append(_char_problem(path, char, f"the value of {label}",
                                          "delete the character", line, None))
    return problems


_MARKER = 0x100000  # plane 16, private use
_MAX_MARKERS = 0xFFFD
_MARKERS = re.compile("[\U00100000-\U0010fffd]")


def reference_problems(path: str, body: str, body_line: int) -> list[Problem]:
    """`hidden-unicode` problems of HTML character references in a Markdown body
    (`&#8203;`, `&#x202E;`, `&#xE0049;`, `&ZeroWidthSpace;`) that rendering turns into hidden
    characters: in text, links and raw HTML, not in code spans and fences (there they are
    shown as written). Bodies without such a reference are not rendered at all."""
    suspects = [(decoded, start, spelling) for decoded, start, spelling in char_references(body)
                if HIDDEN_HINT.search(decoded) or UNSTORABLE.search(decoded)]
    if not suspects:
        return []
    # Render once with each suspect replaced by its own private-use marker (`&#x100000;`,
    # `&#x100001` ...: a numeric reference with or without its `;`, like the one it stands
    # for, so it is decoded exactly where the original is); the markers that come out as
    # characters are the references a reader sees decoded.
    parts: list[str] = []
    pos = 0
    for index, (_, start, spelling) in enumerate(suspects[:_MAX_MARKERS]):
        parts.append(body[pos:start])
        parts.append(f"&#x{_MARKER + index:X}{';' if spelling.endswith(';') else ''}")
        pos = start + len(spelling)
    parts.append(body[pos:])
    rendered = html.unescape(_markdown().render("".join(parts)))
    shown = {ord(m.group(0)) - _MARKER for m in _MARKERS.finditer(rendered)}
    problems: list[Problem] = []
    for index, (decoded, start, spelling) in enumerate(suspects[:_MAX_MARKERS]):
        chars = list(_bad_chars(decoded))
        if index in shown and chars and len(problems) < MAX_HIDDEN_REPORTS:
            line, column = _position(body, start)
            problems.append(_char_problem(
                path, chars[0], f"character reference {spelling}",
                "delete the reference (or show it as an example in a code span or fence)",
                body_line + line - 1, column))
    return problems


def hidden_unicode(path: str, text: str) -> list[Problem]:
    """One `hidden-unicode` problem per line with invisible or bidi-control characters (at
    most `MAX_HIDDEN_REPORTS`), naming each character."""
    if not may_hide(text):
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
        names = ", ".join(char_name(c) for c in chars)
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


def _scheme_hint(body: str) -> bool:
    """True when `script:` or `data:` (any case, blanks before the colon) is in `body`.

    Looks behind each colon instead of running a regex over a lowered copy of every body:
    most bodies have few colons, and this runs for every persona of a `maestro check`."""
    at = body.find(":")
    while at >= 0:
        end = at
        while end > 0 and body[end - 1].isspace():
            end -= 1
        if body[max(0, end - 6):end].lower() == "script" or \
                body[max(0, end - 4):end].lower() == "data":
            return True
        at = body.find(":", at + 1)
    return False


def dangerous_html(path: str, body: str, body_line: int) -> list[Problem]:
    """`dangerous-html` problems of a Markdown body that starts on file line `body_line`."""
    if "<" not in body and "&" not in body and not _scheme_hint(body):
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

    for token in _markdown().parse(body):
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


def body_problems(rec: Persona | Template, limits: Limits) -> list[Problem]:
    """The body's rules: size, tokens, empty or non-instruction content, dangerous HTML."""
    path = rec.path
    problems: list[Problem] = []
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
    problems.extend(dangerous_html(path, rec.body, rec.body_line))
    problems.extend(reference_problems(path, rec.body, rec.body_line))
    return problems
