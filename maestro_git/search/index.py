"""The Whoosh search index in `.maestro/index`: opening, writing, checking and searching it.

What it is made of (the schema, the query parser, the merge policy) is in `engine.py`; the
accelerated paths (a bulk segment writer, patched posting reads, a numpy scorer for plain
words) are in `speedups/`, installed explicitly here and only on the pinned whoosh-reloaded;
with them off, every step below is Whoosh's own.

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
  lock, so one during a burst would stall the next update), or at once at `MERGE_CEILING`.
  `rebuild` writes a fresh index beside the old one (`search_bulk`: one segment per process)
  and swaps it in, so readers never see a half-built index.
- A missing, corrupted or stale index is detected by `ensure` and rebuilt, with a log line.
  A malformed query raises `SearchError` with a one-line reason.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
import os
import shutil
import threading
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from whoosh import index
from whoosh.query import Query, QueryError, Term

from maestro_git.core.models import Change, ChangeAction, HitKind, SearchHit
from maestro_git.core.snapshot import Snapshot
from maestro_git.errors import SearchError
from maestro_git.search import speedups
from maestro_git.search.documents import META_UID as _META_UID
from maestro_git.search.documents import (
    IndexStatus,
    MirroredLike,
    SnapshotSource,
    commit_id,
    indexable,
    record_docs,
    shown,
    stored_hit,
)
from maestro_git.search.documents import uid as _uid
from maestro_git.search.engine import (
    PLAIN_WORDS,
    SCHEMA,
    SCHEMA_VERSION,
    deletions,
    latest_searcher,
    matchers,
    merge_small,
    parse_query,
    text_of,
)
from maestro_git.search.files import WriteLock, collect_leaked_files, leaks_ignored
from maestro_git.search.speedups.bulk import RebuildStopped, write_segments
from maestro_git.search.speedups.postings import score_terms, word_groups
from maestro_git.search.speedups.words import WordScores
from maestro_git.settings import Settings

__all__ = [
    "HitKind",
    "IndexStatus",
    "SearchIndex",
]

log = logging.getLogger("maestro_git.search.index")

MERGE_THRESHOLD = 8  # segments; above it a background merge of the small ones is scheduled
MERGE_IDLE = 0.5  # seconds without an update before that merge starts
MERGE_CEILING = 64  # segments; at this many it starts at once, even during a burst
MULTIPROCESS_MIN_DOCS = 2000  # below this one process is faster than forking another
PROGRESS_EVERY = 500  # documents between progress reports of a plain-Whoosh rebuild
ANSWERS_KEPT = 256  # recent queries whose hits are kept per searcher (emptied by any commit)
BULK_CHANGES = 1000  # an update with this many changes rebuilds from the snapshot instead
_STOP_EVERY = 64  # documents between looks at the stop event in a plain-Whoosh rebuild
WRITER_TIMEOUT = 30.0  # seconds to wait for another writer
_CHECK_STRIDE = 64  # `check` reads every 64th stored document (a damaged block fails there)


# -- the index -------------------------------------------------------------------------------

def _write_error(where: Path, exc: OSError) -> SearchError:
    """A failed write of the index (a full disk, a read-only folder, …) in one line."""
    reason = exc.strerror or type(exc).__name__
    return SearchError(f"cannot write the search index in {where.name}: {reason}",
                       hint="free space or make the folder writable, then run "
                            "'maestro index rebuild'")


class SearchIndex:
    """The Whoosh index of one repository (`settings.resolved_index_dir`).

    `source`, when given, is how to get the snapshot the index should reflect; `search` then
    rebuilds a missing or corrupted index by itself instead of raising `SearchError`.
    """

    def __init__(self, settings: Settings, *, source: Callable[[], Snapshot] | None = None,
                 procs: int = 2, writer_timeout: float = WRITER_TIMEOUT,
                 stop: threading.Event | None = None) -> None:
        self.settings = settings
        self.path = settings.resolved_index_dir
        self.source = source
        self.procs = procs
        self.writer_timeout = writer_timeout
        self.stop = stop  # set: a writer waiting for the lock gives up at once
        self._swept = False  # leftover build folders looked for
        self._lock = threading.RLock()  # guards the searcher (readers)
        self._write_lock = threading.RLock()  # in-process writers; never held by a reader
        self._ix: Any = None
        self._searcher: Any = None
        self._searcher_at: tuple[int, int] = (-1, -1)  # (index directory inode, generation)
        self._merge_thread: threading.Thread | None = None
        self._merging = False
        self._words = WordScores()  # per-word scores of plain-word queries, this searcher
        # The hits of recent queries, this searcher (a committed generation never changes).
        self._answers = WordScores(max_words=ANSWERS_KEPT)
        speedups.install()  # the version-guarded speed paths (plain Whoosh if they are off)

    # -- opening and status --------------------------------------------------------------
    def _lockfile(self) -> WriteLock:
        return WriteLock(self.path.parent / (self.path.name + ".lock"), self.writer_timeout,
                         stop=self.stop)

    def exists(self) -> bool:
        """Whether there is an index (readable or not: a damaged TOC still counts)."""
        with leaks_ignored():
            try:
                return self.path.is_dir() and index.exists_in(str(self.path))
            except Exception:  # a damaged TOC makes Whoosh's own check raise (leaking it)
                collect_leaked_files()
                return any(self.path.glob("_MAIN_*.toc"))

    def _folder(self) -> Path:
        """The folder the index lives in, made if missing; `SearchError` if it cannot be."""
        parent = self.path.parent
        if parent.exists() and not parent.is_dir():
            raise SearchError(f"{parent.name} is not a folder, so the search index cannot be"
                              " kept in it", hint=f"move {parent} away, then run 'maestro sync'")
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _write_error(parent, exc) from None
        return parent

    def _sweep(self) -> None:
        """Remove the build and old folders a killed rebuild left, unless a writer is at
        work (then they may be its own); never waits for the lock."""
        self._swept = True
        parent = self.path.parent
        leftovers = [*parent.glob(f"{self.path.name}.build-*"),
                     *parent.glob(f"{self.path.name}.old-*")] if parent.is_dir() else []
        if not leftovers:
            return
        with WriteLock.try_hold(parent / (self.path.name + ".lock")) as held:
            if not held:
                return
            for folder in leftovers:
                shutil.rmtree(folder, ignore_errors=True)
            log.info("removed %d folder(s) a stopped rebuild left beside the search index",
                     len(leftovers))

    def _open(self) -> Any:
        if not self._swept:
            self._sweep()
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
        """The commit the index reflects (None: a working tree, no index, or one too damaged
        to say; `check` tells why)."""
        with leaks_ignored():
            try:
                return self._meta().get("commit")
            except SearchError:
                return None
            except Exception:  # a damaged segment raises whatever its reader hits
                pass
            self._reset()  # inside: dropping the damaged reader closes the files it leaked
        collect_leaked_files()
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
    def rebuild(self, snapshot: Snapshot,
                progress: Callable[[int, int], None] | None = None) -> int:
        """Index every valid record of `snapshot` from scratch; return the document count.

        The new index is written beside the old one and swapped in, so concurrent readers
        keep the old one until they refresh. `progress(done, total)` is called in documents
        as parts of the index are written (`total` when it is committed). With `stop` set
        meanwhile (the daemon stopping) the rebuild ends at once with `SearchError`, leaving
        the old index as it was.

        The snapshot is let go once its documents are made (they share its text): a caller
        that passes a fresh parse and keeps no reference (`maestro index rebuild`, the sync's
        index child) frees the records before the postings are built, the larger half of a
        100,000-persona rebuild's memory.
        """
        docs = [d for rec in indexable(snapshot) for d in record_docs(rec)]
        commit = snapshot.commit
        del snapshot
        gc.collect()  # records are freed by reference counts; this takes any cycle too
        parent = self._folder()
        with self._write_lock, self._lockfile():
            self._sweep()  # under the lock: whatever is left is a stopped rebuild's
            build = parent / f"{self.path.name}.build-{uuid.uuid4().hex[:8]}"
            try:
                build.mkdir()
            except OSError as exc:
                raise _write_error(parent, exc) from None
            try:
                ix = index.create_in(str(build), SCHEMA)
                procs = self.procs if len(docs) >= MULTIPROCESS_MIN_DOCS else 1
                docs.append({"uid": _META_UID, "kind": "meta", "commit": commit,
                             "schema_version": SCHEMA_VERSION})
                report = None
                if progress is not None:  # in records: the meta document is not counted
                    records = len(docs) - 1
                    progress(0, records)

                    def report(done: int, _total: int) -> None:
                        progress(min(done, records), records)
                if speedups.enabled():
                    write_segments(ix, docs, procs, progress=report, stop=self.stop)
                else:  # plain Whoosh: its own writer, in this process
                    writer = ix.writer()
                    for n, doc in enumerate(docs, 1):
                        if n % _STOP_EVERY == 1 and self.stop is not None and self.stop.is_set():
                            writer.cancel()
                            raise RebuildStopped("stopped while rebuilding the search index")
                        writer.add_document(**doc)
                        if report is not None and n % PROGRESS_EVERY == 0 and n < len(docs):
                            report(n, len(docs))
                    writer.commit()
                    if report is not None:
                        report(len(docs), len(docs))
                ix.close()
                self._swap_in(build)
            except RebuildStopped:
                shutil.rmtree(build, ignore_errors=True)
                raise SearchError("stopped while rebuilding the search index",
                                  hint="it is rebuilt the next time it is used") from None
            except OSError as exc:
                shutil.rmtree(build, ignore_errors=True)
                raise _write_error(parent, exc) from None
            except BaseException:
                shutil.rmtree(build, ignore_errors=True)
                raise
            self._reset()
        log.info("search index rebuilt: %d documents at %s", len(docs) - 1,
                 (commit or "working tree")[:12])
        return len(docs) - 1

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
            try:
                writer = ix.writer(timeout=self.writer_timeout)
            except OSError as exc:
                raise _write_error(self.path, exc) from None
            try:
                with self._lock:  # the searcher is shared with readers
                    searcher = self._current_searcher()  # the writer's generation: we lock
                    for q in deletes:
                        writer.delete_by_query(q, searcher=searcher)
                for doc in adds:
                    writer.add_document(**doc)
                writer.commit(merge=False)
            except OSError as exc:
                with contextlib.suppress(Exception):
                    writer.cancel()
                raise _write_error(self.path, exc) from None
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
            deletes.extend(deletions(change.kind, change.old_key))
        if change.action is ChangeAction.REMOVED:
            old = change.old_path
            if old is not None and old in snapshot.files and not snapshot.is_valid(old):
                return  # the file is there but broken: readers keep its last good state
            deletes.extend(deletions(change.kind, change.key))
            return
        rec = snapshot.record(change.kind, change.key)
        if rec is None or not shown(snapshot, rec):
            return  # an invalid file: readers keep its last good state
        deletes.extend(deletions(rec.kind, rec.key))
        adds.extend(record_docs(rec))

    def update(self, mirrored: MirroredLike) -> int:
        """A sync listener: index what one mirrored commit changed (see `apply`).

        A missing or unreadable index, or a commit with `BULK_CHANGES` changes or more (a
        first load), is rebuilt from `mirrored.snapshot` (the whole effective state) instead.
        """
        snap = mirrored.snapshot
        commit = commit_id(mirrored.commit)
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
                uid = text_of(uids[docnum])
                if uid and uid != _META_UID and not uid.startswith("set_member:"):
                    have[uid] = text_of(hashes[docnum])
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
                writer.commit(mergetype=merge_small)

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
        same_directory = old is not None and self._searcher_at[0] == directory
        self._searcher, generation = latest_searcher(ix, old, reuse=same_directory)
        self._searcher_at = (directory, generation)
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
        with leaks_ignored():
            hits, failure = self._search_once(text, q, limit)
        if hits is None:  # not the index: the fresh one fails the same way
            self._reset()
            collect_leaked_files()
            raise SearchError(f"cannot run the query on a rebuilt index ({failure})")
        return hits

    def _search_once(self, text: str, q: Query, limit: int
                     ) -> tuple[list[SearchHit] | None, str]:
        try:
            hits = self._run(q, limit)
            if not hits and PLAIN_WORDS.match(text) and len(text.split()) > 1:
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
            key = (repr(q), limit)
            answer = self._answers.peek(searcher, key)
            if answer is not None:
                return list(answer)
            words = word_groups(q, searcher.schema) if speedups.enabled() else None
            if words is not None:  # plain words: ranked from cached per-word scores
                best = self._words.top(searcher, words, limit + 1,
                                       lambda word: score_terms(searcher, word))
                found = [(searcher.stored_fields(doc), score) for doc, score in best]
            else:
                # No mask and no `terms=True`: either turns off Whoosh's block-quality
                # skipping and scores every match. The meta document has no text, so only
                # `*` or `kind:meta` reach it; it is dropped here.
                results = searcher.search(q, limit=limit + 1)
                found = [(h.fields(), h.score) for h in results]
        marks = matchers(q)  # snippets only for the hits returned (one was asked extra)
        kept = [(stored, score) for stored, score in found if stored.get("kind") != "meta"]
        hits = [stored_hit(stored, score, marks) for stored, score in kept[:limit]]
        with self._lock:
            self._answers.put(searcher, key, tuple(hits))
        return hits

    def close(self) -> None:
        self.wait_for_merge()
        self._reset()

    def __enter__(self) -> SearchIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
