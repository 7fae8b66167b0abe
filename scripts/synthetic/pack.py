"""Git objects for synthetic repositories, hashed and compressed here and streamed into one pack.

Writing ~25k loose objects costs far more than generating them (a file per object), so
`PackWriter` appends each object to one pack file and writes its v2 index on `finish`; libgit2
then reads it like any cloned repository. `TreeState` is a branch's tree as directories of
entries, re-hashing only the directories a commit changed. Standard library only.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from pathlib import Path

__all__ = ["BLOB", "COMMIT", "TREE", "PackWriter", "TreeState"]

COMMIT, TREE, BLOB = 1, 2, 3  # pack object type codes

_TYPES = {COMMIT: b"commit", TREE: b"tree", BLOB: b"blob"}


class PackWriter:
    """Streams git objects into one pack file and writes its v2 index on `finish`."""

    def __init__(self, git_dir: Path) -> None:
        self.dir = git_dir / "objects" / "pack"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.tmp = self.dir / "tmp_synthetic.pack"
        self.fh = self.tmp.open("wb")
        self.fh.write(b"PACK" + struct.pack(">II", 2, 0))
        self.offset = 12
        self.entries: dict[bytes, tuple[int, int]] = {}  # sha -> (offset, crc32)

    def add(self, type_code: int, body: bytes) -> bytes:
        sha = hashlib.sha1(_TYPES[type_code] + b" %d\x00" % len(body) + body).digest()
        if sha in self.entries:
            return sha
        size = len(body)
        header = bytearray()
        byte = (type_code << 4) | (size & 0x0F)
        size >>= 4
        while size:
            header.append(byte | 0x80)
            byte = size & 0x7F
            size >>= 7
        header.append(byte)
        data = bytes(header) + zlib.compress(body, 1)
        self.entries[sha] = (self.offset, zlib.crc32(data))
        self.fh.write(data)
        self.offset += len(data)
        return sha

    def finish(self) -> None:
        self.fh.seek(8)
        self.fh.write(struct.pack(">I", len(self.entries)))
        self.fh.close()
        digest = hashlib.sha1()
        with self.tmp.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        pack_sha = digest.digest()
        with self.tmp.open("ab") as fh:
            fh.write(pack_sha)
        shas = sorted(self.entries)
        fanout = [0] * 256
        for sha in shas:
            fanout[sha[0]] += 1
        total, counts = 0, []
        for n in fanout:
            total += n
            counts.append(total)
        small: list[int] = []
        large: list[int] = []
        for sha in shas:
            off = self.entries[sha][0]
            if off < 1 << 31:
                small.append(off)
            else:
                small.append((1 << 31) | len(large))
                large.append(off)
        idx = b"".join((
            b"\xfftOc", struct.pack(">I", 2), struct.pack(">256I", *counts), *shas,
            struct.pack(f">{len(shas)}I", *(self.entries[s][1] for s in shas)),
            struct.pack(f">{len(shas)}I", *small), struct.pack(f">{len(large)}Q", *large),
            pack_sha))
        idx += hashlib.sha1(idx).digest()
        name = f"pack-{pack_sha.hex()}"
        self.tmp.replace(self.dir / f"{name}.pack")
        (self.dir / f"{name}.idx").write_bytes(idx)


class TreeState:
    """A branch's tree as directories of entries; only changed directories are re-hashed."""

    def __init__(self) -> None:
        self.dirs: dict[str, dict[str, tuple[bool, bytes]]] = {"": {}}  # dir -> name -> entry

    def copy(self) -> TreeState:
        other = TreeState()
        other.dirs = {d: dict(entries) for d, entries in self.dirs.items()}
        return other

    def apply(self, pack: PackWriter, changes: dict[str, bytes | None]) -> bytes:
        dirty: set[str] = set()
        for path, sha in changes.items():
            parent, _, name = path.rpartition("/")
            if sha is None:
                self.dirs.get(parent, {}).pop(name, None)
            else:
                self._ensure(parent)[name] = (False, sha)
            while True:
                dirty.add(parent)
                if not parent:
                    break
                parent = parent.rpartition("/")[0]
        for d in sorted(dirty, key=lambda p: -p.count("/") if p else 1):
            entries = self.dirs.get(d)
            parent, _, name = d.rpartition("/")
            if d and not entries:
                self.dirs.pop(d, None)
                self.dirs.get(parent, {}).pop(name, None)
                continue
            sha = pack.add(TREE, _tree_body(entries or {}))
            if not d:
                return sha
            self.dirs[parent][name] = (True, sha)
        raise AssertionError("the root is always dirty")  # pragma: no cover

    def _ensure(self, d: str) -> dict[str, tuple[bool, bytes]]:
        if d not in self.dirs:
            self._ensure(d.rpartition("/")[0])
            self.dirs[d] = {}
        return self.dirs[d]


def _tree_body(entries: dict[str, tuple[bool, bytes]]) -> bytes:
    items = sorted(entries.items(), key=lambda kv: kv[0] + "/" if kv[1][0] else kv[0])
    return b"".join((b"40000 " if is_tree else b"100644 ") + name.encode() + b"\x00" + sha
                    for name, (is_tree, sha) in items)
