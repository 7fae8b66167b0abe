"""The Whoosh search index in `.maestro/index`: the only module that imports whoosh.

Rules of this module:
- The index is a rebuildable cache of one snapshot. It records the commit it reflects (in a
  `meta` document written in the same Whoosh commit as the documents), so a reader can tell
  whether it is current.
- Documents: agent personas, templates, persona sets and every member of a persona set (a
  member document carries its set's key, so a hit names the set).
- One writer at a time, across processes and threads (a lock file beside the index, with a
  timeout). Readers never take it: Whoosh segments are immutable and a searcher sees the last
  committed generation.
- Incremental updates commit without merging segments (the p95 of a Whoosh commit is the
  merge); once there are more than `MERGE_THRESHOLD` segments, the small ones are merged in a
  background thread when updates pause for `MERGE_IDLE` seconds (a merge holds the writer
  lock, so one during a burst would stall the next update), or at once at `MERGE_CEILING`. `rebuild` writes a fresh index beside the old one with a multiprocess
  writer and swaps it in, so readers never see a half-built index.
- A missing, corrupted or stale index is detected by `ensure` and rebuilt, with a log line.
  A malformed query raises `SearchError` with a one-line reason.
"""

from __future__ import annotations

import bisect
import dataclasses
import logging
import os
import re
import shutil
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from whoosh import fields, formats, index, qparser
from whoosh.analysis import STOP_WORDS, LowercaseFilter, RegexTokenizer, StemmingAnalyzer
from whoosh.codec.whoosh3 import LENGTHS_COLUMN, W3LeafMatcher, W3PerDocReader, _lenfield
from whoosh.lang.porter import stem
from whoosh.matching import ReadTooFar
from whoosh.query import And, AndNot, Not, Phrase, Prefix, Query, QueryError, Term
from whoosh.reading import EmptyReader, MultiReader, SegmentReader
from whoosh.searching import Searcher
from whoosh.system import pack_uint
from whoosh.util.numeric import byte_to_length

from maestro_git.errors import SearchError
from maestro_git.models import Change, ChangeAction
from maestro_git.search_docs import META_UID as _META_UID
from maestro_git.search_docs import (
    HitKind,
    IndexStatus,
    SearchHit,
    indexable,
    member_terms,
    record_docs,
    shown,
)
from maestro_git.search_docs import uid as _uid
from maestro_git.search_files import WriteLock, collect_leaked_files, leaks_ignored
from maestro_git.search_text import Matcher, check_query, snippet
from maestro_git.settings import Settings
from maestro_git.snapshot import Snapshot

__all__ = [
    "FIELDS",
    "HitKind",
    "IndexStatus",
    "SearchHit",
    "SearchIndex",
    "member_terms",
]

log = logging.getLogger("maestro_git.index")

SCHEMA_VERSION = 2
MERGE_THRESHOLD = 8  # segments; above it a background merge of the small ones is scheduled
SMALL_SEGMENT = 1000  # documents; segments below it (or a tenth of the largest) are merged
MERGE_IDLE = 0.5  # seconds without an update before that merge starts
MERGE_CEILING = 64  # segments; at this many it starts at once, even during a burst
MULTIPROCESS_MIN_DOCS = 2000  # below this a single writer is faster than forking workers
BULK_CHANGES = 1000  # an update with this many changes rebuilds from the snapshot instead
WRITER_TIMEOUT = 30.0  # seconds to wait for another writer
_CHECK_STRIDE = 64  # `check` reads every 64th stored document (a damaged block fails there)

_NAME_TOKENS = re.compile(r"[^\W_]+")  # code_reviewer -> code reviewer
_TEXT_TOKENS = re.compile(r"\w+(?:\.?\w+)*")  # StemmingAnalyzer's tokenizer
_NAME_ANALYZER = RegexTokenizer(_NAME_TOKENS.pattern) | LowercaseFilter()
_TEXT = StemmingAnalyzer()  # tokens, lower case, stop words (and 1-letter words), Porter stem
_STOP_WORDS = frozenset(STOP_WORDS)
_STEMS: dict[str, str] = {}


def _stemmed(token: str) -> str:
    """A token as `_TEXT` indexes it (lower case, then Porter stem), cached."""
    found = _STEMS.get(token)
    if found is None:
        if len(_STEMS) > 200_000:
            _STEMS.clear()
        found = _STEMS[token] = stem(token.lower())
    return found


def _name_terms(text: str) -> tuple[list[str], int]:
    """What `_NAME_ANALYZER` indexes for `text`: its terms and the first one's position."""
    return [t.lower() for t in _NAME_TOKENS.findall(text)], 0


_TERMS: dict[str, str] = {}  # token -> its term, "" for a stop word


def _term(token: str) -> str:
    lower = token.lower()
    term = "" if len(lower) < 2 or lower in _STOP_WORDS else _stemmed(lower)
    if len(_TERMS) > 200_000:
        _TERMS.clear()
    _TERMS[token] = term
    return term


def _text_terms(text: str) -> tuple[list[str], int]:
    """What `_TEXT` indexes for `text`: its terms (stop words dropped) and the first one's
    position (Whoosh's StopFilter keeps the first kept token's position, then counts on)."""
    get = _TERMS.get
    mapped = [m if (m := get(t)) is not None else _term(t) for t in _TEXT_TOKENS.findall(text)]
    first = next((i for i, term in enumerate(mapped) if term), 0)
    return [term for term in mapped if term], first


class _FastText(fields.TEXT):  # type: ignore[misc]
    """A TEXT field that computes its postings with `terms` (a plain function giving exactly
    what its analyzer would) instead of the analyzer's chain of Token objects: indexing is
    most of a rebuild's time, and the analyzer chain was half of that."""

    def __init__(self, terms: Callable[[str], tuple[list[str], int]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.terms = terms

    def index(self, value: Any, **kwargs: Any) -> Any:
        fmt = self.format
        if kwargs or not isinstance(value, str) or type(fmt) not in _FAST_FORMATS:
            return super().index(value, **kwargs)
        terms, first = self.terms(value)
        boost = fmt.field_boost
        if type(fmt) is formats.Frequency:
            return [(w.encode("utf-8"), n, n * boost, pack_uint(n))
                    for w, n in Counter(terms).items()]
        positions: dict[str, list[int]] = {}
        for pos, term in enumerate(terms, first):
            found = positions.get(term)
            if found is None:
                positions[term] = [pos]
            else:
                found.append(pos)
        encode = fmt.encode
        return [(w.encode("utf-8"), len(p), len(p) * boost,
                 _single_position(p[0], encode) if len(p) == 1 else encode(p))
                for w, p in positions.items()]


_SINGLE_POSITIONS: dict[int, bytes] = {}


def _single_position(pos: int, encode: Callable[[list[int]], bytes]) -> bytes:
    """`Positions.encode([pos])`, cached: most terms occur once in a document."""
    found = _SINGLE_POSITIONS.get(pos)
    if found is None:
        found = _SINGLE_POSITIONS[pos] = encode([pos])
    return found


_FAST_FORMATS = (formats.Frequency, formats.Positions)

SCHEMA = fields.Schema(
    uid=fields.ID(unique=True, stored=True, sortable=True),
    kind=fields.ID(stored=True),
    key=fields.ID(stored=True),
    member=fields.STORED(),
    owner=fields.ID(stored=True),
    name=_FastText(_name_terms, analyzer=_NAME_ANALYZER, field_boost=5.0, stored=True,
                   phrase=False),
    display_name=_FastText(_name_terms, analyzer=_NAME_ANALYZER, field_boost=4.0, stored=True),
    description=_FastText(_text_terms, analyzer=_TEXT, field_boost=2.0, stored=True),
    tags=fields.KEYWORD(commas=True, lowercase=True, scorable=True, field_boost=2.0,
                        stored=True),
    category=fields.KEYWORD(lowercase=True, scorable=True, stored=True),
    set=fields.KEYWORD(stored=True),
    status=fields.ID(),
    extends=fields.ID(),
    active=fields.BOOLEAN(),
    age=fields.NUMERIC(),
    metadata=_FastText(_text_terms, analyzer=_TEXT, phrase=False),
    content=_FastText(_text_terms, analyzer=_TEXT, stored=True),
    hash=fields.ID(sortable=True),
    commit=fields.STORED(),
    schema_version=fields.STORED(),
)

# Fields an unqualified word is looked up in, with the parser-side boost of each.
# Every one of them is scorable: a field without term weights (ID) in the default union
# turns off Whoosh's block-quality skipping and makes every query score every match.
_DEFAULT_FIELDS = ("name", "display_name", "description", "tags", "category", "metadata",
                   "content")
_ALIASES = {"tags": ["tag"], "set": ["in_set"], "content": ["body", "text"],
            "display_name": ["title"]}
FIELDS: tuple[str, ...] = tuple(sorted(
    {n for n in SCHEMA.names() if n not in ("uid", "hash", "commit", "schema_version", "member")}
    | {a for names in _ALIASES.values() for a in names}))


@dataclass(frozen=True)

class MirroredLike(Protocol):
    """What `update` needs from `sync.MirroredCommit` (a sync listener's argument)."""

    @property
    def changes(self) -> Sequence[Change]: ...

    @property
    def snapshot(self) -> Snapshot: ...

    @property
    def commit(self) -> Any: ...  # CommitInfo (with `.id`) or a commit id


SnapshotSource = Snapshot | Callable[[], Snapshot]




def _skip_to(self: Any, targetid: int) -> None:
    """`W3LeafMatcher.skip_to` with a binary search inside the block: Whoosh steps through
    a block one posting at a time, which is most of the time an AND of two common words
    takes (every candidate of one word is looked up in the other)."""
    if not self.is_active():
        raise ReadTooFar
    if targetid <= self.id():
        return
    block_max_id = self.block_max_id
    if targetid > block_max_id():
        self._skip_to_block(lambda: targetid > block_max_id())
    if self.is_active() and self.id() < targetid:  # the block holds an id >= targetid
        self._i = bisect.bisect_left(self._ids, targetid, self._i)


def _doc_field_length(self: Any, docnum: int, fieldname: str, default: int = 0) -> int | None:
    """`W3PerDocReader.doc_field_length` from the length column read once into memory:
    Whoosh seeks and reads the file for every posting it writes at a commit (a third of a
    rebuild's commit) and for every document it scores. A segment's lengths never change."""
    if docnum > self._doccount:
        raise IndexError(f"Asked for docnum {docnum!r} of {self._doccount}")
    cache = self.__dict__.setdefault("_lengths_in_memory", {})
    column = cache.get(fieldname, cache)
    if column is cache:
        reader = self._cached_reader(_lenfield(fieldname), LENGTHS_COLUMN)
        column = cache[fieldname] = None if reader is None else bytes(reader)
    if column is None:
        return default
    lbyte = column[docnum]
    return byte_to_length(lbyte) if lbyte else None  # None for 0, as Whoosh does


# The pinned whoosh-reloaded 2.7.5; same results, faster (tests pin both).
W3LeafMatcher.skip_to = _skip_to
W3PerDocReader.doc_field_length = _doc_field_length


def _merge_small(writer: Any, segments: list[Any]) -> list[Any]:
    """A Whoosh merge policy: every small segment (incremental updates write one per
    commit) into one, leaving the large ones a rebuild wrote. Whoosh's MERGE_SMALL merges
    only a few of them per call, so a burst of updates kept dozens of segments."""
    largest = max((seg.doc_count_all() for seg in segments), default=0)
    limit = max(SMALL_SEGMENT, largest // 10)
    small = [seg for seg in segments if seg.doc_count_all() < limit]
    if len(small) < 2:
        return segments
    for seg in small:
        reader = SegmentReader(writer.storage, writer.schema, seg)
        writer.add_reader(reader)
        reader.close()
    return [seg for seg in segments if seg not in small]

# -- helpers -------------------------------------------------------------------------------

def _renew_deletions(reader: Any, segment: Any) -> None:
    """Point a reused segment reader at its segment's current deletion set."""
    reader._segment = segment
    reader.__dict__.pop("deleted_docs_set", None)  # a cached_property of the old set
    perdoc = getattr(reader, "_perdoc", None)
    if perdoc is not None and hasattr(perdoc, "_segment"):
        perdoc._segment = segment


def _deletions(kind: str, key: str) -> list[Query]:
    """Queries matching every document of one entity (a set: its members too)."""
    found: list[Query] = [Term("uid", _uid(kind, key))]
    if kind == "persona_set":
        found.append(Term("set", key) & Term("kind", "set_member"))
    return found


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")


def _commit_id(commit: Any) -> str | None:
    if commit is None or isinstance(commit, str):
        return commit
    return str(commit.id)


# -- query parsing ---------------------------------------------------------------------------

def _check_query(text: str) -> None:
    """Reject what Whoosh would silently turn into nothing, with a one-line reason."""
    check_query(text, FIELDS)


def _errors(q: Query) -> list[str]:
    found = [str(q.error)] if getattr(q, "error", None) else []
    for child in q.children():
        found += _errors(child)
    return found


def _parser(group: type[qparser.syntax.GroupNode] | Any = qparser.AndGroup
            ) -> qparser.QueryParser:
    parser = qparser.MultifieldParser(list(_DEFAULT_FIELDS), SCHEMA, group=group)
    parser.add_plugin(qparser.FieldAliasPlugin(_ALIASES))
    parser.add_plugin(qparser.GtLtPlugin())
    return parser


_AND_PARSER = _parser()
_OR_PARSER = _parser(qparser.OrGroup.factory(0.9))


def parse_query(text: str, *, any_word: bool = False) -> Query:
    """`text` in Whoosh query syntax as a query over the index, or `SearchError`."""
    _check_query(text)
    parser = _OR_PARSER if any_word else _AND_PARSER
    try:
        q = parser.parse(text)
    except Exception as exc:  # whoosh raises assorted errors on odd input
        raise SearchError(f"cannot parse the query: {exc}") from exc
    errors = _errors(q)
    if errors:
        raise SearchError(f"cannot parse the query: {errors[0]}")
    return _positional_phrases(q)


def _positional_phrases(q: Query) -> Query:
    """A phrase over a field without positions (tags, owner, …) as all of its words, since
    Whoosh refuses such a phrase and the multifield parser asks every field for it."""
    if isinstance(q, Phrase):
        field = SCHEMA[q.fieldname] if q.fieldname in SCHEMA.names() else None
        if field is None or not field.format or not field.format.supports("positions"):
            return And([Term(q.fieldname, w) for w in q.words])
        return q
    return q.apply(_positional_phrases)


# -- snippets --------------------------------------------------------------------------------

_PLAIN_WORDS = re.compile(r"^[\w\s'.,-]+$")
# The fields a snippet comes from, in order, each with its tokenizer and normaliser at
# indexing (`_TEXT`'s and `_NAME_ANALYZER`'s), so a snippet marks exactly the indexed words.
_SNIPPET_FIELDS: dict[str, tuple[re.Pattern[str], Callable[[str], str]]] = {
    "content": (_TEXT_TOKENS, _stemmed),
    "description": (_TEXT_TOKENS, _stemmed),
    "display_name": (_NAME_TOKENS, str.lower),
}


def _positive_leaves(q: Query) -> Iterator[Query]:
    """The leaf queries a hit matched (not those under NOT)."""
    if isinstance(q, Not):
        return
    if isinstance(q, AndNot):
        yield from _positive_leaves(q.a)
    elif q.is_leaf():
        yield q
    else:
        for child in q.children():
            yield from _positive_leaves(child)


def _matchers(q: Query) -> dict[str, Matcher]:
    """For each snippet field the query searched, what to mark in it."""
    terms: dict[str, set[str]] = {}
    prefixes: dict[str, list[str]] = {}
    for leaf in _positive_leaves(q):
        name = leaf.field()
        if name not in _SNIPPET_FIELDS:
            continue
        if isinstance(leaf, Prefix):
            prefixes.setdefault(name, []).append(str(leaf.text))
        elif isinstance(leaf, Phrase):
            terms.setdefault(name, set()).update(str(w) for w in leaf.words)
        elif isinstance(leaf, Term):
            terms.setdefault(name, set()).add(_text(leaf.text))
    found = {}
    for name, (tokens, normalize) in _SNIPPET_FIELDS.items():
        if name in terms or name in prefixes:
            found[name] = Matcher(frozenset(terms.get(name, ())),
                                  tuple(prefixes.get(name, ())), tokens, normalize)
    return found


# -- the index -------------------------------------------------------------------------------

class SearchIndex:
    """The Whoosh index of one repository (`settings.resolved_index_dir`).

    `source`, when given, is how to get the snapshot the index should reflect; `search` then
    rebuilds a missing or corrupted index by itself instead of raising `SearchError`.
    """

    def __init__(self, settings: Settings, *, source: Callable[[], Snapshot] | None = None,
                 procs: int = 2, writer_timeout: float = WRITER_TIMEOUT) -> None:
        self.settings = settings
        self.path = settings.resolved_index_dir
        self.source = source
        self.procs = procs
        self.writer_timeout = writer_timeout
        self._lock = threading.RLock()  # guards the searcher (readers)
        self._write_lock = threading.RLock()  # in-process writers; never held by a reader
        self._ix: Any = None
        self._searcher: Any = None
        self._searcher_at: tuple[int, int] = (-1, -1)  # (index directory inode, generation)
        self._merge_thread: threading.Thread | None = None
        self._merging = False

    # -- opening and status --------------------------------------------------------------
    def _lockfile(self) -> WriteLock:
        return WriteLock(self.path.parent / (self.path.name + ".lock"), self.writer_timeout)

    def exists(self) -> bool:
        return self.path.is_dir() and index.exists_in(str(self.path))

    def _open(self) -> Any:
        if self._ix is None:
            if not self.exists():
                raise SearchError(f"no search index at {self.path.name}",
                                  hint="run 'maestro index rebuild' (or 'maestro sync')")
            failure = ""
            with leaks_ignored():
                try:
                    self._ix = index.open_dir(str(self.path))
                except Exception as exc:
                    failure = f"{type(exc).__name__}: {exc}"
            if self._ix is None:
                collect_leaked_files()
                raise SearchError(f"the search index is unreadable ({failure})",
                                  hint="run 'maestro index rebuild'")
        return self._ix

    def _meta(self) -> dict[str, Any]:
        with self._open().searcher() as searcher:
            found = searcher.document(uid=_META_UID)
        if not found:
            raise SearchError("the search index has no commit record",
                              hint="run 'maestro index rebuild'")
        return dict(found)

    @property
    def commit(self) -> str | None:
        """The commit the index reflects (None: a working tree, or no index)."""
        try:
            return self._meta().get("commit")
        except SearchError:
            return None

    def check(self) -> str | None:
        """Why the index cannot be used as it is (missing, corrupted, old schema), or None."""
        problem: str | None = None
        with leaks_ignored():
            problem = self._probe()
        if problem is not None:
            self._reset()
            collect_leaked_files()
        return problem

    def _probe(self) -> str | None:
        problem: str | None = None
        try:
            self._reset()
            meta = self._meta()
            if meta.get("schema_version") != SCHEMA_VERSION:
                return "it was built by another version of maestro"
            with self._open().searcher() as searcher:
                reader = searcher.reader()
                for name in ("uid", "name", "content"):
                    for _ in reader.lexicon(name):
                        pass
                docnums = list(reader.all_doc_ids())
                for docnum in docnums[::_CHECK_STRIDE] + docnums[-1:]:
                    reader.stored_fields(docnum)
        except SearchError as err:
            problem = err.message
        except Exception as exc:  # a damaged segment raises whatever its reader hits
            problem = f"it is corrupted ({type(exc).__name__}: {exc})"
        return problem

    def status(self) -> IndexStatus:
        """Where the index is, what it reflects and whether it can be read."""
        reason = self.check() if self.exists() else "it does not exist"
        docs = segments = 0
        commit = None
        if reason is None:
            ix = self._open()
            with ix.searcher() as searcher:
                docs = searcher.doc_count() - 1  # the meta document
            segments = len(ix._segments())
            commit = self.commit
        return IndexStatus(str(self.path), self.exists(), commit, docs, segments,
                           reason is None, reason or "")

    def _reset(self) -> None:
        with self._lock:
            if self._searcher is not None:
                self._searcher.close()
            self._searcher = None
            self._ix = None

    # -- writing -------------------------------------------------------------------------
    def rebuild(self, snapshot: Snapshot) -> int:
        """Index every valid record of `snapshot` from scratch; return the document count.

        The new index is written beside the old one and swapped in, so concurrent readers
        keep the old one until they refresh.
        """
        docs = [d for rec in indexable(snapshot) for d in record_docs(rec)]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._write_lock, self._lockfile():
            build = self.path.parent / f"{self.path.name}.build-{uuid.uuid4().hex[:8]}"
            build.mkdir()
            try:
                ix = index.create_in(str(build), SCHEMA)
                if self.procs > 1 and len(docs) >= MULTIPROCESS_MIN_DOCS:
                    writer = ix.writer(procs=self.procs, multisegment=True, limitmb=128)
                else:
                    writer = ix.writer(limitmb=128)
                for doc in docs:
                    writer.add_document(**doc)
                writer.add_document(uid=_META_UID, kind="meta", commit=snapshot.commit,
                                    schema_version=SCHEMA_VERSION)
                writer.commit()
                ix.close()
                self._swap_in(build)
            except BaseException:
                shutil.rmtree(build, ignore_errors=True)
                raise
            self._reset()
        log.info("search index rebuilt: %d documents at %s", len(docs),
                 (snapshot.commit or "working tree")[:12])
        return len(docs)

    def _swap_in(self, build: Path) -> None:
        old = None
        if self.path.exists():
            old = self.path.parent / f"{self.path.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(self.path, old)
        os.replace(build, self.path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def apply(self, changes: Iterable[Change], snapshot: Snapshot) -> int:
        """Re-index only the entities in `changes`, reading them from `snapshot`, and record
        `snapshot.commit`. Commits without merging segments. Returns documents written.

        Deletions are looked up with the long-lived reader (its segment readers are reused
        between commits) rather than Whoosh's `update_document`, which opens every segment
        again on each call."""
        deletes: list[Query] = [Term("uid", _META_UID)]
        adds: list[dict[str, Any]] = []
        for change in changes:
            self._plan_one(change, snapshot, deletes, adds)
        adds.append({"uid": _META_UID, "kind": "meta", "commit": snapshot.commit,
                     "schema_version": SCHEMA_VERSION})
        with self._write_lock, self._lockfile():
            ix = self._open()
            writer = ix.writer(timeout=self.writer_timeout)
            try:
                with self._lock:  # the searcher is shared with readers
                    searcher = self._current_searcher()  # the writer's generation: we lock
                    for q in deletes:
                        writer.delete_by_query(q, searcher=searcher)
                for doc in adds:
                    writer.add_document(**doc)
                writer.commit(merge=False)
            except BaseException:
                writer.cancel()
                raise
            segments = len(ix._segments())
        if segments > MERGE_THRESHOLD:  # merge when writes pause, or now if there are many
            self.merge_in_background(0.0 if segments >= MERGE_CEILING else MERGE_IDLE)
        return len(adds) - 1

    @staticmethod
    def _plan_one(change: Change, snapshot: Snapshot, deletes: list[Query],
                  adds: list[dict[str, Any]]) -> None:
        if change.action is ChangeAction.RENAMED and change.old_key:
            deletes.extend(_deletions(change.kind, change.old_key))
        if change.action is ChangeAction.REMOVED:
            old = change.old_path
            if old is not None and old in snapshot.files and not snapshot.is_valid(old):
                return  # the file is there but broken: readers keep its last good state
            deletes.extend(_deletions(change.kind, change.key))
            return
        rec = snapshot.record(change.kind, change.key)
        if rec is None or not shown(snapshot, rec):
            return  # an invalid file: readers keep its last good state
        deletes.extend(_deletions(rec.kind, rec.key))
        adds.extend(record_docs(rec))

    def update(self, mirrored: MirroredLike) -> int:
        """A sync listener: index what one mirrored commit changed (see `apply`).

        A missing or unreadable index, or a commit with `BULK_CHANGES` changes or more (a
        first load), is rebuilt from `mirrored.snapshot` (the whole effective state) instead.
        """
        snap = mirrored.snapshot
        commit = _commit_id(mirrored.commit)
        if commit is not None and snap.commit != commit:
            snap = dataclasses.replace(snap, commit=commit)
        if not self.exists() or len(mirrored.changes) >= BULK_CHANGES:
            return self.rebuild(snap)  # a first load: the multiprocess writer is faster
        try:
            return self.apply(mirrored.changes, snap)
        except SearchError as err:
            if self._ix is not None:
                raise  # the writer lock: another writer is busy
            log.warning("search index unusable (%s): rebuilding", err.message)
        except Exception as exc:
            log.warning("search index unusable (%s: %s): rebuilding", type(exc).__name__, exc)
        self._reset()
        return self.rebuild(snap)

    def reconcile(self, snapshot: Snapshot) -> int:
        """Bring an index of another commit up to `snapshot` by comparing content hashes;
        only documents that differ are written. Returns the number of entities changed."""
        wanted = {_uid(rec.kind, rec.key): rec for rec in indexable(snapshot)}
        with self._open().searcher() as searcher:
            reader = searcher.reader()
            uids = reader.column_reader("uid")
            hashes = reader.column_reader("hash")
            have: dict[str, str] = {}
            for docnum in reader.all_doc_ids():
                uid = _text(uids[docnum])
                if uid and uid != _META_UID and not uid.startswith("set_member:"):
                    have[uid] = _text(hashes[docnum])
        changes: list[Change] = []
        for uid, rec in wanted.items():
            if have.get(uid) != rec.content_hash:
                changes.append(Change(action=ChangeAction.MODIFIED, kind=rec.kind, key=rec.key,
                                      path=rec.path))
        for uid in have.keys() - wanted.keys():
            kind, key = uid.split(":", 1)
            changes.append(Change(action=ChangeAction.REMOVED, kind=kind,  # type: ignore[arg-type]
                                  key=key))
        self.apply(changes, snapshot)
        return len(changes)

    def ensure(self, source: SnapshotSource, commit: str | None = None) -> int:
        """Make the index usable and current; return how many entities were (re)indexed.

        `source` is a snapshot, or a callable that builds one (only called when needed);
        `commit` is the commit expected (default: the snapshot's). A missing or corrupted
        index is rebuilt; one at another commit is brought up to date by content hash.
        """
        problem = self.check() if self.exists() else "it does not exist"
        snapshot = source if isinstance(source, Snapshot) else None
        expected = commit if commit is not None or snapshot is None else snapshot.commit
        if problem is None and snapshot is None and commit is None:
            return 0
        if problem is None and self.commit == expected:
            return 0
        if snapshot is None:
            snapshot = source() if callable(source) else source
        if problem == "it does not exist":
            log.info("no search index at %s yet: building it", self.path)
            return self.rebuild(snapshot)
        if problem is not None:
            log.warning("search index at %s unusable (%s): rebuilding", self.path, problem)
            return self.rebuild(snapshot)
        log.info("search index at %s is at %s, not %s: updating", self.path,
                 (self.commit or "working tree")[:12], (snapshot.commit or "working tree")[:12])
        return self.reconcile(snapshot)

    # -- merging -------------------------------------------------------------------------
    def merge(self, optimize: bool = False) -> None:
        """Merge small segments (or all of them, with `optimize`)."""
        with self._write_lock, self._lockfile():
            writer = self._open().writer(timeout=self.writer_timeout)
            if optimize:
                writer.commit(optimize=True)
            else:
                writer.commit(mergetype=_merge_small)

    def merge_in_background(self, delay: float = 0.0) -> None:
        """Merge small segments in a daemon thread after `delay` seconds, unless a merge is
        running. A merge still waiting is postponed by `delay` again: a burst of updates
        (each would wait for the writer lock a merge holds) merges once, when it ends."""
        with self._lock:
            thread = self._merge_thread
            if thread is not None and thread.is_alive():
                if self._merging or not isinstance(thread, threading.Timer):
                    return
                thread.cancel()
            timer = threading.Timer(delay, self._merge_quietly)
            timer.name, timer.daemon = "maestro-index-merge", True
            self._merge_thread = timer
            timer.start()

    def _merge_quietly(self) -> None:
        with self._lock:
            self._merging = True
        try:
            self.merge()
        except Exception:  # a cache: a failed merge leaves a slower, still correct index
            log.exception("background merge of the search index failed")
        finally:
            self._merging = False

    def wait_for_merge(self, timeout: float | None = None) -> None:
        """Wait for a background merge, running one that is still waiting at once."""
        with self._lock:
            thread = self._merge_thread
            if isinstance(thread, threading.Timer) and thread.is_alive() and not self._merging:
                thread.cancel()
                thread = None
                self._merge_thread = threading.Thread(target=self._merge_quietly,
                                                      name="maestro-index-merge", daemon=True)
                self._merge_thread.start()
                thread = self._merge_thread
        if thread is not None:
            thread.join(timeout)

    # -- reading -------------------------------------------------------------------------
    def _current_searcher(self) -> Any:
        """A searcher at the latest committed generation, reusing the open segment readers.

        Not Whoosh's `Searcher.refresh`: it keeps readers of segments a merge removed (so
        document numbers no longer match a writer's) and reuses a segment's reader with that
        segment's old deletion set (so a deleted document is still found). Nor its
        `up_to_date`, which compares generation numbers only: a rebuild (here or in another
        process) swaps in a new directory whose generations count from 1 again, and a writer
        deleting by a stale reader's document numbers deletes the wrong documents or fails
        with "No document ID"."""
        ix = self._open()
        directory = os.stat(self.path).st_ino
        old = self._searcher
        if old is not None and self._searcher_at == (directory, ix.latest_generation()):
            return old
        toc = ix._read_toc()
        reusable: dict[str | None, Any] = {}
        if old is not None and self._searcher_at[0] == directory:
            reusable = {getattr(r, "_segid", None): r for r, _ in old.reader().leaf_readers()}
        elif old is not None:
            old.close()
        readers = []
        for seg in toc.segments:
            reader = reusable.pop(seg.segment_id(), None)
            if reader is None:
                reader = SegmentReader(ix.storage, toc.schema, seg, generation=toc.generation)
            elif reader._segment is not seg:
                _renew_deletions(reader, seg)
            readers.append(reader)
        for leftover in reusable.values():
            leftover.close()
        if not readers:
            combined: Any = EmptyReader(toc.schema)
        elif len(readers) == 1:
            combined = readers[0]
        else:
            combined = MultiReader(readers, generation=toc.generation)
        self._searcher = Searcher(combined, fromindex=ix)
        self._searcher_at = (directory, toc.generation)
        return self._searcher

    def search(self, text: str, limit: int = 10) -> list[SearchHit]:
        """Hits for `text` (Whoosh query syntax), best first, with highlighted snippets.

        Every word must match; when no document has them all and the query is plain words,
        the documents with the most of them are returned instead.
        """
        q = parse_query(text)
        with leaks_ignored():
            hits, failure = self._search_once(text, q, limit)
        if hits is not None:
            return hits
        self._reset()
        collect_leaked_files()
        if self.source is None:
            raise SearchError(f"the search index is unreadable ({failure})",
                              hint="run 'maestro index rebuild'")
        log.warning("search index unreadable (%s): rebuilding", failure)
        self.rebuild(self.source())
        return self._run(q, limit)

    def _search_once(self, text: str, q: Query, limit: int
                     ) -> tuple[list[SearchHit] | None, str]:
        try:
            hits = self._run(q, limit)
            if not hits and _PLAIN_WORDS.match(text) and len(text.split()) > 1:
                hits = self._run(parse_query(text, any_word=True), limit)
            return hits, ""
        except SearchError:
            raise
        except QueryError as exc:
            raise SearchError(f"cannot run the query: {exc}") from None
        except Exception as exc:
            return None, f"{type(exc).__name__}: {exc}"

    def _run(self, q: Query, limit: int) -> list[SearchHit]:
        with self._lock:
            if self._ix is None and self.source is not None:
                self.ensure(self.source)
            searcher = self._current_searcher()
            # No mask and no `terms=True`: either turns off Whoosh's block-quality skipping
            # and scores every match. The meta document has no text, so only `*` or
            # `kind:meta` reach it; it is dropped here.
            results = searcher.search(q, limit=limit + 1)
            found = [(h.fields(), h.score) for h in results]
        marks = _matchers(q)
        return [self._hit(stored, score, marks) for stored, score in found
                if stored.get("kind") != "meta"][:limit]

    @staticmethod
    def _hit(stored: dict[str, Any], score: float, marks: dict[str, Matcher]) -> SearchHit:
        text = ""
        for name, matcher in marks.items():
            if stored.get(name):
                text = snippet(stored[name], matcher)
                if text:
                    break
        if not text:
            text = (stored.get("description") or stored.get("content") or "")[:160]
        title = stored.get("display_name") or stored.get("name") or stored["key"]
        return SearchHit(kind=stored["kind"], key=stored["key"], title=title,
                         score=round(float(score), 4),
                         snippet=" ".join(text.split()), member=stored.get("member"))

    def close(self) -> None:
        self.wait_for_merge()
        self._reset()

    def __enter__(self) -> SearchIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
