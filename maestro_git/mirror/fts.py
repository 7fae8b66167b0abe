"""The search query language (`core/grammar.py`) as SQL over the mirror, composed with
`psycopg.sql`: what `--backend postgres` runs, so it finds what the Whoosh index finds.

Each kind of search document (persona, template, persona set, set member) is one branch of a
UNION; a query tree becomes one WHERE condition per branch:
- a word or phrase in the default fields: the row's stored, GIN-indexed `search_vector`
  (migration 0001; a set's, over its key, name, description and members' names, 0014)
  `@@` a tsquery built by `to_tsquery('english', …)` from quoted lexemes (`'word'`,
  `'word':*` for a prefix, `<->` between a phrase's words);
- a word in a text field: the same vector, restricted to the field's weight (`'word':A` for
  `name`/`display_name`, `B` for `description`, `C` for `content`); `metadata:` reads the
  row's metadata JSON as a tsvector on the fly;
- `owner:`, `tag:`, `set:`, `status:`, `category:`, `kind:`, `key:`, `extends:`, `active:`,
  `age:`, `model:`, `tools:`: plain column filters (tags, categories, models and tools
  case-insensitive, as Whoosh lowercases them; a tool by its name before any argument list,
  `Bash(git:*)` as `bash`, migration 0013's `tools` column); a field a kind has not got
  matches nothing there, as in Whoosh.
Ranking is `ts_rank_cd` of the positive words; snippets come from `ts_headline`.

Rules of this module: values are always placeholders (never text in the SQL); identifiers
come only from the constant tables below; no f-string SQL. Runs nothing: `query.search`
executes what `statement` composes, under a statement timeout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from psycopg import sql

from maestro_git.core import grammar

__all__ = ["STOP_ONLY", "Statement", "statement", "tsquery_texts"]

_WEIGHTS = {"name": "A", "display_name": "A", "description": "B", "content": "C"}


@dataclass(frozen=True)
class _Kind:
    """One kind of search document: its table, how its fields read, what a hit shows."""

    kind: str
    table: str
    vector: str  # the SQL of its weighted tsvector
    key: str
    member: str
    title: str
    body: str
    scale: float  # ranking weight of the kind (personas and templates above members)
    columns: dict[str, tuple[str, str]] = field(default_factory=dict)  # field -> (how, SQL)
    # Under row-level security: the rows that match a tsquery `{q}`, through migration 0014's
    # SECURITY DEFINER function (the GIN index serves it; `text_match`). None: no policy.
    guard: str | None = None


_KINDS = (
    _Kind("persona", "personas r", "r.search_vector", "r.key", "NULL::text",
          "coalesce(r.display_name, r.name)", "r.content", 2.0, {
              "owner": ("exact", "r.owner"), "key": ("exact", "r.key"),
              "tags": ("array", "r.tags"), "extends": ("exact", "r.parent_key"),
              "active": ("bool", "r.active"), "category": ("words", "r.metadata->>'category'"),
              "model": ("words", "r.model"), "tools": ("tool", "r.tools"),
              "metadata": ("json", "r.metadata")},
          "r.id IN (SELECT maestro_fts_personas({q}))"),
    _Kind("template", "persona_templates r", "r.search_vector", "r.name", "NULL::text",
          "coalesce(r.display_name, r.name)", "r.content", 2.0, {
              "key": ("exact", "r.name"), "tags": ("array", "r.tags"),
              "category": ("words", "r.category"), "active": ("bool", "true"),
              "metadata": ("json", "r.metadata")}),
    _Kind("persona_set", "persona_sets r", "r.search_vector", "r.key", "NULL::text", "coalesce(r.name, r.key)", "r.description", 1.0, {
              "key": ("exact", "r.key"), "set": ("exact", "r.key"),
              "status": ("exact", "r.status"), "metadata": ("json", "r.metadata")},
          "r.key IN (SELECT maestro_fts_sets({q}))"),
    _Kind("set_member", "persona_set_members r", "r.search_vector", "r.set_key", "r.name",
          "r.name", "(SELECT string_agg(e.key || ' ' || e.value, ' ') FROM"
          " jsonb_each_text(r.persona_data) e WHERE e.key <> 'name')", 1.0, {
              "key": ("exact", "r.set_key"), "set": ("exact", "r.set_key"),
              "status": ("exact", "r.validation_status"),
              "age": ("int", "CASE WHEN jsonb_typeof(r.persona_data->'age') = 'number'"
                             " THEN (r.persona_data->>'age')::numeric END")},
          "(r.set_key, r.name) IN (SELECT * FROM maestro_fts_members({q}))"),
)


@dataclass(frozen=True)
class Statement:
    """A composed search statement and its parameters."""

    query: sql.Composed
    params: dict[str, Any]


def _lexeme(word: str, *, prefix: bool = False, weight: str = "") -> str:
    """`word` as one quoted tsquery operand (`to_tsquery` stems it and drops stop words)."""
    quoted = "'" + word.replace("\\", "\\\\").replace("'", "''") + "'"
    return quoted + ":" + ("*" if prefix else "") + weight if prefix or weight else quoted


def _tsquery(leaf: grammar.Word | grammar.Phrase, weight: str = "") -> str:
    if isinstance(leaf, grammar.Phrase):
        return " <-> ".join(_lexeme(w, weight=weight) for w in leaf.words)
    return _lexeme(leaf.text, prefix=leaf.prefix, weight=weight)


class _Compiler:
    """One query tree as SQL conditions, one per kind, sharing numbered parameters."""

    def __init__(self, stop_only: frozenset[str] = frozenset(), guarded: bool = False) -> None:
        self.params: dict[str, Any] = {}
        self.stop_only = stop_only
        self.guarded = guarded

    def param(self, value: Any) -> sql.Composable:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return sql.Placeholder(name)

    def text_match(self, vector: sql.Composable, text: str,
                   guard: str | None = None) -> sql.Composable:
        """`vector` matches the tsquery `text`; a query of stop words only (`stop_only`)
        matches all, as Whoosh drops stop words from a query. A plain `@@`, so the GIN
        index on the stored vector serves it; under row-level security (`guarded`), where
        PostgreSQL may not use that index for `@@`, the kind's `guard` (the same match,
        as a key set the index computes) instead."""
        if text in self.stop_only:
            return sql.SQL("true")
        tsquery = sql.SQL("to_tsquery('english', {})").format(self.param(text))
        if self.guarded and guard is not None:
            return sql.SQL("(" + guard + ")").format(q=tsquery)  # constant SQL of `_KINDS`
        return sql.SQL("({v} @@ {q})").format(v=vector, q=tsquery)

    def where(self, node: grammar.Node, kind: _Kind) -> sql.Composable:
        if isinstance(node, grammar.And | grammar.Or):
            joiner = sql.SQL(" AND " if isinstance(node, grammar.And) else " OR ")
            return sql.SQL("({})").format(joiner.join(self.where(n, kind) for n in node.items))
        if isinstance(node, grammar.Not):
            return sql.SQL("(NOT coalesce({}, false))").format(self.where(node.item, kind))
        if isinstance(node, grammar.Range):
            return self.range(node, kind)
        return self.leaf(node, kind)

    def leaf(self, leaf: grammar.Word | grammar.Phrase, kind: _Kind) -> sql.Composable:
        name = leaf.field
        vector = sql.SQL(kind.vector)  # constant SQL from `_KINDS`
        if name is None:
            return self.text_match(vector, _tsquery(leaf), kind.guard)
        if name in _WEIGHTS:
            return self.text_match(vector, _tsquery(leaf, _WEIGHTS[name]), kind.guard)
        if name == "kind":
            words = leaf.words if isinstance(leaf, grammar.Phrase) else (leaf.text,)
            return sql.SQL("true" if words == (kind.kind,) else "false")
        how, column = kind.columns.get(name, ("none", ""))
        if how == "json":
            json_vector = sql.SQL("jsonb_to_tsvector('english', {}, '[\"string\", \"numeric\"]')"
                                  ).format(sql.SQL(column))
            return self.text_match(json_vector, _tsquery(leaf))
        if how == "none" or isinstance(leaf, grammar.Phrase) and how in ("exact", "bool"):
            return sql.SQL("false")
        words = leaf.words if isinstance(leaf, grammar.Phrase) else (leaf.text,)
        return sql.SQL(" AND ").join(self.value(how, sql.SQL(column), w, leaf) for w in words)

    def value(self, how: str, column: sql.Composable, word: str,
              leaf: grammar.Word | grammar.Phrase) -> sql.Composable:
        prefix = isinstance(leaf, grammar.Word) and leaf.prefix
        if how == "bool":
            truth = {"true": True, "yes": True, "1": True, "false": False, "no": False,
                     "0": False}.get(word.lower())
            if truth is None:
                return sql.SQL("false")
            return sql.SQL("({} = {})").format(column, self.param(truth))
        if how == "int":
            return sql.SQL("false")  # numbers are ranges (`grammar.Range`)
        lowered = how in ("array", "words", "tool")
        value = word.lower() if lowered else word
        if prefix:
            test = sql.SQL("LIKE {}").format(self.param(_like(value) + "%"))
        else:
            test = sql.SQL("= {}").format(self.param(value))
        if how == "array":
            return sql.SQL("EXISTS (SELECT 1 FROM unnest({}) t WHERE lower(t) {})").format(
                column, test)
        if how == "tool":  # a tool's name before its argument list (`search.tool_terms`)
            return sql.SQL("EXISTS (SELECT 1 FROM unnest({}) t"
                           " WHERE lower(btrim(split_part(t, '(', 1))) {})").format(column, test)
        if how == "words":
            return sql.SQL("EXISTS (SELECT 1 FROM regexp_split_to_table(lower({}), '\\s+') t"
                           " WHERE t {})").format(column, test)
        return sql.SQL("({} {})").format(column, test)

    def range(self, node: grammar.Range, kind: _Kind) -> sql.Composable:
        how, column = kind.columns.get(node.field, ("none", ""))
        if how != "int":
            return sql.SQL("false")
        parts = []
        if node.low is not None:
            parts.append(sql.SQL("{} >= {}").format(sql.SQL(column), self.param(node.low)))
        if node.high is not None:
            parts.append(sql.SQL("{} <= {}").format(sql.SQL(column), self.param(node.high)))
        if not parts:
            return sql.SQL("({} IS NOT NULL)").format(sql.SQL(column))
        return sql.SQL("({})").format(sql.SQL(" AND ").join(parts))


def _like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def tsquery_texts(tree: grammar.Node) -> list[str]:
    """The tsquery text of every word and phrase of `tree` that goes through `to_tsquery`:
    the caller asks the server which are stop words only (`statement`'s `stop_only`)."""
    found: list[str] = []
    for leaf in grammar.leaves(tree, positive=False) + grammar.leaves(tree):
        if isinstance(leaf, grammar.Word | grammar.Phrase):
            if leaf.field is None or leaf.field == "metadata":
                found.append(_tsquery(leaf))
            elif leaf.field in _WEIGHTS:
                found.append(_tsquery(leaf, _WEIGHTS[leaf.field]))
    return sorted(set(found))


STOP_ONLY = sql.SQL("SELECT t FROM unnest({}::text[]) t"
                    " WHERE numnode(to_tsquery('english', t)) = 0").format(sql.Placeholder("t"))


def statement(tree: grammar.Node, limit: int,
              stop_only: frozenset[str] = frozenset(), *, guarded: bool = False) -> Statement:
    """The SQL of `tree`: (kind, key, title, score, snippet, member) rows, best first.
    `stop_only`: the tsquery texts (`tsquery_texts`) the server reduces to nothing;
    `guarded`: the caller reads under row-level security (`row_security_active`)."""
    compiler = _Compiler(stop_only, guarded)
    ranked = [leaf for leaf in grammar.leaves(tree)
              if isinstance(leaf, grammar.Word | grammar.Phrase)
              and (leaf.field is None or leaf.field in _WEIGHTS)
              and _tsquery(leaf) not in stop_only]
    rank_text = " | ".join(f"({_tsquery(leaf)})" for leaf in ranked)
    rank = compiler.param(rank_text)
    branches = []
    for kind in _KINDS:
        vector = sql.SQL(kind.vector)
        score = sql.SQL("ts_rank_cd({v}, to_tsquery('english', {r})) * {s}").format(
            v=vector, r=rank, s=sql.Literal(kind.scale)) if ranked else sql.Literal(kind.scale)
        branches.append(sql.SQL(
            "SELECT {kind} AS kind, {key} AS key, {member} AS member, {title} AS title,"
            " ({score})::float8 AS score, {body} AS body FROM {table} WHERE {where}").format(
            kind=sql.Literal(kind.kind), key=sql.SQL(kind.key), member=sql.SQL(kind.member),
            title=sql.SQL(kind.title), score=score, body=sql.SQL(kind.body),
            table=sql.SQL(kind.table), where=compiler.where(tree, kind)))
    headline = sql.SQL(
        "ts_headline('english', coalesce(h.body, ''), to_tsquery('english', {r}),"
        " 'StartSel=**, StopSel=**, MaxWords=30, MinWords=8, MaxFragments=2, "
        "FragmentDelimiter=\" … \"')").format(r=rank) if ranked else \
        sql.SQL("left(coalesce(h.body, ''), 160)")
    query = sql.SQL(
        "SELECT h.kind, h.key, h.title, h.score, {headline} AS snippet, h.member FROM ("
        "SELECT * FROM ({union}) u ORDER BY score DESC, key, member NULLS FIRST LIMIT {limit}"
        ") h ORDER BY h.score DESC, h.key, h.member NULLS FIRST").format(
        headline=headline, union=sql.SQL(" UNION ALL ").join(branches),
        limit=compiler.param(limit))
    return Statement(query, compiler.params)
