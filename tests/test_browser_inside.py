"""The Inside tab as a learner sees it in a real headless Chromium (issue 26, rows 5 and 6): the memory test's
retraining (its progress, its visitor finding it again after a reload, another visitor refused, a closed page or a
spent budget stopping it, and the shipped plot kept, never an "Error" badge), the memory chart's chance line and
its overlapping lines named, and the gates under the text beside the cell's equations. Screenshots go to
tests/artifacts/inside-*.png.

The app's retraining here trains nothing: it reports progress until the test lets it finish with the shipped
models (tests/test_retraining.py trains real ones). The page, the watching and the stopping are the real ones.
"""

import re
import threading

import pytest

from tests.test_browser import ARTIFACTS, browser, charts, pytestmark  # noqa: F401 - a fixture, the same skip
from tests.test_browser_learner import DESKTOP, PHONE
from tests.test_retraining import held
GRACE = 2  # seconds a retraining waits for its page to come back: short, so the closed-page test is quick
SHIPPED_TITLE = "Accuracy of the first activity after the rain"


@pytest.fixture(scope="module")
def app():
    from charrnn.app.page import build_app
    from charrnn.app.texts import CSS
    from charrnn.service import inside
    from charrnn.service.retraining import MemoryRetraining

    jobs = MemoryRetraining(budget_seconds=60, grace_seconds=GRACE)
    shipped = inside.memory_models()
    demo = build_app(retraining=jobs)
    demo.queue(default_concurrency_limit=4)
    _, url, _ = demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, css=CSS)
    yield url, jobs, shipped
    demo.close()


def open_view(browser, url, viewport, view, page=None):
    """A new visitor (a browser context of its own: its own session) on Inside > view; or `page` reloaded."""
    if page is None:
        page = browser.new_context(viewport=viewport, has_touch=viewport is PHONE).new_page()
        page.goto(url, wait_until="load", timeout=90_000)
    else:
        page.reload(wait_until="load", timeout=90_000)
    page.get_by_role("tab", name="Generate").wait_for(timeout=90_000)
    page.get_by_role("tab", name="Inside").click()
    page.get_by_role("tab", name=view).click()
    return page


def start_retraining(page):
    page.get_by_label("Retrain the three tiny models now", exact=False).check()
    page.get_by_role("button", name="Run the memory test").click()


def status(page, pattern: str, timeout=60_000) -> str:
    """The retraining's line, once it matches `pattern`."""
    line = page.locator(".retrain-status").filter(has_text=re.compile(pattern))
    try:
        line.wait_for(timeout=timeout)
    except Exception:  # noqa: BLE001 - say what the page said instead
        pytest.fail(f"no line matching {pattern!r}; the page says {page.locator('.retrain-status').all_inner_texts()}")
    return line.inner_text()


def memory_chart(page, title: str) -> dict:
    page.wait_for_function("t => [...document.querySelectorAll('.chart')].some(c => c.offsetParent && "
                           "[...c.querySelectorAll('svg .role-title-text text')].some(e => e.textContent === t))",
                           arg=title, timeout=60_000)
    return next(c for c in charts(page) if c["title"].startswith(title + " After"))


def error_badges(page) -> int:
    return page.locator("[data-testid=status-tracker]").filter(has_text="Error").filter(visible=True).count()


def test_a_retraining_shows_progress_refuses_another_visitor_and_is_found_after_a_reload(browser, app):
    url, jobs, shipped = app
    release = threading.Event()
    jobs.train = held(shipped, release)
    page = open_view(browser, url, DESKTOP, "Memory test")
    label = page.get_by_text(re.compile("^Retrain the three tiny models now")).inner_text()
    assert "under half a minute on a free server; stopped at 60 s, and if you leave the page" in label  # up front
    start_retraining(page)
    line = status(page, r"^Retraining the three tiny models: [1-9]\d?% done \(step \d+\), \d+ s so far")
    assert "It stops if it runs past 60 s" in line and page.locator("progress").filter(visible=True).count() == 1
    page.screenshot(path=ARTIFACTS / "inside-retrain-running-desktop.png", full_page=True)

    other = open_view(browser, url, PHONE, "Memory test")  # another visitor, on a phone
    start_retraining(other)
    status(other, r"^Another visitor is retraining the models right now \(\d+% done")
    chart = memory_chart(other, SHIPPED_TITLE)  # the shipped models' plot, not an "Error" badge
    assert chart["legend"] == ["rnn", "gru", "lstm"] and len(chart["lines"]) == 3 and error_badges(other) == 0
    other.screenshot(path=ARTIFACTS / "inside-retrain-refused-phone.png", full_page=True)

    page = open_view(browser, url, DESKTOP, "Memory test", page=page)  # reloaded: the page finds it, unasked
    line = status(page, r"^Your retraining is still running: \d+% done")
    assert "another visitor" not in page.locator("body").inner_text().lower()
    page.screenshot(path=ARTIFACTS / "inside-retrain-reloaded-desktop.png", full_page=True)
    release.set()
    assert status(page, r"^Retrained now, in \d+ s").endswith("the plot shows the three new models.")
    chart = memory_chart(page, SHIPPED_TITLE + " (models retrained now)")
    assert chart["legend"] == ["rnn", "gru", "lstm"] and error_badges(page) == 0
    page.screenshot(path=ARTIFACTS / "inside-retrain-done-desktop.png", full_page=True)
    page.context.close()
    other.context.close()


def test_a_retraining_stops_when_its_page_is_closed(browser, app):
    url, jobs, shipped = app
    jobs.train = held(shipped, threading.Event())  # never done by itself
    page = open_view(browser, url, DESKTOP, "Memory test")
    start_retraining(page)
    status(page, r"^Retraining the three tiny models")
    job = jobs.running()
    page.context.close()  # the visitor closes the tab
    assert job.done.wait(GRACE + 15), "the retraining went on after its page was closed"
    assert job.stopped == "its page was closed"


def test_a_retraining_past_its_budget_keeps_the_shipped_plot(browser, app):
    url, jobs, shipped = app
    jobs.train, jobs.budget = held(shipped, threading.Event()), 1
    try:
        page = open_view(browser, url, PHONE, "Memory test")
        start_retraining(page)
        line = status(page, r"^The retraining stopped after \d+ s")
    finally:
        jobs.budget = 60
    assert "it ran past its 1 s budget" in line and line.endswith("The shipped models are unchanged; their plot:")
    assert memory_chart(page, SHIPPED_TITLE)["legend"] == ["rnn", "gru", "lstm"] and error_badges(page) == 0
    page.screenshot(path=ARTIFACTS / "inside-retrain-stopped-phone.png", full_page=True)
    page.context.close()


# What the chart's rule and label draw, and whether every line of its title fits inside the chart.
MEMORY_CHART_JS = """() => { const c = [...document.querySelectorAll('.chart')].find(c => c.offsetParent);
    const svg = c.querySelector('svg.marks'), width = svg.getBoundingClientRect().width;
    const rule = [...svg.querySelectorAll('.mark-rule.role-mark line')].map(l => l.getBoundingClientRect().width);
    const labels = [...svg.querySelectorAll('.mark-text.role-mark text')].map(t => t.textContent);
    const titles = [...svg.querySelectorAll('.role-title text')].map(t => t.getBoundingClientRect().width);
    return {width, rule, labels, widest_title: Math.max(...titles)}; }"""


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_the_memory_chart_draws_chance_and_names_the_lines_that_coincide(browser, app, size):
    url, _, _ = app
    page = open_view(browser, url, DESKTOP if size == "desktop" else PHONE, "Memory test")
    page.get_by_role("button", name="Run the memory test").click()
    chart = memory_chart(page, SHIPPED_TITLE)
    assert "(a guess would get 33%: the dashed line)" in chart["title"]
    assert "gru and lstm coincide: one line hides the other" in chart["title"]  # both at 100% at every gap
    assert len(chart["lines"]) == 3 and len({line["dash"] for line in chart["lines"]}) == 3
    drawn = page.evaluate(MEMORY_CHART_JS)
    assert drawn["labels"] == ["a guess: 33%"] and len(drawn["rule"]) == 1
    assert drawn["rule"][0] > 0.7 * drawn["width"]  # across the plot
    assert drawn["widest_title"] <= drawn["width"]  # every line of the takeaway fits, on a phone too
    page.screenshot(path=ARTIFACTS / f"inside-memory-chance-{size}.png", full_page=True)
    page.context.close()


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_gates_stripe_the_text_beside_the_equations(browser, app, size):
    url, _, _ = app
    page = open_view(browser, url, DESKTOP if size == "desktop" else PHONE, "Gates")
    page.get_by_role("button", name="Show gates").click()
    heat = page.locator(".charrnn-gate-text").first
    heat.wait_for(timeout=60_000)
    text = page.get_by_label("Text to look at").input_value()
    assert heat.locator("span[title]").count() == len(text) and heat.locator("i").count() == 3 * len(text)
    assert re.search(r"from the top:\s*input\s*forget\s*output", page.locator(".charrnn-legend").first.inner_text())
    assert re.search(r"its forget gate averages 0\.\d\d: it keeps about \d+% of its memory", page.inner_text("body"))
    equations = page.locator(".charrnn-equations").first
    assert "One step of the LSTM" in equations.inner_text() and equations.locator("sub").count() > 10
    eq, hm = equations.bounding_box(), heat.bounding_box()
    if size == "desktop":  # beside the gates
        assert eq["x"] > hm["x"] + hm["width"] - 1 and eq["y"] < hm["y"] + hm["height"]
    else:  # under them, as wide as the phone allows
        assert eq["y"] >= hm["y"] + hm["height"] - 1 and hm["width"] <= PHONE["width"]
    character = heat.locator("span[title]").nth(12)
    character.tap() if size == "phone" else character.click()
    tip = page.evaluate("getComputedStyle(document.activeElement, '::after').content")
    assert re.search(r"input \d\.\d\d, forget \d\.\d\d, output \d\.\d\d", tip)
    page.screenshot(path=ARTIFACTS / f"inside-gates-{size}.png")  # the window, with the tapped value at its foot
    page.screenshot(path=ARTIFACTS / f"inside-gates-full-{size}.png", full_page=True)
    page.context.close()
