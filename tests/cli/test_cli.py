"""The CLI shell: every command is reachable lazily, documented, and fails without tracebacks."""

from __future__ import annotations

from pathlib import Path

import pytest

from maestro_git.cli import COMMAND_MODULES, cli, import_all_commands, main
from tests.factories import GitRepoFactory, persona_md

README = Path(__file__).resolve().parents[2] / "README.md"


def test_lazy_command_map_names_every_registered_command() -> None:
    import_all_commands()
    assert set(cli.commands) == set(COMMAND_MODULES)


def test_every_command_is_documented_in_the_readme() -> None:
    text = README.read_text(encoding="utf-8")
    missing = [name for name in COMMAND_MODULES if f"maestro {name}" not in text]
    assert missing == []


@pytest.mark.parametrize("name", sorted(COMMAND_MODULES))
def test_every_command_has_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([name, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Usage: maestro {name}")
    assert len(out.splitlines()) > 3


def test_unknown_command_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["no-such-command"]) == 2
    err = capsys.readouterr().err
    assert "No such command" in err and "Traceback" not in err


def test_check_against_a_revision_reports_a_version_not_raised(
    git_repo: GitRepoFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    git_repo.commit({"personas/acme/a.md": persona_md(version="1.0.0")}, "add a")
    base = git_repo.head()
    git_repo.commit({"personas/acme/a.md": persona_md(
        version="1.0.0", body="# A\n\nYou are a stricter reviewer now.\n")}, "edit a")
    assert main(["--repo", str(git_repo.path), "check"]) == 0
    capsys.readouterr()
    assert main(["--repo", str(git_repo.path), "check", "--against", base]) == 1
    out = capsys.readouterr().out
    assert "personas/acme/a.md" in out and "version-not-raised" in out


def test_check_warns_about_unknown_rules_in_maestro_toml(
    git_repo: GitRepoFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    git_repo.write({"maestro.toml": '[rules]\nhiden-unicode = "off"\n',
                    "personas/acme/a.md": persona_md()})
    main(["--repo", str(git_repo.path), "check"])
    assert "unknown rule 'hiden-unicode'" in capsys.readouterr().err


def test_search_accepts_a_phrase_beside_a_boolean_operator() -> None:
    from maestro_git.search.engine import check_query

    check_query('tag:coding OR "pull request"')
    check_query('"pull request" OR tag:coding')


def test_list_sort_choices_are_the_mirrors_sorts() -> None:
    from maestro_git.cli.files import SORT_NAMES
    from maestro_git.mirror.query import SORTS

    assert set(SORT_NAMES) == set(SORTS)


def test_check_starts_without_the_database_search_or_watch_layers() -> None:
    import subprocess
    import sys

    code = ("import sys, maestro_git.cli.files; "
            "print(sorted(m for m in ('psycopg', 'whoosh', 'watchdog') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


def _loaded_after(run: str, modules: tuple[str, ...], repo: Path) -> list[str]:
    import subprocess
    import sys

    code = (f"import sys\nfrom maestro_git.cli import main\ntry:\n    main({run!r}.split())\n"
            f"except SystemExit:\n    pass\n"
            f"print(sorted(m for m in {modules!r} if m in sys.modules), file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=repo)
    return eval(done.stderr.strip().splitlines()[-1])  # noqa: S307 - our own printed list


def test_read_only_commands_start_without_the_yaml_writer_or_the_differ(
        git_repo: GitRepoFactory) -> None:
    """`check` needs neither pygit2 nor ruamel.yaml nor the differ; `history` needs pygit2
    only: each import is a tenth of a short command's time (issue 15)."""
    git_repo.commit({"personas/acme/a.md": persona_md("A")})
    heavy = ("pygit2", "ruamel.yaml", "maestro_git.core.diff", "maestro_git.core.writeback")
    assert _loaded_after("check", heavy, git_repo.path) == []
    assert _loaded_after("history acme/a", heavy, git_repo.path) == ["pygit2"]
