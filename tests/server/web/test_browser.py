"""The web interface in a real headless Chromium against a real `maestro serve` process over a
real mirror: walks a person takes, what they see against what the API answers, the token
boundary, script payloads that must not run, and the structure assistive technology reads."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.server.web.browser import (
    accessibility_problems,
    api,
    click,
    console_errors,
    login,
    shoot,
    text,
    visit,
)
from tests.server.web.conftest import Site

pytestmark = pytest.mark.slow


@pytest.fixture
def as_everyone(chrome: WebDriver, site: Site) -> WebDriver:
    login(chrome, site.base, site.all_token)
    return chrome


@pytest.fixture
def as_acme(chrome: WebDriver, site: Site) -> WebDriver:
    login(chrome, site.base, site.acme_token)
    return chrome


def test_a_page_asks_for_a_token_and_keeps_it_in_a_secure_http_only_cookie(
        chrome: WebDriver, site: Site) -> None:
    chrome.delete_all_cookies()
    visit(chrome, site.base, "/personas/acme/python_reviewer")
    assert urllib.parse.urlsplit(chrome.current_url).path == "/login"
    chrome.find_element(By.ID, "token").send_keys("mgt_not_a_token")
    click(chrome, chrome.find_element(By.CSS_SELECTOR, "form.login button[type=submit]"),
          status=401)
    assert "unknown, revoked or expired" in text(chrome, "p.error")
    chrome.find_element(By.ID, "token").send_keys(site.acme_token)
    click(chrome, chrome.find_element(By.CSS_SELECTOR, "form.login button[type=submit]"))
    assert chrome.current_url == site.base + "/personas/acme/python_reviewer"
    cookie = chrome.get_cookie("maestro_token")
    assert cookie is not None and cookie["value"] == site.acme_token
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Lax"
    csrf = chrome.get_cookie("maestro_csrf")
    assert csrf is not None and csrf["httpOnly"] and csrf["sameSite"] == "Strict"
    click(chrome, chrome.find_element(By.CSS_SELECTOR, "form[action='/logout'] button"))
    assert urllib.parse.urlsplit(chrome.current_url).path == "/login"
    assert chrome.get_cookie("maestro_token") is None
    assert not console_errors(chrome)


def _post(site: Site, path: str, form: dict[str, str], headers: dict[str, str]) -> int:
    request = urllib.request.Request(site.base + path, data=urllib.parse.urlencode(form).encode(),
                                     headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return err.code


def test_the_login_form_refuses_a_post_without_its_csrf_token(site: Site) -> None:
    good = {"token": site.acme_token, "next": "/"}
    assert _post(site, "/login", good, {}) == 403
    assert _post(site, "/login", {**good, "csrf": "a" * 43},
                 {"Cookie": "maestro_csrf=" + "b" * 43}) == 403
    assert _post(site, "/login", {**good, "csrf": "a" * 43},
                 {"Cookie": "maestro_csrf=" + "a" * 43, "Origin": "http://evil.example"}) == 403
    assert _post(site, "/logout", {"csrf": "x" * 43}, {}) == 403


def test_search_persona_history_and_diff_show_what_the_api_answers(
        as_everyone: WebDriver, site: Site, screenshot_dir: Path) -> None:
    d, token = as_everyone, site.all_token
    visit(d, site.base, "/")
    shoot(d, screenshot_dir, "home")
    d.find_element(By.ID, "q").send_keys("python review")
    click(d, d.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]"))
    shown = [a.get_attribute("href") for a in d.find_elements(By.CSS_SELECTOR, "ol.hits a")]
    found = api(site.base, "/api/v1/search?q=python%20review&limit=25", token)["items"]
    assert [h["key"] for h in found if h["kind"] == "persona"] == [
        urllib.parse.urlsplit(h).path.removeprefix("/personas/") for h in shown
        if "/personas/" in h]
    click(d, d.find_element(By.CSS_SELECTOR, "ol.hits a[href='/personas/acme/python_reviewer']"))

    persona = api(site.base, "/api/v1/personas/acme/python_reviewer", token)
    assert text(d, "h1").startswith(persona["display_name"])
    assert persona["version"] in text(d, "dl.fields")
    assert "Tone" in text(d, "article.instruction")
    chain = text(d, "main").split("Inheritance chain, root first:")[1].splitlines()[0]
    assert chain.strip() == ("platform/base_assistant → acme/developer_assistant → "
                             "acme/python_reviewer")
    sources = {row.find_elements(By.TAG_NAME, "td")[0].text:
               row.find_elements(By.TAG_NAME, "td")[1].text
               for row in d.find_elements(By.CSS_SELECTOR, "table.sections tbody tr")}
    assert sources["Tone"] == "this persona"
    assert "platform/base_assistant" in sources.values()
    assert "U+200B ZERO WIDTH SPACE" in text(d, "p.warning")
    shoot(d, screenshot_dir, "persona")

    history = api(site.base, "/api/v1/personas/acme/python_reviewer/history", token)
    rows = d.find_elements(By.CSS_SELECTOR, "form.history tbody tr")
    assert len(rows) == history["total"] == 2
    assert [r.find_elements(By.TAG_NAME, "td")[2].text for r in rows] == [
        v["version"] for v in history["versions"]]
    click(d, d.find_element(By.CSS_SELECTOR, "form.history button[type=submit]"))
    added = [e.text for e in d.find_elements(By.CSS_SELECTOR, "pre.diff .add")]
    assert any(line.startswith("+Be⟦U+200B⟧ kind") for line in added), added
    marker = d.find_element(By.CSS_SELECTOR, "pre.diff .hidden-char")
    assert marker.get_attribute("title") == "U+200B ZERO WIDTH SPACE"
    raw = api(site.base, "/api/v1/personas/acme/python_reviewer/diff", token)
    assert [line for line in raw["body_diff"].splitlines()
            if line.startswith("+") and not line.startswith("+++")] == [
        e.text.replace("⟦U+200B⟧", "\u200b")
        for e in d.find_elements(By.CSS_SELECTOR, "pre.diff .add")]
    shoot(d, screenshot_dir, "diff")
    click(d, d.find_element(By.LINK_TEXT, "Compare the resolved instructions"))
    assert "resolved instructions" in text(d, "main > p")


def test_a_set_shows_its_members_images_scores_and_member_changes(
        as_everyone: WebDriver, site: Site, screenshot_dir: Path) -> None:
    d = as_everyone
    visit(d, site.base, "/sets/clinic_booking_research")
    data = api(site.base, "/api/v1/sets/clinic_booking_research", site.all_token)
    members = data.get("members") or data.get("personas")
    cards = d.find_elements(By.CSS_SELECTOR, "li.card")
    assert [c.find_element(By.TAG_NAME, "h3").text for c in cards] == [
        m["name"] for m in members]
    images = d.find_elements(By.CSS_SELECTOR, "li.card img")
    assert images, "the set has member images"
    for img in images:
        assert img.get_attribute("alt").startswith("Portrait of ")
        assert d.execute_script("return arguments[0].complete && "
                                "arguments[0].naturalWidth > 0", img)
    assert d.find_elements(By.CSS_SELECTOR, "figure svg.chart rect.chart-bar")
    assert len(d.find_elements(By.CSS_SELECTOR, "li.card svg.chart")) == len(members)
    shoot(d, screenshot_dir, "set")
    click(d, cards[0].find_element(By.CSS_SELECTOR, "h3 a"))
    assert text(d, "h1") == members[0]["name"]
    assert members[0]["validation_status"] in text(d, "dl.fields")

    visit(d, site.base, "/sets/fintech_early_adopters")
    click(d, d.find_element(By.CSS_SELECTOR, "form.history button[type=submit]"))
    change = text(d, "ul.changes li")
    assert change.startswith("Oliver Grant: changed")
    assert "Electrician and business owner" in change
    shoot(d, screenshot_dir, "set-changes")


def test_script_payloads_in_a_persona_body_run_nothing(
        as_everyone: WebDriver, site: Site) -> None:
    d = as_everyone
    visit(d, site.base, "/personas/acme/tricky")
    body = d.find_element(By.CSS_SELECTOR, "article.instruction")
    assert "You are helpful." in body.text
    assert not body.find_elements(By.TAG_NAME, "script")
    for attribute in ("onerror", "onmouseover", "onclick"):
        assert not d.find_elements(By.CSS_SELECTOR, f"[{attribute}]")
    for link in d.find_elements(By.CSS_SELECTOR, "a"):
        assert not (link.get_attribute("href") or "").lower().startswith("javascript:")
    ActionChains(d).move_to_element(d.find_element(
        By.XPATH, "//article//*[contains(text(), 'Hover text')]")).perform()
    for label in ("Click me", "a raw link"):
        for link in d.find_elements(By.PARTIAL_LINK_TEXT, label):
            link.click()
    assert d.execute_script("return window.__pwned === undefined")
    assert not console_errors(d)


PAGES = ["/", "/?q=review", "/?owner=acme&sort=updated", "/personas/acme/python_reviewer",
         "/personas/acme/python_reviewer/diff", "/personas/acme/tricky",
         "/sets/clinic_booking_research", "/sets/clinic_booking_research/members/0",
         "/sets/fintech_early_adopters/changes", "/log", "/branches"]


@pytest.mark.parametrize("path", PAGES)
def test_pages_have_one_h1_ordered_headings_labels_and_alt_text(
        as_everyone: WebDriver, site: Site, path: str) -> None:
    visit(as_everyone, site.base, path)
    assert accessibility_problems(as_everyone) == []


def test_the_login_page_passes_the_structure_check(chrome: WebDriver, site: Site) -> None:
    chrome.delete_all_cookies()
    visit(chrome, site.base, "/login")
    assert accessibility_problems(chrome) == []


def _source(d: WebDriver) -> str:
    return str(d.page_source)


def test_a_token_for_acme_sees_no_platform_persona_anywhere(
        as_acme: WebDriver, site: Site, screenshot_dir: Path) -> None:
    d = as_acme
    for path in ("/", "/?q=assistant", "/?q=incident", "/?owner=platform",
                 "/?tag=platform", "/personas/acme/python_reviewer",
                 "/personas/acme/developer_assistant",
                 "/personas/acme/python_reviewer/diff?view=resolved",
                 "/log", "/log?kind=persona", "/branches", "/sets/clinic_booking_research"):
        visit(d, site.base, path)
        assert "platform/" not in _source(d), path
    visit(d, site.base, "/log?key=platform/base_assistant")
    assert text(d, "main h2 + p") == "No event."
    visit(d, site.base, "/personas/acme/python_reviewer")
    assert "an ancestor outside your scope" in text(d, "main")
    d.execute_script("arguments[0].scrollIntoView()", d.find_element(By.ID, "resolved"))
    shoot(d, screenshot_dir, "persona-acme-scope")
    visit(d, site.base, "/log")
    shown = len(d.find_elements(By.CSS_SELECTOR, "table.list tbody tr"))
    assert shown == min(25, len(api(site.base, "/api/v1/audit?limit=26", site.acme_token)
                                ["items"]))
    for path in ("/personas/platform/base_assistant",
                 "/personas/platform/base_assistant/diff",
                 "/personas/platform/incident_commander"):
        visit(d, site.base, path, status=404)
        assert text(d, "h1") == "Not available"
        assert "platform/" not in text(d, "main").replace(path.split("/diff")[0][10:], "")


def test_paging_walks_the_personas_in_pages(as_everyone: WebDriver, site: Site) -> None:
    d = as_everyone
    every: list[Any] = api(site.base, "/api/v1/personas?limit=100&sort=key",
                           site.all_token)["items"]
    visit(d, site.base, "/?sort=key&per=3")
    shown: list[str] = []
    while True:
        shown += [c.text for c in d.find_elements(
            By.CSS_SELECTOR, "table.list tbody td:first-child code")]
        following = d.find_elements(By.CSS_SELECTOR, "nav.pager a[rel=next]")
        if not following:
            break
        click(d, following[0])
    assert len(every) > 3
    assert shown == [p["key"] for p in every]
