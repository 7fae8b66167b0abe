"""One database, many mirrors: identity, namespaces, branches, rewritten history, upgrades."""

from __future__ import annotations

import io
import time
import uuid
from collections import Counter
from pathlib import Path

import pygit2
import pytest

from maestro_git.core.formats import content_hash
from maestro_git.daemon.log import DaemonLog
from maestro_git.daemon.loop import run_once
from maestro_git.git.repo import GitRepo
from maestro_git.mirror import db, registry, sync
from maestro_git.mirror.sync import Syncer
from maestro_git.mirror.verify import verify
from maestro_git.settings import Settings
from tests.factories import GitRepoFactory, persona_md

BRANCHES = ("main", "production")


def _settings(repo: GitRepoFactory, url: str, branch: str = "main",
              **more: object) -> Settings:
    return Settings(repo_path=repo.path, database_url=url, branch=branch, branches=BRANCHES,
                    **more)  # type: ignore[arg-type]


def _checkout(repo: GitRepoFactory, branch: str) -> None:
    """Check `branch` out (created at the current head when it does not exist)."""
    ref = f"refs/heads/{branch}"
    if ref not in repo.repo.references:
        repo.repo.references.create(ref, repo.repo.head.target)
    repo.repo.checkout(ref, strategy=pygit2.enums.CheckoutStrategy.FORCE)


def _commit_on(repo: GitRepoFactory, branch: str, files: dict[str, str | None],
               message: str) -> str:
    _checkout(repo, branch)
    return repo.commit(files, message)


def _force_push(repo: GitRepoFactory, branch: str, target: str) -> None:
    """What a force push or `git reset --hard` does to the branch."""
    _checkout(repo, branch)
    repo.repo.references[f"refs/heads/{branch}"].set_target(target)
    repo.repo.reset(pygit2.Oid(hex=target), pygit2.enums.ResetMode.HARD)


def _git_versions(repo: GitRepoFactory, branch: str) -> Counter[tuple[str, str | None]]:
    """(commit, content hash) of every persona version git holds on the branch's first-parent
    line (None: a deletion); the test histories have no renames."""
    git = GitRepo(repo.path)
    head = git.head(branch)
    assert head is not None
    out: Counter[tuple[str, str | None]] = Counter()
    for commit in git.first_parent_chain(None, head):
        parents = git.commit_info(commit).parents
        delta = git.changed_files(parents[0] if parents else None, commit)
        for f in delta.changed:
            if f.path.startswith("personas/"):
                out[(commit, content_hash(f.data))] += 1
        for path in delta.removed:
            if path.startswith("personas/"):
                out[(commit, None)] += 1
    return out


def _mirror_versions(settings: Settings) -> Counter[tuple[str, str | None]]:
    with db.connect(settings) as conn:
        return Counter((r[0], r[1]) for r in conn.execute(
            "SELECT commit, content_hash FROM persona_versions"))


def _keys(settings: Settings) -> set[str]:
    with db.connect(settings) as conn:
        return {r[0] for r in conn.execute("SELECT key FROM personas")}


def _check(repo: GitRepoFactory, url: str) -> None:
    """Both branches of `repo`: verify passes and versions equal git's."""
    for branch in BRANCHES:
        settings = _settings(repo, url, branch)
        with db.connect(settings) as conn:
            report = verify(settings, conn)
        assert report.ok, (repo.path, branch, report.drift)
        assert _mirror_versions(settings) == _git_versions(repo, branch), (repo.path, branch)


def _repo(root: Path, owner: str) -> GitRepoFactory:
    repo = GitRepoFactory.create(root / "personas")  # the same folder name for every repo
    repo.commit({f"personas/{owner}/base.md": persona_md("Base", id=str(uuid.uuid4()))},
                "first")
    repo.commit({f"personas/{owner}/two.md": persona_md("Two")}, "second")
    _checkout(repo, "production")
    _checkout(repo, "main")
    return repo


def test_a_second_repository_on_the_same_database_deletes_nothing(
        tmp_path: Path, database_url: str) -> None:
    """The original data loss: repository b synced into a's database deleted a's rows."""
    a, b = _repo(tmp_path / "a", "acme"), _repo(tmp_path / "b", "zed")
    sa = Settings(repo_path=a.path, database_url=database_url)
    sb = Settings(repo_path=b.path, database_url=database_url)
    first = sync.sync(sa)
    assert first.commits == 2
    before = _mirror_versions(sa)
    report = sync.sync(sb)
    assert not report.rewritten and report.commits == 2 and report.schema != first.schema
    assert _keys(sa) == {"acme/base", "acme/two"} and _mirror_versions(sa) == before
    assert _keys(sb) == {"zed/base", "zed/two"}
    assert sync.sync(sa).commits == 0  # nothing to do: a's mirror is as it was
    with db.connect(sa) as conn:
        rows = registry.registered(conn)
    assert sorted(r.name for r in rows) == ["personas", "personas"]
    assert {r.head for r in rows} == {a.head(), b.head()}


def test_a_read_of_a_branch_nothing_mirrored_here_names_the_cause_and_the_fix(
        tmp_path: Path, database_url: str) -> None:
    """Only main is synced: a client of production gets a one-line reason and the command to
    run, not PostgreSQL's bare 'relation "current_personas" does not exist'."""
    from maestro_git.client import Client
    from maestro_git.errors import DatabaseError

    repo = _repo(tmp_path, "acme")
    sync.sync(_settings(repo, database_url, "main"))
    with Client(database_url, settings=_settings(repo, database_url, "production"),
                listen=False) as client, pytest.raises(DatabaseError) as caught:
        client.get("acme/base")
    assert "this branch has no mirror in this database" in caught.value.message
    assert "maestro sync" in (caught.value.hint or "")
    with Client(database_url, settings=_settings(repo, database_url, "main"),
                listen=False) as client:
        assert client.get("acme/base").key == "acme/base"


def test_two_repositories_two_branches_interleaved_with_force_pushes(
        tmp_path: Path, database_url: str) -> None:
    a, b = _repo(tmp_path / "a", "acme"), _repo(tmp_path / "b", "zed")

    def daemon(repo: GitRepoFactory) -> int:
        return run_once(_settings(repo, database_url), DaemonLog(stream=io.StringIO()))

    def cli_sync(repo: GitRepoFactory) -> None:
        sync.sync_branches(_settings(repo, database_url))

    cli_sync(a)
    _check(a, database_url)
    assert daemon(b) == 4  # two commits on each branch
    _check(a, database_url)
    _check(b, database_url)
    promoted = _commit_on(a, "production", {"personas/acme/prod.md": persona_md("Prod")},
                          "production only")
    _commit_on(a, "main", {"personas/acme/two.md": persona_md("Two", version="1.1.0")},
               "main edit")
    daemon(a)
    _check(a, database_url)
    assert "acme/prod" in _keys(_settings(a, database_url, "production"))
    assert "acme/prod" not in _keys(_settings(a, database_url, "main"))
    # Force-push production back, then new work on the rewritten line.
    _force_push(a, "production", GitRepo(a.path).commit_info(promoted).parents[0])
    _commit_on(a, "production", {"personas/acme/hotfix.md": persona_md("Hotfix")}, "hotfix")
    _commit_on(b, "main", {"personas/zed/base.md": None}, "drop base")
    cli_sync(b)
    report = sync.sync(_settings(a, database_url, "production"))
    assert report.rewritten
    _check(a, database_url)
    _check(b, database_url)
    assert _keys(_settings(a, database_url, "production")) == {"acme/base", "acme/two",
                                                               "acme/hotfix"}
    daemon(a)
    daemon(b)
    cli_sync(a)
    _check(a, database_url)
    _check(b, database_url)
    with db.connect(_settings(b, database_url)) as conn:
        assert len(registry.registered(conn)) == 4


def test_reset_to_a_line_with_no_common_ancestor_mirrors_every_commit(
        git_repo: GitRepoFactory, database_url: str) -> None:
    settings = Settings(repo_path=git_repo.path, database_url=database_url)
    for i in range(5):
        git_repo.commit({f"personas/acme/p{i}.md": persona_md(f"P{i}")}, f"old {i}")
    sync.sync(settings)
    # A new root: an orphan line of four commits, then main moved onto it.
    repo = git_repo.repo
    tree = repo.TreeBuilder().write()
    sig = pygit2.Signature("New", "new@example.com")
    parent = repo.create_commit(None, sig, sig, "new root", tree, [])
    new_head = str(parent)
    repo.references.create("refs/heads/fresh", parent)
    _force_push(git_repo, "fresh", new_head)
    for i in range(4):
        git_repo.commit({f"personas/new/q{i}.md": persona_md(f"Q{i}")}, f"new {i}")
    _force_push(git_repo, "main", git_repo.head())
    report = sync.sync(settings)
    assert report.rewritten and report.commits == 5  # the root and its four commits
    with db.connect(settings) as conn:
        assert verify(settings, conn).ok
        rewritten = conn.execute("SELECT count(*) FROM audit_events WHERE action = "
                                 "'history_rewritten'").fetchone()
    assert rewritten == (1,)
    assert _mirror_versions(settings) == _git_versions(git_repo, "main")
    assert len(_mirror_versions(settings)) == 4


def test_an_explicit_schema_holding_another_repository_is_refused(
        tmp_path: Path, database_url: str) -> None:
    a, b = _repo(tmp_path / "a", "acme"), _repo(tmp_path / "b", "zed")
    shared = {"main": "team_personas"}
    report = sync.sync(Settings(repo_path=a.path, database_url=database_url, schemas=shared))
    assert report.schema == "team_personas"
    with pytest.raises(registry.MirrorMismatch, match="mirrors another repository"
                       ) as caught:
        sync.sync(Settings(repo_path=b.path, database_url=database_url, schemas=shared))
    assert "[sync] schema" in (caught.value.hint or "")
    assert _keys(Settings(repo_path=a.path, database_url=database_url, schemas=shared)) == {
        "acme/base", "acme/two"}


def test_old_layout_upgrades_in_place_keeping_usage_and_the_register(
        git_repo: GitRepoFactory, database_url: str) -> None:
    """A database built by migrations 0001-0004 in `public`, as maestro did before schemas."""
    git_repo.commit({"personas/acme/a.md": persona_md("A", id=str(uuid.uuid4()))}, "one")
    git_repo.commit({"personas/acme/b.md": persona_md("B")}, "two")
    settings = Settings(repo_path=git_repo.path, database_url=database_url)
    with db.connect(database_url) as conn:  # bare: public, as before
        conn.execute("CREATE TABLE schema_migrations (version text PRIMARY KEY, "
                     "applied_at timestamptz NOT NULL DEFAULT now())")
        for version, text in db.available_migrations()[:4]:
            with conn.transaction():
                conn.execute(text.encode())
                conn.execute("INSERT INTO schema_migrations VALUES (%s)", (version,))
        with Syncer(settings, conn) as syncer:
            assert syncer.catch_up().commits == 2
        pid = conn.execute("SELECT id FROM personas WHERE key = 'acme/a'").fetchone()
        assert pid is not None
        conn.execute("INSERT INTO persona_usage VALUES (%s, 7, now())", (pid[0],))
        conn.execute("INSERT INTO gdpr_erasures (email_sha256, pseudonym_name, "
                     "pseudonym_email) VALUES ('h', 'erased-h', 'erased-h@invalid')")
        version_ids = {r[0] for r in conn.execute("SELECT id FROM persona_versions")}
    with db.connect(settings) as conn:
        bound = db.mirror_of(conn)
        assert bound is not None and bound.legacy  # readers read it in place until then
        assert conn.execute("SELECT count(*) FROM personas").fetchone() == (2,)
    git_repo.commit({"personas/acme/c.md": persona_md("C")}, "three")
    report = sync.sync(settings)
    assert report.commits == 1 and report.schema not in ("", "public")  # no history re-read
    with db.connect(settings) as conn:
        assert conn.execute("SELECT application_count FROM current_personas WHERE key = "
                            "'acme/a'").fetchone() == (7,)
        assert conn.execute("SELECT count(*) FROM gdpr_erasures").fetchone() == (1,)
        ids = {r[0] for r in conn.execute("SELECT id FROM persona_versions")}
        assert version_ids < ids and len(ids) == 3
        assert verify(settings, conn).ok
        left = conn.execute("SELECT to_regclass('public.personas')").fetchone()
        assert "0005_promoted_action" in db.applied_migrations(conn)
    assert left == (None,)


def test_db_status_lists_every_mirror(tmp_path: Path, database_url: str) -> None:
    a, b = _repo(tmp_path / "a", "acme"), _repo(tmp_path / "b", "zed")
    sync.sync_branches(_settings(a, database_url))
    sync.sync(Settings(repo_path=b.path, database_url=database_url))
    settings = _settings(a, database_url, "production")
    with db.connect(settings) as conn:
        st = db.status(settings, conn)
    assert len(st.mirrors) == 3
    current = [m for m in st.mirrors if m.current]
    assert [(m.branch, m.head, m.personas) for m in current] == [("production", a.head(), 2)]
    assert st.schema == current[0].schema and st.cursors == {"production": a.head()}
    assert {m.branch for m in st.mirrors} == {"main", "production"}


def test_schema_names_are_safe_and_distinct() -> None:
    name = registry.schema_name("My Personas!", "feature/Long-" + "x" * 80, ("r1",))
    assert len(name.encode()) <= 63 and name.startswith("my_personas_feature_long_")
    assert registry.schema_name("p", "main", ("r1",)) != registry.schema_name("p", "main",
                                                                               ("r2",))
    assert registry.schema_name("p", "a/b", ()) != registry.schema_name("p", "a_b", ())
    assert registry.schema_name("pg_x", "main", ()).startswith("m_")


def test_a_promotion_commit_is_audited_as_promoted(git_repo: GitRepoFactory,
                                                   database_url: str) -> None:
    settings = Settings(repo_path=git_repo.path, database_url=database_url)
    git_repo.commit({"personas/acme/a.md": persona_md("A")}, "add")
    git_repo.commit({"personas/acme/a.md": persona_md("A", version="1.1.0")},
                    "Promote acme/a from main\n\nMaestro-Action: promoted\n")
    sync.sync(settings)
    with db.connect(settings) as conn:
        events = [r[0] for r in conn.execute(
            "SELECT action FROM audit_events ORDER BY id")]
        versions = [r[0] for r in conn.execute(
            "SELECT action FROM persona_versions ORDER BY id")]
    assert events == versions == ["created", "promoted"]


def test_a_cursor_git_no_longer_has_is_reconciled_with_every_commit_of_the_new_line(
        tmp_path: Path, database_url: str) -> None:
    """The planner on its own (the registry would refuse a foreign repository): the mirrored
    commit is gone from git (as after a gc), so the whole new line is mirrored, each commit
    with its versions, and the old line's versions are dropped."""
    old, new = _repo(tmp_path / "old", "acme"), _repo(tmp_path / "new", "zed")
    for i in range(3):
        new.commit({f"personas/zed/p{i}.md": persona_md(f"P{i}")}, f"more {i}")
    old_settings = Settings(repo_path=old.path, database_url=database_url)
    sync.sync(old_settings)
    new_settings = Settings(repo_path=new.path, database_url=database_url)
    with db.connect(old_settings) as conn, Syncer(new_settings, conn) as syncer:
        report = syncer.catch_up()
        assert report.rewritten and report.commits == 5
        assert verify(new_settings, conn).ok
        versions = Counter((r[0], r[1]) for r in conn.execute(
            "SELECT commit, content_hash FROM persona_versions"))
    assert versions == _git_versions(new, "main") and sum(versions.values()) == 5


def test_sync_settings_read_branches_name_and_schema(tmp_path: Path) -> None:
    from maestro_git.errors import ConfigError
    from maestro_git.settings import load_settings

    (tmp_path / "maestro.toml").write_text(
        '[sync]\nbranches = ["main", "production"]\nname = "acme"\n'
        'schema = {production = "acme_prod"}\n', encoding="utf-8")
    s = load_settings(tmp_path, environ={})
    assert (s.branch, s.mirrored_branches, s.mirror_name) == ("main", BRANCHES, "acme")
    assert s.schema_for("production") == "acme_prod" and s.schema_for("main") is None
    narrowed = load_settings(tmp_path, branch="production", environ={})
    assert narrowed.mirrored_branches == ("production",)
    (tmp_path / "maestro.toml").write_text(
        '[sync]\nbranches = ["main", "production"]\nschema = "one"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="names one schema but 2 branches"):
        load_settings(tmp_path, environ={})
    (tmp_path / "maestro.toml").write_text('[sync]\nschema = "Bad-Name"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="not a usable schema name"):
        load_settings(tmp_path, environ={})


def test_client_reads_the_branch_it_is_given_and_ignores_other_mirrors_events(
        git_repo: GitRepoFactory, database_url: str) -> None:
    from maestro_git.client import Client

    git_repo.commit({"personas/acme/a.md": persona_md("A")}, "a")
    _commit_on(git_repo, "production", {"personas/acme/p.md": persona_md("P")}, "p")
    _checkout(git_repo, "main")
    settings = _settings(git_repo, database_url)
    sync.sync_branches(settings)
    with Client(database_url, settings=settings, branch="production") as prod, \
            Client(database_url, settings=settings) as main:
        assert {p.key for p in prod.list()} == {"acme/a", "acme/p"}
        assert {p.key for p in main.list()} == {"acme/a"}
        assert prod.mirror.schema != main.mirror.schema
        flushes = prod.stats.invalidations + prod.stats.flushes
        git_repo.commit({"personas/acme/b.md": persona_md("B")}, "b on main")
        sync.sync(settings)
        deadline = time.monotonic() + 5
        while "acme/b" not in {p.key for p in main.list()}:
            assert time.monotonic() < deadline, "main's client never saw b"
        assert prod.stats.invalidations + prod.stats.flushes == flushes  # not its mirror


@pytest.mark.parametrize("text", ["\\u0000", "\\ud800"])
def test_text_postgres_cannot_store_is_refused_and_the_mirror_moves_past_it(
        git_repo: GitRepoFactory, database_url: str, text: str) -> None:
    """JSON escapes that parse and validate but that PostgreSQL cannot take (a NUL, a lone
    surrogate): the safety net behind the validation rules."""
    def team(bio: str) -> str:
        return '{"personas": [{"name": "Zed", "bio": "' + bio + '"}]}'

    settings = Settings(repo_path=git_repo.path, database_url=database_url)
    git_repo.commit({"persona_sets/team.json": team("fine"),
                     "personas/acme/b.md": persona_md("B")}, "good")
    sync.sync(settings)
    git_repo.commit({"persona_sets/team.json": team(f"bad {text} text"),
                     "personas/acme/c.md": persona_md("C")}, "bad text")
    git_repo.commit({"personas/acme/d.md": persona_md("D")}, "after")
    report = sync.sync(settings)
    assert report.commits == 2 and report.invalid_paths == ("persona_sets/team.json",)
    with db.connect(settings) as conn:
        assert conn.execute("SELECT persona_data ->> 'bio' FROM persona_set_members"
                            ).fetchone() == ("fine",)  # the last good state
        assert _keys(settings) == {"acme/b", "acme/c", "acme/d"}
        rules = {r[0] for r in conn.execute("SELECT rule FROM sync_errors")}
    assert rules == {"unstorable-text"}
    git_repo.commit({"persona_sets/team.json": team("fixed")}, "fix")
    sync.sync(settings)
    with db.connect(settings) as conn:
        assert conn.execute("SELECT count(*) FROM sync_errors").fetchone() == (0,)
        assert verify(settings, conn).ok


AGENT = persona_md("Planner", model="opus", tools="[Read, 'Bash(git:*)']")


def test_model_and_tools_are_columns_of_personas_versions_and_the_view(
        git_repo: GitRepoFactory, database_url: str) -> None:
    from maestro_git.client import Client
    from maestro_git.mirror.query import PersonaFilters, list_personas

    git_repo.commit({"personas/acme/planner.md": AGENT,
                     "personas/acme/plain.md": persona_md("Plain"),
                     "personas/acme/none.md": persona_md("None", tools="[]")}, "agents")
    git_repo.commit({"personas/acme/planner.md": AGENT.replace("opus", "haiku")}, "cheaper")
    settings = Settings(repo_path=git_repo.path, database_url=database_url)
    sync.sync(settings)
    with db.connect(settings) as conn:
        rows = conn.execute("SELECT key, model, tools FROM current_personas ORDER BY key")
        assert rows.fetchall() == [("acme/none", None, []), ("acme/plain", None, None),
                                   ("acme/planner", "haiku", ["Read", "Bash(git:*)"])]
        versions = conn.execute("SELECT model FROM persona_versions WHERE key = "
                                "'acme/planner' ORDER BY id").fetchall()
        assert versions == [("opus",), ("haiku",)]
        options = conn.execute("SELECT reloptions FROM pg_class WHERE oid = "
                               "'current_personas'::regclass").fetchone()
        assert options == (["security_invoker=true"],)  # still under row-level security
        found = list_personas(conn, PersonaFilters(model="HAIKU", tools=("Bash(git:*)",)))
        assert [(p.key, p.model, p.tools) for p in found] == [
            ("acme/planner", "haiku", ["Read", "Bash(git:*)"])]
        assert list_personas(conn, PersonaFilters(tools=("Grep",))) == []
    with Client(settings=settings) as client:
        row = client.get("acme/planner")
    assert (row.model, row.tools) == ("haiku", ["Read", "Bash(git:*)"])


def test_a_mirror_at_version_12_takes_the_model_and_tools_columns_in_place(
        git_repo: GitRepoFactory, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Migration 0013 on a mirror that already holds rows, usage and history."""
    git_repo.commit({"personas/acme/planner.md": AGENT}, "one")
    settings = Settings(repo_path=git_repo.path, database_url=database_url)
    shipped = db.available_migrations()
    at = [name for name, _ in shipped].index("0013_persona_model_tools")
    monkeypatch.setattr(db, "available_migrations", lambda: shipped[:at])
    sync.sync(settings)
    with db.connect(settings) as conn:
        assert "0013_persona_model_tools" not in db.applied_migrations(conn)
        pid = conn.execute("SELECT id FROM personas").fetchone()
        assert pid is not None
        conn.execute("INSERT INTO persona_usage VALUES (%s, 3, now())", (pid[0],))
    monkeypatch.undo()
    git_repo.commit({"personas/acme/other.md": persona_md("Other", tools="[Grep]")}, "two")
    assert sync.sync(settings).commits == 1
    with db.connect(settings) as conn:
        rows = conn.execute("SELECT key, model, tools, application_count FROM "
                            "current_personas ORDER BY key").fetchall()
        assert rows == [("acme/other", None, ["Grep"], 0),
                        ("acme/planner", "opus", ["Read", "Bash(git:*)"], 3)]
        assert conn.execute("SELECT count(*) FROM persona_versions").fetchone() == (2,)
        assert verify(settings, conn).ok


def _clinic(*names: str) -> str:
    import json
    return json.dumps({"name": "Clinic staff", "description": "People of a small clinic",
                       "personas": [{"name": n, "age": 40} for n in names]})


def test_a_mirror_at_version_13_takes_the_stored_set_vector_in_place_and_keeps_it(
        git_repo: GitRepoFactory, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Migration 0014: a set's members' names are a column PostgreSQL keeps (whatever writes
    the members: the bulk COPY, an upsert, a cascade) and a set is searched by its stored,
    GIN-indexed vector."""
    from maestro_git.mirror import query
    git_repo.commit({"persona_sets/clinic.json": _clinic("Maria Lopez", "Tom Berg"),
                     "persona_sets/ward.json": _clinic("Ana Ruiz")}, "one")
    settings = Settings(repo_path=git_repo.path, database_url=database_url)
    shipped = db.available_migrations()
    at = [name for name, _ in shipped].index("0014_indexed_search")
    monkeypatch.setattr(db, "available_migrations", lambda: shipped[:at])
    sync.sync(settings)  # a version-13 mirror holding two sets
    monkeypatch.undo()
    assert sync.sync(settings).commits == 0  # migrates, nothing new to mirror

    def names() -> list[tuple[str, str]]:
        with db.connect(settings) as conn:
            return conn.execute("SELECT key, member_names FROM persona_sets ORDER BY key"
                                ).fetchall()

    def sets_found(text: str) -> list[str]:
        with db.connect(settings) as conn:
            return sorted(h.key for h in query.search(conn, text, limit=20)
                          if h.kind == "persona_set")

    assert names() == [("clinic", "Maria Lopez Tom Berg"), ("ward", "Ana Ruiz")]  # migrated
    assert sets_found("berg") == ["clinic"]
    git_repo.commit({"persona_sets/clinic.json": _clinic("Tom Berg", "Ida Holm"),
                     "persona_sets/ward.json": None}, "two")
    assert sync.sync(settings).commits == 1
    assert names() == [("clinic", "Tom Berg Ida Holm")]
    assert sets_found("holm") == ["clinic"] and sets_found("maria") == []
    git_repo.commit({"persona_sets/clinic.json": None,
                     "persona_sets/clinic2.json": _clinic("Tom Berg", "Ida Holm")}, "rename")
    sync.sync(settings)
    assert names() == [("clinic2", "Tom Berg Ida Holm")]
    with db.connect(settings) as conn:
        plan = conn.execute("EXPLAIN SELECT key FROM persona_sets WHERE search_vector @@ "
                            "to_tsquery('english', 'holm')").fetchall()
        assert verify(settings, conn).ok
    assert any("search_vector" in line for (line,) in plan)
    settings_fresh = Settings(repo_path=git_repo.path, database_url=database_url,
                              schemas={"main": "fresh_load"})
    sync.sync(settings_fresh)  # a first load: the bulk COPY path
    with db.connect(settings_fresh) as conn:
        assert conn.execute("SELECT key, member_names FROM persona_sets").fetchall() == [
            ("clinic2", "Tom Berg Ida Holm")]


def test_a_set_edit_rewrites_its_row_a_fixed_number_of_times_whatever_its_size(
        git_repo: GitRepoFactory, database_url: str) -> None:
    """Migration 0015: a set's members go in one statement, so the member-names trigger
    rewrites the set row once per statement, not once per member (it was 40 rewrites, each
    recomputing the stored search vector, for a set of 40)."""
    names = [f"Member {i:02d}" for i in range(40)]
    git_repo.commit({"persona_sets/clinic.json": _clinic(*names)}, "one")
    settings = Settings(repo_path=git_repo.path, database_url=database_url)
    sync.sync(settings)
    with db.connect(settings) as conn:  # count row updates of persona_sets from here on
        conn.execute("CREATE TABLE set_row_updates (n int NOT NULL)")
        conn.execute("CREATE FUNCTION count_set_update() RETURNS trigger LANGUAGE plpgsql AS "
                     "$$ BEGIN INSERT INTO set_row_updates VALUES (1); RETURN NULL; END $$")
        conn.execute("CREATE TRIGGER count_set_update AFTER UPDATE ON persona_sets "
                     "FOR EACH ROW EXECUTE FUNCTION count_set_update()")
        conn.commit()
    renamed = [f"Renamed {i:02d}" for i in range(40)]
    git_repo.commit({"persona_sets/clinic.json": _clinic(*renamed)}, "two")
    assert sync.sync(settings).commits == 1
    with db.connect(settings) as conn:
        updates = conn.execute("SELECT count(*) FROM set_row_updates").fetchone()
        stored = conn.execute("SELECT member_names FROM persona_sets").fetchone()
    assert stored == (" ".join(renamed),)
    assert updates is not None and updates[0] <= 3, updates  # upsert, delete, insert
