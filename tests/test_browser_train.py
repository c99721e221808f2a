"""A real headless Chromium on the Train tab: paste a text, train, watch the curve and a sample, then use the model.

Screenshots are saved under tests/artifacts/.
"""

import pytest

from tests.conftest import TINY_TEXT
from tests.test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, pytestmark  # noqa: F401 - the same skip

TEXT = TINY_TEXT * 3


@pytest.fixture(scope="module")
def train_page(tiny_library, tmp_path_factory):
    from playwright.sync_api import sync_playwright

    from charrnn.app.page import build_app
    from charrnn.app.texts import CSS
    from charrnn.service import ModelLibrary
    from charrnn.service.training import TrainingManager, TrainLimits

    library = ModelLibrary(tiny_library, hub_ids=[])
    manager = TrainingManager(library, tmp_path_factory.mktemp("user-models"), TrainLimits(), threads=1,
                              eval_seconds=2)
    demo = build_app(library, manager)
    demo.queue(default_concurrency_limit=4)
    _, url, _ = demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, css=CSS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1300})
        page.goto(url, wait_until="load", timeout=90_000)
        page.get_by_role("tab", name="Train").wait_for(timeout=90_000)
        yield page
        browser.close()
    demo.close()


def test_train_a_model_watch_it_learn_and_generate_with_it(train_page):
    page = train_page
    ARTIFACTS.mkdir(exist_ok=True)
    page.get_by_role("tab", name="Train").click()
    page.get_by_label("Paste your text").fill(TEXT)
    page.get_by_label("Name of your model").fill("browser")
    page.get_by_role("button", name="Preview the text").click()
    page.get_by_text("distinct, from pasted text").wait_for(timeout=30_000)
    page.get_by_label("tiny").check()
    page.get_by_label("Minutes of training", exact=False).first.fill("0.5")
    page.keyboard.press("Enter")
    page.get_by_role("button", name="Train", exact=True).click()
    # The curve (a Vega plot) and a sample in the sample box appear while it trains.
    page.locator("text=validation: >> visible=true").first.wait_for(timeout=90_000)
    page.wait_for_function(
        "() => [...document.querySelectorAll('.sample-box textarea')].some(t => t.offsetParent && t.value.length > 20)",
        timeout=60_000)
    page.locator(".vega-embed >> visible=true").first.wait_for(timeout=30_000)
    page.wait_for_timeout(2500)
    page.screenshot(path=str(ARTIFACTS / "train-running.png"), full_page=True)
    page.get_by_text("in the model pickers as").wait_for(timeout=120_000)  # finished (0.5 minutes)
    page.wait_for_timeout(1500)
    page.screenshot(path=str(ARTIFACTS / "train-finished.png"), full_page=True)

    page.get_by_role("tab", name="Generate").click()
    picker = page.get_by_label("Model", exact=True).first
    picker.click()
    page.get_by_role("option", name="trained/browser", exact=False).first.click()
    page.get_by_label("Prompt").first.fill("All:")
    page.get_by_role("button", name="Generate", exact=True).click()
    page.wait_for_function(
        "() => { const t = [...document.querySelectorAll('.sample-box textarea')].filter(t => t.offsetParent)[0];"
        " return t && t.value.startsWith('All:') && t.value.length >= 600; }", timeout=60_000)
    assert "trained/browser" in page.locator("text=trained/browser").first.inner_text()
    page.screenshot(path=str(ARTIFACTS / "train-generate.png"), full_page=True)
