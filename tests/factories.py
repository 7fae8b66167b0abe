"""Factories for real git repositories and persona files used across the test suite.

They drive pygit2 directly (not maestro_git.git.repo), so tests check our git layer against git
itself rather than against its own assumptions.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pygit2
from psycopg import sql

DEFAULT_AUTHOR = ("Test Author", "author@example.com")


def persona_md(
    display_name: str = "Test Persona",
    body: str = "# Test Persona\n\nYou are a helpful assistant. Answer precisely.\n",
    **frontmatter: object,
) -> str:
    """Persona Markdown with the given frontmatter (YAML written by hand, in argument order)."""
    lines = ["---", f"display_name: {display_name}"]
    for key, value in frontmatter.items():
        if isinstance(value, list):
            lines.append(f"{key}: [{', '.join(str(v) for v in value)}]")
        elif isinstance(value, bool):
            lines.append(f"{key}: {'true' if value else 'false'}")
        elif isinstance(value, str) and key == "version":
            lines.append(f'{key}: "{value}"')
        else:
            lines.append(f"{key}: {value}")
    lines.append("---")
    return "\n".join(lines) + "\n" + textwrap.dedent(body)


@dataclass
class GitRepoFactory:
    """A real repository in a temporary folder, with a working tree kept in step with HEAD."""

    path: Path
    repo: pygit2.Repository

    @classmethod
    def create(cls, path: Path, branch: str = "main") -> GitRepoFactory:
        path.mkdir(parents=True, exist_ok=True)
        repo = pygit2.init_repository(str(path), initial_head=branch)
        repo.config["user.name"] = DEFAULT_AUTHOR[0]
        repo.config["user.email"] = DEFAULT_AUTHOR[1]
        # Local state (the search index) must never be staged by `commit`'s add_all.
        (path / ".gitignore").write_text(".maestro/\n", encoding="utf-8")
        return cls(path, repo)

    def write(self, files: Mapping[str, str | bytes | None]) -> None:
        """Write (or, for None, delete) files in the working tree without committing."""
        for rel, content in files.items():
            full = self.path / rel
            if content is None:
                if full.exists() or full.is_symlink():
                    full.unlink()
                continue
            full.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                full.write_bytes(content)
            else:
                full.write_text(content, encoding="utf-8")

    def commit(
        self,
        files: Mapping[str, str | bytes | None] | None = None,
        message: str = "change",
        author: tuple[str, str] = DEFAULT_AUTHOR,
        time: int | None = None,
    ) -> str:
        """Write `files`, stage everything in the working tree, commit on HEAD; return the id."""
        if files:
            self.write(files)
        index = self.repo.index
        index.add_all()
        index.write()
        tree = index.write_tree()
        sig = (pygit2.Signature(author[0], author[1], time, 0) if time is not None
               else pygit2.Signature(author[0], author[1]))
        parents = [] if self.repo.head_is_unborn else [self.repo.head.target]
        ref = "HEAD"
        oid = self.repo.create_commit(ref, sig, sig, message, tree, parents)
        return str(oid)

    def head(self) -> str:
        return str(self.repo.head.target)


def mirror_sql(url: str, branch: str = "main") -> psycopg.Connection[Any]:
    """An autocommit connection set to the one registered mirror of `branch`, as an SQL user
    would (`SET search_path`); the server's search_path when none is registered yet."""
    conn = psycopg.connect(url, autocommit=True)
    if conn.execute("SELECT to_regclass('maestro.mirrors') IS NOT NULL").fetchone() == (True,):
        schemas = [r[0] for r in conn.execute(
            "SELECT schema_name FROM maestro.mirrors WHERE branch = %s", (branch,))]
        assert len(schemas) <= 1, f"several mirrors of {branch}: {schemas}"
        if schemas:
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schemas[0])))
    return conn
