"""Characters a reviewer cannot see or PostgreSQL cannot store, in every spelling they take.

Pure: strings in, matches out. The one definition the rules (`rules.content`), the diff view
(`diff`), the HTML renderer (`render`) and problem messages (`models.Problem`) share:
- hidden: zero-width and invisible characters, bidi embeddings/overrides/isolates/marks,
  Unicode tag characters, supplementary variation selectors, and control characters other
  than tab, line feed and carriage return (C0, DEL, C1 such as U+0085 NEXT LINE), plus
  U+2028/U+2029 (line and paragraph separators: invisible breaks that editors, diffs and
  JavaScript treat differently). A zero-width joiner between emoji (family emoji) or after
  an Arabic/Indic letter, and a zero-width non-joiner after an Arabic/Indic letter, are
  ordinary text (`HIDDEN`, contextual); `HIDDEN_HINT` is every character `HIDDEN` may match.
  A no-break space (U+00A0, YAML `\\_`) is a visible space and not hidden.
- unstorable: NUL (PostgreSQL `text` and `jsonb` refuse it) and surrogate code points
  (U+D800-U+DFFF: not characters; UTF-8 cannot encode them, so neither psycopg nor the
  search index can take them).
- spellings: `escapes(text)` decodes the backslash escapes of JSON strings and YAML
  double-quoted scalars (`\\u202e`, surrogate pairs `\\udb40\\udc49`, `\\U000E0049`,
  `\\xad`, `\\0`, `\\e`, `\\N`, `\\L`, `\\P`, `\\_`, ...) with their offsets;
  `char_references(text)` decodes HTML character references (`&#8203;`, `&#x202E;`,
  `&ZeroWidthSpace;`, also without the `;` where HTML accepts that).
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterator

__all__ = ["HIDDEN", "HIDDEN_HINT", "UNSTORABLE", "char_name", "char_references", "escapes",
           "may_hide", "visible"]

_EMOJI = "\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff"
_JOINING_SCRIPTS = "\u0600-\u06ff\u0750-\u077f\u08a0-\u08ff\u0900-\u0dff\ua8e0-\ua8ff"
_ALWAYS = ("\x01-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"
           "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b\u200e\u200f"
           "\u2028\u2029\u202a-\u202e\u2060-\u2064\u2066-\u206f\u3164\ufeff\uffa0\ufff9-\ufffb"
           "\U0001d173-\U0001d17a\U000e0000-\U000e007f\U000e0100-\U000e01ef")
HIDDEN = re.compile(
    f"[{_ALWAYS}]"
    f"|(?<![{_JOINING_SCRIPTS}])\u200c"
    f"|(?<![{_JOINING_SCRIPTS}])(?:(?<![{_EMOJI}\ufe0f\U0001f3fb-\U0001f3ff])\u200d"
    f"|\u200d(?![{_EMOJI}]))")
HIDDEN_HINT = re.compile(f"[{_ALWAYS}\u200c\u200d]")
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_ANY = re.compile(f"[{_ALWAYS}\u200c\u200d\x00\ud800-\udfff]")

# ASCII that is never hidden: tab, line feed, carriage return and the printable characters.
_ASCII_SHOWN = bytes([9, 10, 13, *range(32, 127)])


def may_hide(text: str) -> bool:
    """False when `text` surely holds no hidden character (a fast filter before `HIDDEN`).

    ASCII text, most files, is judged by one `bytes.translate` (about 10x faster than a
    regex search); other text by `HIDDEN_HINT`."""
    if text.isascii():
        return bool(text.encode("ascii").translate(None, _ASCII_SHOWN))
    return HIDDEN_HINT.search(text) is not None


_ESCAPE = re.compile(
    r"\\(?:u([dD][89abAB][0-9a-fA-F]{2})\\u([dD][c-fC-F][0-9a-fA-F]{2})"
    r"|u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8})|x([0-9a-fA-F]{2})|([0abefvNLP_\\]))")
_SHORT = {"0": 0, "a": 7, "b": 8, "e": 0x1B, "f": 0x0C, "v": 0x0B, "N": 0x85, "L": 0x2028,
          "P": 0x2029, "_": 0xA0}
_REFERENCE = re.compile(r"&(?:#[xX][0-9a-fA-F]{1,8}|#[0-9]{1,10}|[A-Za-z][A-Za-z0-9]{1,31});?")


_CONTROL_NAMES = {0x00: "NULL", 0x07: "BELL", 0x08: "BACKSPACE", 0x0B: "LINE TABULATION",
                  0x0C: "FORM FEED", 0x1B: "ESCAPE", 0x7F: "DELETE", 0x85: "NEXT LINE"}


def char_name(char: str) -> str:
    """`U+200B ZERO WIDTH SPACE`: the code point and its Unicode name."""
    code = ord(char)
    if 0xD800 <= code <= 0xDFFF:
        kind = "HIGH" if code < 0xDC00 else "LOW"
        return f"U+{code:04X} (an unpaired {kind.lower()} surrogate, not a character)"
    name = _CONTROL_NAMES.get(code) or unicodedata.name(char, "") or (
        "CONTROL CHARACTER" if unicodedata.category(char) == "Cc" else "INVISIBLE CHARACTER")
    return f"U+{code:04X} {name}"


def visible(text: str) -> str:
    """`text` with every hidden or unstorable character written as `<U+200B>`, for messages
    and terminals (a message must never carry what it reports)."""
    if text.isascii() and text.isprintable():
        return text
    return _ANY.sub(lambda m: f"<U+{ord(m.group(0)):04X}>", text)


def escapes(text: str) -> Iterator[tuple[int, int, str]]:
    """(code point, offset, spelling) of each backslash escape in `text`, as JSON strings and
    YAML double-quoted scalars decode them; `\\\\` is skipped (it writes a backslash). A high
    surrogate escape followed by a low one is one code point; alone, each is its own."""
    for match in _ESCAPE.finditer(text):
        high, low, u4, u8, x2, short = match.groups()
        if high is not None:
            code = 0x10000 + ((int(high, 16) - 0xD800) << 10) + (int(low, 16) - 0xDC00)
        elif u4 is not None:
            code = int(u4, 16)
        elif u8 is not None:
            code = int(u8, 16)
        elif x2 is not None:
            code = int(x2, 16)
        elif short == "\\":
            continue
        else:
            code = _SHORT[short]
        if code < 0x110000:
            yield code, match.start(), match.group(0)


def char_references(text: str) -> Iterator[tuple[str, int, str]]:
    """(decoded text, offset, spelling) of each HTML character reference in `text`, decoded
    as HTML does (`html.unescape`: numeric references without `;`, legacy named ones)."""
    if "&" not in text:
        return
    for match in _REFERENCE.finditer(text):
        spelling = match.group(0)
        decoded = _numeric(spelling) if spelling[1] == "#" else html.unescape(spelling)
        if decoded != spelling:
            yield decoded, match.start(), spelling


def _numeric(spelling: str) -> str:
    """A numeric reference as a browser decodes it: controls stay controls (Python's
    `html.unescape` drops them), 0x80-0x9F are read as windows-1252, NUL, surrogates and
    numbers past U+10FFFF become U+FFFD."""
    digits = spelling[2:].rstrip(";")
    code = int(digits[1:], 16) if digits[:1] in ("x", "X") else int(digits)
    if 0x80 <= code <= 0x9F:
        return html.unescape(spelling)
    if code == 0 or 0xD800 <= code <= 0xDFFF or code > 0x10FFFF:
        return "\ufffd"
    return chr(code)
