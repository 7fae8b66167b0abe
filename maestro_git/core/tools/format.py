"""`ToolFormat`: one agent tool's file format, read into a `ToolDoc` and rendered back.

Each family module (`claude`, `copilot`, `cursor`, `agents_md`, `gemini`, `continue_`,
`windsurf`) declares its formats as `ToolFormat` values: where the files live, which
frontmatter key carries which persona field, the key order it writes, and a `check` for the
tool's traps. Everything else (reading, the persona fields, `extra`, rendering, the
generated-by line, size limits, two spellings of one key) is done here once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, Literal

from maestro_git.core.models import Problem, Severity
from maestro_git.core.tools.common import (
    ToolDoc,
    emit,
    generated_comment,
    join,
    problem,
    read_frontmatter,
    split,
    strip_generated,
)

__all__ = ["Check", "ToolFormat", "persona_name"]

# A family's own checks: (format, frontmatter as read, body, path) -> problems.
Check = Callable[["ToolFormat", Mapping[str, Any], str, str], list[Problem]]
PERSONA_FIELDS = ("name", "display_name", "description", "model", "tools")
_TOP_COMMA = re.compile(r",(?![^()]*\))")  # a comma not inside parentheses


def persona_name(stem: str) -> str:
    """A tool file's stem as a persona name (`Code Reviewer` -> `code_reviewer`)."""
    name = re.sub(r"[^a-z0-9_-]+", "_", stem.lower().lstrip(".")).strip("_")
    return name[:100].rstrip("_") or "persona"


@dataclass(frozen=True)
class ToolFormat:
    """One file format of one tool (module docstring)."""

    id: str  # e.g. "claude-agent"
    family: str  # the persona's metadata key for tool-only keys, e.g. "claude"
    summary: str
    folder: str | None = None  # many files: their folder, e.g. ".claude/agents"
    suffix: str = ".md"  # many files: the name's ending, e.g. ".agent.md"
    single: str | None = None  # one file: its path, e.g. "CLAUDE.md"
    frontmatter: bool = True
    keys: Mapping[str, str] = field(default_factory=dict)  # persona field -> tool key
    order: tuple[str, ...] = ()  # tool keys in the order they are written (extras after)
    tools_style: Literal["comma", "list"] = "list"
    quote_lists: bool = False
    raw_keys: tuple[str, ...] = ()  # string values written unquoted whatever they hold
    aliases: Mapping[str, str] = field(default_factory=dict)  # older spelling -> current key
    required: tuple[str, ...] = ()  # tool keys the tool needs, or it ignores the file
    max_chars: int | None = None  # the tool's size limit
    limit_counts_file: bool = False  # the limit counts the whole file, not the body
    hyphen_names: bool = False  # the identity is the name with `_` written as `-`
    check: Check | None = None

    # -- paths ----------------------------------------------------------------------------
    def path_for(self, name: str) -> str:
        """Where a persona named `name` goes in a consuming repository."""
        if self.single is not None:
            return self.single
        assert self.folder is not None
        return f"{self.folder}/{self.tool_name(name)}{self.suffix}"

    def tool_name(self, name: str) -> str:
        return name.replace("_", "-") if self.hyphen_names else name

    def stem(self, path: str) -> str:
        base = PurePosixPath(path).name
        for ending in (self.suffix, ".md"):
            if base.lower().endswith(ending) and len(base) > len(ending):
                return base[: -len(ending)]
        return base

    # -- reading ----------------------------------------------------------------------------
    def parse(self, path: str, data: bytes) -> ToolDoc:
        """The tool file at `path` as persona fields plus its problems. Never raises."""
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            return ToolDoc(self.id, persona_name(self.stem(path)), "", problems=(problem(
                "invalid-utf8", path, f"byte 0x{data[exc.start]:02x} is not valid UTF-8",
                "re-save the file as UTF-8"),))
        text, generated_by = strip_generated(text)
        yaml_text, body = split(text) if self.frontmatter else (None, text)
        fm: dict[str, Any] = {}
        problems: list[Problem] = []
        if yaml_text is not None:
            fm, problems = read_frontmatter(self._protect_raw(yaml_text), path)
        problems += self._spelling_problems(fm, path)
        problems += self._limit_problems(text, body, path)
        problems += [problem("tool-required-key", path,
                             f"no '{key}': {self.summary} without it is ignored by the tool",
                             f"add '{key}: ...' to the frontmatter", line=1)
                     for key in self.required if not fm.get(key)]
        if self.check is not None:
            problems += self.check(self, fm, body, path)
        doc = self._fields(path, fm, body, problems)
        return ToolDoc(**doc, generated_by=generated_by)

    def _protect_raw(self, yaml_text: str) -> str:
        """Quote the raw keys' unquoted values so YAML reads them as text (`globs: *.ts`)."""
        for key in self.raw_keys:
            pattern = re.compile(rf"^({re.escape(key)}:[ \t]*)([^\s\"'\[{{][^\n]*?)[ \t]*$",
                                 re.MULTILINE)
            yaml_text = pattern.sub(
                lambda m: m[1] + '"' + m[2].replace("\\", "\\\\").replace('"', '\\"') + '"',
                yaml_text)
        return yaml_text

    def _spelling_problems(self, fm: Mapping[str, Any], path: str) -> list[Problem]:
        return [problem("tool-duplicate-spelling", path,
                        f"both '{old}' and '{new}' are set: they are two spellings of one "
                        "key and the tool reads only one of them",
                        f"keep '{new}' and remove '{old}'", line=1)
                for old, new in self.aliases.items() if old in fm and new in fm]

    def _limit_problems(self, text: str, body: str, path: str) -> list[Problem]:
        if self.max_chars is None:
            return []
        size = len(text) if self.limit_counts_file else len(body)
        if size <= self.max_chars:
            return []
        what = "file" if self.limit_counts_file else "body"
        return [problem("tool-body-too-long", path,
                        f"the {what} is {size:,} characters; {self.summary} is cut off or "
                        f"ignored beyond {self.max_chars:,}",
                        "shorten the instruction or split it into several files")]

    def _fields(self, path: str, fm: dict[str, Any], body: str,
                problems: list[Problem]) -> dict[str, Any]:
        by_key = {tool_key: persona for persona, tool_key in self.keys.items()}
        out: dict[str, Any] = {"format": self.id, "body": body,
                               "name": persona_name(self.stem(path))}
        extra: dict[str, Any] = {}
        for key, value in fm.items():
            target = by_key.get(key)
            if target == "tools" and _tool_list(value) is not None:
                out["tools"] = _tool_list(value)
            elif target == "name" and isinstance(value, str) and value.strip():
                out["name"] = persona_name(value)
                if self.tool_name(out["name"]) != value:
                    extra[key] = value  # an identity maestro would spell otherwise
            elif target == "model" and _model(value):
                out["model"] = value
            elif target in ("display_name", "description") and isinstance(value, str):
                out[target] = value
            else:
                extra[key] = value
        out["extra"] = extra
        out["problems"] = tuple(problems)
        return out

    # -- writing ----------------------------------------------------------------------------
    def render(self, doc: ToolDoc, *, key: str | None = None,
               commit: str | None = None) -> bytes:
        """The tool file for `doc`; with `key`, a generated-by line naming it and `commit`."""
        values = self._values(doc) if self.frontmatter else {}
        if not values:  # plain Markdown: the generated-by line is an HTML comment on top
            head = generated_comment(key, commit, yaml_comment=False) if key else ""
            return (head + doc.body).encode("utf-8")
        text = emit(values, quote_lists=self.quote_lists, raw=self.raw_keys)
        if key is not None:
            text = generated_comment(key, commit, yaml_comment=True) + text
        return join(text, doc.body).encode("utf-8")

    def _values(self, doc: ToolDoc) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for persona_field, tool_key in self.keys.items():
            value = getattr(doc, persona_field)
            if persona_field == "name":
                value = doc.extra.get(tool_key) or self.tool_name(doc.name)
            elif persona_field == "tools" and value is not None:
                value = ", ".join(value) if self.tools_style == "comma" else list(value)
            if value is not None:
                values[tool_key] = value
        for k, value in doc.extra.items():
            values.setdefault(k, value)
        ordered = {k: values[k] for k in self.order if k in values}
        ordered.update((k, v) for k, v in values.items() if k not in ordered)
        return ordered

    def normalised_note(self, path: str, data: bytes, doc: ToolDoc) -> Problem | None:
        """An information note when exporting `doc` would not give back `data` exactly."""
        if any(p.severity is Severity.ERROR for p in doc.problems):
            return None
        original = strip_generated(data.decode("utf-8", "replace"))[0].encode("utf-8")
        if original.startswith(b"\xef\xbb\xbf"):
            original = original[3:]
        if self.render(doc) == original:
            return None
        return problem("tool-format-normalised", path,
                       "exporting this persona back will write its frontmatter in "
                       "maestro's layout (key order, quoting), not byte for byte as here",
                       "nothing to do; the values are kept")


def _tool_list(value: Any) -> tuple[str, ...] | None:
    """A tool list as the persona's `tools`: a YAML list as it is, the comma string as its
    entries; a comma inside parentheses belongs to its tool (`Agent(worker, researcher)`)."""
    if isinstance(value, str):
        found = tuple(t.strip() for t in _TOP_COMMA.split(value) if t.strip())
    elif isinstance(value, list) and all(isinstance(t, str) and t.strip() for t in value):
        found = tuple(value)
    else:
        return None  # not a shape a persona takes: kept as written under `extra`
    return found if len(set(found)) == len(found) else None


def _model(value: Any) -> bool:
    """Whether a tool's `model` is one a persona takes (one non-empty line)."""
    return isinstance(value, str) and bool(value.strip()) and "\n" not in value.strip() \
        and len(value) <= 200
