"""Helpers for driving the pages as a person would: visit, log in, and check what a page
shows (console errors, structure for assistive technology)."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.wait import WebDriverWait

# A structural accessibility check over the live DOM (no offline axe-core is packaged): one
# h1, headings that never skip a level going down, every form control labelled, every image
# with a text alternative, a document language, buttons and links with a name.
A11Y_SCRIPT = """
const problems = [];
const h1s = document.querySelectorAll('h1');
if (h1s.length !== 1) problems.push(`expected one h1, found ${h1s.length}`);
let previous = 0;
for (const h of document.querySelectorAll('h1, h2, h3, h4, h5, h6')) {
  const level = Number(h.tagName[1]);
  if (previous === 0 && level !== 1) problems.push(`the first heading is ${h.tagName}`);
  if (previous && level > previous + 1)
    problems.push(`heading ${h.tagName} "${h.textContent.trim()}" skips from h${previous}`);
  previous = level;
}
for (const el of document.querySelectorAll('input, select, textarea')) {
  if (['hidden', 'submit', 'button', 'reset'].includes(el.type)) continue;
  const byFor = el.id && document.querySelector(`label[for="${CSS.escape(el.id)}"]`);
  const named = byFor || el.closest('label') || el.getAttribute('aria-label')
    || el.getAttribute('aria-labelledby');
  if (!named) problems.push(`unlabelled ${el.tagName.toLowerCase()} name=${el.name}`);
}
for (const img of document.querySelectorAll('img')) {
  if (!img.hasAttribute('alt') || !img.getAttribute('alt').trim())
    problems.push(`image without alt: ${img.getAttribute('src')}`);
}
for (const el of document.querySelectorAll('[role="img"]')) {
  const label = el.getAttribute('aria-label') || (el.querySelector('title') || {}).textContent;
  if (!label || !label.trim()) problems.push(`role=img without a label`);
}
for (const el of document.querySelectorAll('button, a[href]')) {
  if (!el.textContent.trim() && !el.getAttribute('aria-label'))
    problems.push(`${el.tagName.toLowerCase()} without a name`);
}
if (!document.documentElement.lang) problems.push('no document language');
if (!document.title.trim()) problems.push('no title');
return problems;
"""


def console_errors(driver: WebDriver, status: int | None = None) -> list[str]:
    """Browser console messages of level SEVERE since the last call; with `status`, the one
    the browser logs for the page itself answering that (expected) status is left out."""
    expected = f"{driver.current_url} - Failed to load resource: the server responded with " \
               f"a status of {status} "
    return [entry["message"] for entry in driver.get_log("browser")
            if entry.get("level") == "SEVERE"
            and not (status is not None and entry["message"].startswith(expected))]


def visit(driver: WebDriver, base: str, path: str, status: int | None = None) -> None:
    """Open a page and fail on any console error it caused (`status`: an expected error
    status of the page itself). A navigation the driver loses (a renderer that answers
    chromedriver too late on a loaded machine) is tried once more; what the page shows is
    never retried."""
    try:
        driver.get(base + path)
    except WebDriverException as err:
        print(f"navigation to {path} failed once ({err.msg}); retrying")
        driver.get(base + path)
    errors = console_errors(driver, status)
    assert not errors, f"console errors on {path}: {errors}"


def _next_page_loaded(driver: WebDriver) -> bool:
    """The page marked before a click is gone and its successor has finished loading."""
    return bool(driver.execute_script(
        "return window.__maestroBeforeClick === undefined"
        " && document.readyState === 'complete'"))


def click(driver: WebDriver, element: WebElement, status: int | None = None) -> None:
    """Click a link or a submit button and wait until the next page has loaded; fail on
    console errors.

    The page is marked with a window property before the click; the next page has none.
    While the browser is between the two documents chromedriver can answer any command
    with an error (a node "does not belong to the document", no execution context), so
    the wait polls through driver errors and only its 30 s deadline fails the test."""
    driver.execute_script("window.__maestroBeforeClick = true")
    element.click()
    WebDriverWait(driver, 30, poll_frequency=0.1,
                  ignored_exceptions=(WebDriverException,)).until(_next_page_loaded)
    errors = console_errors(driver, status)
    assert not errors, f"console errors after a click: {errors}"


def accessibility_problems(driver: WebDriver) -> list[str]:
    problems: list[str] = driver.execute_script(A11Y_SCRIPT)
    return problems


def login(driver: WebDriver, base: str, token: str, next_path: str = "/") -> None:
    """Log in through the form, as a person does."""
    driver.delete_all_cookies()
    visit(driver, base, next_path)
    assert "/login" in driver.current_url, driver.current_url
    driver.find_element(By.ID, "token").send_keys(token)
    click(driver, driver.find_element(By.CSS_SELECTOR, "form.login button[type=submit]"))
    assert "/login" not in driver.current_url


def text(driver: WebDriver, css: str) -> str:
    return str(driver.find_element(By.CSS_SELECTOR, css).text)


def api(base: str, path: str, token: str) -> Any:
    """What the JSON API answers for the same token."""
    request = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def shoot(driver: WebDriver, folder: Path, name: str) -> Path:
    path = folder / f"{name}.png"
    assert driver.save_screenshot(str(path)), f"no screenshot of {name}"
    return path
