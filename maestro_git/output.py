"""Rendering results for people and programs: tables, JSON, GitHub annotations, progress.

Every CLI command renders through these helpers, so `--format table|json` and `--quiet` mean
the same everywhere. Progress goes to stderr and only when stderr is a terminal.
"""

from __future__ import annotations

import dataclasses
import html
import json
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from enum import Enum
from pathlib import PurePath
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from pydantic import BaseModel

from maestro_git.core.models import Problem

if TYPE_CHECKING:
    from maestro_git.core.diff import EntityDiff, FieldChange
    from maestro_git.core.review import ReviewReport

T = TypeVar("T")

__all__ = [
    "Progress",
    "format_problems",
    "github_annotation",
    "github_escape",
    "github_property",
    "progress",
    "progress_callback",
    "render",
    "render_diff",
    "render_review",
    "table",
    "to_json",
    "to_jsonable",
]


def visible(text: str) -> str:
    """`core.diff.visible`, imported when a diff is rendered (not at every command's start)."""
    from maestro_git.core.diff import visible as show

    return show(text)


def to_jsonable(value: Any) -> Any:
    """Records (pydantic models and dataclasses), enums, dates, tuples and mappings as plain
    JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name))
                for f in dataclasses.fields(value) if not f.name.startswith("_")}
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
    if isinstance(value, PurePath):
        return str(value)
    return value


def to_json(value: Any) -> str:
    return json.dumps(to_jsonable(value), indent=2, ensure_ascii=False, sort_keys=False)


def render(result: T, fmt: str, human: Callable[[T], object],
           write: Callable[[str], object] = print) -> None:
    """The one way a command's result reaches its reader.

    `--format json` writes the result record itself as JSON (`to_json`: records, enums and
    dates as plain values), so every command's JSON is its result and nothing else; every
    other format (table, text, github, markdown, html) is the command's own human form,
    `human(result)`, which prints and may add notes on stderr."""
    if fmt == "json":
        write(to_json(result))
    else:
        human(result)


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


def github_escape(text: str) -> str:
    """A workflow command's message escaped as GitHub requires (`%`, CR, LF)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def github_property(text: str) -> str:
    """A workflow command's property value (`file=`, `title=`) escaped as GitHub requires:
    the message escapes plus `:` and `,`, which would end the value."""
    return github_escape(text).replace(":", "%3A").replace(",", "%2C")


def github_annotation(p: Problem) -> str:
    """One problem as a GitHub Actions annotation on its file and line."""
    level = {"error": "error", "warning": "warning"}.get(p.severity.value, "notice")
    props = f"file={github_property(p.path)}"
    if p.line is not None:
        props += f",line={p.line}"
    if p.column is not None:
        props += f",col={p.column}"
    msg = f"[{p.rule}] {p.message}" + (f" Fix: {p.fix}" if p.fix else "")
    return f"::{level} {props},title={github_property(p.rule)}::{github_escape(msg)}"


def format_problems(problems: Iterable[Problem], fmt: str = "text") -> str:
    """Problems as `path:line:col: severity rule: message (fix: ...)`, JSON, or GitHub
    workflow annotations (`::error file=...,line=...::message`)."""
    items = list(problems)
    if fmt == "json":
        return to_json(items)
    lines = []
    for p in items:
        if fmt == "github":
            lines.append(github_annotation(p))
        else:
            fix = f" (fix: {p.fix})" if p.fix else ""
            lines.append(f"{p.location()}: {p.severity.value} {p.rule}: {p.message}{fix}")
    return "\n".join(lines)


# -- diffs and reviews -----------------------------------------------------------------------
DETAILS_LINES = 20  # a diff longer than this is folded into <details> in Markdown


def show_value(value: Any) -> str:
    """A frontmatter value for people: lists as `[a, b]`, absent as `(none)`."""
    if value is None:
        return "(none)"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(show_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _field_line(change: FieldChange) -> str:
    return visible(f"{change.field}: {show_value(change.old)} -> {show_value(change.new)}")


def _delta(old: int | None, new: int | None, unit: str, limit: int) -> str:
    if old is None and new is None:
        return ""
    if old is None or new is None:
        return f"{new if new is not None else old} {unit} (limit {limit})"
    sign = "+" if new >= old else "-"
    return f"{old} -> {new} {unit} ({sign}{abs(new - old)}; limit {limit})"


def _title(change: EntityDiff) -> str:
    key = f"{change.old_key} -> {change.key}" if change.old_key else change.key
    label = {"persona": "persona", "template": "template", "persona_set": "set"}[change.kind]
    return f"{change.action} {label} {key}"


def _version_note(change: EntityDiff) -> str:
    if change.kind == "persona_set":
        return ""
    if change.old_version and change.new_version:
        same = change.old_version == change.new_version and change.action != "renamed"
        return f"version {change.old_version} -> {change.new_version}" + (
            " (not raised)" if same and (change.body_diff or change.fields) else "")
    return f"version {change.new_version or change.old_version}"


def _member_lines(change: EntityDiff) -> list[str]:
    out = []
    for m in change.members:
        fields = "; ".join(_field_line(f) for f in m.fields)
        out.append(f"member {m.name} {m.action}" + (f": {fields}" if fields else ""))
    return out


def _short(rev: str) -> str:
    return rev[:7] if len(rev) == 40 else rev


def render_diff(change: EntityDiff) -> str:
    """`maestro diff` as text: a header line, the changed fields, members, the body diff."""
    lines = [f"{change.key}: {_short(change.rev_a)} -> {_short(change.rev_b)}"
             + ("" if change.action in ("modified", "unchanged") else f" ({change.action})")]
    if change.old_path != change.new_path:
        lines.append(f"  path: {change.old_path or '(none)'} -> {change.new_path or '(none)'}")
    lines += [f"  {_field_line(f)}" for f in change.fields]
    lines += [f"  {m}" for m in _member_lines(change)]
    if not change.changed:
        lines.append("  no changes")
    text = "\n".join(lines) + "\n"
    return text + visible(change.body_diff)


def render_review(report: ReviewReport, fmt: str) -> str:
    """A review as `text`, `json`, `github` (annotations) or `markdown` (a pull-request
    comment or `$GITHUB_STEP_SUMMARY`)."""
    if fmt == "json":
        return to_json({**to_jsonable(report), "errors": report.errors,
                        "warnings": report.warnings})
    if fmt == "github":
        return _review_github(report)
    if fmt == "markdown":
        return _review_markdown(report)
    return _review_text(report)


def _headline(report: ReviewReport) -> str:
    s = report.summary
    counts = ", ".join(f"{s.get(a, 0)} {a}" for a in ("added", "modified", "renamed",
                                                        "deleted"))
    return (f"{counts}; {s.get('impacted', 0)} inheriting persona(s) change; "
            f"{report.errors} error(s), {report.warnings} warning(s)")


def _review_text(report: ReviewReport) -> str:
    head = report.head if report.head == "worktree" else report.head[:7]
    lines = [f"review: {report.base[:7]} ({report.base_ref}) -> {head}", _headline(report)]
    if report.same_commit:
        lines.append("note: the base is the head commit: only uncommitted changes are "
                     "reviewed")
    limits = report.limits
    if report.changes:
        lines += ["", "changes:"]
    for c in report.changes:
        lines.append(f"  {_title(c)}  {_version_note(c)}".rstrip())
        if c.old_path != c.new_path and c.old_path and c.new_path:
            lines.append(f"      path: {c.old_path} -> {c.new_path}")
        if c.action not in ("added", "deleted"):
            lines += [f"      {_field_line(f)}" for f in c.fields]
        lines += [f"      {m}" for m in _member_lines(c)]
        size = _delta(c.old_size, c.new_size, "bytes", limits.max_content_bytes)
        tokens = _delta(c.old_tokens, c.new_tokens, "tokens", limits.max_tokens)
        if size and (c.body_diff or c.action in ("added", "deleted")):
            lines.append(f"      body: {size}, {tokens}")
        if c.body_diff:
            lines += ["      " + x for x in visible(c.body_diff).splitlines()]
    if report.impact:
        lines += ["", "inheritance impact (effective instructions that change):"]
    for i in report.impact:
        lines.append(f"  {i.key} (via {', '.join(i.via)}): {len(i.removed)} line(s) lost, "
                     f"{len(i.added)} gained")
        lines += ["      " + x for x in visible(i.diff).splitlines()]
    if report.approvals:
        lines += ["", "approvals:"]
    for a in report.approvals:
        who = " ".join(a.reviewers) if a.reviewers else "(no reviewer in [owners])"
        lines.append(f"  {a.folder}  {who}  ({', '.join(a.keys)})")
    if report.problems:
        lines += ["", "problems:"]
        lines += ["  " + x for x in format_problems(report.problems).splitlines()]
    return "\n".join(lines)


def _review_github(report: ReviewReport) -> str:
    lines = [github_annotation(p) for p in report.problems]
    paths = {c.key: c.new_path for c in report.changes if c.new_path}
    for i in report.impact:
        path = paths.get(i.key) or f"personas/{i.key}.md"
        msg = (f"the effective instruction of {i.key} changes through "
               f"{', '.join(i.via)}: {len(i.removed)} line(s) lost, {len(i.added)} gained")
        lines.append(f"::notice file={github_property(path)},"
                     f"title={github_property('inheritance impact')}::{github_escape(msg)}")
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _fenced(text: str, lang: str = "diff") -> str:
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{lang}\n{text.rstrip(chr(10))}\n{fence}"


def _folded(summary: str, diff: str) -> list[str]:
    diff = visible(diff)
    if diff.count("\n") <= DETAILS_LINES:
        return [f"**{summary}**", "", _fenced(diff), ""]
    return [f"<details><summary>{html.escape(summary)} ({diff.count(chr(10))} lines)"
            "</summary>", "", _fenced(diff), "", "</details>", ""]


def _review_markdown(report: ReviewReport) -> str:
    head = "the working tree" if report.head == "worktree" else f"`{report.head[:7]}`"
    status = "❌" if report.errors else "✅"
    out = ["## maestro review", "",
           f"{status} Base `{report.base[:7]}` (`{report.base_ref}`) → {head}: "
           f"{_headline(report)}.", ""]
    limits = report.limits
    if report.changes:
        out += ["### Changes", "", "| change | key | version | body | tokens |",
                "|---|---|---|---|---|"]
        for c in report.changes:
            key = f"`{c.old_key}` → `{c.key}`" if c.old_key else f"`{c.key}`"
            kind = {"persona": "persona", "template": "template", "persona_set": "set"}[c.kind]
            size = _delta(c.old_size, c.new_size, "B", limits.max_content_bytes)
            tokens = _delta(c.old_tokens, c.new_tokens, "", limits.max_tokens)
            out.append(f"| {c.action} {kind} | {_cell(key)} | "
                       f"{_cell(_version_note(c).removeprefix('version ').replace('->', '→'))}"
                       f" | {_cell(size.replace('->', '→'))} | "
                       f"{_cell(tokens.replace('->', '→'))} |")
        out.append("")
        for c in report.changes:
            details = [f"`{_cell(f.field)}`: `{_cell(visible(show_value(f.old)))}` → "
                       f"`{_cell(visible(show_value(f.new)))}`" for f in c.fields
                       if c.action not in ("added", "deleted")]
            details += [_cell(m) for m in _member_lines(c)]
            if details:
                out.append(f"- **{c.key}**: " + "; ".join(details))
        out.append("")
        for c in report.changes:
            if c.body_diff:
                out += _folded(f"Diff of {c.key}", c.body_diff)
    if report.impact:
        out += ["### Inheritance impact", "",
                "Effective instructions that change because an ancestor changed:", "",
                "| persona | through | lines lost | lines gained |", "|---|---|---|---|"]
        out += [f"| `{i.key}` | {', '.join(f'`{v}`' for v in i.via)} | {len(i.removed)} | "
                f"{len(i.added)} |" for i in report.impact]
        out.append("")
        for i in report.impact:
            out += _folded(f"Effective instruction of {i.key}", i.diff)
    if report.approvals:
        out += ["### Approvals", "", "| folder | reviewers | changes |", "|---|---|---|"]
        for a in report.approvals:
            who = " ".join(a.reviewers) if a.reviewers else "_no reviewer in `[owners]`_"
            out.append(f"| `{a.folder}` | {_cell(who)} | "
                       f"{_cell(', '.join(f'`{k}`' for k in a.keys))} |")
        out.append("")
    if report.problems:
        out += ["### Problems", "", "| | location | rule | message |", "|---|---|---|---|"]
        icon = {"error": "❌", "warning": "⚠️"}
        for p in report.problems:
            fix = f" Fix: {p.fix}" if p.fix else ""
            out.append(f"| {icon.get(p.severity.value, 'ℹ️')} | `{_cell(p.location())}` | "
                       f"`{p.rule}` | {_cell(p.message + fix)} |")
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


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


@contextmanager
def progress_callback(label: str, stream: TextIO | None = None
                      ) -> Iterator[Callable[[int, int], None]]:
    """A `(done, total)` callback for a library call's `progress=` parameter, drawn as
    `label  done/total` on a terminal (silent otherwise). Reaching `done == total` ends the
    line, so a later call (the next commit, the next stage) starts its own."""
    bar = Progress(label, None, stream)
    try:
        def advance(done: int, total: int) -> None:
            bar.total = total
            bar.advance(done - bar.done)
            if done == total:
                bar.finish()
                bar.done = 0
        yield advance
    finally:
        bar.close()
