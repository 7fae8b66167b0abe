"""Writing a fresh Whoosh index in bulk: what `SearchIndex.rebuild` uses instead of Whoosh's
own (multiprocess) writer. With `index.py`, `search_engine.py` and `search_postings.py` the only
whoosh importers.

Whoosh's writer handles one posting at a time through several layers: each is sized and put
in a sorting pool (pickled to temporary run files once the pool exceeds `limitmb`, then read
back and heap-merged at commit), and each is then handed to the postings writer by a method
call that checks its types and updates the block statistics. For a 10,000-persona repository
(1.9 million postings) that was most of a rebuild. Here the postings of a segment are
gathered in memory per field and term (document numbers arrive in order, so nothing is
sorted but the terms) and each block of a term is handed to Whoosh's own postings writer
at once; the files written are Whoosh's (the same codec, block size and statistics: a test
compares every term, posting, length and stored field with Whoosh's writer).

Rules of this module:
- Only a fresh, empty index is written (a rebuild writes a new directory and swaps it in).
- A segment's postings are held in memory until it is written: on the 10k-persona
  benchmark each of the two processes peaks about 100 MB above what it held before (Whoosh's
  writer bounded its pool by `limitmb` and spilled the rest to disk, which was the slow part).
- The documents are split in `procs` parts of about the same cost; a single-threaded caller
  of up to `HERE_MAX_DOCS` documents writes one segment itself (a larger index has every
  part written by a child, so no process holds every document and a segment's postings at
  once) and each further part is written by a child interpreter
  (`python -m` this module: fork and exec, never a bare fork of the caller, which may be the
  threaded daemon, and no re-import of the caller's main module as multiprocessing's spawn
  and forkserver do); a threaded caller has every part written by a child. A child reads its
  part from a pickle file in the build folder and prints its segment record back.
- A rebuild can be stopped: with a `stop` event set, the wait for the children ends within
  `_STOP_POLL` seconds, they are killed and `RebuildStopped` is raised (the caller removes the
  build folder), so SIGTERM never waits for a rebuild.
- The garbage collector is turned off only in a single-threaded process (a writer child, or
  a single-threaded caller), never in one that runs other threads.
- Beside each segment it writes the segment's posting arrays (`search_arrays`: each term of
  a scorable field, its document numbers and weights), which plain-word searches score
  instead of decoding posting blocks; Whoosh deletes them with the segment.
- Fields are written as Whoosh's `SegmentWriter.add_document` would, without its per-document
  extras no document here uses (`_`-prefixed keys: document and field boosts, a stored value
  other than the indexed one) or this schema never uses (spelling words, term vectors).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import operator
import os
import subprocess
import sys
import threading
import zlib
from array import array
from collections.abc import Callable, Iterator, Sequence
from itertools import chain
from pathlib import Path
from pickle import dumps
from typing import Any

from whoosh.codec.whoosh3 import WHOOSH3_HEADER_MAGIC
from whoosh.util.numeric import byte_to_length, length_to_byte
from whoosh.writing import SegmentWriter

from maestro_git.search.speedups import arrays

__all__ = ["split", "write_segments"]

Doc = dict[str, Any]

# zlib level of the posting blocks (Whoosh's default is 3; a block records its level and any
# level reads back). zlib is ~9 % of a rebuild's CPU at level 3; level 1 is ~10 % faster on
# posting blocks, for a 10k-persona index of 45 MB instead of 44.
BLOCK_COMPRESSION = 1
# Blocks whose pickle is shorter than this are written uncompressed (a block records its
# level, 0 for none): most terms occur in a few documents, and zlib saves nothing on their
# blocks (on the 10k benchmark four blocks in five, 15-30 % of zlib's time, and the posting
# files come out slightly smaller). Whoosh's writer meant to do the same under 20 bytes.
COMPRESS_MIN = 256


# Above this many documents every part is written by a child even from a single-threaded
# caller: a part written here holds its segment's postings beside every document of the
# index, which at 100,000 personas (152k documents) made this process peak at 2.3 GB.
HERE_MAX_DOCS = 60_000


def _size(doc: Doc) -> int:
    """A document's cost to index in characters of text: its text, and a constant for its
    fields (measured: a set member of a few hundred characters costs as much as ~2 KB)."""
    return sum(len(v) for v in doc.values() if isinstance(v, str)) + 2000


def split(docs: Sequence[Doc], parts: int) -> list[Sequence[Doc]]:
    """`docs` in at most `parts` consecutive runs of about the same cost (`_size`)."""
    if parts <= 1 or len(docs) < 2:
        return [docs]
    sizes = [_size(d) for d in docs]
    share = sum(sizes) / parts
    cuts = [0]
    total = 0
    for i, size in enumerate(sizes):
        total += size
        if total >= share * len(cuts) and len(cuts) < parts and i + 1 < len(docs):
            cuts.append(i + 1)
    cuts.append(len(docs))
    return [docs[a:b] for a, b in zip(cuts, cuts[1:], strict=False) if b > a]


def _fill(writer: Any, docs: Sequence[Doc]) -> Any:
    """Write `docs` as `writer`'s new segment and return it (not yet in the index's TOC)."""
    schema = writer.schema
    perdoc = writer.perdocwriter
    # per field and term: document numbers, weights and value bytes, in three columns. Arrays
    # hold a posting's number and weight in 12 bytes where a list of Python objects took ~48:
    # the postings are most of a large rebuild's memory (weights stay doubles, as Whoosh's
    # writer compares them, so the bytes written are the same).
    postings: dict[str, dict[bytes, tuple[array[int], array[float], list[Any]]]] = {}
    lengths: dict[str, dict[int, int]] = {}
    fields = {name: schema[name] for name in schema.names()}
    docnum = writer.docnum
    for doc in docs:
        perdoc.start_doc(docnum)
        for name in sorted(doc):
            value = doc[name]
            if value is None:
                continue
            field = fields[name]  # KeyError: a field the schema does not have
            length = 0
            if field.indexed:
                terms = postings.get(name)
                if terms is None:
                    terms = postings[name] = {}
                scorable = field.scorable
                for tbytes, freq, weight, vbytes in field.index(value):
                    if scorable:
                        length += freq
                    found = terms.get(tbytes)
                    if found is None:
                        found = terms[tbytes] = (array("I"), array("d"), [])
                    found[0].append(docnum)
                    found[1].append(weight)
                    found[2].append(vbytes)
                if length:  # what the segment's length column gives back for this document
                    lengths.setdefault(name, {})[docnum] = byte_to_length(
                        length_to_byte(length))
            perdoc.add_field(name, field, value if field.stored else None, length)
            column = field.column_type
            if column:
                perdoc.add_column_value(name, column, field.to_column_value(value))
        perdoc.finish_doc()
        docnum += 1
    writer.docnum = docnum
    writer._added = True
    perdoc.close()
    kept: dict[str, dict[bytes, arrays.Postings]] = {}
    _write_postings(writer, postings, lengths, kept)
    writer._close_segment()
    writer._assemble_segment()  # a compound file takes every file of the segment: arrays after
    segment = writer.get_segment()
    _write_arrays(writer, segment, kept)
    return segment


def _write_arrays(writer: Any, segment: Any,
                  scorable: dict[str, dict[bytes, arrays.Postings]]) -> None:
    """The segment's posting arrays (`search_arrays`) for every scorable field: document
    numbers and weights per term, which plain-word searches score without decoding the
    posting blocks."""
    out = writer.storage.create_file(segment.make_filename(arrays.EXTENSION))
    try:
        out.write(arrays.encode(scorable))
    finally:
        out.close()


def _write_postings(writer: Any,
                    postings: dict[str, dict[bytes, tuple[array[int], array[float], list[Any]]]],
                    lengths: dict[str, dict[int, int]],
                    scorable: dict[str, dict[bytes, arrays.Postings]]) -> None:
    """Each term's postings, block by block, through Whoosh's postings writer: the blocks
    and statistics its `add_posting` would have gathered one posting at a time. The
    document numbers and weights of each term of a scorable field go into `scorable`."""
    fieldwriter = writer.fieldwriter
    schema = writer.schema
    for name in sorted(postings):
        terms = postings[name]
        field_lengths = lengths.get(name, {})
        fieldwriter.start_field(name, schema[name])
        kept = scorable.setdefault(name, {}) if schema[name].scorable else None
        writer_of_field = fieldwriter._postwriter
        writer_of_field._write_block = functools.partial(_write_block, writer_of_field)
        writer_of_field._compression = BLOCK_COMPRESSION
        for tbytes in sorted(terms):
            ids, weights, values = terms[tbytes]
            if kept is not None:
                kept[tbytes] = (ids, weights)
            fieldwriter.start_term(tbytes)
            pw = fieldwriter._postwriter
            limit = pw._blocklimit
            count = len(ids)
            for start in range(0, count, limit):
                end = min(count, start + limit)
                block_ids = ids[start:end]
                block_weights = weights[start:end]
                pw._ids = array("I", block_ids)
                pw._weights = array("f", block_weights)
                pw._values = [v for v in values[start:end] if v]
                pw._maxweight = max(0, max(block_weights))
                found = [n for n in map(field_lengths.get, block_ids) if n]
                pw._minlength = min(found) if found else None
                pw._maxlength = max(found) if found else 0
                if end < count:
                    _write_block(pw)
            fieldwriter.finish_term()  # writes the last block
        fieldwriter.finish_field()
    fieldwriter.close()


def _write_block(pw: Any, last: bool = False) -> None:
    """`W3PostingsWriter._write_block` with the ids delta-encoded and the weights compared
    in C rather than by generators: the same bytes (a test compares the postings)."""
    postfile = pw._postfile
    if not pw._blockcount:
        postfile.write(WHOOSH3_HEADER_MAGIC)
    pw._terminfo.add_block(pw)
    ids = pw._ids
    weights = pw._weights
    distinct = set(weights)
    if distinct == {1.0}:
        mini_weights: Any = None
    elif len(distinct) == 1:
        mini_weights = weights[0]
    else:
        mini_weights = tuple(weights)
    data = (tuple(map(operator.sub, ids, chain((0,), ids))), mini_weights, pw._mini_values())
    databytes = dumps(data, 2)
    comp = pw._compression if len(databytes) >= COMPRESS_MIN else 0
    if comp:
        databytes = zlib.compress(databytes, comp)
    infobytes = dumps((len(ids), ids[-1], pw._maxweight, comp,
                       length_to_byte(pw._minlength), length_to_byte(pw._maxlength)), 2)
    blocklength = len(infobytes) + len(databytes)
    postfile.write_int(-blocklength if last else blocklength)
    postfile.write(infobytes)
    postfile.write(databytes)
    pw._blockcount += 1
    pw._new_block()


def _child_main(argv: Sequence[str]) -> int:
    """A writer child (`python -m maestro_git.search.speedups.bulk INDEX_DIR PART_FILE`):
    writes the pickled part at PART_FILE as one segment of the index at INDEX_DIR and
    prints the segment record, pickled, on its standard output."""
    import pickle
    import sys

    from whoosh import index

    from maestro_git.search import speedups

    folder, part_file = argv
    if not speedups.install():
        print("the search speed paths are off in the writer process", file=sys.stderr)
        return 2
    with open(part_file, "rb") as f:
        docs = pickle.load(f)  # written by the parent for this child alone
    ix = index.open_dir(folder)
    writer = SegmentWriter(ix, _lk=False)
    with _no_gc():  # this process runs no other thread
        segment = _fill(writer, docs)
    sys.stdout.buffer.write(pickle.dumps(segment, protocol=pickle.HIGHEST_PROTOCOL))
    return 0


class RebuildStopped(Exception):
    """The `stop` event was set while the segments were being written."""


_STOP_POLL = 0.05  # seconds between looks at the stop event while the children write


def write_segments(ix: Any, docs: Sequence[Doc], procs: int = 1,
                   progress: Callable[[int, int], None] | None = None,
                   stop: threading.Event | None = None) -> int:
    """Add `docs` to the empty index `ix` as one segment per part (see `split`) and commit;
    return the number of segments. `progress(done, total)` is called in documents as each
    part's segment is written (`total` after the commit).

    The calling process writes the first part itself only while it is single-threaded (the
    collector is then turned off for it); a threaded caller (the daemon) has every part
    written by a child, so its collector is never touched. `stop` set: `RebuildStopped`."""
    if stop is not None and stop.is_set():
        raise RebuildStopped("stopped while rebuilding the search index")
    parts = split(docs, procs)
    alone = threading.active_count() == 1 and len(docs) <= HERE_MAX_DOCS
    return _write(ix, parts, here=alone, progress=progress, stop=stop)


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """The cyclic garbage collector off: the postings are millions of small objects and
    none is in a cycle, but every full collection walks them all (a third of a rebuild).
    Only in a single-threaded process: elsewhere it is left as it is."""
    enabled = gc.isenabled() and threading.active_count() == 1
    if enabled:
        gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _start_child(folder: str, part: Sequence[Doc], number: int) -> subprocess.Popen[bytes]:
    """A writer child for `part`: a new interpreter (fork and exec, which is safe from a
    threaded process, unlike a bare fork), never a copy of this process."""
    import pickle

    part_file = os.path.join(folder, f".part-{number}.pickle")
    with open(part_file, "wb") as f:
        pickle.dump(list(part), f, protocol=pickle.HIGHEST_PROTOCOL)
    package_root = str(Path(__file__).resolve().parents[3])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    return subprocess.Popen(
        [sys.executable, "-m", __name__, folder, part_file],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def _collect(child: subprocess.Popen[bytes], stop: threading.Event | None) -> Any:
    import pickle

    while True:
        if stop is not None and stop.is_set():
            raise RebuildStopped("stopped while rebuilding the search index")
        try:
            out, err = child.communicate(timeout=None if stop is None else _STOP_POLL)
            break
        except subprocess.TimeoutExpired:
            continue
    if child.returncode != 0:
        reason = err.decode("utf-8", "replace").strip().splitlines()[-4:]
        raise RuntimeError("a search index writer process failed (exit "
                           f"{child.returncode}):\n" + "\n".join(reason))
    return pickle.loads(out)  # the segment record our own child wrote


def _write(ix: Any, parts: list[Sequence[Doc]], *, here: bool,
           progress: Callable[[int, int], None] | None = None,
           stop: threading.Event | None = None) -> int:
    writer = SegmentWriter(ix)
    folder = ix.storage.folder
    children: list[subprocess.Popen[bytes]] = []
    try:
        in_children = parts[1:] if here else parts
        children = [_start_child(folder, part, n) for n, part in enumerate(in_children)]
        segments = []
        total = sum(len(part) for part in parts)
        done = 0

        def wrote(part: Sequence[Doc]) -> None:
            nonlocal done
            done += len(part)
            if progress is not None and done < total:
                progress(done, total)

        if here:
            with _no_gc():
                segments.append(_fill(writer, parts[0]))
            wrote(parts[0])
        for child, part in zip(children, in_children, strict=True):
            segments.append(_collect(child, stop))
            wrote(part)
        children.clear()
        if not here:  # the parent's writer wrote nothing: its files go at the TOC commit
            writer._close_segment()
        writer._commit_toc(segments)
        writer._finish()
        if progress is not None:
            progress(total, total)
    except BaseException:
        for child in children:
            child.kill()
            child.wait()
            for pipe in (child.stdout, child.stderr):  # a stopped wait never read them
                if pipe is not None:
                    pipe.close()
        with contextlib.suppress(Exception):  # the caller removes the whole directory
            writer.cancel()
        raise
    finally:
        for n in range(len(parts)):
            with contextlib.suppress(OSError):
                os.remove(os.path.join(folder, f".part-{n}.pickle"))
    return len(segments)


if __name__ == "__main__":
    import sys as _sys

    _sys.exit(_child_main(_sys.argv[1:]))
