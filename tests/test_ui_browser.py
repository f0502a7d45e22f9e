"""The marketers' page in a real headless Chromium against the real server.

Debian's ``chromium`` is driven through Playwright (``scripts/ensure-system-packages`` installs it;
Playwright's own browser download is not used). Without chromium the test is skipped on a
laptop but fails in CI (``CI`` set): a browser test that silently skips tests nothing.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from servers import running_server
from test_ui_api import UiWorld, ui_world

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
KEY = "ui-test-key-456"
ROOT = Path(__file__).resolve().parents[1]
ARTIFACT = ROOT / ".radar" / "test-artifacts" / "ui.png"
TIMEOUT_MS = 60_000


def _require_chromium() -> None:
    if CHROMIUM.is_file():
        return
    message = f"{CHROMIUM} is missing: run `sh scripts/ensure-system-packages` (as root) before the tests"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    _require_chromium()
    world: UiWorld = ui_world(tmp_path_factory)
    with running_server(world.settings, KEY, "ui-server.log", RADAR_DATA_DIR=str(world.validated)) as (url, _):
        yield url


@pytest.fixture(scope="module")
def page(server: str) -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            tab = browser.new_page(viewport={"width": 1400, "height": 900})
            tab.set_default_timeout(TIMEOUT_MS)
            yield tab
        finally:
            browser.close()


def test_the_page_is_public_but_its_data_needs_the_key(server: str) -> None:
    assert httpx.get(f"{server}/ui/").status_code == 200
    assert httpx.get(f"{server}/ui/app.js").status_code == 200
    assert httpx.get(f"{server}/lists").status_code == 401
    assert httpx.get(f"{server}/kpis").status_code == 401
    keyed = httpx.get(f"{server}/lists", params={"name": "leads_to_call"}, headers={"X-API-Key": KEY}, timeout=60)
    assert keyed.status_code == 200 and keyed.json()["rows"]


def test_a_marketer_filters_a_list_and_opens_a_person(page, server: str, tmp_path: Path) -> None:
    page.goto(f"{server}/ui/")
    page.fill("#key", KEY)
    page.click("#login-form button")
    page.select_option("#list-name", "leads_to_call")
    every = _grades(page)
    assert every and len(set(every)) > 1, every

    page.select_option("#f-grade", "A")
    page.click("#filters button")
    page.wait_for_function("document.querySelector('#list-status').textContent.includes('grade = A')")
    graded = _grades(page)
    assert graded and set(graded) == {"A"} and len(graded) < len(every)

    page.click("#rows th[data-column='expected_value']")
    values = [float(v) for v in page.locator("#rows td[data-column='expected_value']").all_inner_texts()]
    assert values == sorted(values)

    first = page.locator("#rows td[data-column='person_id'] a").first
    person = first.inner_text()
    first.click()
    page.wait_for_selector("#person-scores .score .reasons li")
    assert page.input_value("#person-id") == person
    assert page.locator("#person-scores .score .reasons li").count() > 0
    assert "@" not in page.inner_text("body")

    page.click(".tab[data-view='kpis']")
    # A zero bar has no width, so "attached" rather than "visible".
    page.wait_for_selector("#kpi-charts svg.bars rect", state="attached")
    assert page.locator("#kpi-charts svg.bars").count() >= 3
    page.click(".tab[data-view='person']")
    _screenshot(page, tmp_path)


def test_a_wrong_key_is_told_and_not_kept(page, server: str) -> None:
    page.goto(f"{server}/ui/")
    page.evaluate("sessionStorage.clear()")
    page.reload()
    page.fill("#key", "wrong")
    page.click("#login-form button")
    page.wait_for_function("document.querySelector('#login-error').textContent.length > 0")
    assert "invalid API key" in page.inner_text("#login-error")
    assert page.evaluate("sessionStorage.getItem('radar.apiKey')") is None


def _grades(page) -> list[str]:
    page.wait_for_selector("#rows td[data-column='grade']")
    return page.locator("#rows td[data-column='grade']").all_inner_texts()


def _screenshot(page, tmp_path: Path) -> None:
    """The person view as a test artifact: in the pytest tmp dir and at a fixed, git-ignored path."""
    shot = tmp_path / "ui.png"
    page.screenshot(path=str(shot), full_page=True)
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, ARTIFACT)
    print(f"screenshot: {shot} (copied to {ARTIFACT})")
