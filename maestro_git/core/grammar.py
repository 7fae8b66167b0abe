"""The one search query language of both backends, parsed once into a small AST (pure).

`parse(text)` gives a tree of frozen records that `search/engine.py` turns into a Whoosh query
and `mirror/fts.py` into SQL over the mirror's tsvector columns, so `--backend whoosh` and
`--backend postgres` understand the same queries:

- words (`review`), every one required; `word*` is a prefix;
- `"a phrase"`;
- `field:value`, `field:"a phrase"`, `field:word*`, `field:(a OR b)` over `FIELDS`
  (with the aliases `tag`, `tool`, `in_set`, `title`, `body`, `text`); `model:` and
  `tools:` are a persona's typed agent settings (`tools:Bash` finds `Bash(git:*)`);
- `AND`, `OR`, `NOT` (upper case) and `-word`, with parentheses; `AND` binds tighter;
- ranges on `age`: `age:[50 TO 59]`, `age:>50`, `age:<=30`.

Rules of this module:
- It lives in `core/` (not `search/`) because both the search and the mirror layers read it
  and neither may import the other; it imports neither whoosh nor psycopg.
- Bounded input: at most `MAX_QUERY_CHARS` characters, `MAX_TERMS` words and
  `MAX_WORD_CHARS` characters a word, checked before any work; past them a one-line
  `SearchError` with a hint. The parser is linear in the query's length.
- Every malformed query is a one-line `SearchError`, never silently nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from maestro_git.errors import SearchError

__all__ = [
    "ALIASES",
    "FIELDS",
    "MAX_QUERY_CHARS",
    "MAX_TERMS",
    "MAX_WORD_CHARS",
    "And",
    "Node",
    "Not",
    "Or",
    "Phrase",
    "Range",
    "Word",
    "leaves",
    "parse",
]

MAX_QUERY_CHARS = 1000  # characters in one query
MAX_TERMS = 32  # words (a phrase's words count one each) in one query
MAX_WORD_CHARS = 100  # characters in one word

# The fields of the search schema a query may name (`search/engine.py` checks that these are
# its schema's), and the aliases.
FIELDS = ("active", "age", "category", "content", "description", "display_name", "extends",
          "key", "kind", "metadata", "model", "name", "owner", "set", "status", "tags", "tools")
ALIASES = {"tag": "tags", "tool": "tools", "in_set": "set", "title": "display_name",
           "body": "content", "text": "content"}
NUMERIC = frozenset({"age"})
_OPERATORS = {"AND", "OR", "NOT"}


@dataclass(frozen=True)
class Word:
    """One word; `field` None: any default field. `prefix`: `word*`."""

    text: str
    field: str | None = None
    prefix: bool = False


@dataclass(frozen=True)
class Phrase:
    """Words in this order."""

    words: tuple[str, ...]
    field: str | None = None


@dataclass(frozen=True)
class Range:
    """A numeric field between `low` and `high` (inclusive; None: open)."""

    field: str
    low: int | None
    high: int | None


@dataclass(frozen=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    item: Node


Node = Word | Phrase | Range | And | Or | Not

_TOKEN = re.compile(r'\s+|\(|\)|"[^"]*"?|\[[^\]]*\]?|[^\s()"\[]+')
_FIELD = re.compile(r"^([A-Za-z_]+):(.*)$", re.S)
_COMPARE = re.compile(r"^(>=|<=|>|<)(-?\d+)$")
_RANGE = re.compile(r"^\[\s*(\*|-?\d+)?\s+TO\s+(\*|-?\d+)?\s*\]$")


def _field_name(name: str) -> str:
    found = ALIASES.get(name, name)
    if found not in FIELDS:
        known = sorted({*FIELDS, *ALIASES})
        raise SearchError(f"unknown field '{name}' in the query", hint="fields: " + ", ".join(known))
    return found


def _check_limits(text: str) -> None:
    if len(text) > MAX_QUERY_CHARS:
        raise SearchError(f"the query is {len(text):,} characters long; the limit is "
                          f"{MAX_QUERY_CHARS:,}", hint="search for fewer, shorter words")
    words = re.findall(r"[^\s()\"]+", text)
    if len(words) > MAX_TERMS:
        raise SearchError(f"the query has {len(words)} words; the limit is {MAX_TERMS}",
                          hint="search for the few words that matter most")
    longest = max(words, key=len, default="")
    if len(longest) > MAX_WORD_CHARS:
        raise SearchError(f"a word in the query is {len(longest):,} characters long; the "
                          f"limit is {MAX_WORD_CHARS}", hint="search for a shorter word")


class _Parser:
    def __init__(self, text: str) -> None:
        # Tokens with whether whitespace came before them (`tag:"a b"` keeps its field).
        self.tokens: list[tuple[str, bool]] = []
        spaced = True
        for m in _TOKEN.finditer(text):
            token = m.group()
            if token.isspace():
                spaced = True
                continue
            self.tokens.append((token, spaced))
            spaced = False
        self.at = 0

    def peek(self) -> str | None:
        return self.tokens[self.at][0] if self.at < len(self.tokens) else None

    def take(self) -> str:
        token = self.tokens[self.at][0]
        self.at += 1
        return token

    def glued(self) -> bool:
        """Whether the next token follows the previous one without a space."""
        return self.at < len(self.tokens) and not self.tokens[self.at][1]

    def parse(self) -> Node:
        node = self.or_expr()
        if self.peek() is not None:
            token = self.peek()
            if token == ")":
                raise SearchError("unbalanced parentheses in the query")
            raise SearchError(f"unexpected '{token}' in the query")
        return node

    def or_expr(self, field: str | None = None) -> Node:
        items = [self.and_expr(field)]
        while self.peek() == "OR":
            self.take()
            if self.peek() in (None, ")", "OR", "AND"):
                raise SearchError("a boolean operator in the query has nothing on one side",
                                  hint="write e.g. coding OR review")
            items.append(self.and_expr(field))
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_expr(self, field: str | None) -> Node:
        items = [self.unary(field)]
        while self.peek() not in (None, ")", "OR"):
            if self.peek() == "AND":
                self.take()
                if self.peek() in (None, ")", "OR", "AND"):
                    raise SearchError("a boolean operator in the query has nothing on one "
                                      "side", hint="write e.g. coding AND review")
            items.append(self.unary(field))
        return items[0] if len(items) == 1 else And(tuple(items))

    def unary(self, field: str | None) -> Node:
        token = self.peek()
        if token in ("AND", "OR"):
            raise SearchError("a boolean operator in the query has nothing on one side",
                              hint="write e.g. coding AND review")
        if token == "NOT":
            self.take()
            if self.peek() in (None, ")", "AND", "OR"):
                raise SearchError("NOT in the query has nothing after it",
                                  hint="write e.g. review NOT fiction")
            return Not(self.unary(field))
        if token is not None and token.startswith("-") and len(token) > 1:
            self.tokens[self.at] = (token[1:], True)
            return Not(self.atom(field))
        return self.atom(field)

    def atom(self, field: str | None) -> Node:
        token = self.take()
        if token == "(":
            node = self.or_expr(field)
            if self.peek() != ")":
                raise SearchError("unbalanced parentheses in the query")
            self.take()
            return node
        if token == ")":
            raise SearchError("unbalanced parentheses in the query")
        if token.startswith('"'):
            return self.phrase(token, field)
        if token.startswith("["):
            raise SearchError("a range in the query needs a field", hint="write age:[50 TO 59]")
        m = _FIELD.match(token)
        if m and field is None:
            name, rest = _field_name(m.group(1)), m.group(2)
            if rest:
                return self.value(rest, name)
            if not self.glued():
                raise SearchError("a field in the query has no value", hint="write e.g. tag:coding")
            following = self.peek()
            if following == "(":
                return self.atom(name)
            if following is not None and following.startswith('"'):
                return self.phrase(self.take(), name)
            if following is not None and following.startswith("["):
                return self.range(self.take(), name)
            raise SearchError("a field in the query has no value", hint="write e.g. tag:coding")
        return self.value(token, field)

    def phrase(self, token: str, field: str | None) -> Node:
        if len(token) < 2 or not token.endswith('"'):
            raise SearchError("unbalanced quotes in the query", hint='close the phrase: "…"')
        words = tuple(token[1:-1].split())
        if not words:
            raise SearchError("an empty phrase in the query", hint='write e.g. "code review"')
        return Phrase(words, field) if len(words) > 1 else Word(words[0], field)

    def range(self, token: str, field: str) -> Node:
        m = _RANGE.match(token)
        if field not in NUMERIC or m is None:
            raise SearchError("a range in the query must be a number range on age",
                              hint="write age:[50 TO 59]")
        low, high = (None if v in (None, "*") else int(v) for v in m.groups())
        return Range(field, low, high)

    def value(self, text: str, field: str | None) -> Node:
        if field in NUMERIC:
            return self.number(text, field)
        prefix = text.endswith("*") and len(text.rstrip("*")) > 0
        word = text.rstrip("*") if prefix else text
        if "*" in word or "?" in word:
            raise SearchError("a wildcard in the query may only end a word",
                              hint="write e.g. review*")
        if not re.search(r"\w", word):
            raise SearchError(f"'{text}' in the query has no letters or digits",
                              hint="search for words")
        return Word(word, field, prefix)

    def number(self, text: str, field: str) -> Node:
        if text.startswith("["):
            return self.range(text, field)
        m = _COMPARE.match(text)
        if m:
            op, value = m.group(1), int(m.group(2))
            return {">": Range(field, value + 1, None), ">=": Range(field, value, None),
                    "<": Range(field, None, value - 1), "<=": Range(field, None, value)}[op]
        if re.fullmatch(r"-?\d+", text):
            return Range(field, int(text), int(text))
        raise SearchError(f"{field} in the query takes a number, not '{text}'",
                          hint=f"write e.g. {field}:54 or {field}:[50 TO 59]")


def parse(text: str) -> Node:
    """`text` as a query tree, or `SearchError` with a one-line reason."""
    if not text.strip():
        raise SearchError("empty search query", hint='try e.g. maestro search "code review"')
    _check_limits(text)
    if text.count('"') % 2:
        raise SearchError("unbalanced quotes in the query", hint='close the phrase: "…"')
    return _Parser(text).parse()


def leaves(node: Node, *, positive: bool = True) -> list[Word | Phrase | Range]:
    """The leaves of `node` (with `positive`, only those not under a NOT)."""
    if isinstance(node, Word | Phrase | Range):
        return [node]
    if isinstance(node, Not):
        return [] if positive else leaves(node.item, positive=False)
    return [leaf for item in node.items for leaf in leaves(item, positive=positive)]
