"""The Write tab in a real headless Chromium on the shipped models: type, take a suggestion, see the text grow and
new suggestions come for it."""

import re

import pytest

from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, DESKTOP, pytestmark, shipped_app_url  # noqa: F401

pytestmark = pytestmark  # the skip without chromium


def words_shown(page) -> list[str]:
    return [b.inner_text() for b in page.locator("[id^=write-word-]").all() if b.is_visible()]


def test_type_take_a_suggestion_and_get_new_ones(shipped_app_url):  # noqa: F811
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport=DESKTOP)
        page.goto(shipped_app_url, wait_until="load", timeout=90_000)
        page.get_by_role("tab", name="Write").click()
        box = page.locator("#write-text textarea")
        box.fill("ROMEO:\nI will")
        box.press_sequentially(" ", delay=50)
        # suggestions for "I will ": a word button labelled with its text and a percentage
        expect(page.locator("#write-word-1")).to_contain_text(re.compile(r"%"), timeout=30_000)
        page.wait_for_timeout(500)  # let the last keystroke's refresh land
        first = page.locator("#write-word-1").inner_text()
        before = words_shown(page)
        word = re.sub(r"\s+\S*%$", "", first).replace("␣", " ").replace("↵", "\n")  # the label less its chance
        assert word.strip() and len(before) >= 1

        page.locator("#write-word-1").click()
        expect(box).to_have_value("ROMEO:\nI will " + word, timeout=10_000)
        expect(page.locator("#write-word-1")).not_to_have_text(first, timeout=30_000)  # proposed again
        assert words_shown(page) != before

        box.focus()
        box.press("Tab")  # takes the best suggestion
        page.wait_for_function("() => document.querySelector('#write-text textarea').value.length > "
                               f"{len('ROMEO:' + chr(10) + 'I will ' + word)}", timeout=10_000)

        page.locator("#write-undo").click()
        expect(box).to_have_value("ROMEO:\nI will " + word, timeout=10_000)
        browser.close()
