"""GDPR: exporting one person's data and pseudonymising it in the mirror."""

from __future__ import annotations

import hashlib
import json

import pytest

from maestro_git.cli import main
from maestro_git.core.subject import DataSubject, pseudonym
from maestro_git.errors import UsageError
from maestro_git.mirror import db, sync
from maestro_git.mirror.verify import rebuild
from maestro_git.ops.gdpr import erase_subject, export_subject
from maestro_git.settings import Settings
from tests.factories import GitRepoFactory, mirror_sql, persona_md

JANE = ("Jane Doe", "jane@example.com")
BOB = ("Bob Roe", "bob@example.com")
SET_JSON = json.dumps({"name": "Panel", "personas": [
    {"name": "Ana", "occupation": "nurse"},
    {"name": "Real Person", "contact": {"email": "Jane@Example.com"}},
]})


def _repo(git_repo: GitRepoFactory) -> None:
    git_repo.commit({"personas/acme/helper.md": persona_md("Helper")}, "add helper",
                    author=JANE)
    git_repo.commit({"personas/acme/other.md": persona_md("Other")}, "add other", author=BOB)
    git_repo.commit({"persona_sets/panel.json": SET_JSON,
                     "personas/acme/helper.md": persona_md("Helper", version="1.1.0",
                                                           metadata="{maintainer: jane@example.com}")},
                    "set and maintainer", author=JANE)


def _settings(git_repo: GitRepoFactory, url: str) -> Settings:
    return Settings(repo_path=git_repo.path, database_url=url)


def _identities(url: str) -> dict[str, list[tuple[str, str]]]:
    with mirror_sql(url) as conn:
        return {
            "persona_versions": [(str(r[0]), str(r[1])) for r in conn.execute(
                "SELECT author_name, author_email FROM persona_versions ORDER BY id")],
            "audit_events": [(str(r[0]), str(r[1])) for r in conn.execute(
                "SELECT actor_name, actor_email FROM audit_events ORDER BY id")]}


@pytest.fixture
def settings(git_repo: GitRepoFactory, database_url: str) -> Settings:
    """The three-commit repository (Jane, Bob, Jane), mirrored."""
    _repo(git_repo)
    settings = _settings(git_repo, database_url)
    sync.sync(settings)
    return settings


def test_export_finds_commits_mirror_rows_and_a_set_member(settings: Settings) -> None:
    with db.connect(settings) as conn:
        result = export_subject(settings, DataSubject.of("JANE@example.com"), conn)
    assert [c.message.strip() for c in result.commits] == ["set and maintainer", "add helper"]
    assert all(c.roles == ("author", "committer") for c in result.commits)
    fields = {(r.path, r.field) for r in result.records}
    assert ("persona_sets/panel.json", "members[1].contact.email") in fields
    assert ("personas/acme/helper.md", "metadata.maintainer") in fields
    assert {h.path for h in result.files} == {"persona_sets/panel.json",
                                              "personas/acme/helper.md"}
    assert result.mirror is not None
    assert {r["key"] for r in result.mirror.persona_versions} == {"acme/helper"}
    assert len(result.mirror.persona_versions) == 2
    assert result.mirror.audit_events
    assert {r["actor_email"] for r in result.mirror.audit_events} == {JANE[1]}


def test_export_without_a_mirror_reads_git_only(git_repo: GitRepoFactory) -> None:
    _repo(git_repo)
    result = export_subject(Settings(repo_path=git_repo.path), DataSubject.of(BOB[1]))
    assert [c.message for c in result.commits] == ["add other"]
    assert result.records == () and result.files == () and result.mirror is None


def test_export_matches_the_name_in_commit_identities(git_repo: GitRepoFactory) -> None:
    _repo(git_repo)
    git_repo.commit({"personas/acme/third.md": persona_md("Third")}, "third",
                    author=("jane doe", "jane@work.example"))
    result = export_subject(Settings(repo_path=git_repo.path),
                            DataSubject.of("nobody@example.com", "Jane Doe"))
    assert [c.message for c in result.commits] == ["third", "set and maintainer", "add helper"]


def test_erase_pseudonymises_the_subjects_rows_and_leaves_others(
        database_url: str, settings: Settings) -> None:
    before = _identities(database_url)
    with db.connect(settings) as conn:
        report = erase_subject(settings, conn, DataSubject.of(JANE[1]))
    after = _identities(database_url)
    fake = pseudonym(DataSubject.of(JANE[1]))
    digest = hashlib.sha256(JANE[1].encode()).hexdigest()[:12]
    assert fake == (f"erased-{digest}", f"erased-{digest}@invalid")
    for table in ("persona_versions", "audit_events"):
        assert len(after[table]) == len(before[table])
        for old, new in zip(before[table], after[table], strict=True):
            assert new == (fake if old == JANE else old)
        assert JANE not in after[table] and BOB in after[table]
    assert report.updated["persona_versions"] == 2 and report.total == sum(
        1 for t in before.values() for row in t if row == JANE)
    assert report.commits == 2
    assert report.mailmap == (f"{fake[0]} <{fake[1]}> <{JANE[1]}>",)
    assert {h.path for h in report.files} == {"persona_sets/panel.json",
                                              "personas/acme/helper.md"}
    # Replaying sync does not bring the identity back (a mirrored commit is never rewritten).
    sync.sync(settings)
    assert _identities(database_url) == after


def test_the_erasure_register_keeps_the_pseudonym_through_rebuild_and_new_commits(
        git_repo: GitRepoFactory, database_url: str, settings: Settings) -> None:
    subject = DataSubject.of("JANE@example.com ", name="jane doe")
    with db.connect(settings) as conn:
        erase_subject(settings, conn, subject)
        row = conn.execute("SELECT pseudonym_name, pseudonym_email FROM gdpr_erasures "
                           "WHERE email_sha256 = %s AND name_sha256 = %s",
                           (hashlib.sha256(b"jane@example.com").hexdigest(),
                            hashlib.sha256(b"jane doe").hexdigest())).fetchall()
        rebuild(settings, conn)  # re-mirrors every commit from git, which still names Jane
    git_repo.commit({"personas/acme/third.md": persona_md("Third")}, "third",
                    author=("Jane D.", "Jane@Example.com"))  # same address, other name
    git_repo.commit({"personas/acme/fourth.md": persona_md("Fourth")}, "fourth",
                    author=("Jane Doe", "jane@elsewhere.example"))  # same name, other address
    sync.sync(settings)
    fake = pseudonym(subject)
    identities = _identities(database_url)
    assert row == [fake]
    for table in ("persona_versions", "audit_events"):
        emails = {email.lower() for _, email in identities[table]}
        assert "jane@example.com" not in emails and "jane@elsewhere.example" not in emails
        assert fake in identities[table] and BOB in identities[table]


def test_an_address_erased_under_two_names_keeps_both_through_a_rebuild(
        git_repo: GitRepoFactory, database_url: str, settings: Settings) -> None:
    """Erasing the address again under another name adds that name: it does not replace
    the first one (commits under either name, from other addresses, stay pseudonymised)."""
    first, second = DataSubject.of(JANE[1], name="Jane Doe"), DataSubject.of(JANE[1], "J. Doe")
    git_repo.commit({"personas/acme/third.md": persona_md("Third")}, "third",
                    author=("Jane Doe", "jane@home.example"))
    git_repo.commit({"personas/acme/fourth.md": persona_md("Fourth")}, "fourth",
                    author=("J. Doe", "jd@work.example"))
    sync.sync(settings)
    with db.connect(settings) as conn:
        erase_subject(settings, conn, first)
        erase_subject(settings, conn, second)
        erase_subject(settings, conn, second)  # again: nothing new
        rows = conn.execute("SELECT count(*) FROM gdpr_erasures").fetchone()
        rebuild(settings, conn)
    identities = _identities(database_url)
    assert rows == (2,)
    for table in ("persona_versions", "audit_events"):
        names = {name for name, _ in identities[table]}
        assert names.isdisjoint({"Jane Doe", "J. Doe"}) and pseudonym(first) in identities[table]


def test_erase_dry_run_counts_without_changing(database_url: str, settings: Settings) -> None:
    before = _identities(database_url)
    with db.connect(settings) as conn:
        report = erase_subject(settings, conn, DataSubject.of(JANE[1]), dry_run=True)
    assert report.updated["persona_versions"] == 2
    assert _identities(database_url) == before


def test_erase_without_yes_refuses_when_not_interactive(
        git_repo: GitRepoFactory, database_url: str, settings: Settings,
        capsys: pytest.CaptureFixture[str]) -> None:
    before = _identities(database_url)
    code = main(["--repo", str(git_repo.path), "--database-url", database_url, "gdpr",
                 "erase", "--email", JANE[1]])
    err = capsys.readouterr().err
    assert code == 2
    assert err.splitlines()[0] == ("error: refusing to erase without --yes in a "
                                   "non-interactive run")
    assert _identities(database_url) == before


def test_cli_erase_with_yes_prints_the_history_rewrite_step(
        git_repo: GitRepoFactory, database_url: str, settings: Settings,
        capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--repo", str(git_repo.path), "--database-url", database_url, "gdpr"]
    assert main([*args, "erase", "--email", JANE[1], "--yes"]) == 0
    out, err = capsys.readouterr()
    assert "pseudonymised" in out and "persona_sets/panel.json:" in out
    assert "git filter-repo --mailmap" in err and "maestro sync" in err
    assert main([*args, "export", "--email", JANE[1], "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["mirror"] == {"persona_versions": [], "audit_events": []}
    assert len(data["commits"]) == 2


def test_a_malformed_address_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="not an e-mail address"):
        DataSubject.of("jane")
