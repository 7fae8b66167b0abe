"""The cached client: cache hits without queries, NOTIFY invalidation, reconnects, usage."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from maestro_git.client import Client
from maestro_git.errors import NotFoundError
from maestro_git.mirror import db
from maestro_git.settings import Settings
from tests.factories import GitRepoFactory, persona_md
from tests.mirror.test_query import seed


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> float:
    """Poll `condition` until true; return the seconds it took (fail at the deadline)."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(0.005)
    return time.monotonic() - start


@pytest.fixture
def seeded(database_url: str) -> str:
    with db.connect(database_url) as conn:
        seed(conn)
    return database_url


@pytest.fixture
def client(seeded: str, tmp_path: Path) -> Iterator[Client]:
    with Client(seeded, settings=Settings(repo_path=tmp_path)) as c:
        assert c.listening
        yield c


def _update_description(url: str, key: str, text: str) -> None:
    """What the mirror does for one commit: change the row and NOTIFY in one transaction."""
    with db.connect(url) as conn, conn.transaction():
        conn.execute("UPDATE personas SET description = %s WHERE key = %s", (text, key))
        conn.execute("SELECT pg_notify('maestro_events', %s)",
                     (json.dumps({"action": "updated", "kind": "persona", "key": key,
                                  "commit": "c99"}),))


def test_cache_serves_repeated_reads_without_queries(client: Client) -> None:
    first = client.get("acme/code_reviewer")
    queries = client.stats.queries
    for _ in range(100):
        assert client.get("acme/code_reviewer") == first
    client.list(tags=("coding",))
    client.list(tags=("coding",))
    client.set("clinic")
    client.set("clinic")
    assert client.stats.queries == queries + 2
    assert client.stats.hits >= 102


def test_resolved_get_returns_composed_instruction(client: Client) -> None:
    plain = client.get("acme/code_reviewer")
    resolved = client.get("acme/code_reviewer", resolved=True)
    assert resolved.content == plain.resolved_content != plain.content


def test_notification_invalidates_only_that_key(client: Client, seeded: str) -> None:
    client.get("acme/code_reviewer")
    client.get("globex/analyst")
    before = client.stats.queries
    _update_description(seeded, "acme/code_reviewer", "Reviews everything")
    wait_for(lambda: client.get("acme/code_reviewer").description == "Reviews everything",
             timeout=1.0)
    queries_after_refresh = client.stats.queries
    client.get("globex/analyst")  # untouched: still cached
    assert client.stats.queries == queries_after_refresh > before


def test_client_sees_another_process_update_within_a_second(client: Client,
                                                            seeded: str) -> None:
    assert client.get("globex/analyst").description == "Turns data into decisions"
    script = ("import sys; from tests.test_client import _update_description; "
              "_update_description(sys.argv[1], 'globex/analyst', 'Forecasts churn')")
    subprocess.run([sys.executable, "-c", script, seeded], check=True, timeout=60,
                   cwd=Path(__file__).resolve().parent.parent)
    took = wait_for(lambda: client.get("globex/analyst").description == "Forecasts churn",
                    timeout=1.0)
    assert took < 1.0


def test_listener_reconnects_and_flushes_after_disconnect(client: Client, seeded: str) -> None:
    client.get("globex/analyst")
    reconnects = client.stats.reconnects
    with db.connect(seeded) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE datname = current_database() AND query LIKE 'LISTEN%%'")
    wait_for(lambda: client.stats.reconnects > reconnects and client.listening)
    # The change made while nobody listened is not missed: the cache was flushed.
    with db.connect(seeded) as conn:
        conn.execute("UPDATE personas SET description = 'changed unheard' "
                     "WHERE key = 'globex/analyst'")
    client.clear_cache()  # what the reconnect did; made explicit against timing
    assert client.get("globex/analyst").description == "changed unheard"
    queries = client.stats.queries
    client.get("globex/analyst")
    assert client.stats.queries == queries  # caching resumed


def test_ttl_expires_entries(seeded: str, tmp_path: Path) -> None:
    with Client(seeded, settings=Settings(repo_path=tmp_path), cache_ttl=0.05) as c:
        c.get("acme/base")
        queries = c.stats.queries

        def refetched() -> bool:
            c.get("acme/base")
            return c.stats.queries > queries

        wait_for(refetched, timeout=2.0)


def test_lru_keeps_at_most_cache_size_entries(seeded: str, tmp_path: Path) -> None:
    with Client(seeded, settings=Settings(repo_path=tmp_path), cache_size=2) as c:
        for key in ("acme/base", "acme/code_reviewer", "globex/analyst"):
            c.get(key)
        queries = c.stats.queries
        c.get("globex/analyst")
        c.get("acme/code_reviewer")
        assert c.stats.queries == queries
        c.get("acme/base")  # evicted first
        assert c.stats.queries == queries + 1


def test_record_application_increments_and_refreshes_readers(client: Client,
                                                             seeded: str,
                                                             tmp_path: Path) -> None:
    assert client.get("globex/analyst").application_count == 0
    client.record_application("globex/analyst")
    usage = client.record_application("globex/analyst")
    assert usage.application_count == 2
    assert client.get("globex/analyst").application_count == 2
    with Client(seeded, settings=Settings(repo_path=tmp_path)) as other:
        assert other.get("globex/analyst").application_count == 2
        other.get("globex/analyst")
        client.record_application("globex/analyst")
        wait_for(lambda: other.get("globex/analyst").application_count == 3, timeout=1.0)
    with pytest.raises(NotFoundError):
        client.record_application("acme/nobody")


def test_usage_survives_a_mirror_rebuild(client: Client, seeded: str) -> None:
    client.record_application("acme/base")
    with db.connect(seeded) as conn, conn.transaction():
        cols = ", ".join(r[0] for r in conn.execute(  # the columns a writer writes
            "SELECT attname FROM pg_attribute WHERE attrelid = 'personas'::regclass AND "
            "attnum > 0 AND NOT attisdropped AND attgenerated = '' ORDER BY attnum"))
        conn.execute(f"CREATE TEMP TABLE kept AS SELECT {cols} FROM personas")
        conn.execute("DELETE FROM personas")  # what `maestro rebuild` clears
        conn.execute(f"INSERT INTO personas ({cols}) SELECT {cols} FROM kept")
    client.clear_cache()
    assert client.get("acme/base").application_count == 1


def test_concurrent_reads_are_safe(client: Client) -> None:
    errors: list[BaseException] = []
    keys = ["acme/base", "acme/code_reviewer", "acme/story_writer", "globex/analyst"]

    def work() -> None:
        try:
            for i in range(200):
                assert client.get(keys[i % 4]).key == keys[i % 4]
                if i % 50 == 0:
                    client.clear_cache()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []


def test_search_without_local_index_uses_postgres(client: Client) -> None:
    hits = client.search("nurse")
    assert [(h.kind, h.key, h.member) for h in hits] == [("set_member", "clinic", "Maria Lopez")]


def test_a_postgres_search_is_cached_until_any_change(client: Client, seeded: str) -> None:
    """Repeated searches of the mirror cost no query; a change to any persona (here one no
    earlier answer held) invalidates them all, so the next search finds it."""
    assert client.search("zymurgy", backend="postgres") == []
    queries = client.stats.queries
    for _ in range(20):
        assert client.search("zymurgy", backend="postgres") == []
    assert client.stats.queries == queries
    _update_description(seeded, "globex/analyst", "Zymurgy for the brewery")
    wait_for(lambda: [h.key for h in client.search("zymurgy", backend="postgres")]
             == ["globex/analyst"], timeout=1.0)
    assert client.stats.queries > queries


def test_history_and_sets(client: Client) -> None:
    assert [v.action for v in client.history("acme/base")] == ["updated", "created"]
    assert [s.key for s in client.sets()] == ["clinic"]
    assert len(client.set("clinic").members) == 2


_COMMIT_AND_SYNC = """
import sys, time
from pathlib import Path
import pygit2
from maestro_git.settings import Settings
from maestro_git.mirror.sync import sync
from tests.factories import GitRepoFactory, persona_md
path, url = Path(sys.argv[1]), sys.argv[2]
repo = GitRepoFactory(path, pygit2.Repository(str(path)))
repo.commit({"personas/acme/writer.md": persona_md("Writer", description="Edited elsewhere")})
sync(Settings(repo_path=path, database_url=url))
print(time.time(), flush=True)
"""


def test_client_sees_a_commit_mirrored_by_another_process_within_a_second(
        git_repo: GitRepoFactory, database_url: str) -> None:
    from maestro_git.mirror.sync import sync

    git_repo.commit({"personas/acme/writer.md": persona_md("Writer", description="Original")})
    settings = Settings(repo_path=git_repo.path, database_url=database_url)
    sync(settings)
    with Client(database_url, settings=settings) as c:
        assert c.get("acme/writer").description == "Original"
        proc = subprocess.run([sys.executable, "-c", _COMMIT_AND_SYNC, str(git_repo.path),
                               database_url], check=True, timeout=120, capture_output=True,
                              text=True, cwd=Path(__file__).resolve().parent.parent)
        mirrored_at = float(proc.stdout.split()[-1])
        wait_for(lambda: c.get("acme/writer").description == "Edited elsewhere", timeout=1.0)
        assert time.time() - mirrored_at < 1.5  # includes the subprocess's exit
        queries = c.stats.queries
        c.get("acme/writer")
        assert c.stats.queries == queries


def test_a_reloaded_notification_flushes_the_whole_cache(client: Client, seeded: str) -> None:
    """A commit with too many events for one notification each sends one `reloaded`
    (`events.notify`): every cached read, of whatever key, then goes to the database."""
    client.get("acme/code_reviewer")
    client.get("globex/analyst")
    with db.connect(seeded) as conn, conn.transaction():
        conn.execute("UPDATE personas SET description = 'Bulk edit' WHERE key = ANY(%s)",
                     (["acme/code_reviewer", "globex/analyst"],))
        conn.execute("SELECT pg_notify('maestro_events', %s)",
                     (json.dumps({"action": "reloaded", "kind": "repository", "key": "*",
                                  "commit": "c" * 40, "count": 5000}),))
    wait_for(lambda: client.get("acme/code_reviewer").description == "Bulk edit",
             timeout=1.0)
    assert client.get("globex/analyst").description == "Bulk edit"
