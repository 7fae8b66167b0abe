"""Parsing files into records: frontmatter splitting, safe YAML, set JSON, never raising."""

from __future__ import annotations

import json
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maestro_git.core.formats import classify, parse_file, split_frontmatter
from maestro_git.core.models import Persona, PersonaSet, SourceFile, Template
from maestro_git.core.snapshot import build_snapshot
from maestro_git.settings import Limits, Settings

L = Limits()


def parse(path: str, text: str | bytes) -> tuple[object, list[str]]:
    data = text.encode() if isinstance(text, str) else text
    parsed = parse_file(SourceFile(path=path, data=data), L)
    return parsed.record, [p.rule for p in parsed.problems]


def test_classify_maps_paths_to_kinds_and_keys() -> None:
    assert classify("personas/acme/reviewer.md") is not None
    assert classify("personas/acme/reviewer.md").key == "acme/reviewer"  # type: ignore[union-attr]
    assert classify("templates/writer.md").kind == "template"  # type: ignore[union-attr]
    assert classify("persona_sets/panel.json").key == "panel"  # type: ignore[union-attr]
    assert classify("persona_sets/panel/set.json").key == "panel"  # type: ignore[union-attr]
    for other in ("personas/x.md", "personas/a/b/c.md", "persona_sets/p/images/a.png",
                  "README.md", "templates/a/b.md"):
        assert classify(other) is None


def test_body_is_kept_byte_for_byte() -> None:
    body = "\n\n# Title  \r\n\ttabbed\n\n```\n---\n```\n\n"
    text = "---\r\ndisplay_name: X\r\n---\r\n" + body
    fm, got, line = split_frontmatter(text)
    assert (fm, got, line) == ("display_name: X\r\n", body, 4)
    record, _ = parse("personas/a/x.md", text)
    assert isinstance(record, Persona) and record.body == body and record.body_line == 4


def test_a_file_without_frontmatter_is_all_body() -> None:
    assert split_frontmatter("# T\n---\nx\n") == (None, "# T\n---\nx\n", 1)
    assert split_frontmatter("\ufeff---\na: 1\n---\nb") == ("a: 1\n", "b", 4)


def test_a_file_starting_with_a_brace_is_not_read_as_json() -> None:
    record, rules = parse("personas/a/x.md", '{"display_name": "x"}\n# T\nYou are x.\n')
    assert isinstance(record, Persona) and record.display_name is None and rules == []


def test_unknown_frontmatter_keys_are_kept_in_metadata() -> None:
    record, rules = parse("personas/a/x.md", "---\nmetadata: {a: 1}\ntemperature: 0.2\n"
                          "released: 2024-01-02\n---\nYou are x.\n")
    assert rules == []
    assert isinstance(record, Persona)
    assert record.metadata == {"a": 1, "temperature": 0.2, "released": "2024-01-02"}


def test_model_and_tools_are_typed_fields_for_agent_tools() -> None:
    record, rules = parse("personas/a/x.md", "---\nmodel: sonnet\ntools: [Read, Grep]\n---\n"
                          "You are x.\n")
    assert rules == [] and isinstance(record, Persona)
    assert (record.model, record.tools, record.metadata) == ("sonnet", ("Read", "Grep"), {})
    none, _ = parse("personas/a/y.md", "---\ntools: []\n---\nYou are y.\n")
    assert isinstance(none, Persona) and none.tools == ()
    _, rules = parse("personas/a/z.md", "---\nmodel: 4\ntools: Read\n---\nYou are z.\n")
    assert rules == ["frontmatter-type", "invalid-tools"]


def _problems(text: str) -> list[tuple[str, str, str, int | None]]:
    parsed = parse_file(SourceFile(path="personas/a/x.md", data=text.encode()), L)
    return [(p.rule, p.message, p.fix, p.line) for p in parsed.problems]


def test_model_and_tools_have_a_known_shape_with_messages_that_say_how() -> None:
    assert _problems("---\nmodel: '  '\n---\nYou are x.\n") == [
        ("invalid-model", "'model' is empty: an agent tool given this persona would have no "
                          "model to run it on",
         "name a model (sonnet, opus, haiku, a full model id, or inherit) or remove 'model'",
         2)]
    assert _problems("---\nmodel: \"a\\nb\"\n---\nYou are x.\n")[0][:2] == (
        "invalid-model", "'model' must be one line of at most 200 characters (a model name "
                         "or id)")
    assert _problems("---\nid: x\ntools: Read, Grep\n---\nYou are x.\n")[-1] == (
        "invalid-tools", "'tools' is the string 'Read, Grep': a persona lists its tools",
        "write tools: [Read, Grep]", 3)
    assert [m for _, m, _, _ in _problems("---\ntools: [Read, '', 3, Read]\n---\nYou.\n")] == [
        "tool 2 in 'tools' is empty", "tool 3 in 'tools' is not a string",
        "'Read' is listed twice in 'tools'"]
    assert _problems("---\ntools: {a: 1}\n---\nYou are x.\n") == [
        ("invalid-tools", "'tools' must be a list of tool names",
         "write e.g. tools: [Read, Grep] ([] for none)", 2)]
    record, rules = parse("personas/a/x.md", "---\nmodel: inherit\ntools: ['Bash(git:*)', "
                          "'Agent(worker, researcher)']\n---\nYou are x.\n")
    assert rules == [] and isinstance(record, Persona)
    assert record.tools == ("Bash(git:*)", "Agent(worker, researcher)")


def test_template_category_is_read() -> None:
    record, _ = parse("templates/w.md", "---\ncategory: writing\n---\n# W\n")
    assert isinstance(record, Template) and record.category == "writing"


def test_alias_bomb_is_refused_without_expanding() -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    started = time.perf_counter()
    record, rules = parse("personas/a/x.md", "---\n" + "\n".join(lines) + "\n---\n# B\n")
    assert time.perf_counter() - started < 1.0
    assert (record, rules) == (None, ["yaml-alias"])


def test_an_alias_of_a_plain_string_is_refused() -> None:
    record, rules = parse("personas/a/x.md", "---\na: &x foo\nb: [*x]\n---\n# B\n")
    assert (record, rules) == (None, ["yaml-alias"])


def test_plain_and_quoted_scalars_keep_their_types_file_after_file() -> None:
    text = ('---\ndisplay_name: "true"\nactive: true\ndescription: \'12\'\n'
            'metadata: {count: 12, label: "12", flag: off, when: 2024-05-01}\n---\n# B\n')
    for _ in range(3):  # later files read the tags the first one resolved
        record, rules = parse("personas/a/x.md", text)
        assert rules == []
        assert isinstance(record, Persona)
        assert (record.display_name, record.active, record.description) == ("true", True, "12")
        assert record.metadata == {"count": 12, "label": "12", "flag": False,
                                   "when": "2024-05-01"}


def test_deep_nesting_is_refused() -> None:
    record, rules = parse("personas/a/x.md", "---\na: " + "[" * 200 + "]" * 200 + "\n---\n")
    assert record is None and rules == ["frontmatter-type"]


def test_duplicate_frontmatter_key_is_reported_with_its_line() -> None:
    parsed = parse_file(SourceFile(path="personas/a/x.md",
                                   data=b"---\na: 1\nb: 2\na: 3\n---\nYou are.\n"), L)
    [problem] = parsed.problems
    assert (problem.rule, problem.line, problem.column) == ("duplicate-field", 4, 1)


def test_yaml_error_points_at_the_file_line() -> None:
    parsed = parse_file(SourceFile(path="personas/a/x.md",
                                   data=b"---\nok: 1\nbad: [\n---\nbody\n"), L)
    [problem] = parsed.problems
    assert problem.rule == "yaml-syntax" and problem.line is not None and problem.line >= 3


def test_oversized_frontmatter_is_refused_before_parsing() -> None:
    small = Limits(max_frontmatter_bytes=50)
    parsed = parse_file(SourceFile(path="personas/a/x.md",
                                   data=("---\nd: " + "x" * 100 + "\n---\n").encode()), small)
    assert [p.rule for p in parsed.problems] == ["frontmatter-too-large"]


def test_set_members_keep_their_whole_object() -> None:
    doc = {"name": "Panel", "description": "d", "personas": [
        {"name": "Ada", "age": 3, "image_url": "images/a.png", "similarity_score": {"s": 0.5},
         "validation_status": "validated"}],
        "metadata": {"status": "expanded", "generation_cycle": 3, "diversity_score": 0.4}}
    record, rules = parse("persona_sets/panel/set.json", json.dumps(doc, indent=2))
    assert rules == [] and isinstance(record, PersonaSet)
    assert (record.name, record.title, record.status, record.generation_cycle) == (
        "panel", "Panel", "expanded", 3)
    [member] = record.members
    assert member.persona_data["age"] == 3 and member.image_url == "images/a.png"


def test_set_json_refuses_duplicate_keys_and_nan() -> None:
    assert parse("persona_sets/p.json", '{"personas": [], "personas": []}')[1] == [
        "duplicate-field"]
    assert parse("persona_sets/p.json", '{"personas": [{"name": "a", "s": NaN}]}')[1] == [
        "json-syntax"]


def test_member_lines_point_at_each_member() -> None:
    text = json.dumps({"personas": [{"name": "a"}, {"name": "b"}, {"name": "a"}]}, indent=2)
    parsed = parse_file(SourceFile(path="persona_sets/p.json", data=text.encode()), L)
    lines = text.splitlines()
    for i, name in enumerate(["a", "b", "a"]):
        line = parsed.field_lines[f"members[{i}]"]
        assert f'"name": "{name}"' in lines[line - 1]
    assert parsed.field_lines["members[0]"] != parsed.field_lines["members[2]"]


PATHS = st.sampled_from(["personas/a/x.md", "templates/t.md", "persona_sets/s.json",
                         "persona_sets/s/set.json"])
FM_PIECES = st.sampled_from(["---\n", "id: x\n", "tags: [a, B]\n", "a: &x 1\n", "b: *x\n",
                             "extends: a/x\n", "version: 1.0\n", "{", "}", "[", ": ", "\u202e",
                             "<script>", "\x00", '"personas": [', '{"name": "a"}', "\n", "\r\n",
                             "\ufeff", "# H\n", "\\u202e", "- ", "!!python/object:os.system\n"])


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(path=PATHS, data=st.binary(max_size=400))
def test_arbitrary_bytes_never_crash_the_parser(path: str, data: bytes) -> None:
    parse_file(SourceFile(path=path, data=data), L)
    parse_file(SourceFile(path=path, data=b"---\n" + data), L)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(path=PATHS, text=st.text(max_size=300))
def test_arbitrary_text_never_crashes_the_parser(path: str, text: str) -> None:
    parse_file(SourceFile(path=path, data=text.encode("utf-8", "surrogatepass")), L)
    parse_file(SourceFile(path=path, data=("---\n" + text + "\n---\n" + text).encode(
        "utf-8", "surrogatepass")), L)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(files=st.dictionaries(PATHS, st.lists(FM_PIECES, max_size=20).map("".join), max_size=4))
def test_structured_garbage_never_crashes_a_snapshot(files: dict[str, str]) -> None:
    snap = build_snapshot([SourceFile(path=p, data=t.encode("utf-8", "surrogatepass"))
                           for p, t in files.items()], Settings())
    assert set(snap.files) == set(files)
    for problem in snap.problems:
        assert problem.message and problem.rule


def test_odd_yaml_tags_are_problems_not_crashes() -> None:
    for fm in ("a: !!int\n", "a: !!timestamp\n", "a: !!binary '***'\n", "a: !custom x\n",
               "a: !!python/name:os.system\n", "a: !!set {x, y}\nb: !!omap [c: 1]\n"):
        record, rules = parse("personas/a/x.md", f"---\n{fm}---\nYou are x.\n")
        assert rules in ([], ["yaml-syntax"]), fm
        assert (record is None) == bool(rules)
