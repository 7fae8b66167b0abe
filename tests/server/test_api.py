"""The HTTP API through a real server process: every route, its shapes, 304s, paging, and
bad input answered with a one-line 4xx (never a 500)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.factories import mirror_sql
from tests.server.conftest import Api, wait_for

PROBLEM = "application/problem+json"


def test_ping_needs_no_token_and_everything_else_does(api: Api) -> None:
    anonymous = api.client(None)
    assert anonymous.get("/api/v1/ping").json()["status"] == "ok"
    answer = anonymous.get("/api/v1/personas")
    assert answer.status_code == 401
    assert answer.headers["content-type"] == PROBLEM
    assert answer.headers["www-authenticate"] == "Bearer"
    assert answer.json()["detail"] == "a token is required"
    bad = httpx.get(api.base + "/api/v1/personas", headers={"Authorization": "Bearer mgt_no"})
    assert bad.status_code == 401
    assert bad.json()["detail"] == "the token is unknown, revoked or expired"


def test_openapi_documents_every_route(api: Api) -> None:
    doc = api.client(None).get("/openapi.json").json()
    paths = set(doc["paths"])
    for path in ("/api/v1/personas", "/api/v1/personas/{owner}/{name}",
                 "/api/v1/personas/{owner}/{name}/history", "/api/v1/personas/{owner}/{name}/diff",
                 "/api/v1/personas/{owner}/{name}/applications", "/api/v1/templates",
                 "/api/v1/templates/{name}", "/api/v1/sets", "/api/v1/sets/{key}",
                 "/api/v1/sets/{key}/images/{file}", "/api/v1/audit", "/api/v1/search",
                 "/api/v1/events", "/api/v1/personas/sets",
                 "/api/v1/personas/{persona_set_id}/download",
                 "/api/v1/personas/available-persona-sets",
                 "/static/images/personas/{set_key}/{file}"):
        assert path in paths, path


def test_list_filters_sort_and_pages(api: Api) -> None:
    c = api.client("both")
    everyone = c.get("/api/v1/personas").json()["items"]
    assert [p["key"] for p in everyone] == sorted(p["key"] for p in everyone)
    assert {p["owner"] for p in everyone} == {"acme", "platform"}
    acme = c.get("/api/v1/personas", params={"owner": "acme"}).json()["items"]
    assert acme and all(p["owner"] == "acme" for p in acme)
    tagged = c.get("/api/v1/personas", params=[("tag", "sql")]).json()["items"]
    assert tagged and all("sql" in p["tags"] for p in tagged)
    children = c.get("/api/v1/personas",
                     params={"parent": "platform/base_assistant"}).json()["items"]
    assert len(children) == 4 and all(p["parent_key"] == "platform/base_assistant"
                                      for p in children)
    inactive = c.get("/api/v1/personas", params={"active": "false"}).json()["items"]
    assert all(not p["active"] for p in inactive)
    text = c.get("/api/v1/personas", params={"text": "analyst"}).json()["items"]
    assert [p["key"] for p in text] == ["acme/data_analyst"]
    future = c.get("/api/v1/personas", params={"updated_since": "2999-01-01T00:00:00Z"})
    assert future.json()["items"] == []
    desc = c.get("/api/v1/personas", params={"sort": "key", "desc": "true"}).json()["items"]
    assert [p["key"] for p in desc] == [p["key"] for p in reversed(everyone)]
    first = c.get("/api/v1/personas", params={"limit": 3}).json()
    assert len(first["items"]) == 3 and first["next"]
    second = c.get(first["next"]).json()
    assert second["offset"] == 3
    assert [p["key"] for p in first["items"] + second["items"]][:6] == \
        [p["key"] for p in everyone][:6]
    last = c.get("/api/v1/personas", params={"limit": 3, "offset": len(everyone) - 1}).json()
    assert len(last["items"]) == 1 and last["next"] is None


def test_one_persona_with_etag_304_and_cache_control(api: Api) -> None:
    c = api.client()
    answer = c.get("/api/v1/personas/acme/data_analyst")
    assert answer.status_code == 200
    body = answer.json()
    assert body["key"] == "acme/data_analyst" and body["resolved"] is False
    assert body["content"].startswith("# ACME Data Analyst")
    etag = answer.headers["etag"]
    assert etag.startswith(f'"{body["commit"][:12]}-')
    assert answer.headers["cache-control"] == "private, no-cache"
    assert "Authorization" in answer.headers["vary"]
    again = c.get("/api/v1/personas/acme/data_analyst", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    other = c.get("/api/v1/personas/acme/data_analyst", headers={"If-None-Match": '"x"'})
    assert other.status_code == 200
    resolved = c.get("/api/v1/personas/acme/data_analyst", params={"resolved": "true"}).json()
    assert resolved["resolved"] is True and len(resolved["content"]) > len(body["content"])
    assert c.get("/api/v1/personas/acme/data_analyst",
                 params={"resolved": "true"}).headers["etag"] != etag


def test_a_cached_answer_is_the_routes_answer_byte_for_byte(api: Api) -> None:
    c = api.client()
    first = c.get("/api/v1/personas/acme/legacy_sql_helper", params={"resolved": "true"})
    second = c.get("/api/v1/personas/acme/legacy_sql_helper", params={"resolved": "true"})
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    for header in ("etag", "cache-control", "vary", "content-type"):
        assert first.headers[header] == second.headers[header], header


def test_past_versions_commits_and_branches_come_from_git(api: Api) -> None:
    c = api.client()
    now = c.get("/api/v1/personas/acme/python_reviewer").json()
    assert now["version"] == "1.2.0"
    old = c.get("/api/v1/personas/acme/python_reviewer", params={"version": "1.1.0"})
    assert old.status_code == 200, old.text
    assert old.json()["version"] == "1.1.0" and "type hints" not in old.json()["content"]
    history = c.get("/api/v1/personas/acme/python_reviewer/history").json()
    first_commit = history["versions"][-1]["commit"]
    at = c.get("/api/v1/personas/acme/python_reviewer", params={"commit": first_commit})
    assert at.json()["commit"] == first_commit
    assert at.headers["cache-control"].endswith("max-age=31536000, immutable")
    head = c.get("/api/v1/personas/acme/python_reviewer", params={"branch": "main"}).json()
    assert head["version"] == "1.2.0" and head["source"] == "git"
    missing = c.get("/api/v1/personas/acme/python_reviewer", params={"version": "9.9.9"})
    assert missing.status_code == 404 and missing.headers["content-type"] == PROBLEM
    nobranch = c.get("/api/v1/personas/acme/python_reviewer", params={"branch": "nope"})
    assert nobranch.status_code == 404


def test_the_typed_agent_settings_come_from_the_mirror_and_from_git(api: Api) -> None:
    c = api.client()
    now = c.get("/api/v1/personas/acme/python_reviewer").json()
    assert (now["model"], now["tools"]) == ("sonnet", ["Read", "Grep", "Bash(pytest:*)"])
    git = c.get("/api/v1/personas/acme/python_reviewer", params={"branch": "main"}).json()
    assert (git["model"], git["tools"]) == ("sonnet", ["Read", "Grep", "Bash(pytest:*)"])
    old = c.get("/api/v1/personas/acme/python_reviewer", params={"version": "1.1.0"}).json()
    assert (old["model"], old["tools"]) == (None, None)
    listed = {p["key"]: (p["model"], p["tools"])
              for p in c.get("/api/v1/personas", params={"owner": "acme"}).json()["items"]}
    assert listed["acme/python_reviewer"] == ("sonnet", ["Read", "Grep", "Bash(pytest:*)"])
    assert listed["acme/data_analyst"] == (None, None)
    hits = c.get("/api/v1/search", params={"q": "tools:bash model:sonnet",
                                           "backend": "postgres"}).json()
    assert [h["key"] for h in hits["items"]] == ["acme/python_reviewer"]


def test_history_pages_and_diff_raw_and_resolved(api: Api) -> None:
    c = api.client()
    history = c.get("/api/v1/personas/acme/python_reviewer/history").json()
    assert history["total"] == 2
    assert [v["version"] for v in history["versions"]] == ["1.2.0", "1.1.0"]
    page = c.get("/api/v1/personas/acme/python_reviewer/history", params={"limit": 1}).json()
    assert len(page["versions"]) == 1 and page["next"]
    diff = c.get("/api/v1/personas/acme/python_reviewer/diff",
                 params={"from": "1.1.0", "to": "1.2.0"}).json()
    assert diff["changed"] and "+Also check type hints." in diff["body_diff"]
    assert {"field": "version", "old": "1.1.0", "new": "1.2.0"} in diff["fields"]
    resolved = c.get("/api/v1/personas/acme/python_reviewer/diff",
                     params={"from": "1.1.0", "resolved": "true"}).json()
    assert resolved["resolved"] is True and "+Also check type hints." in resolved["body_diff"]


def test_templates(api: Api) -> None:
    c = api.client()
    items = c.get("/api/v1/templates").json()["items"]
    assert "developer_assistant" in {t["name"] for t in items}
    one = c.get("/api/v1/templates/developer_assistant")
    assert one.status_code == 200 and one.json()["content"]
    assert c.get("/api/v1/templates/developer_assistant",
                 headers={"If-None-Match": one.headers["etag"]}).status_code == 304
    assert c.get("/api/v1/templates/nope").status_code == 404


def test_sets_members_scores_and_images(api: Api) -> None:
    c = api.client()
    sets = {s["key"]: s for s in c.get("/api/v1/sets").json()["items"]}
    assert {"clinic_booking_research", "fintech_early_adopters"} <= set(sets)
    clinic = c.get("/api/v1/sets/clinic_booking_research").json()
    assert clinic["rqe_scores"]["relevance"] == 0.92 and clinic["status"] == "validated"
    assert len(clinic["members"]) == 12
    margaret = clinic["members"][0]
    assert margaret["name"] == "Margaret Okafor"
    assert margaret["similarity_score"]["overall"] == 0.91
    image = c.get(margaret["image"])
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert image.content == (api.repo.path / "persona_sets/clinic_booking_research/images/"
                             "margaret_okafor.png").read_bytes()
    assert c.get(margaret["image"],
                 headers={"If-None-Match": image.headers["etag"]}).status_code == 304
    assert c.get(margaret["image"].replace("images/margaret_okafor.png", "members/0/image")
                 ).status_code == 200
    assert c.get("/api/v1/sets/clinic_booking_research/images/nope.png").status_code == 404
    assert c.get("/api/v1/sets/clinic_booking_research/images/set.json").status_code == 404
    assert c.get("/api/v1/sets/nope").status_code == 404


def test_the_persona_set_service_paths_and_shapes(api: Api) -> None:
    c = api.client()
    sets = c.get("/api/v1/personas/sets").json()
    assert isinstance(sets, list)
    clinic = next(s for s in sets if s["id"] == "clinic_booking_research")
    assert set(clinic) == {"id", "name", "description", "rqe_scores", "diversity_score",
                           "validation_scores", "generation_cycle", "status", "created_at",
                           "updated_at", "personas"}
    member = clinic["personas"][0]
    assert set(member) == {"id", "persona_set_id", "name", "persona_data", "image_url",
                           "image_prompt", "similarity_score", "validation_status",
                           "created_at", "updated_at"}
    assert member["id"] == 1 and member["persona_set_id"] == "clinic_booking_research"
    assert member["persona_data"]["occupation"].startswith("Registered Nurse")
    assert member["image_url"] == \
        "/static/images/personas/clinic_booking_research/margaret_okafor.png"
    image = c.get(member["image_url"])
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    fintech = next(s for s in sets if s["id"] == "fintech_early_adopters")
    nadia = fintech["personas"][0]
    assert nadia["image_url"] == "/static/images/personas/persona_1.png"  # the service's form
    served = c.get(nadia["image_url"])
    assert served.status_code == 200 and served.headers["content-type"] == "image/png"
    assert served.content == (api.repo.path / "persona_sets/static/images/personas/"
                              "persona_1.png").read_bytes()
    assert c.get("/static/images/personas/persona_9.png").status_code == 404
    download = c.get("/api/v1/personas/fintech_early_adopters/download")
    assert download.status_code == 200
    assert download.content == (api.repo.path / "persona_sets/fintech_early_adopters.json"
                                ).read_bytes()
    assert 'filename="fintech_early_adopters.json"' in download.headers["content-disposition"]
    available = c.get("/api/v1/personas/available-persona-sets").json()
    names = {s["name"] for s in available["available_sets"]}
    assert {"clinic_booking_research", "fintech_early_adopters"} <= names
    assert available["count"] == len(available["available_sets"])
    assert c.get("/api/v1/personas/nope/download").status_code == 404


def test_audit_log_filters_and_pages(api: Api) -> None:
    c = api.client()
    events = c.get("/api/v1/audit", params={"key": "acme/python_reviewer"}).json()["items"]
    assert [e["action"] for e in events][:2] == ["updated", "created"]
    page = c.get("/api/v1/audit", params={"limit": 2}).json()
    assert len(page["items"]) == 2 and page["next"]
    kinds = c.get("/api/v1/audit", params={"kind": "template"}).json()["items"]
    assert kinds and all(e["kind"] == "template" for e in kinds)


@pytest.mark.parametrize("backend", ["postgres", "auto"])
def test_search(api: Api, backend: str) -> None:
    c = api.client()
    answer = c.get("/api/v1/search", params={"q": "sql", "backend": backend})
    assert answer.status_code == 200, answer.text
    hits = answer.json()["items"]
    assert any(h["key"] == "acme/data_analyst" for h in hits)


def test_an_application_counts_and_changes_the_etag(api: Api) -> None:
    c = api.client()
    before = c.get("/api/v1/personas/acme/legacy_sql_helper")
    posted = c.post("/api/v1/personas/acme/legacy_sql_helper/applications")
    assert posted.status_code == 201
    assert posted.json()["application_count"] == before.json()["application_count"] + 1
    assert posted.json()["last_applied_at"]
    after = wait_for(lambda: (r := c.get("/api/v1/personas/acme/legacy_sql_helper",
                                         headers={"If-None-Match": before.headers["etag"]}))
                     .status_code == 200 and r)
    assert after.json()["application_count"] == posted.json()["application_count"]
    assert c.post("/api/v1/personas/acme/nope/applications").status_code == 404



def test_a_kept_list_page_follows_every_change(api: Api) -> None:
    """The encoded list page the server keeps is the client cache's: an application (or any
    mirrored change) gives the next answer the new rows and a new ETag, and the old ETag
    no longer answers 304."""
    c = api.client()
    url = "/api/v1/personas?owner=acme&limit=50"
    first = c.get(url)  # the route answers and leaves the page for the fast path
    again = c.get(url)  # the fast path repeats it: the same bytes and headers
    assert again.content == first.content
    for header in ("etag", "cache-control", "vary", "content-type", "content-length"):
        assert again.headers.get(header) == first.headers.get(header), header
    assert c.get(url, headers={"If-None-Match": first.headers["etag"]}).status_code == 304

    def count(page: httpx.Response) -> int:
        return next(p["application_count"] for p in page.json()["items"]
                    if p["key"] == "acme/data_analyst")

    search = "/api/v1/search?q=analyst&backend=postgres"
    found, repeated = c.get(search), c.get(search)  # the route, then the fast path
    assert found.status_code == 200 and found.json()["items"]
    assert repeated.content == found.content
    assert repeated.headers.get("etag") == found.headers.get("etag")
    assert c.post("/api/v1/personas/acme/data_analyst/applications").status_code == 201
    after = wait_for(lambda: (r := c.get(url, headers={"If-None-Match": first.headers["etag"]}))
                     .status_code == 200 and r)
    assert count(after) == count(first) + 1
    assert after.headers["etag"] != first.headers["etag"]

BAD = [
    ("/api/v1/personas?limit=0", "query parameter 'limit'"),
    ("/api/v1/personas?limit=abc", "query parameter 'limit'"),
    ("/api/v1/personas?offset=-1", "query parameter 'offset'"),
    ("/api/v1/personas?sort=nope", "unknown sort 'nope'"),
    ("/api/v1/personas?active=maybe", "query parameter 'active'"),
    ("/api/v1/personas?updated_since=yesterday", "query parameter 'updated_since'"),
    ("/api/v1/personas?owner=ACME", "query parameter 'owner'"),
    ("/api/v1/personas/ACME/x", "path parameter 'owner'"),
    ("/api/v1/personas/acme/data_analyst?commit=xyz", "query parameter 'commit'"),
    ("/api/v1/personas/acme/data_analyst?commit=abcdef12", ""),
    ("/api/v1/personas/acme/data_analyst/diff?from=nope", ""),
    ("/api/v1/search", "query parameter 'q'"),
    ("/api/v1/search?q=x&backend=sqlite", "query parameter 'backend'"),
    ("/api/v1/search?q=x&limit=1000", "query parameter 'limit'"),
    ("/api/v1/audit?kind=planet", "query parameter 'kind'"),
    ("/api/v1/sets?status=done", "query parameter 'status'"),
    ("/api/v1/sets/..%2Fetc/images/x.png", ""),
    ("/api/v1/sets/clinic_booking_research/images/..%2Fset.json", ""),
    ("/api/v1/nothing-here", ""),
]


@pytest.mark.parametrize(("path", "detail"), BAD)
def test_bad_input_is_a_one_line_4xx_problem(api: Api, path: str, detail: str) -> None:
    answer = api.client().get(path)
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.text)
    assert answer.headers["content-type"] == PROBLEM
    problem = answer.json()
    assert problem["status"] == answer.status_code and "\n" not in problem["detail"]
    assert problem["detail"].startswith(detail), problem["detail"]


def test_token_commands_print_once_and_store_hashes(api: Api, tmp_path: Path) -> None:
    import subprocess
    import sys

    env_url = ["--repo", str(api.repo.path), "--database-url", api.database_url]
    made = subprocess.run([sys.executable, "-m", "maestro_git", *env_url, "token", "create",
                           "--owner", "acme", "--expires", "30d"], capture_output=True,
                          text=True, check=True)
    secret = made.stdout.strip().splitlines()[-1]
    assert secret.startswith("mgt_")
    listed = subprocess.run([sys.executable, "-m", "maestro_git", *env_url, "token", "list",
                             "--format", "json"], capture_output=True, text=True, check=True)
    assert secret not in listed.stdout
    token_id = secret.split("_")[1]
    assert token_id in {t["token_id"] for t in json.loads(listed.stdout)["tokens"]}
    with mirror_sql(api.database_url) as conn:
        stored = conn.execute("SELECT token_sha256 FROM api_tokens WHERE token_id = %s",
                              (token_id,)).fetchone()
    assert stored is not None and secret not in stored[0]
    headers = {"Authorization": f"Bearer {secret}"}
    assert httpx.get(api.base + "/api/v1/personas", headers=headers).status_code == 200
    subprocess.run([sys.executable, "-m", "maestro_git", *env_url, "token", "revoke", token_id],
                   capture_output=True, check=True)
    wait_for(lambda: httpx.get(api.base + "/api/v1/personas",
                               headers=headers).status_code == 401, timeout=5.0)
    bad = subprocess.run([sys.executable, "-m", "maestro_git", *env_url, "token", "create",
                          "--owner", "acme", "--expires", "soon"], capture_output=True, text=True)
    assert bad.returncode == 2 and "neither a duration nor an ISO date" in bad.stderr
