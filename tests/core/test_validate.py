"""Every rule in `validate.RULES`: a failing and a passing case each, severities, the README,
and `maestro check` over a folder of broken files."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from maestro_git.cli import main
from maestro_git.core.models import Problem, Severity, SourceFile
from maestro_git.core.rules import validate
from maestro_git.core.snapshot import build_snapshot
from maestro_git.settings import Limits, Settings

S = Settings()
UUID_A = "0b7e4c52-1d8f-4a3e-9b6c-2e5f7a8d9c10"
UUID_B = "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f"
BODY = "# Helper\n\nYou are a careful helper.\n"
BROKEN = Path(__file__).resolve().parents[1] / "data" / "broken"
ROOT = Path(__file__).resolve().parents[2]


def md(fm: str = "", body: str = BODY, ident: str | None = UUID_A) -> str:
    head = f"id: {ident}\n" if ident else ""
    return f"---\n{head}{fm}---\n{body}"


def problems(files: dict[str, str | bytes], settings: Settings = S,
             links: dict[str, str] | None = None) -> list[Problem]:
    sources = [SourceFile(path=p, data=d.encode() if isinstance(d, str) else d)
               for p, d in files.items()]
    sources += [SourceFile(path=p, data=b"", is_symlink=True, link_target=t)
                for p, t in (links or {}).items()]
    return list(build_snapshot(sources, settings).problems)


def rules(files: dict[str, str | bytes], settings: Settings = S,
          links: dict[str, str] | None = None) -> set[str]:
    return {p.rule for p in problems(files, settings, links)}


def team(members: list[dict[str, object]], **metadata: object) -> str:
    return json.dumps({"name": "Team", "personas": members,
                       "metadata": {"status": "generated", **metadata}}, indent=2)


SMALL = Settings(limits=Limits(max_file_bytes=2000, max_content_bytes=100, max_tokens=30,
                               max_frontmatter_bytes=200, max_tags=2,
                               max_inheritance_depth=2))
CHAIN = {f"personas/a/p{i}.md": md(f"extends: a/p{i - 1}\n" if i else "", ident=None)
         for i in range(5)}

# rule id -> (files that break it, files that do not, settings)
CASES: dict[str, tuple[dict[str, str | bytes], dict[str, str | bytes], Settings]] = {
    "file-too-large": ({"personas/a/x.md": md(body=BODY + "x" * 3000)},
                       {"personas/a/x.md": md()}, SMALL),
    "binary-file": ({"personas/a/x.md": b"---\n\x00\n"}, {"personas/a/x.md": md()}, S),
    "invalid-utf8": ({"personas/a/x.md": md().encode() + b"\xff"},
                     {"personas/a/x.md": md(body=BODY + "caf\u00e9\n")}, S),
    "hidden-unicode": ({"personas/a/x.md": md(body=BODY + "Be kind.\u202eevil\n")},
                       {"personas/a/x.md": md(body=BODY + "Family: \U0001f468\u200d\U0001f469"
                                              "\u200d\U0001f467, \u0645\u06cc\u200c\u062e\n")}, S),
    "invalid-name": ({"personas/Acme/x.md": md()}, {"personas/acme/x.md": md()}, S),
    "misplaced-file": ({"personas/x.md": md()}, {"personas/a/x.md": md(),
                                                  "persona_sets/t/images/a.png": b"\x89PNG"}, S),
    "hidden-file": ({"personas/acme/.env": "x", "personas/.acme/notes.txt": "x"},
                    {"personas/acme/.gitkeep": "", "personas/a/x.md": md()}, S),
    "set-member-value": ({"persona_sets/t.json": team([{"name": " "}, {"name": "b", "age": -5}])},
                         {"persona_sets/t.json": team([{"name": "a", "age": 0},
                                                       {"name": "b", "age": 150}])}, S),
    "duplicate-key": ({"persona_sets/t.json": team([]), "persona_sets/t/set.json": team([])},
                      {"persona_sets/t.json": team([]), "persona_sets/u/set.json": team([])}, S),
    "frontmatter-too-large": ({"personas/a/x.md": md("description: " + "d" * 300 + "\n")},
                              {"personas/a/x.md": md("description: short\n")}, SMALL),
    "yaml-syntax": ({"personas/a/x.md": md("display_name: a: b\n")},
                    {"personas/a/x.md": md("display_name: 'a: b'\n")}, S),
    "yaml-alias": ({"personas/a/x.md": md("a: &x [1]\nb: *x\n")},
                   {"personas/a/x.md": md("a: [1]\nb: [1]\n")}, S),
    "duplicate-field": ({"personas/a/x.md": md("tags: [a]\ntags: [b]\n")},
                        {"personas/a/x.md": md("tags: [a, b]\n")}, S),
    "frontmatter-type": ({"personas/a/x.md": md("active: 'yes'\n")},
                         {"personas/a/x.md": md("active: true\n")}, S),
    "name-mismatch": ({"personas/a/x.md": md("name: y\n")},
                      {"personas/a/x.md": md("name: x\n")}, S),
    "owner-mismatch": ({"personas/a/x.md": md("owner: b\n")},
                       {"personas/a/x.md": md("owner: a\n")}, S),
    "missing-id": ({"personas/a/x.md": md(ident=None)}, {"personas/a/x.md": md()}, S),
    "invalid-id": ({"personas/a/x.md": md(ident="not-a-uuid")}, {"personas/a/x.md": md()}, S),
    "duplicate-id": ({"personas/a/x.md": md(), "personas/a/y.md": md()},
                     {"personas/a/x.md": md(), "personas/a/y.md": md(ident=UUID_B)}, S),
    "invalid-semver": ({"personas/a/x.md": md("version: '1.0'\n")},
                       {"personas/a/x.md": md("version: '1.0.0-rc.1+build.5'\n")}, S),
    "too-many-tags": ({"personas/a/x.md": md("tags: [a, b, c]\n")},
                      {"personas/a/x.md": md("tags: [a, b]\n")}, SMALL),
    "invalid-tag": ({"personas/a/x.md": md("tags: [Machine Learning]\n")},
                    {"personas/a/x.md": md("tags: [machine-learning, c++, node.js]\n")}, S),
    "field-too-long": ({"personas/a/x.md": md("display_name: " + "n" * 201 + "\n")},
                       {"personas/a/x.md": md("display_name: " + "n" * 200 + "\n")}, S),
    "invalid-model": ({"personas/a/x.md": md("model: ''\n")},
                      {"personas/a/x.md": md("model: claude-sonnet-4-5\n")}, S),
    "invalid-tools": ({"personas/a/x.md": md("tools: Read, Grep\n")},
                      {"personas/a/x.md": md("tools: [Read, 'Bash(git:*)', 'Agent(a, b)']\n")},
                      S),
    "content-too-large": ({"personas/a/x.md": md(body=BODY + "x" * 100)},
                          {"personas/a/x.md": md()}, SMALL),
    "too-many-tokens": ({"personas/a/x.md": md(body=BODY + "\u4e2d" * 30)},
                        {"personas/a/x.md": md(body=BODY + "ab" * 20)},
                        Settings(limits=Limits(max_tokens=30))),
    "empty-content": ({"personas/a/x.md": md(body="\n  \n")},
                      {"personas/a/p.md": md(), "personas/a/x.md":
                       md("extends: a/p\n", body="", ident=UUID_B)}, S),
    "non-instruction-content": ({"personas/a/x.md": md(body="Lorem ipsum.\n")},
                                {"personas/a/x.md": md(body="Act as a tutor.\n")}, S),
    "dangerous-html": ({"personas/a/x.md": md(body=BODY + '<iframe src="https://x"></iframe>\n')},
                       {"personas/a/x.md": md(body=BODY + "`<script>` and\n\n```\n<script>"
                                              "\n```\n<b>bold</b> <a href=\"https://x\">x</a>\n")},
                       S),
    "missing-parent": ({"personas/a/x.md": md("extends: a/nope\n")},
                       {"personas/a/p.md": md(ident=None), "personas/a/x.md":
                        md("extends: a/p\n")}, S),
    "inheritance-cycle": ({"personas/a/x.md": md("extends: a/x\n")},
                          {"personas/a/x.md": md()}, S),
    "inheritance-depth": (CHAIN, {k: v for k, v in CHAIN.items() if "p4" not in k
                                  and "p3" not in k}, SMALL),
    "placeholder-override": (
        {"personas/a/base.md": md(body="# Base\n\n## Safety\n- Never run rm -rf\n",
                                  ident=None),
         "personas/a/kid.md": md("extends: a/base\n", "## Safety\n- TODO\n", ident=None)},
        {"personas/a/base.md": md(body="# Base\n\n## Safety\n- Never run rm -rf\n",
                                  ident=None),
         "personas/a/kid.md": md("extends: a/base\n", "## Safety\n- Never run rm -rf /\n",
                                 ident=None)}, S),
    "json-syntax": ({"persona_sets/t.json": '{"personas": [],}'},
                    {"persona_sets/t.json": '{"personas": []}'}, S),
    "number-out-of-range": ({"persona_sets/t.json": '{"personas": [{"name": "a", "n": 1e400}]}'},
                            {"persona_sets/t.json": '{"personas": [{"name": "a", "n": 1e300}]}'},
                            S),
    "unstorable-text": ({"persona_sets/t.json": '{"personas": [{"name": "a\\u0000"}]}'},
                        {"persona_sets/t.json": '{"personas": [{"name": "a\\u00e9"}]}'}, S),
    "set-schema": ({"persona_sets/t.json": team([{"age": 3}])},
                   {"persona_sets/t.json": team([{"name": "a", "age": 3}])}, S),
    "set-duplicate-member": ({"persona_sets/t.json": team([{"name": "a"}, {"name": "a"}])},
                             {"persona_sets/t.json": team([{"name": "a"}, {"name": "b"}])}, S),
    "set-score-range": ({"persona_sets/t.json": team([{"name": "a", "similarity_score": 1.2}])},
                        {"persona_sets/t.json": team([{"name": "a", "similarity_score":
                                                       {"s": 0.3, "n": [0, 1]}}],
                                                     diversity_score=0.5)}, S),
    "set-image-path": ({"persona_sets/t.json": team([{"name": "a", "image_url":
                                                      "file:///etc/passwd"}])},
                       {"persona_sets/t.json": team([{"name": "a", "image_url":
                                                      "https://cdn.example/a.png"}])}, S),
    "set-image-missing": ({"persona_sets/t/set.json": team([{"name": "a", "image_url":
                                                            "images/a.png"}])},
                          {"persona_sets/t/set.json": team([{"name": "a", "image_url":
                                                            "images/a.png"}]),
                           "persona_sets/t/images/a.png": b"\x89PNG\x00"}, S),
    "set-image-url-path": ({"persona_sets/t.json": team([{"name": "a", "image_url":
                                                         "/media/images/p_1.png"}])},
                           {"persona_sets/t.json": team([{"name": "a", "image_url":
                                                         "/static/images/personas/p_1.png"}]),
                            "persona_sets/static/images/personas/p_1.png": b"\x89PNG\x00"},
                           S.with_overrides(sets_static_dir="persona_sets/static")),
}
SYMLINK_RULES = {"symlink-escape", "symlink"}


# Rules with failing and passing cases in other test modules (two revisions; maestro.toml).
TESTED_ELSEWHERE = {"version-not-raised",  # tests/test_review.py
                    "owner-without-reviewer",  # tests/test_owners.py
                    # agent-tool files, not repository files: tests/core/test_tools.py
                    "tool-required-key", "tool-dropped-file", "tool-quoted-boolean",
                    "tool-body-too-long", "tool-duplicate-spelling", "tool-invalid-value",
                    "tool-deprecated-key", "tool-ignored-file", "tool-import-missing",
                    "tool-import-cycle", "tool-import-depth",
                    "tool-format-normalised"}


def test_every_rule_has_a_case() -> None:
    assert set(CASES) | SYMLINK_RULES | TESTED_ELSEWHERE == set(validate.RULES)


@pytest.mark.parametrize("rule", sorted(CASES))
def test_rule_fires_on_the_broken_case(rule: str) -> None:
    broken, _, settings = CASES[rule]
    found = [p for p in problems(broken, settings) if p.rule == rule]
    assert found, f"{rule} not reported"
    for p in found:
        assert p.message and p.fix
        assert p.severity is validate.RULES[rule][0]


@pytest.mark.parametrize("rule", sorted(CASES))
def test_rule_is_silent_on_the_good_case(rule: str) -> None:
    _, good, settings = CASES[rule]
    assert rule not in rules(good, settings)


def test_symlink_leaving_the_repository_is_an_error() -> None:
    found = problems({}, links={"personas/a/x.md": "../../../etc/passwd",
                                "persona_sets/t/images/a.png": "/etc/shadow"})
    assert {(p.path, p.rule) for p in found} == {
        ("personas/a/x.md", "symlink-escape"), ("persona_sets/t/images/a.png", "symlink-escape")}


def test_symlink_inside_the_repository_is_only_a_warning() -> None:
    found = problems({"personas/a/y.md": md()}, links={"personas/a/x.md": "y.md",
                                                       "persona_sets/t/images/a.png": "b.png"})
    assert [(p.path, p.rule, p.severity) for p in found] == [
        ("personas/a/x.md", "symlink", Severity.WARNING)]


def test_messages_name_the_problem_and_its_place() -> None:
    [semver] = problems({"personas/a/x.md": md("version: '1.0'\n")})
    assert (semver.location(), semver.message, semver.fix) == (
        "personas/a/x.md:3", "version '1.0' is not semver (MAJOR.MINOR.PATCH)",
        'write it as "1.0.0"')
    [parent] = problems({"personas/a/x.md": md("extends: nope\n")})
    assert parent.message == "extends 'nope', which does not exist"
    assert parent.fix == "write the parent's key as owner/name, e.g. 'acme/base'"
    [hidden] = problems({"personas/a/x.md": md(body=BODY + "ok\u200b\n")})
    assert (hidden.line, hidden.column) == (7, 3)
    assert hidden.message.startswith("hidden Unicode character U+200B ZERO WIDTH SPACE")
    [script] = problems({"personas/a/x.md": md(body=BODY + "\nSee <img src=x onload=go()>\n")})
    assert (script.line, script.column, script.message) == (
        8, 16, "dangerous HTML outside code: event handler attribute 'onload'")


@pytest.mark.parametrize("body", [
    "<script>alert(1)</script>\n", "<SCRIPT SRC=//evil></SCRIPT>\n",
    "[x](javascript:alert(1))\n", "<javascript:alert(1)>\n", "![i](vbscript:msgbox)\n",
    '<a href=" java\tscript:x">a</a>\n', '<a href="&#106;avascript:x">a</a>\n',
    "<svg onload=alert(1)>\n", '<object data="data:text/html,x"></object>\n',
    '<form action="https://x"><input></form>\n', "[x](&#106;avascript:alert(1))\n",
    "[x](JavaScript:alert(1))\n", "Links: [x](DATA:text/html,x) and more\n",
])
def test_dangerous_html_variants_are_found(body: str) -> None:
    assert "dangerous-html" in rules({"personas/a/x.md": md(body=BODY + body)})


@pytest.mark.parametrize("body", [
    "Use `<script>` tags carefully.\n", "~~~\n<iframe></iframe>\n~~~\n",
    "\n    <script>indented code</script>\n", "<details><summary>x</summary>y</details>\n",
    "![logo](data:image/png;base64,AAAA)\n", "1 < 2 and 3 > 2 & so on: data: none\n",
])
def test_harmless_html_and_code_are_not_flagged(body: str) -> None:
    assert "dangerous-html" not in rules({"personas/a/x.md": md(body=BODY + body)})


@pytest.mark.parametrize("char", ["\u200b", "\u200e", "\u202a", "\u2066", "\ufeff", "\u00ad",
                                  "\U000e0041", "\U000e0100", "\u2062"])
def test_each_kind_of_hidden_character_is_found(char: str) -> None:
    assert "hidden-unicode" in rules({"personas/a/x.md": md(body=BODY + f"a{char}b\n")})


def test_hidden_unicode_is_found_in_frontmatter_and_sets_too() -> None:
    assert "hidden-unicode" in rules({"personas/a/x.md": md("description: a\u202eb\n")})
    assert "hidden-unicode" in rules({"persona_sets/t.json": team([{"name": "a\u2067"}])})
    raw = json.dumps({"personas": [{"name": "a\u2067"}]}, ensure_ascii=False)
    assert "hidden-unicode" in rules({"persona_sets/t.json": raw})
    assert "hidden-unicode" in rules({"personas/a/x.md": md('description: "a\\u202eb"\n')})


def test_escapes_in_a_markdown_body_are_only_text() -> None:
    assert "hidden-unicode" not in rules({"personas/a/x.md": md(body=BODY + "\\u200b\n")})


def test_a_leading_byte_order_mark_is_allowed() -> None:
    assert "hidden-unicode" not in rules({"personas/a/x.md": "\ufeff" + md()})


def test_severity_is_configurable_per_rule() -> None:
    files: dict[str, str | bytes] = {"personas/a/x.md": md(ident=None, body="Lorem.\n")}
    assert rules(files) == {"missing-id", "non-instruction-content"}
    quiet = Settings(rule_severity={"missing-id": "off", "non-instruction-content": "error"})
    [only] = problems(files, quiet)
    assert (only.rule, only.severity) == ("non-instruction-content", Severity.ERROR)
    snap = build_snapshot([SourceFile(path="personas/a/x.md", data=md(ident=None,
                                      body="Lorem.\n").encode())], quiet)
    assert snap.invalid_paths == {"personas/a/x.md"}


def test_invalid_names_are_found_for_every_kind_even_when_unreadable() -> None:
    found = problems({"templates/Big Writer.md": md(), "persona_sets/Team/set.json": "{",
                      "personas/a/UP.md": b"\x00"})
    names = sorted((p.path, p.message, p.fix) for p in found if p.rule == "invalid-name")
    assert names == [
        ("persona_sets/Team/set.json", "name 'Team' must be 1-100 characters of a-z, 0-9, _ and -",
         "rename the folder in lowercase, e.g. 'team'"),
        ("personas/a/UP.md", "name 'UP' must be 1-100 characters of a-z, 0-9, _ and -",
         "rename the file in lowercase, e.g. 'up'"),
        ("templates/Big Writer.md",
         "name 'Big Writer' must be 1-100 characters of a-z, 0-9, _ and -",
         "rename the file in lowercase, e.g. 'big_writer'")]


def test_unknown_rule_ids_in_the_config_are_listed() -> None:
    config = Settings(rule_severity={"missing-id": "off", "misng-id": "off"})
    assert validate.unknown_rules(config) == ["misng-id"]


def test_validate_snapshot_reports_the_cross_file_rules() -> None:
    snap = build_snapshot([SourceFile(path="personas/a/x.md", data=md("extends: a/z\n")
                                      .encode())], S)
    assert [p.rule for p in validate.validate_snapshot(snap, {}, S)] == ["missing-parent"]


def test_readme_lists_every_rule() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("<!-- section:rules -->")[1].split("<!-- /section:rules -->")[0]
    listed = set(re.findall(r"^\| `([a-z0-9-]+)` \|", section, re.MULTILINE))
    assert listed == set(validate.RULES)


# -- maestro check over tests/data/broken --------------------------------------------------

EXPECTED = {  # file -> rules it must be reported with (each with a line number)
    "personas/acme/broken_yaml.md": {"yaml-syntax"},
    "personas/acme/wrong_types.md": {"frontmatter-type"},
    "personas/acme/huge.md": {"content-too-large"},
    "personas/acme/bad_utf8.md": {"invalid-utf8"},
    "personas/acme/binary.md": {"binary-file"},
    "personas/acme/hidden_unicode.md": {"hidden-unicode"},
    "personas/acme/script_injection.md": {"dangerous-html"},
    "personas/acme/alias_bomb.md": {"yaml-alias"},
    "personas/acme/cycle_a.md": {"inheritance-cycle"},
    "personas/acme/cycle_b.md": {"inheritance-cycle"},
    "personas/acme/orphan.md": {"missing-parent"},
    "personas/acme/dup_id_one.md": {"duplicate-id"},
    "personas/acme/dup_id_two.md": {"duplicate-id"},
    "personas/beta/owner_mismatch.md": {"owner-mismatch"},
    "personas/acme/bad_semver.md": {"invalid-semver"},
    "personas/acme/bad_tags.md": {"invalid-tag"},
    "personas/acme/duplicate_field.md": {"duplicate-field"},
    "personas/acme/bad_id.md": {"invalid-id"},
    "personas/acme/empty.md": {"empty-content"},
    "personas/acme/not_instruction.md": {"non-instruction-content"},
    "personas/Acme_Corp/bad_owner.md": {"invalid-name"},
    "personas/stray.md": {"misplaced-file"},
    "personas/acme/escape.md": {"symlink-escape"},
    "templates/unclosed.md": {"yaml-syntax"},
    "templates/js_link.md": {"dangerous-html"},
    "persona_sets/bad_json.json": {"json-syntax"},
    "persona_sets/bad_schema.json": {"set-schema"},
    "persona_sets/status.json": {"set-schema"},
    "persona_sets/team/set.json": {"set-duplicate-member", "set-score-range", "set-image-path",
                                   "set-image-missing"},
}


@pytest.fixture
def broken_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "broken"
    shutil.copytree(BROKEN, repo, symlinks=True)
    (repo / "personas/acme/huge.md").write_text(md(body=BODY + "word " * 11_000, ident=UUID_B))
    (repo / "personas/acme/escape.md").symlink_to("/etc/passwd")
    return repo


def test_check_names_every_broken_file_with_rule_and_line(
        broken_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--repo", str(broken_repo), "check"]) == 1
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    for path, expected in EXPECTED.items():
        for rule in expected:
            pattern = rf"^{re.escape(path)}:\d+(:\d+)?: (error|warning) {rule}: "
            assert re.search(pattern, out, re.MULTILINE), f"{path} {rule} missing:\n{out}"
    assert "personas/acme/base.md" not in out


def test_check_json_lists_every_problem_with_its_line(
        broken_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--repo", str(broken_repo), "check", "--format", "json"]) == 1
    out, err = capsys.readouterr()
    report = json.loads(out)
    found = {(p["path"], p["rule"]) for p in report["problems"]}
    assert {(path, rule) for path, rules_ in EXPECTED.items() for rule in rules_} <= found
    assert all(p["line"] for p in report["problems"])
    assert report["errors"] >= len(EXPECTED) - 2


def test_check_github_annotations(broken_repo: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--repo", str(broken_repo), "check", "--format", "github"]) == 1
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    for path, expected in EXPECTED.items():
        for rule in expected:
            assert re.search(rf"^::(error|warning) file={re.escape(path)},line=\d+.*"
                             rf"title={rule}::", out, re.MULTILINE), (path, rule)


def test_check_passes_on_a_clean_repository(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "personas/acme").mkdir(parents=True)
    (tmp_path / "personas/acme/helper.md").write_text(md())
    assert main(["--repo", str(tmp_path), "check"]) == 0


def test_importing_the_validator_leaves_markdown_it_for_bodies_that_need_it() -> None:
    code = ("import sys, maestro_git.core.rules.validate, maestro_git.core.snapshot; "
            "print('markdown_it' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "False"
