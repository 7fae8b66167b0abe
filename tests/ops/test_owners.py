"""Owners: [owners] in maestro.toml, the CODEOWNERS block, and the owner report."""

from __future__ import annotations

import json

import pytest

from maestro_git.cli import main
from maestro_git.errors import ConfigError
from maestro_git.ops.owners import (
    OwnersConfig,
    codeowners_block,
    load_owners,
    merge_codeowners,
    parse_owners,
)
from maestro_git.settings import load_settings
from tests.factories import GitRepoFactory, persona_md

HEADER = "# BEGIN maestro: generated from [owners] in maestro.toml; do not edit\n"
WITH_DEFAULT = '[owners]\n"*" = ["@platform-team"]\nacme = ["@acme/persona-reviewers", "@alice"]\n'


def _run(repo: GitRepoFactory, *args: str) -> int:
    return main(["--repo", str(repo.path), "owners", *args])


def test_block_without_default_has_one_rule_per_configured_owner() -> None:
    config = parse_owners({"owners": {"zeta": ["@z"], "acme": ["@acme/reviewers", "@a"]}})
    assert codeowners_block(config) == (
        HEADER + "/personas/acme/ @acme/reviewers @a\n/personas/zeta/ @z\n# END maestro\n")


def test_block_with_default_covers_every_content_folder_before_owner_rules() -> None:
    config = parse_owners({"owners": {"*": ["@platform-team"], "acme": ["@acme/r"],
                                      "sandbox": []}})
    assert codeowners_block(config) == HEADER + (
        "/personas/ @platform-team\n/templates/ @platform-team\n/persona_sets/ @platform-team\n"
        "/personas/acme/ @acme/r\n/personas/sandbox/\n# END maestro\n")


def test_empty_config_gives_an_empty_block() -> None:
    assert codeowners_block(OwnersConfig()) == HEADER + "# END maestro\n"


@pytest.mark.parametrize(("owners", "message"), [
    ('owners = ["@a"]', "[owners] must be a table"),
    ('[owners]\nacme = "@acme"', "owners.acme must be a list of reviewers"),
    ('[owners]\nacme = [1]', "owners.acme must be a list of reviewers"),
    ('[owners]\n"*" = "@x"', 'owners."*" must be a list of reviewers'),
    ('[owners]\nAcme = ["@a"]', "owners.'Acme' is not an owner folder name"),
    ('[owners]\nacme = ["acme team"]',
     "owners.acme: 'acme team' is not a GitHub user, team or e-mail"),
])
def test_wrong_owners_shape_is_a_one_line_config_error(
    git_repo: GitRepoFactory, capsys: pytest.CaptureFixture[str], owners: str, message: str
) -> None:
    git_repo.write({"maestro.toml": owners + "\n"})
    assert _run(git_repo, "codeowners") == 2
    err = capsys.readouterr().err
    first = err.splitlines()[0]
    assert first == f"error: maestro.toml: {message}"
    assert "Traceback" not in err and len(err.splitlines()) <= 2  # the reason, then a hint


def test_parse_owners_accepts_emails_and_drops_repeats() -> None:
    config = parse_owners({"owners": {"acme": ["dev@example.com", "@a", "@a"]}})
    assert config.reviewers == {"acme": ("dev@example.com", "@a")}
    with pytest.raises(ConfigError):
        parse_owners({"owners": {"acme": ["@"]}})


def test_write_creates_codeowners_when_missing(git_repo: GitRepoFactory) -> None:
    git_repo.write({"maestro.toml": WITH_DEFAULT})
    assert _run(git_repo, "codeowners", "--write") == 0
    text = (git_repo.path / ".github/CODEOWNERS").read_text(encoding="utf-8")
    assert text == codeowners_block(parse_owners(
        {"owners": {"*": ["@platform-team"], "acme": ["@acme/persona-reviewers", "@alice"]}}))
    assert _run(git_repo, "codeowners", "--check") == 0


def test_write_keeps_other_codeowners_lines_byte_for_byte(git_repo: GitRepoFactory) -> None:
    before = b"# Team rules\r\n*.py @python-team\r\n\n"
    after = b"/docs/ @docs-team   # trailing comment\n"
    stale = b"# BEGIN maestro\n/personas/old/ @gone\n# END maestro\n"
    git_repo.write({"maestro.toml": WITH_DEFAULT, ".github/CODEOWNERS": before + stale + after})
    assert _run(git_repo, "codeowners", "--write") == 0
    data = (git_repo.path / ".github/CODEOWNERS").read_bytes()
    assert data.startswith(before) and data.endswith(after)
    middle = data[len(before): len(data) - len(after)].decode()
    assert "/personas/acme/ @acme/persona-reviewers @alice\n" in middle
    assert "@gone" not in middle
    # A second write changes nothing.
    assert _run(git_repo, "codeowners", "--write") == 0
    assert (git_repo.path / ".github/CODEOWNERS").read_bytes() == data


def test_write_appends_the_block_to_a_file_without_markers(git_repo: GitRepoFactory) -> None:
    git_repo.write({"maestro.toml": WITH_DEFAULT, ".github/CODEOWNERS": "*.md @writers"})
    assert _run(git_repo, "codeowners", "--write") == 0
    text = (git_repo.path / ".github/CODEOWNERS").read_text(encoding="utf-8")
    assert text.startswith("*.md @writers\n\n" + HEADER)
    assert text.endswith("# END maestro\n")


def test_check_detects_drift_and_prints_the_diff(
    git_repo: GitRepoFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    git_repo.write({"maestro.toml": WITH_DEFAULT})
    assert _run(git_repo, "codeowners", "--write") == 0
    git_repo.write({"maestro.toml": WITH_DEFAULT + 'globex = ["@globex/leads"]\n'})
    capsys.readouterr()
    assert _run(git_repo, "codeowners", "--check") == 1
    captured = capsys.readouterr()
    assert "+/personas/globex/ @globex/leads\n" in captured.out
    assert captured.out.startswith("--- a/.github/CODEOWNERS\n+++ b/.github/CODEOWNERS\n")
    assert "out of date" in captured.err
    # --check never writes.
    assert "globex" not in (git_repo.path / ".github/CODEOWNERS").read_text(encoding="utf-8")


def test_check_fails_when_codeowners_is_missing(git_repo: GitRepoFactory) -> None:
    git_repo.write({"maestro.toml": WITH_DEFAULT})
    assert _run(git_repo, "codeowners", "--check") == 1
    assert not (git_repo.path / ".github/CODEOWNERS").exists()


def test_codeowners_without_flags_prints_the_block(
    git_repo: GitRepoFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    git_repo.write({"maestro.toml": '[owners]\nacme = ["@acme/r"]\n'})
    assert _run(git_repo, "codeowners") == 0
    assert capsys.readouterr().out == HEADER + "/personas/acme/ @acme/r\n# END maestro\n"
    assert not (git_repo.path / ".github").exists()


def test_stray_markers_are_a_config_error() -> None:
    with pytest.raises(ConfigError, match="expected one '# BEGIN maestro'"):
        merge_codeowners("# BEGIN maestro\n/x @y\n", codeowners_block(OwnersConfig()))


def test_write_and_check_together_is_a_usage_error(git_repo: GitRepoFactory) -> None:
    assert _run(git_repo, "codeowners", "--write", "--check") == 2


def test_list_counts_personas_and_warns_about_owners_without_reviewers(
    git_repo: GitRepoFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    git_repo.commit({
        "maestro.toml": '[owners]\nacme = ["@acme/r"]\nplanned = ["@p"]\n',
        "personas/acme/a.md": persona_md(), "personas/acme/b.md": persona_md(),
        "personas/solo/c.md": persona_md(),
    }, "personas")
    assert _run(git_repo, "list", "--format", "json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["owners"] == [
        {"owner": "acme", "personas": 2, "reviewers": ["@acme/r"], "source": "owners"},
        {"owner": "planned", "personas": 0, "reviewers": ["@p"], "source": "owners"},
        {"owner": "solo", "personas": 1, "reviewers": [], "source": "none"},
    ]
    assert [(p["rule"], p["severity"], p["path"]) for p in data["problems"]] == [
        ("owner-without-reviewer", "warning", "personas/solo/")]

    assert _run(git_repo, "list") == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines()[0].split() == ["OWNER", "PERSONAS", "REVIEWERS", "SOURCE"]
    assert captured.err == (
        "personas/solo/: warning owner-without-reviewer: owner folder 'solo' has 1 persona(s) "
        "and no reviewer (fix: add solo = [\"@team\"] (or a \"*\" default) to [owners] in "
        "maestro.toml)\n")


def test_check_warns_about_owners_without_reviewers_only_where_owners_are_in_use(
    git_repo: GitRepoFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    git_repo.write({"personas/acme/a.md": persona_md(), "personas/solo/c.md": persona_md()})
    assert main(["--repo", str(git_repo.path), "check", "--format", "json"]) == 0
    assert "owner-without-reviewer" not in capsys.readouterr().out  # no [owners]: silent
    git_repo.write({"maestro.toml": '[owners]\nacme = ["@acme/r"]\n'})
    assert main(["--repo", str(git_repo.path), "check", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [(p["rule"], p["severity"], p["path"]) for p in data["problems"]
            if p["rule"] == "owner-without-reviewer"] == [
        ("owner-without-reviewer", "warning", "personas/solo/")]


def test_a_default_silences_the_missing_reviewer_warning(
    git_repo: GitRepoFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    git_repo.write({"maestro.toml": '[owners]\n"*" = ["@platform"]\n',
                    "personas/solo/c.md": persona_md()})
    assert _run(git_repo, "list", "--format", "json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["owners"] == [
        {"owner": "solo", "personas": 1, "reviewers": ["@platform"], "source": "default"}]
    assert data["problems"] == []


def test_owner_without_reviewer_follows_the_rules_table(
    git_repo: GitRepoFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    """The rule is in the catalogue: `[rules]` can raise it to an error (check exits 1) or
    turn it off, like every other rule, and naming it there is no 'unknown rule'."""
    git_repo.write({"personas/acme/a.md": persona_md(), "personas/solo/c.md": persona_md()})
    for severity, code in (("error", 1), ("off", 0)):
        git_repo.write({"maestro.toml": '[owners]\nacme = ["@acme/r"]\n'
                                        f'[rules]\nowner-without-reviewer = "{severity}"\n'})
        assert main(["--repo", str(git_repo.path), "check", "--format", "json"]) == code
        out = capsys.readouterr()
        found = [(p["rule"], p["severity"]) for p in json.loads(out.out)["problems"]
                 if p["rule"] == "owner-without-reviewer"]
        assert found == ([("owner-without-reviewer", "error")] if severity == "error" else [])
        assert "unknown rule" not in out.err


def test_owners_are_read_from_the_settings_not_from_the_toml_again(
    git_repo: GitRepoFactory,
) -> None:
    git_repo.write({"maestro.toml": WITH_DEFAULT})
    settings = load_settings(git_repo.path, environ={})
    assert settings.owners == {"*": ["@platform-team"],
                               "acme": ["@acme/persona-reviewers", "@alice"]}
    (git_repo.path / "maestro.toml").unlink()
    config = load_owners(settings)
    assert config.default == ("@platform-team",)
    assert config.reviewers == {"acme": ("@acme/persona-reviewers", "@alice")}
