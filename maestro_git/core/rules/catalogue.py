"""The rule catalogue: every rule id, its default severity and a one-line summary.

Parse-time rules (`yaml-syntax`, `frontmatter-type`, ...) are raised by `formats`, the
others by `validate`, `content_rules` and `set_rules`; all are listed here. The README's rule
table is checked against this catalogue by the tests, and `[rules]` in maestro.toml may change
a severity or turn a rule off (`validate.apply_severities`).
"""

from __future__ import annotations

from maestro_git.core.models import Problem, Severity

__all__ = ["RULES", "problem"]

E, W, N = Severity.ERROR, Severity.WARNING, Severity.INFO

# rule id -> (default severity, summary)
RULES: dict[str, tuple[Severity, str]] = {
    # reading files
    "file-too-large": (E, "a file is larger than limits.max_file_bytes"),
    "binary-file": (E, "a file contains NUL bytes"),
    "invalid-utf8": (E, "a file is not valid UTF-8"),
    "symlink-escape": (E, "a symlink points outside the repository"),
    "symlink": (W, "a persona, template, set or content folder is a symlink (not followed)"),
    "hidden-unicode": (E, "invisible or bidi-control characters (the rules-file backdoor)"),
    "unstorable-text": (E, "a NUL or an unpaired surrogate (escaped), which PostgreSQL cannot store"),
    # names and paths
    "invalid-name": (E, "a name or owner uses characters outside [a-z0-9_-] or is too long"),
    "misplaced-file": (W, "a file in a content folder that maestro does not read"),
    "hidden-file": (W, "a file or folder in a content folder whose name starts with a dot"),
    "duplicate-key": (E, "two files map to the same key"),
    # frontmatter
    "frontmatter-too-large": (E, "frontmatter over limits.max_frontmatter_bytes"),
    "yaml-syntax": (E, "frontmatter is not valid YAML or is never closed"),
    "yaml-alias": (E, "frontmatter uses YAML anchors/aliases (alias bombs)"),
    "duplicate-field": (E, "a key appears twice in frontmatter or in a JSON object"),
    "frontmatter-type": (E, "a frontmatter field has the wrong type"),
    "name-mismatch": (E, "frontmatter name differs from the file name"),
    "owner-mismatch": (E, "frontmatter owner differs from the folder"),
    "missing-id": (W, "no `id` (run `maestro fmt` to assign one)"),
    "invalid-id": (E, "`id` is not a UUID"),
    "duplicate-id": (E, "two files share one `id`"),
    "invalid-semver": (E, "`version` is not semver (MAJOR.MINOR.PATCH)"),
    "too-many-tags": (E, "more tags than limits.max_tags"),
    "invalid-tag": (E, "a tag is empty, too long, repeated or outside [a-z0-9._+-]"),
    "field-too-long": (E, "display_name over 200 or description over 1000 characters"),
    "invalid-model": (E, "`model` is empty, or not one line of at most 200 characters"),
    "invalid-tools": (E, "`tools` is not a list of distinct, non-empty tool names"),
    # content
    "content-too-large": (E, "the body is over limits.max_content_bytes"),
    "too-many-tokens": (W, "the body's estimated tokens are over limits.max_tokens"),
    "empty-content": (E, "the body is empty (and nothing is inherited)"),
    "non-instruction-content": (W, "the body does not read as a system instruction"),
    "dangerous-html": (E, "script/iframe/event handlers/javascript: URLs outside code"),
    # inheritance
    "missing-parent": (E, "`extends` names a persona that does not exist"),
    "inheritance-cycle": (E, "`extends` links form a cycle"),
    "inheritance-depth": (E, "an `extends` chain longer than limits.max_inheritance_depth"),
    "placeholder-override": (W, "a child section replaces its parent's with empty or "
                                "placeholder text"),
    # persona sets
    "json-syntax": (E, "a persona set is not valid JSON"),
    "number-out-of-range": (E, "a JSON number beyond a double's range (1e400 reads as infinity)"),
    "set-schema": (E, "a persona set does not have the persona-set shape"),
    "set-duplicate-member": (E, "two members of a set share a name"),
    "set-member-value": (E, "a member's name is empty, or its age is not a whole number 0-150"),
    "set-score-range": (E, "a score known to be a fraction is not between 0 and 1"),
    "set-image-path": (E, "an image_url is not http(s) or leaves persona_sets/"),
    "set-image-missing": (E, "an image_url points at a file that does not exist"),
    "set-image-url-path": (N, "an image_url is a URL path an application serves (not checked)"),
    # agent-tool files (import and `export --target`; see core/tools/)
    "tool-required-key": (E, "a tool file lacks a key without which the tool ignores it"),
    "tool-dropped-file": (E, "a value that makes the tool silently drop the file (Claude `hooks: []`)"),
    "tool-quoted-boolean": (E, 'a boolean written as a string (Cursor reads "true" as false)'),
    "tool-body-too-long": (E, "over the tool's size limit (Copilot agent 30,000, Windsurf 12,000)"),
    "tool-duplicate-spelling": (E, "two spellings of one key (user-invocable/user-invokable)"),
    "tool-invalid-value": (W, "a value the tool does not know (model, color, trigger, ...)"),
    "tool-deprecated-key": (W, "a key or file kind the tool has retired (infer, chat modes)"),
    "tool-ignored-file": (W, "a file in a tool folder that the tool does not read"),
    "tool-import-missing": (W, "an @import the tool cannot follow (outside the repository, or no such file)"),
    "tool-import-cycle": (W, "CLAUDE.md / GEMINI.md @imports that loop back to a file already read"),
    "tool-import-depth": (W, "an @import chain past five hops, whose last file the tool never loads"),
    "tool-format-normalised": (N, "export will write this tool file's frontmatter in maestro's layout"),
    # owners (only where maestro.toml has an [owners] table; see owners.py)
    "owner-without-reviewer": (W, "an owner folder holds personas and [owners] names no reviewer"),
    # review (only with `maestro check --against REV` / `maestro review`; see review.py)
    "version-not-raised": (E, "content changed since the base but the semver did not rise"),
}


def problem(rule: str, path: str, message: str, fix: str, line: int | None = None,
            column: int | None = None) -> Problem:
    """A `Problem` of catalogued rule `rule`, at its default severity."""
    return Problem(rule=rule, severity=RULES[rule][0], path=path, message=message, fix=fix,
                   line=line, column=column)
