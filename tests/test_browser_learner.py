"""A newcomer's first minutes in a real headless Chromium (issue 26): the landing's route through the lesson, every
tab one tap away on a phone, the Train tab's minimum and an error that leaves its controls alone, and the line
each Inside chart says about its own data. Screenshots go to tests/artifacts/learner-*.png."""

import re

import pytest

from tests.test_browser import (ARTIFACTS, browser, charts, pytestmark,  # noqa: F401 - fixtures, the same skip
                                shipped_app_url)

DESKTOP, PHONE = {"width": 1366, "height": 900}, {"width": 390, "height": 844}


def open_page(browser, url, viewport):
    page = browser.new_page(viewport=viewport)
    page.goto(url, wait_until="load", timeout=90_000)
    page.get_by_role("tab", name="Generate").wait_for(timeout=90_000)
    return page


# Whether every line of every visible chart's title is as narrow as its chart (a Vega title does not wrap).
TITLES_FIT_JS = """() => [...document.querySelectorAll('.chart')].filter(c => c.offsetParent).every(c => {
    const svg = c.querySelector('svg.marks'), width = svg.getBoundingClientRect().width;
    return [...svg.querySelectorAll('.role-title text')].every(t => t.getBoundingClientRect().width <= width); })"""


def visible_tabs(page) -> list[str]:
    return [tab.inner_text().strip() for tab in page.get_by_role("tab").all() if tab.is_visible()]


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_landing_route_and_every_tab_one_tap_away(browser, shipped_app_url, size):
    page = open_page(browser, shipped_app_url, DESKTOP if size == "desktop" else PHONE)
    intro = page.locator("text=Start here").locator("xpath=ancestor::div[contains(@class,'prose')][1]")
    route = intro.inner_text()
    assert "why gated cells beat a plain RNN" in page.locator("h1").first.inner_text()
    steps = ["Compare cells", "Inside > Gradient flow", "Inside > Memory test", "Inside > Gates", "Train"]
    assert [route.index(step) for step in steps] == sorted(route.index(step) for step in steps)
    page.screenshot(path=ARTIFACTS / f"learner-landing-{size}.png")
    assert visible_tabs(page) == ["Generate", "Write", "Compare cells", "Inside", "Train"]
    assert not any(menu.is_visible() for menu in page.locator(".overflow-menu").all())  # no "⋯" anywhere
    if size == "phone":  # Generate's settings come before the (empty) output box
        model_top = page.locator(".controls").first.bounding_box()["y"]
        output_top = page.locator(".sample-box").first.bounding_box()["y"]
        assert model_top < output_top
    page.get_by_role("tab", name="Inside").click()
    views = ["Surprise", "Neurons", "Gradient flow", "Gates", "Memory test"]
    page.get_by_role("tab", name="Memory test").wait_for(timeout=30_000)
    assert visible_tabs(page)[5:] == views
    assert not any(menu.is_visible() for menu in page.locator(".overflow-menu").all())
    page.screenshot(path=ARTIFACTS / f"learner-inside-{size}.png", full_page=True)
    page.close()


def test_train_states_the_minimum_and_a_short_text_leaves_the_controls(browser, shipped_app_url):
    page = open_page(browser, shipped_app_url, DESKTOP)
    page.get_by_role("tab", name="Train").click()
    box = page.get_by_label(re.compile(r"Paste your text \(at least 1,210 characters"))
    box.wait_for(timeout=30_000)
    assert not page.get_by_label("Parameters (e.g. 500k, 2M)").is_visible()  # only for custom
    box.fill("far too short")
    page.get_by_role("button", name="Preview the text").click()
    toast = page.locator(".toast-body").filter(has_text="training needs at least 1,210")
    toast.first.wait_for(timeout=30_000)
    page.wait_for_timeout(500)
    page.screenshot(path=ARTIFACTS / "learner-train-error.png", full_page=True)
    sizes = page.locator("[data-testid=dataframe], .table-container").filter(visible=True).first
    assert {"tiny", "small", "medium"} <= set(sizes.inner_text().split())
    assert page.get_by_role("radio", name="small").is_checked()
    # a failed output shows a red "Error" badge: at most the preview's, none on the Size radio or the sizes table
    badges = page.locator("[data-testid=status-tracker]").filter(has_text="Error").filter(visible=True)
    assert badges.count() <= 1
    page.close()


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_each_inside_chart_says_what_to_notice(browser, shipped_app_url, size):
    page = open_page(browser, shipped_app_url, DESKTOP if size == "desktop" else PHONE)
    page.get_by_role("tab", name="Inside").click()
    # each line as the chart draws it (a title of several lines reads as one, joined by spaces); the Gates view
    # says its line above its text (tests/test_browser_inside.py)
    expected = {"Gradient flow": ("Measure", r"Share of the k = 0 gradient left at k = 60:\s*rnn [\d.e+-]+, "
                                             r"gru [\d.e+-]+, lstm [\d.e+-]+\s*rnn cannot learn from that far: "
                                             r"it vanished"),
                "Memory test": ("Run the memory test", r"After 60 rainy days: rnn \d+%, gru \d+%, lstm \d+%\s*"
                                                       r"\(a guess would get 33%: the dashed line\)")}
    for view, (button, line) in expected.items():
        page.get_by_role("tab", name=view).click()
        page.get_by_role("button", name=button).click()
        page.wait_for_function("re => [...document.querySelectorAll('.chart')].some(c => c.offsetParent && "
                               "new RegExp(re).test([...c.querySelectorAll('svg text')].map(t => t.textContent)"
                               ".join(' ')))", arg=line, timeout=120_000)
        assert any(re.search(line, chart["title"]) for chart in charts(page))
        assert page.evaluate(TITLES_FIT_JS)  # no line of a title is cut off, on a phone either
        page.screenshot(path=ARTIFACTS / f"learner-{view.lower().replace(' ', '-')}-{size}.png", full_page=True)
    page.close()


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_empty_outputs_say_what_comes_and_the_words_are_plain(browser, shipped_app_url, size):
    page = open_page(browser, shipped_app_url, DESKTOP if size == "desktop" else PHONE)
    card = page.locator(".prose").filter(has_text="made by").first
    card.wait_for(timeout=30_000)
    assert "bits per character" in card.inner_text() and "tiny_shakespeare" in card.inner_text()
    assert "nats" not in card.inner_text() and "../" not in card.inner_text()

    page.get_by_role("tab", name="Compare cells").click()
    note = page.get_by_text("Press Compare: once the three texts are written")
    note.wait_for(timeout=30_000)
    assert "validation bits per character" in page.locator(".table-container").filter(visible=True).first.inner_text()
    # the scores fill after the texts: a line says they are being computed (watched at every change of the page,
    # as it may last under a second: a timer could miss it on a loaded machine)
    page.evaluate("window.seen = new Set(); const look = () => { for (const line of ['scored here once', "
                  "'scoring each text']) if (document.body.innerText.includes(line)) seen.add(line) }; look(); "
                  "new MutationObserver(look).observe(document.body, {subtree: true, childList: true, "
                  "characterData: true})")
    page.get_by_role("button", name="Compare", exact=True).click()
    page.wait_for_function("[...document.querySelectorAll('.table-container')].some(t => t.offsetParent && "
                           "/bits per character under lstm[\\s\\S]*\\d\\.\\d/.test(t.innerText))", timeout=120_000)
    assert page.evaluate("[...seen]") == ["scored here once", "scoring each text"]
    note.wait_for(state="hidden", timeout=30_000)
    page.screenshot(path=ARTIFACTS / f"learner-compare-scored-{size}.png", full_page=True)

    page.get_by_role("tab", name="Train").click()
    page.get_by_text("Press Train: the training and validation curves appear here").wait_for(timeout=30_000)

    page.get_by_role("tab", name="Inside").click()
    notes = {"Surprise": "Press Show surprise", "Neurons": "Press Show unit", "Gradient flow": "Press Measure",
             "Gates": "Press Show gates", "Memory test": "Press Run the memory test"}
    for view, line in notes.items():
        page.get_by_role("tab", name=view).click()
        page.get_by_text(line).wait_for(timeout=30_000)
    page.get_by_role("tab", name="Gates").click()
    page.get_by_role("button", name="Show gates").click()
    page.get_by_text(notes["Gates"]).wait_for(state="hidden", timeout=60_000)
    page.get_by_text("share of text open (above 0.9)").first.wait_for(timeout=60_000)
    page.screenshot(path=ARTIFACTS / f"learner-gates-words-{size}.png", full_page=True)
    page.close()


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_surprise_has_a_colour_scale_and_a_tap_shows_a_character(browser, shipped_app_url, size):
    page = open_page(browser, shipped_app_url, DESKTOP if size == "desktop" else PHONE)
    page.get_by_role("tab", name="Inside").click()
    page.get_by_role("button", name="Show surprise").click()
    legend = page.locator(".charrnn-legend").first
    legend.wait_for(timeout=60_000)
    assert re.search(r"surprise in bits.*0\s*8", legend.inner_text(), re.S)
    character = page.locator(".charrnn-heat span[title]").nth(12)
    character.click()  # a tap on a touch screen focuses the same way
    tip = page.evaluate("getComputedStyle(document.activeElement, '::after').content")
    assert "bits. Expected:" in tip
    page.screenshot(path=ARTIFACTS / f"learner-surprise-tap-{size}.png", full_page=True)
    page.close()
