"""The Whoosh index: documents, ranking, snippets, incremental updates, self-repair."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from maestro_git.core.models import Change
from maestro_git.core.snapshot import Snapshot, build_snapshot, diff_snapshots
from maestro_git.errors import SearchError
from maestro_git.git.worktree import read_worktree
from maestro_git.mirror.sync import MirroredCommit, sync
from maestro_git.search.documents import member_terms
from maestro_git.search.engine import SCHEMA, parse_query
from maestro_git.search.index import SearchIndex
from maestro_git.settings import Settings
from tests.factories import GitRepoFactory, persona_md

CLINIC = {
    "name": "Clinic staff",
    "description": "People who work in a small clinic",
    "personas": [
        {"name": "Maria Lopez", "age": 54, "gender": "female", "occupation": "nurse",
         "bio": "Works night shifts on the cardiology ward."},
        {"name": "Tom Berg", "age": 31, "gender": "male", "occupation": "surgeon",
         "bio": "Trains residents."},
    ],
    "metadata": {"status": "validated", "generation_cycle": 2},
}

FILES = {
    "personas/acme/code_reviewer.md": persona_md(
        "Code Reviewer", description="Reviews pull requests for correctness",
        tags=["coding", "review"],
        body="# Code Reviewer\n\nYou review code for correctness, tests and style.\n"),
    "personas/acme/story_writer.md": persona_md(
        "Story Writer", description="Writes short fiction", tags=["writing"],
        metadata="{category: creative, audience: adults}",
        body="# Story Writer\n\nYou write fiction. Ask a reviewer when a plot is unclear.\n"),
    "personas/globex/analyst.md": persona_md(
        "Business Analyst", description="Turns data into decisions", tags=["business"],
        body="# Analyst\n\nYou produce quarterly revenue forecasts with clear assumptions.\n"),
    "templates/research_assistant.md": persona_md(
        "Research Assistant", description="Evidence first", category="research",
        body="# Research\n\nYou cite peer-reviewed sources.\n"),
    "persona_sets/clinic.json": json.dumps(CLINIC),
}


@dataclass(frozen=True)
class FakeMirrored:
    """The shape of `sync.MirroredCommit` that the index listener reads."""

    commit: str
    changes: list[Change]
    snapshot: Snapshot


def _snapshot(repo: GitRepoFactory) -> Snapshot:
    settings = Settings(repo_path=repo.path)
    return build_snapshot(read_worktree(repo.path), settings, commit=repo.head())


@pytest.fixture
def indexed(git_repo: GitRepoFactory) -> tuple[GitRepoFactory, SearchIndex]:
    git_repo.commit(FILES)
    ix = SearchIndex(Settings(repo_path=git_repo.path))
    ix.rebuild(_snapshot(git_repo))
    return git_repo, ix


def _keys(hits: list) -> list[str]:  # type: ignore[type-arg]
    return [h.key for h in hits]


def test_search_finds_persona_by_name(indexed: tuple[GitRepoFactory, SearchIndex]) -> None:
    _, ix = indexed
    assert _keys(ix.search("analyst")) == ["globex/analyst"]


def test_search_finds_content_phrase(indexed: tuple[GitRepoFactory, SearchIndex]) -> None:
    _, ix = indexed
    hits = ix.search('"quarterly revenue forecasts"')
    assert _keys(hits) == ["globex/analyst"]
    assert "**quarterly**" in hits[0].snippet
    assert ix.search('"revenue quarterly forecasts"') == []


def test_search_by_tag_and_owner_fields(indexed: tuple[GitRepoFactory, SearchIndex]) -> None:
    _, ix = indexed
    assert _keys(ix.search("tag:coding")) == ["acme/code_reviewer"]
    assert sorted(_keys(ix.search("owner:acme"))) == ["acme/code_reviewer", "acme/story_writer"]
    assert _keys(ix.search("tag:coding owner:globex")) == []
    assert sorted(_keys(ix.search("tag:coding OR tag:business"))) == [
        "acme/code_reviewer", "globex/analyst"]


def test_search_by_metadata_and_template_category(
        indexed: tuple[GitRepoFactory, SearchIndex]) -> None:
    _, ix = indexed
    assert _keys(ix.search("category:creative")) == ["acme/story_writer"]
    assert _keys(ix.search("metadata:adults")) == ["acme/story_writer"]
    hits = ix.search("category:research")
    assert [(h.kind, h.key) for h in hits] == [("template", "research_assistant")]


def test_prefix_and_stemmed_content(indexed: tuple[GitRepoFactory, SearchIndex]) -> None:
    _, ix = indexed
    assert "globex/analyst" in _keys(ix.search("forecast*"))
    assert "globex/analyst" in _keys(ix.search("forecasting"))  # stemmed: forecast


def test_name_match_ranks_above_a_passing_mention(
        indexed: tuple[GitRepoFactory, SearchIndex]) -> None:
    _, ix = indexed
    hits = ix.search("reviewer")
    scores = {h.key: h.score for h in hits}
    assert hits[0].key == "acme/code_reviewer"
    assert scores["acme/code_reviewer"] > 2 * scores["acme/story_writer"]


def test_set_member_search_names_its_set(indexed: tuple[GitRepoFactory, SearchIndex]) -> None:
    _, ix = indexed
    hits = ix.search("nurse in her 50s")
    assert hits[0].kind == "set_member"
    assert (hits[0].key, hits[0].member) == ("clinic", "Maria Lopez")
    assert "**nurse**" in hits[0].snippet
    assert [h.member for h in ix.search("age:[50 TO 59]")] == ["Maria Lopez"]
    assert {h.kind for h in ix.search("set:clinic")} == {"persona_set", "set_member"}


def test_member_terms_spell_out_decade_and_pronouns() -> None:
    assert member_terms({"age": 54, "gender": "Female"}) == [
        "50s", "fifties", "she", "her", "woman", "female"]
    assert member_terms({"age": "unknown"}) == []


@pytest.mark.parametrize("query", [
    'title:"code reviewer"', 'tag:coding OR "pull request"', '"pull request" OR tag:coding',
    'content:"unit tests" AND NOT owner:acme', "age:[50 TO 59]", "cod*"])
def test_well_formed_queries_parse(query: str) -> None:
    parse_query(query)


@pytest.mark.parametrize(("query", "reason"), [
    ('"unclosed phrase', "unbalanced quotes"),
    ("(coding OR review", "unbalanced parentheses"),
    ("colour:blue", "unknown field 'colour'"),
    ("coding AND", "boolean operator"),
    ("tag: coding", "has no value"),
    ("   ", "empty search query"),
])
def test_malformed_query_raises_search_error(query: str, reason: str) -> None:
    with pytest.raises(SearchError, match=reason):
        parse_query(query)


def test_incremental_update_indexes_only_the_commit(
        indexed: tuple[GitRepoFactory, SearchIndex]) -> None:
    repo, ix = indexed
    settings = Settings(repo_path=repo.path)
    before = _snapshot(repo)
    # A reader open before the update must not keep finding what the update deleted.
    assert _keys(ix.search("quarterly")) == ["globex/analyst"]
    assert _keys(ix.search("fiction")) == ["acme/story_writer"]
    repo.commit({
        "personas/acme/story_writer.md": None,
        "personas/acme/poet.md": persona_md("Poet", body="# Poet\n\nYou write haiku.\n"),
        "personas/globex/analyst.md": persona_md(
            "Business Analyst", body="# Analyst\n\nYou build churn models.\n"),
    })
    after = build_snapshot(read_worktree(repo.path), settings, commit=repo.head())
    changes = diff_snapshots(before, after)
    written = ix.update(FakeMirrored(repo.head(), changes, after))
    assert written == 2
    assert ix.commit == repo.head()
    assert _keys(ix.search("haiku")) == ["acme/poet"]
    assert _keys(ix.search("churn")) == ["globex/analyst"]
    assert ix.search("quarterly") == []
    assert ix.search("fiction") == []


def test_update_of_a_set_replaces_its_members(
        indexed: tuple[GitRepoFactory, SearchIndex]) -> None:
    repo, ix = indexed
    before = _snapshot(repo)
    clinic = dict(CLINIC, personas=[{"name": "Ana Ruiz", "age": 42, "occupation": "midwife"}])
    repo.commit({"persona_sets/clinic.json": json.dumps(clinic)})
    after = _snapshot(repo)
    ix.update(FakeMirrored(repo.head(), diff_snapshots(before, after), after))
    assert ix.search("nurse") == []
    assert [h.member for h in ix.search("midwife")] == ["Ana Ruiz"]


def test_many_updates_are_merged_in_the_background(
        indexed: tuple[GitRepoFactory, SearchIndex], caplog: pytest.LogCaptureFixture) -> None:
    repo, ix = indexed
    caplog.set_level(logging.INFO, logger="maestro_git.search.index")
    for i in range(12):
        before = _snapshot(repo)
        repo.commit({f"personas/acme/p{i}.md": persona_md(f"P{i}", body=f"# P\n\nword{i}\n")})
        after = _snapshot(repo)
        ix.update(FakeMirrored(repo.head(), diff_snapshots(before, after), after))
        # A reader that lives across merges and updates stays consistent with the writer.
        assert _keys(ix.search(f"word{i}")) == [f"acme/p{i}"]
        if i % 4 == 3:
            ix.wait_for_merge(timeout=30)
            ix.merge()
    ix.wait_for_merge(timeout=30)
    status = ix.status()
    assert status.healthy and status.segments <= 9
    assert "rebuil" not in caplog.text  # every update was incremental
    assert _keys(ix.search("word11")) == ["acme/p11"]


def _segment_file(ix: SearchIndex) -> Path:
    return next(p for p in ix.path.iterdir() if p.suffix == ".seg")


def test_corrupted_segment_is_rebuilt_on_next_use(
        indexed: tuple[GitRepoFactory, SearchIndex], caplog: pytest.LogCaptureFixture) -> None:
    repo, ix = indexed
    ix.close()
    seg = _segment_file(ix)
    os.truncate(seg, seg.stat().st_size // 2)
    reopened = SearchIndex(Settings(repo_path=repo.path), source=lambda: _snapshot(repo))
    with caplog.at_level(logging.WARNING, logger="maestro_git.search.index"):
        assert _keys(reopened.search("analyst")) == ["globex/analyst"]
    assert "rebuilding" in caplog.text
    assert reopened.check() is None


def test_a_numeric_field_in_a_query_finds_its_hit_without_a_rebuild(
        indexed: tuple[GitRepoFactory, SearchIndex], caplog: pytest.LogCaptureFixture) -> None:
    repo, ix = indexed
    ix.close()
    reopened = SearchIndex(Settings(repo_path=repo.path), source=lambda: _snapshot(repo))
    with caplog.at_level(logging.INFO, logger="maestro_git.search.index"):
        assert [h.member for h in reopened.search("age:54")] == ["Maria Lopez"]
        assert [h.member for h in reopened.search("nurse age:54")] == ["Maria Lopez"]
        assert reopened.search("surgeon age:54") == []
    assert "rebuil" not in caplog.text


def test_a_query_that_fails_on_the_rebuilt_index_is_a_search_error(
        indexed: tuple[GitRepoFactory, SearchIndex], monkeypatch: pytest.MonkeyPatch) -> None:
    import maestro_git.search.index as index_module

    repo, ix = indexed
    ix.close()
    reopened = SearchIndex(Settings(repo_path=repo.path), source=lambda: _snapshot(repo))

    def failing(q: object) -> None:
        raise RuntimeError("not the index")

    monkeypatch.setattr(index_module, "matchers", failing)  # on both paths
    with pytest.raises(SearchError, match="rebuilt index .*RuntimeError: not the index"):
        reopened.search("analyst")


def test_corrupted_index_without_a_source_is_a_search_error(
        indexed: tuple[GitRepoFactory, SearchIndex]) -> None:
    repo, ix = indexed
    ix.close()
    seg = _segment_file(ix)
    data = bytearray(seg.read_bytes())
    for i in range(64, len(data) - 64, 5):
        data[i] ^= 0x5A
    seg.write_bytes(bytes(data))
    broken = SearchIndex(Settings(repo_path=repo.path))
    assert broken.check() is not None
    with pytest.raises(SearchError, match="maestro index rebuild|unreadable"):
        broken.search("analyst")


def test_missing_index_is_built_by_ensure(git_repo: GitRepoFactory) -> None:
    git_repo.commit(FILES)
    ix = SearchIndex(Settings(repo_path=git_repo.path))
    assert not ix.exists()
    assert ix.ensure(lambda: _snapshot(git_repo)) > 0
    assert ix.commit == git_repo.head()
    assert ix.ensure(_snapshot(git_repo)) == 0  # current: nothing to do


def test_stale_index_is_brought_to_the_expected_commit(
        indexed: tuple[GitRepoFactory, SearchIndex], caplog: pytest.LogCaptureFixture) -> None:
    repo, ix = indexed
    repo.commit({"personas/acme/poet.md": persona_md("Poet", body="# Poet\n\nhaiku\n"),
                 "templates/research_assistant.md": None})
    with caplog.at_level(logging.INFO, logger="maestro_git.search.index"):
        changed = ix.ensure(lambda: _snapshot(repo), commit=repo.head())
    assert changed == 2
    assert "updating" in caplog.text
    assert ix.commit == repo.head()
    assert _keys(ix.search("haiku")) == ["acme/poet"]
    assert ix.search("category:research") == []


def test_invalid_file_keeps_its_last_good_document(
        indexed: tuple[GitRepoFactory, SearchIndex]) -> None:
    repo, ix = indexed
    before = _snapshot(repo)
    repo.commit({"personas/globex/analyst.md": "---\ndisplay_name: [unclosed\n---\nbody\n"})
    after = _snapshot(repo)
    assert not after.is_valid("personas/globex/analyst.md")
    ix.update(FakeMirrored(repo.head(), diff_snapshots(before, after), after))
    assert _keys(ix.search("quarterly")) == ["globex/analyst"]


def test_sync_listener_keeps_the_index_at_the_mirrored_commit(
        git_repo: GitRepoFactory, database_url: str) -> None:
    git_repo.commit(FILES)
    settings = Settings(repo_path=git_repo.path, database_url=database_url)
    ix = SearchIndex(settings)
    sync(settings, listeners=[ix.update])
    assert ix.commit == git_repo.head()
    assert _keys(ix.search("analyst")) == ["globex/analyst"]
    git_repo.commit({
        "personas/globex/analyst.md": persona_md("Business Analyst",
                                                 body="# Analyst\n\nYou model churn.\n"),
        "personas/acme/code_reviewer.md": "---\ndisplay_name: [broken\n---\n",
    })
    sync(settings, listeners=[ix.update])
    assert ix.commit == git_repo.head()
    assert _keys(ix.search("churn")) == ["globex/analyst"]
    assert _keys(ix.search("tag:coding")) == ["acme/code_reviewer"]  # last good state kept
    # A rebuild from the mirror's effective state keeps the last good record too.
    seen: list[MirroredCommit] = []
    git_repo.commit({"personas/acme/poet.md": persona_md("Poet", body="# Poet\n\nhaiku\n")})
    sync(settings, listeners=[seen.append])
    ix.rebuild(seen[-1].snapshot)
    assert _keys(ix.search("tag:coding")) == ["acme/code_reviewer"]
    assert _keys(ix.search("haiku")) == ["acme/poet"]


@pytest.mark.parametrize("field", ["name", "display_name", "description", "metadata", "content"])
@pytest.mark.usefixtures("speedups_on")
def test_fast_postings_equal_the_analyzers(field: str) -> None:
    from whoosh import fields

    texts = ["# Code Reviewer\n\nYou review code_reviewer's PRs, e.g. v1.2.0 and 3.14 — a lot.",
             "The the AND of to be", "café naïve Ünïcode __x__ a b", "x", "",
             # long texts are tokenised line by line, remembered lines included
             "the to\n\nof a\n" + "# Reviewer\n- Check e.g. v1.2 edge cases.\n" * 30,
             "\n".join(["to be"] * 40 + ["Reviews PRs", "the end", "Reviews PRs"])]
    for text in texts:
        assert list(SCHEMA[field].index(text)) == list(fields.TEXT.index(SCHEMA[field], text))


def test_update_after_another_process_rebuilt_the_index(
        indexed: tuple[GitRepoFactory, SearchIndex]) -> None:
    """A rebuild elsewhere swaps in a new index whose generation can equal the one this
    reader saw: its document numbers must not be used to delete from the new index."""
    repo, ix = indexed
    assert _keys(ix.search("quarterly")) == ["globex/analyst"]  # a reader at generation 1
    before = _snapshot(repo)
    repo.commit({"personas/acme/story_writer.md": None, "persona_sets/clinic.json": None})
    smaller = _snapshot(repo)
    SearchIndex(Settings(repo_path=repo.path)).rebuild(smaller)  # "another process"
    repo.commit({"personas/globex/analyst.md": persona_md(
        "Business Analyst", body="# Analyst\n\nYou build churn models.\n")})
    after = _snapshot(repo)
    ix.apply(diff_snapshots(smaller, after), after)
    assert before.commit != after.commit
    assert _keys(ix.search("churn")) == ["globex/analyst"]
    assert ix.search("quarterly") == []
    assert _keys(ix.search("tag:coding")) == ["acme/code_reviewer"]
    assert ix.search("nurse") == []


def test_a_burst_of_updates_merges_once_when_it_pauses(
        indexed: tuple[GitRepoFactory, SearchIndex], monkeypatch: pytest.MonkeyPatch) -> None:
    import maestro_git.search.index as index_module

    monkeypatch.setattr(index_module, "MERGE_THRESHOLD", 2)
    monkeypatch.setattr(index_module, "MERGE_IDLE", 60.0)  # the burst never pauses
    repo, ix = indexed
    before = _snapshot(repo)
    for i in range(6):
        repo.commit({f"personas/acme/p{i}.md": persona_md(f"P{i}", body=f"# P\n\nword{i}\n")})
        after = _snapshot(repo)
        ix.apply(diff_snapshots(before, after), after)
        before = after
    assert ix.status().segments == 7  # the rebuild's segment and one per update
    ix.wait_for_merge(timeout=30)  # runs the waiting merge now
    assert ix.status().segments == 1  # every small segment, in one merge
    assert [_keys(ix.search(f"word{i}")) for i in range(6)] == [[f"acme/p{i}"] for i in range(6)]


@pytest.mark.usefixtures("speedups_on")
def test_cached_posting_blocks_give_the_hits_of_a_cold_read(
        indexed: tuple[GitRepoFactory, SearchIndex], monkeypatch: pytest.MonkeyPatch) -> None:
    import maestro_git.search.speedups.postings as engine

    _, ix = indexed
    queries = ["review", "code reviewer", '"peer-reviewed sources"', "tag:coding", "nurse 50s",
               "fiction OR revenue", "writ*"]
    # Plain words are scored from the posting arrays and the index's per-word scores; without
    # both, every query reads the posting blocks.
    monkeypatch.setattr(engine.SegmentArrays, "open", classmethod(lambda cls, path: None))
    ix._reset()  # segment readers again, without arrays

    def search(q: str) -> list[object]:
        ix._words.clear()
        ix._answers.clear()
        return list(ix.search(q))

    cold, read = [], []
    for q in queries:
        engine._BLOCKS.clear()
        cold.append(search(q))
        read.append(sum(len(blocks) for blocks in engine._BLOCKS.values()))
    assert all(cold) and all(read)  # every query found hits in the blocks it kept
    assert [search(q) for q in queries] == cold  # now served from the cache
    monkeypatch.setattr(engine, "BLOCK_CACHE_BYTES", 1)  # a full cache is emptied, not wrong
    assert [search(q) for q in queries] == cold


def _index_dump(path: Path) -> list[object]:
    """Every term's statistics and postings, stored field, length and column of an index."""
    from whoosh import index

    out: list[object] = []
    with index.open_dir(str(path)).reader() as reader:
        for fieldname, text in reader.all_terms():
            info = reader.term_info(fieldname, text)
            out.append((fieldname, text, info.weight(), info.doc_frequency(),
                        info.min_length(), info.max_length(), info.max_weight()))
            m = reader.postings(fieldname, text)
            while m.is_active():
                out.append((m.id(), m.weight(), m.value(), m.block_max_weight(),
                            m.block_min_length(), m.block_max_length()))
                m.next()
        for docnum in reader.all_doc_ids():
            out.append(reader.stored_fields(docnum))
            out.append([reader.doc_field_length(docnum, f) for f in SCHEMA.names()])
        uids = reader.column_reader("uid")
        out.append([uids[n] for n in reader.all_doc_ids()])
        out.append([reader.field_length(f) for f in SCHEMA.names()])
    return out


@pytest.mark.parametrize(("procs", "here_max"), [(1, 60_000), (2, 60_000), (1, 0)])
@pytest.mark.usefixtures("speedups_on")
def test_bulk_writer_writes_what_whoosh_writes(git_repo: GitRepoFactory, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch, procs: int,
                                               here_max: int) -> None:
    """here_max 0: a large index, every part written by a child (none in this process)."""
    from whoosh import index

    import maestro_git.search.speedups.bulk as bulk

    monkeypatch.setattr(bulk, "HERE_MAX_DOCS", here_max)
    started: list[int] = []
    start_child = bulk._start_child
    monkeypatch.setattr(bulk, "_start_child", lambda folder, part, n: (
        started.append(n), start_child(folder, part, n))[1])

    from maestro_git.search.documents import indexable, record_docs
    from maestro_git.search.speedups.bulk import write_segments

    git_repo.commit(FILES)
    docs = [d for rec in indexable(_snapshot(git_repo)) for d in record_docs(rec)]
    words = ["review", "tests", "security", "plain", "language", "data"]
    for i in range(300):  # terms in more than one 128-posting block, lengths that vary
        body = " ".join(words[j % len(words)] for j in range(i % 7, i % 7 + 3 + i % 40))
        docs.append({"uid": f"persona:o{i % 3}/p{i}", "kind": "persona", "key": f"o{i % 3}/p{i}",
                     "owner": f"o{i % 3}", "name": f"p{i}", "display_name": f"P {i}",
                     "tags": "a,b" if i % 2 else "c", "content": f"# P{i}\n\n{body} x{i}.",
                     "metadata": f"level {i % 5}", "hash": f"{i:08x}", "active": i % 4 > 0})
    whoosh_dir, bulk_dir = tmp_path / "whoosh", tmp_path / "bulk"
    whoosh_dir.mkdir()
    bulk_dir.mkdir()
    writer = index.create_in(str(whoosh_dir), SCHEMA).writer()
    for doc in docs:
        writer.add_document(**doc)
    writer.commit()
    import threading

    here = threading.active_count() == 1 and here_max > 0  # else every part in a child
    assert write_segments(index.create_in(str(bulk_dir), SCHEMA), docs, procs) == procs
    assert len(started) == (procs - 1 if here else procs)
    if procs == 1:
        assert _index_dump(bulk_dir) == _index_dump(whoosh_dir)
    else:  # two segments: the same documents, found the same way
        with index.open_dir(str(bulk_dir)).searcher() as bulk, \
                index.open_dir(str(whoosh_dir)).searcher() as single:
            assert bulk.doc_count() == single.doc_count() == len(docs)
            for q in ("review", "tags:a", "owner:o1", '"security plain"', "x7"):
                parsed = parse_query(q)
                assert sorted(h["uid"] for h in bulk.search(parsed, limit=None)) == \
                    sorted(h["uid"] for h in single.search(parsed, limit=None))


@pytest.mark.usefixtures("speedups_on")
def test_plain_words_rank_as_whoosh_scores_each_document(
        indexed: tuple[GitRepoFactory, SearchIndex], monkeypatch: pytest.MonkeyPatch) -> None:
    import maestro_git.search.index as index_module
    from maestro_git.search.speedups.postings import word_groups

    repo, ix = indexed
    plain = ["reviewer", "code reviewer", "nurse in her 50s", "write fiction", "review",
             "quarterly revenue", "research sources", "tag:coding OR fiction", "writer"]
    numeric = ["age:54", "nurse age:54", "nurse OR age:31"]  # encoded terms: Whoosh runs them
    queries = plain + numeric
    assert all(word_groups(parse_query(q), SCHEMA) is not None for q in plain)
    for q in [*numeric, '"code reviewer"', "review NOT tag:coding", "review*", "active:true"]:
        assert word_groups(parse_query(q), SCHEMA) is None

    def hits() -> list[list[tuple[str, str | None, float, str]]]:
        ix._answers.clear()  # run each query, from the cached word scores or not
        return [[(h.key, h.member, h.score, h.snippet) for h in ix.search(q)] for q in queries]

    def whoosh_hits() -> list[list[tuple[str, str | None, float, str]]]:
        with monkeypatch.context() as patch:
            patch.setattr(index_module, "word_groups", lambda q, schema: None)  # Whoosh's
            return hits()

    cached = hits()
    assert cached == hits() == whoosh_hits()  # the second time from the cache
    before = _snapshot(repo)  # an update leaves deleted documents in the first segment
    repo.commit({"personas/acme/story_writer.md": persona_md(
        "Story Writer", description="Writes long fiction", body="# Writer\n\nNovels.\n")})
    after = _snapshot(repo)
    ix.update(FakeMirrored(repo.head(), diff_snapshots(before, after), after))
    assert ix.status().segments == 2
    assert hits() == whoosh_hits() != cached


def test_a_repeated_query_is_answered_from_the_kept_hits_until_a_commit(
        indexed: tuple[GitRepoFactory, SearchIndex], monkeypatch: pytest.MonkeyPatch) -> None:
    """Any query (a phrase here, which no score array serves) runs once per searcher: its
    hits are kept until the index changes, and a kept list is never the caller's to edit."""
    import maestro_git.search.index as index_module

    repo, ix = indexed
    ran: list[str] = []
    stored_hit = index_module.stored_hit

    def counting(stored: dict[str, object], score: float, marks: object) -> object:
        ran.append(str(stored.get("key")))
        return stored_hit(stored, score, marks)  # type: ignore[arg-type]

    monkeypatch.setattr(index_module, "stored_hit", counting)
    first = ix.search('"write fiction"')
    assert _keys(first) == ["acme/story_writer"] and ran == ["acme/story_writer"]
    first.clear()  # the caller's own list
    assert _keys(ix.search('"write fiction"')) == ["acme/story_writer"]
    assert len(ran) == 1  # kept: nothing ran again
    assert _keys(ix.search('"write fiction"', limit=1)) == ["acme/story_writer"]
    assert len(ran) == 2  # another limit is another answer
    before = _snapshot(repo)
    repo.commit({"personas/acme/story_writer.md": persona_md(
        "Story Writer", description="Writes plays", body="# Writer\n\nYou write plays.\n")})
    after = _snapshot(repo)
    ix.update(FakeMirrored(repo.head(), diff_snapshots(before, after), after))
    assert ix.search('"write fiction"') == []  # the new generation's answer


@pytest.mark.usefixtures("speedups_on")
def test_posting_arrays_score_as_the_posting_blocks(
        indexed: tuple[GitRepoFactory, SearchIndex], monkeypatch: pytest.MonkeyPatch) -> None:
    import maestro_git.search.speedups.postings as engine

    repo, ix = indexed
    assert list(ix.path.glob("*.wsa"))  # the rebuild wrote the arrays
    queries = ["reviewer", "code reviewer", "nurse in her 50s", "write fiction", "review",
               "research sources", "tag:coding OR fiction", "writer", "owner:acme OR fiction"]

    def hits() -> list[list[tuple[str, str | None, float]]]:
        ix._words.clear()  # score every word again
        ix._answers.clear()
        return [[(h.key, h.member, h.score) for h in ix.search(q)] for q in queries]

    def from_blocks() -> list[list[tuple[str, str | None, float]]]:
        with monkeypatch.context() as patch:
            patch.setattr(engine.SegmentArrays, "open", classmethod(lambda cls, path: None))
            ix._reset()  # segment readers again, without arrays
            try:
                return hits()
            finally:
                ix._reset()

    found = hits()
    assert any(found) and found == from_blocks()
    before = _snapshot(repo)  # a deleted document in the arrays' segment is skipped
    repo.commit({"personas/acme/story_writer.md": persona_md(
        "Story Writer", description="Writes long fiction", body="# Writer\n\nNovels.\n")})
    after = _snapshot(repo)
    ix.update(FakeMirrored(repo.head(), diff_snapshots(before, after), after))
    found = hits()
    assert found == from_blocks()
    assert [key for key, _, _ in found[3]].count("acme/story_writer") == 1
    ix.merge(optimize=True)  # Whoosh's writer: one segment without arrays, the old ones gone
    assert not list(ix.path.glob("*.wsa"))
    merged = hits()  # scores move a little: the deleted document no longer counts
    assert [[key for key, _, _ in q] for q in merged] == [[key for key, _, _ in q] for q in found]
