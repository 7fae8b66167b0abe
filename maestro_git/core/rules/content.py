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
import unicodedata
from functools import cache
from typing import TYPE_CHECKING

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
    "escaped_hidden_unicode",
    "estimate_tokens",
    "hidden_unicode",
]

MAX_HIDDEN_REPORTS = 20

_EMOJI = "\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff"
_JOINING_SCRIPTS = "\u0600-\u06ff\u0750-\u077f\u08a0-\u08ff\u0900-\u0dff\ua8e0-\ua8ff"
_HIDDEN = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b\u200e\u200f"
    "\u202a-\u202e\u2060-\u2064\u2066-\u206f\u3164\ufeff\uffa0\ufff9-\ufffb"
    "\U0001d173-\U0001d17a\U000e0000-\U000e007f\U000e0100-\U000e01ef]"
    f"|(?<![{_JOINING_SCRIPTS}])\u200c"
    f"|(?<![{_JOINING_SCRIPTS}])(?:(?<![{_EMOJI}\ufe0f\U0001f3fb-\U0001f3ff])\u200d"
    f"|\u200d(?![{_EMOJI}]))")

_HIDDEN_HINT = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u2064\u2066-\u206f\u3164\ufeff\uffa0\ufff9-\ufffb\U0001d173-\U0001d17a"
    "\U000e0000-\U000e007f\U000e0100-\U000e01ef]")
HIDDEN_CHARS = _HIDDEN_HINT  # every character `hidden_unicode` may report (diffs show them)
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


_ESCAPE = re.compile(r"\\(?:u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8})")


def escaped_hidden_unicode(path: str, text: str, end_line: int | None) -> list[Problem]:
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


def hidden_unicode(path: str, text: str) -> list[Problem]:
    """One `hidden-unicode` problem per line with invisible or bidi-control characters (at
    most `MAX_HIDDEN_REPORTS`), naming each character."""
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
    return problems
