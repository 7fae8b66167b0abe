"""One query language on both backends: the same query set finds the same documents in the
Whoosh index and in the mirror (`--backend postgres`); ranking may differ."""

from __future__ import annotations

import pytest
from psycopg import sql

from maestro_git.client import Client
from maestro_git.core import grammar
from maestro_git.errors import SearchError
from maestro_git.mirror import db, query
from maestro_git.mirror.sync import sync
from maestro_git.search.engine import FIELDS, SCHEMA, to_whoosh
from maestro_git.search.index import SearchIndex
from maestro_git.settings import Settings
from tests.factories import GitRepoFactory, persona_md
from tests.search.test_index import FILES, _snapshot

# Words, phrases, fields, booleans, prefixes and ranges (the README's examples among them).
QUERIES = [
    "review", "reviewer", "code review", "fiction", "quarterly revenue", "research",
    '"quarterly revenue forecasts"', '"revenue quarterly"', '"code reviewer"',
    "tag:coding", "tag:coding review", "tag:Coding", "tag:cod*", "owner:acme", "owner:globex",
    "tag:coding OR tag:business", "tag:coding owner:globex", "owner:acme NOT tag:coding",
    "owner:acme -tag:coding", "review*", "forecast*", "writ*", "set:clinic", "in_set:clinic",
    "status:validated", "kind:template", "kind:set_member", "category:research",
    "category:creative", "metadata:adults", "name:analyst", "title:\"code reviewer\"",
    "description:fiction", "body:assumptions", "content:ward", "nurse", "surgeon OR nurse",
    "cardiology ward", "age:[50 TO 59]", "age:>40", "age:31", "nurse age:[20 TO 40]",
    "(fiction OR revenue) AND NOT owner:globex", "extends:nobody", "active:true tag:writing",
    "key:acme/story_writer", "Maria", "tom berg",
]


def _found(hits: list) -> set[tuple[str, str, str | None]]:  # type: ignore[type-arg]
    return {(h.kind, h.key, h.member) for h in hits}


@pytest.fixture
def both(git_repo: GitRepoFactory, database_url: str) -> tuple[SearchIndex, Settings]:
    git_repo.commit(FILES)
    settings = Settings(repo_path=git_repo.path, database_url=database_url)
    sync(settings)
    ix = SearchIndex(settings)
    ix.rebuild(_snapshot(git_repo))
    return ix, settings


def test_one_query_set_finds_the_same_documents_on_both_backends(
        both: tuple[SearchIndex, Settings]) -> None:
    ix, settings = both
    differ = {}
    with db.connect(settings) as conn:
        for q in QUERIES:
            whoosh = _found(ix.search(q, limit=50))
            postgres = _found(query.search(conn, q, limit=50))
            if whoosh != postgres:
                differ[q] = (sorted(whoosh), sorted(postgres))
    assert differ == {}
    empty = [q for q in QUERIES if not ix.search(q, limit=50)]
    assert empty == ['"revenue quarterly"', "tag:coding owner:globex", "nurse age:[20 TO 40]",
                     "extends:nobody"]


def test_the_readme_example_finds_hits_away_from_a_local_index(
        both: tuple[SearchIndex, Settings]) -> None:
    _, settings = both
    with Client(settings=settings) as client:
        hits = client.search("tag:coding review", backend="postgres")
    assert [(h.kind, h.key) for h in hits] == [("persona", "acme/code_reviewer")]


def test_the_grammar_fields_are_the_schema_fields() -> None:
    assert set(grammar.FIELDS) | set(grammar.ALIASES) == set(FIELDS)
    assert set(grammar.FIELDS) <= set(SCHEMA.names())


@pytest.mark.parametrize("text", [
    "x" * 100_001, " ".join(f"w{i}" for i in range(1000)), "a" * 101,
    " ".join(["review"] * (grammar.MAX_TERMS + 1)), "r" * (grammar.MAX_QUERY_CHARS + 1)])
def test_oversized_queries_are_refused_on_both_backends_in_one_line(
        both: tuple[SearchIndex, Settings], text: str) -> None:
    import time

    ix, settings = both
    started = time.monotonic()
    with pytest.raises(SearchError) as whoosh:
        ix.search(text)
    with db.connect(settings) as conn, pytest.raises(SearchError) as pg:
        query.search(conn, text)
    assert time.monotonic() - started < 1.0
    for err in (whoosh.value, pg.value):
        assert "limit" in err.message and "\n" not in err.message and err.hint


def test_a_long_search_statement_is_stopped_by_the_server(
        both: tuple[SearchIndex, Settings]) -> None:
    _, settings = both
    with db.connect(settings) as conn, \
            pytest.raises(SearchError, match="longer than 50 ms"):
        _slow_search(conn)


def _slow_search(conn: db.Connection) -> None:
    """A search whose statement cannot finish in time: another session holds a lock the
    search needs, so it waits until its statement timeout stops it."""
    import psycopg

    row = conn.execute("SHOW search_path").fetchone()
    assert row is not None
    other = psycopg.connect(conn.info.dsn, autocommit=False)
    try:
        other.execute("SELECT set_config('search_path', %s, false)", (row[0],))
        other.execute("LOCK TABLE personas IN ACCESS EXCLUSIVE MODE")
        query.search(conn, "review", timeout_ms=50)
    finally:
        other.rollback()
        other.close()


@pytest.mark.parametrize(("text", "whoosh"), [
    ("tag:coding review", "tags:coding review"),
    ('title:"code reviewer" OR fiction*', 'display_name:"code reviewer" OR fiction*'),
    ("a AND (b OR NOT c)", "a (b OR NOT c)"),
    ("age:>50", "age:>=51"),
    ("-owner:acme x", "NOT owner:acme x"),
    ("c++ rust", "'c++' rust"),
])
def test_the_tree_is_given_to_whoosh_as_its_syntax(text: str, whoosh: str) -> None:
    assert to_whoosh(grammar.parse(text)) == whoosh


# Personas with the typed agent settings (model, tools), and a template carrying them too:
# templates are not mirrored with model/tools, so neither backend finds one by them.
AGENT_FILES = {
    **FILES,
    "personas/acme/planner.md": persona_md(
        "Planner", description="Plans the work", model="opus",
        tools='["Read", "Grep", "Bash(git:*)", "Agent(worker, researcher)"]'),
    "personas/globex/scout.md": persona_md(
        "Scout", description="Looks things up", model="claude-sonnet-4-5",
        tools='["Read", "WebFetch", "github/*"]'),
    "personas/globex/mute.md": persona_md("Mute", description="Uses no tools", tools="[]"),
    "templates/agent_base.md": persona_md("Agent Base", model="opus", tools="[Read]"),
}
AGENT_QUERIES = {
    "model:opus": {"acme/planner"}, "model:OPUS": {"acme/planner"},
    "model:claude*": {"globex/scout"}, "model:claude-sonnet-4-5": {"globex/scout"},
    "model:sonnet": set(), "tools:Read": {"acme/planner", "globex/scout"},
    "tool:read": {"acme/planner", "globex/scout"}, "tools:Bash": {"acme/planner"},
    "tools:agent": {"acme/planner"}, "tools:Web*": {"globex/scout"},
    "tools:github/*": {"globex/scout"}, "model:opus tools:Grep": {"acme/planner"},
    "tools:Read NOT model:opus": {"globex/scout"}, "tools:worker": set(),
    "model:haiku": set(), "kind:template model:opus": set(),
    "owner:globex -tools:WebFetch": {"globex/analyst", "globex/mute"},
}


def test_model_and_tools_field_queries_find_the_same_personas_on_both_backends(
        git_repo: GitRepoFactory, database_url: str) -> None:
    git_repo.commit(AGENT_FILES)
    settings = Settings(repo_path=git_repo.path, database_url=database_url)
    sync(settings)
    ix = SearchIndex(settings)
    ix.rebuild(_snapshot(git_repo))
    found = {}
    with db.connect(settings) as conn:
        for q in AGENT_QUERIES:
            whoosh = _found(ix.search(q, limit=50))
            postgres = _found(query.search(conn, q, limit=50))
            found[q] = (whoosh, postgres)
    assert {q: w for q, (w, p) in found.items() if w != p} == {}
    assert {q: {key for _, key, _ in w} for q, (w, _) in found.items()} == AGENT_QUERIES


def test_under_row_level_security_the_same_queries_find_the_visible_documents(
        both: tuple[SearchIndex, Settings]) -> None:
    """The server's reader (row-level security, where `@@` may not use the GIN index) goes
    through migration 0014's functions: every query finds what the table owner finds, less
    what the scope may not read; and the plan drives from the index, not a scan of all rows."""
    from maestro_git.mirror import scope
    _, settings = both
    with db.connect(settings) as conn:
        owner = {q: _found(query.search(conn, q, limit=50)) for q in QUERIES}
        for owners, visible in (("*", lambda k: True),
                                ("acme", lambda k: not k[1].startswith("globex/"))):
            with scope.scoped(conn, owners) as scoped:
                assert scoped.execute("SELECT row_security_active('personas')").fetchone() == (
                    True,)
                differ = {q: sorted(_found(query.search(scoped, q, limit=50)))
                          for q in QUERIES}
            expected = {q: sorted(k for k in owner[q] if visible(k)) for q in QUERIES}
            assert differ == expected, owners
        tree = grammar.parse("review")
        from maestro_git.mirror import fts
        st = fts.statement(tree, 10, guarded=True)
        with scope.scoped(conn, "acme") as scoped:
            scoped.execute("SET LOCAL enable_seqscan = off")
            plan = "\n".join(r[0] for r in scoped.execute(
                sql.SQL("EXPLAIN ") + st.query, st.params).fetchall())
    assert "maestro_fts_personas" in plan and "personas_pkey" in plan
