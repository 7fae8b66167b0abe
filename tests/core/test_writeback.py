"""writeback: frontmatter written back changes only the lines it must; the body never changes."""

from __future__ import annotations

import difflib

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from maestro_git.core.formats import parse_file, split_frontmatter
from maestro_git.core.models import Persona, SourceFile
from maestro_git.core.writeback import (
    format_document,
    render_document,
    semver_from_number,
    set_body,
    set_fields,
)
from maestro_git.errors import ValidationFailed
from maestro_git.settings import Limits

COMMENTED = b"""---
# Owned by the devex team; changes need a review.
display_name: Developer Assistant
tags: [coding, review]     # keep these short
description: 'Helps: with code'   # quoted on purpose
version: 1.2.0       # bump on every content change
metadata:
  category: development   # used by the catalogue
  stack: [python, sql]

# the switch below hides the persona
active: true
---
# Developer Assistant

You are an expert.   \n\n```yaml
---
not: frontmatter
---
```
"""


def _diff(old: bytes, new: bytes) -> list[str]:
    return [line for line in difflib.unified_diff(
        old.decode().splitlines(), new.decode().splitlines(), lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))]


def _body(data: bytes) -> str:
    return split_frontmatter(data.decode())[1]


def _fields(data: bytes) -> dict[str, object]:
    yaml_text = split_frontmatter(data.decode())[0]
    assert yaml_text is not None
    loaded = yaml.safe_load(yaml_text)
    assert isinstance(loaded, dict)
    return loaded


def test_fmt_on_file_with_comments_and_odd_key_order_changes_only_the_id_line() -> None:
    new, changes = format_document(COMMENTED, "2f1c0000-0000-4000-8000-000000000001")
    assert _diff(COMMENTED, new) == ["+id: 2f1c0000-0000-4000-8000-000000000001"]
    assert changes == ("assigned id 2f1c0000-0000-4000-8000-000000000001",)
    # the id goes above the comment block that heads the first key
    assert new.startswith(b"---\nid: 2f1c0000-0000-4000-8000-000000000001\n# Owned by")


def test_format_document_is_idempotent() -> None:
    once, _ = format_document(COMMENTED, "id-1")
    twice, changes = format_document(once, "id-2")
    assert twice == once
    assert changes == ()


def test_updated_key_keeps_its_end_of_line_comment_at_its_column() -> None:
    new = set_fields(COMMENTED, {"version": "1.3.0"})
    assert _diff(COMMENTED, new) == [
        "-version: 1.2.0       # bump on every content change",
        "+version: 1.3.0       # bump on every content change",
    ]


def _line(data: bytes, key: str) -> str:
    return next(line for line in data.decode().splitlines() if line.startswith(key + ":"))


def test_updated_string_keeps_its_quote_style() -> None:
    new = set_fields(COMMENTED, {"description": "Reviews: code"})
    line = _line(new, "description")
    assert line.startswith("description: 'Reviews: code'  ")
    assert line.index("# quoted") == _line(COMMENTED, "description").index("# quoted")
    assert len(_diff(COMMENTED, new)) == 2


def test_flow_list_stays_flow_and_block_mapping_stays_block() -> None:
    new = set_fields(COMMENTED, {"tags": ["coding"], "metadata": {"category": "qa"}})
    assert _line(new, "tags").startswith("tags: [coding]  ")
    assert _line(new, "tags").endswith("  # keep these short")
    assert b"metadata:\n  category: qa\n\n# the switch below" in new
    assert _fields(new)["metadata"] == {"category": "qa"}


def test_setting_an_unchanged_value_changes_nothing() -> None:
    same = {"metadata": {"category": "development", "stack": ["python", "sql"]},
            "tags": ("coding", "review"), "version": "1.2.0", "active": True}
    assert set_fields(COMMENTED, same) == COMMENTED
    assert set_fields(COMMENTED, {"active": 1}) != COMMENTED


def test_removing_a_key_deletes_only_its_lines() -> None:
    new = set_fields(COMMENTED, {}, remove=["metadata"])
    assert _diff(COMMENTED, new) == [
        "-metadata:",
        "-  category: development   # used by the catalogue",
        "-  stack: [python, sql]",
    ]


def test_new_key_goes_after_its_canonical_predecessor() -> None:
    new = set_fields(COMMENTED, {"extends": "platform/base"})
    assert _diff(COMMENTED, new) == ["+extends: platform/base"]
    lines = new.decode().splitlines()
    assert lines[lines.index("extends: platform/base") - 1].startswith("version: 1.2.0")


def test_unknown_new_key_is_appended_at_the_end() -> None:
    new = set_fields(COMMENTED, {"owner_team": "devex"})
    assert new.decode().split("---\n")[1].endswith("active: true\nowner_team: devex\n")


def test_body_is_kept_byte_for_byte() -> None:
    new = set_fields(COMMENTED, {"version": "2.0.0", "tags": ["a"], "id": "x"},
                     remove=["active"])
    assert _body(new) == _body(COMMENTED)
    assert new.endswith(COMMENTED[COMMENTED.index(b"---\n# Developer"):])


def test_crlf_file_keeps_crlf_line_endings() -> None:
    data = b"---\r\ndisplay_name: X\r\nversion: 1  # first\r\n---\r\nbody\r\nmore\r\n"
    new, _ = format_document(data, "the-id")
    assert new == (b"---\r\nid: the-id\r\ndisplay_name: X\r\nversion: \"1.0.0\"  # first\r\n"
                   b"---\r\nbody\r\nmore\r\n")


def test_byte_order_mark_is_kept() -> None:
    data = "\ufeff---\ndisplay_name: X\n---\nbody\n".encode()
    assert set_fields(data, {"id": "i"}) == "\ufeff---\nid: i\ndisplay_name: X\n---\nbody\n".encode()


def test_file_without_frontmatter_gets_one_and_keeps_its_text() -> None:
    data = b"# Helper\n\nYou are a helper.\n"
    new, _ = format_document(data, "i")
    assert new == b"---\nid: i\n---\n# Helper\n\nYou are a helper.\n"


def test_empty_and_comment_only_frontmatter_get_the_key() -> None:
    assert set_fields(b"---\n---\nbody", {"id": "i"}) == b"---\nid: i\n---\nbody"
    assert set_fields(b"---\n# note\n---\nb", {"id": "i"}) == b"---\n# note\nid: i\n---\nb"


def test_flow_mapping_frontmatter_is_rewritten_whole_and_still_reads_back() -> None:
    data = b"---\n{display_name: X, tags: [a]}\n---\nbody\n"
    new = set_fields(data, {"id": "i"})
    assert _fields(new) == {"display_name": "X", "tags": ["a"], "id": "i"}
    assert _body(new) == "body\n"


def test_multiline_string_is_written_as_a_literal_block() -> None:
    new = set_fields(b"---\nid: i\n---\nb", {"description": "one\ntwo"})
    assert _fields(new)["description"] == "one\ntwo"
    assert b"description: |-\n  one\n  two\n" in new


def test_strings_that_look_like_other_types_stay_strings() -> None:
    tricky = {"display_name": "yes", "extends": "1.0", "description": "a: b # c",
              "x1": "1:20", "x2": "2024-01-01", "x3": "~", "x4": "on", "x5": ""}
    new = set_fields(b"---\nid: i\n---\nb", tricky)
    assert _fields(new) == {"id": "i", **tricky}


def test_numeric_version_becomes_quoted_semver_read_from_its_text() -> None:
    new, changes = format_document(b"---\nid: i\nversion: 1.10\n---\nb", "unused")
    assert new == b'---\nid: i\nversion: "1.10.0"\n---\nb'
    assert changes == ('version 1.10 -> "1.10.0"',)


def test_tags_written_as_one_string_become_a_list() -> None:
    new, _ = format_document(b"---\nid: i\ntags: coding, review\n---\nb", "unused")
    assert new == b"---\nid: i\ntags: [coding, review]\n---\nb"


def test_semver_from_number() -> None:
    assert semver_from_number("2") == "2.0.0"
    assert semver_from_number("1.2") == "1.2.0"
    assert semver_from_number("1.2.3") == "1.2.3"
    assert semver_from_number("1.2.x") is None


@pytest.mark.parametrize("data", [
    b"---\ndisplay_name: [unclosed\n---\nbody\n",
    b"---\n- a list\n---\nbody\n",
    b"---\nid: a\nid: b\n---\nbody\n",
    b"\xff\xfe not utf-8",
])
def test_unreadable_frontmatter_is_refused(data: bytes) -> None:
    with pytest.raises(ValidationFailed):
        set_fields(data, {"id": "i"})


def test_set_body_keeps_the_frontmatter_bytes() -> None:
    new = set_body(COMMENTED, "# New\n")
    assert new == COMMENTED[:COMMENTED.index(b"# Developer")] + b"# New\n"


def test_render_document_orders_keys_and_parses_back() -> None:
    data = render_document({"tags": ["a", "b"], "metadata": {"category": "dev"},
                            "version": "1.0.0", "display_name": "Rev", "id": "i",
                            "extends": None, "x_custom": 3}, "# Rev\n\nYou are Rev.\n")
    assert data == (b'---\nid: i\ndisplay_name: Rev\nversion: "1.0.0"\ntags: [a, b]\n'
                    b"metadata: {category: dev}\nx_custom: 3\n---\n# Rev\n\nYou are Rev.\n")
    record = parse_file(SourceFile(path="personas/acme/rev.md", data=data), Limits()).record
    assert isinstance(record, Persona)
    assert (record.id, record.version, record.tags) == ("i", "1.0.0", ("a", "b"))
    assert record.metadata == {"category": "dev", "x_custom": 3}
    assert record.body == "# Rev\n\nYou are Rev.\n"


def test_render_document_is_one_yaml_dump_with_the_bytes_of_one_dump_per_field(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from maestro_git.core import writeback

    fields = {"id": "i", "name": "rev", "owner": "acme", "display_name": "Rev: the reviewer",
              "description": "Reviews\ncode", "version": "1.2.0", "extends": "acme/base",
              "tags": ["a", "b c", "yes"], "metadata": {"team": "x", "nested": {"k": [1, 2]}},
              "active": False, "x_custom": "007"}
    ordered = [k for k in writeback.CANONICAL_ORDER if k in fields]
    ordered += [k for k in fields if k not in writeback.CANONICAL_ORDER]
    per_field = "".join(writeback._render_entry(k, fields[k], None) for k in ordered)
    dumps: list[object] = []
    real = writeback._dump
    monkeypatch.setattr(writeback, "_dump", lambda node: dumps.append(node) or real(node))
    data = render_document(fields, "# Rev\n")
    assert len(dumps) == 1  # export --all renders every persona: one dump each, not per field
    assert data == f"---\n{per_field}---\n# Rev\n".encode()


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=200)


@settings(max_examples=60, deadline=None)
@given(body=_text, value=st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")),
                                 min_size=1, max_size=40))
def test_any_body_and_value_survive_a_write(body: str, value: str) -> None:
    original = render_document({"id": "i", "display_name": "D"}, body)
    new = set_fields(original, {"description": value})
    assert new.endswith(("---\n" + body).encode())
    assert _fields(new)["description"] == value


@pytest.mark.parametrize(("data", "expected"), [
    (b"---\nid:\n---\nb", b"---\nid: new\n---\nb"),
    (b"---\nid: ''\n---\nb", b"---\nid: 'new'\n---\nb"),
    (b"---\nid: x\nversion: 2\n---\nb", b'---\nid: x\nversion: "2.0.0"\n---\nb'),
    (b"---\nid: x\nversion: '2'\n---\nb", b"---\nid: x\nversion: '2'\n---\nb"),
    (b"---\nid: x\ntags: [a]\n---\nb", b"---\nid: x\ntags: [a]\n---\nb"),
    (b"---\nid: x\ntags: a\n---\nb", b"---\nid: x\ntags: [a]\n---\nb"),
])
def test_format_document_fixes_exactly_what_needs_it(data: bytes, expected: bytes) -> None:
    assert format_document(data, "new")[0] == expected
