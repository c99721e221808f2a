"""A real headless Chromium on the real app with the shipped checkpoints: what a user sees.

Screenshots are saved under tests/artifacts/ (the README's screenshot comes from here).
"""

import shutil
from pathlib import Path

import pytest

from tests.conftest import ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (apt-get install chromium)"),
]


@pytest.fixture(scope="module")
def shipped_app_url():
    from app import CSS, build_app

    demo = build_app()
    demo.queue(default_concurrency_limit=4)
    _, url, _ = demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, css=CSS)
    yield url
    demo.close()


@pytest.fixture(scope="module")
def page(shipped_app_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(shipped_app_url, wait_until="networkidle")
        yield page
        browser.close()


def textarea_length(page, index: int) -> int:
    return page.evaluate(
        "i => [...document.querySelectorAll('.sample-box textarea')].filter(t => t.offsetParent)[i].value.length",
        index)


def test_generate_shows_the_text_growing(page):
    ARTIFACTS.mkdir(exist_ok=True)
    page.get_by_label("Prompt").first.fill("JULIET:\n")
    page.get_by_role("button", name="Generate").click()
    page.wait_for_function(
        "() => { const t = [...document.querySelectorAll('.sample-box textarea')].filter(t => t.offsetParent)[0];"
        " return t && t.value.startsWith('JULIET:') && t.value.length > 20; }", timeout=30_000)
    early = textarea_length(page, 0)
    page.wait_for_function(
        "() => [...document.querySelectorAll('.sample-box textarea')].filter(t => t.offsetParent)[0]"
        ".value.length >= 600 + 'JULIET:\\n'.length", timeout=60_000)
    assert textarea_length(page, 0) > early
    page.screenshot(path=str(ARTIFACTS / "generate.png"), full_page=True)


def test_compare_shows_three_texts_and_the_validation_plot(page):
    page.get_by_role("tab", name="Compare cells").click()
    page.get_by_role("button", name="Compare", exact=True).click()
    page.wait_for_function(
        "() => { const ts = [...document.querySelectorAll('.sample-box textarea')].filter(t => t.offsetParent);"
        " return ts.length === 3 && ts.every(t => t.value.length >= 400); }", timeout=90_000)
    assert page.locator(".vega-embed, canvas, svg.marks").first.is_visible()
    page.get_by_text("text written by").first.wait_for(timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "compare.png"), full_page=True)


def test_inside_shows_the_heat_map_and_the_gradient_flow_plot(page):
    page.get_by_role("tab", name="Inside").click()
    page.get_by_role("button", name="Show surprise").click()
    page.locator(".charrnn-heat span").first.wait_for(timeout=60_000)
    assert page.locator(".charrnn-heat span").count() > 500
    page.screenshot(path=str(ARTIFACTS / "inside-surprise.png"), full_page=True)
    page.get_by_role("tab", name="Gradient flow").click()
    page.get_by_role("button", name="Measure").click()
    page.locator("text=clipped steps >> visible=true").first.wait_for(timeout=60_000)
    page.locator(".vega-embed >> visible=true").first.wait_for(timeout=60_000)
    page.wait_for_timeout(1500)  # let the plot finish drawing before the screenshot
    page.screenshot(path=str(ARTIFACTS / "inside-gradient-flow.png"), full_page=True)
