"""Rendering results for people and programs: tables, JSON, GitHub annotations, progress.

Every CLI command renders through these helpers, so `--format table|json` and `--quiet` mean
the same everywhere. Progress goes to stderr and only when stderr is a terminal.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from enum import Enum
from typing import Any, TextIO

from pydantic import BaseModel

from maestro_git.core.models import Problem

__all__ = ["Progress", "format_problems", "progress", "table", "to_json", "to_jsonable"]


def to_jsonable(value: Any) -> Any:
    """Records, enums, dates, tuples and mappings as plain JSON values."""
    if isinstance(value, BaseModel):
        return to_jsonable(value.model_dump(mode="json"))
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def to_json(value: Any) -> str:
    return json.dumps(to_jsonable(value), indent=2, ensure_ascii=False, sort_keys=False)


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None,
          max_width: int = 60) -> str:
    """A plain aligned text table; long cells are cut with '…'."""
    if not rows:
        return ""
    cols = list(columns or rows[0].keys())

    def cell(value: Any) -> str:
        if value is None:
            text = ""
        elif isinstance(value, list | tuple):
            text = ",".join(str(v) for v in value)
        else:
            text = str(to_jsonable(value))
        text = text.replace("\n", " ")
        return text if len(text) <= max_width else text[: max_width - 1] + "…"

    cells = [[cell(row.get(c)) for c in cols] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip()]
    for r in cells:
        lines.append("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    return "\n".join(lines)


def _github_escape(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def format_problems(problems: Iterable[Problem], fmt: str = "text") -> str:
    """Problems as `path:line:col: severity rule: message (fix: ...)`, JSON, or GitHub
    workflow annotations (`::error file=...,line=...::message`)."""
    items = list(problems)
    if fmt == "json":
        return to_json(items)
    lines = []
    for p in items:
        if fmt == "github":
            level = {"error": "error", "warning": "warning"}.get(p.severity.value, "notice")
            props = f"file={p.path}"
            if p.line is not None:
                props += f",line={p.line}"
            if p.column is not None:
                props += f",col={p.column}"
            msg = f"[{p.rule}] {p.message}" + (f" Fix: {p.fix}" if p.fix else "")
            lines.append(f"::{level} {props},title={p.rule}::{_github_escape(msg)}")
        else:
            fix = f" (fix: {p.fix})" if p.fix else ""
            lines.append(f"{p.location()}: {p.severity.value} {p.rule}: {p.message}{fix}")
    return "\n".join(lines)


class Progress:
    """A minimal progress line on a terminal: `label  done/total`. Silent when not a tty.

    `finish()` ends the line (a later `advance` starts a new one); `close()` finishes."""

    def __init__(self, label: str, total: int | None, stream: TextIO | None = None) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self._line_open = False

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self.enabled:
            total = f"/{self.total}" if self.total is not None else ""
            self.stream.write(f"\r{self.label}  {self.done}{total}")
            self.stream.flush()
            self._line_open = True

    def finish(self) -> None:
        if self._line_open:
            self.stream.write("\n")
            self.stream.flush()
            self._line_open = False

    def close(self) -> None:
        self.finish()


@contextmanager
def progress(label: str, total: int | None = None) -> Iterator[Progress]:
    bar = Progress(label, total)
    try:
        yield bar
    finally:
        bar.close()
