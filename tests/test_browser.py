"""A real headless Chromium on the real app with the shipped checkpoints: what a person sees.

Every tab and sub-view is run, and what is checked is what the page draws: the lines and the legend of each
chart as rendered (the Vega view's SVG marks, not the data sent), table headers, status lines. A screenshot of
each view is saved under tests/artifacts/ at desktop width (name.png) and phone width (name-phone.png); the
README's screenshots come from here.
"""

import json
import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
DESKTOP, PHONE = {"width": 1400, "height": 1000}, {"width": 400, "height": 860}

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (apt-get install chromium)"),
]

# Each visible chart (a gr.Plot with elem_classes="chart") as drawn: its title, its legend's labels, and its
# lines (one SVG path per drawn series, with the path's colour and dash).
CHARTS_JS = """() => [...document.querySelectorAll('.chart')].filter(c => c.offsetParent).map(c => {
    const svg = c.querySelector('svg.marks');
    if (!svg) return null;
    const texts = sel => [...svg.querySelectorAll(sel)].map(t => t.textContent.trim()).filter(Boolean);
    const lines = [...svg.querySelectorAll('.mark-line path')].filter(p => (p.getAttribute('d') || '').length > 20)
        .map(p => ({stroke: p.getAttribute('stroke'), dash: p.getAttribute('stroke-dasharray') || '',
                    width: p.getBoundingClientRect().width}));
    return {title: texts('.role-title-text text, .role-title-subtitle text').join(' '),
            legend: texts('.role-legend-label text'), axes: texts('.role-axis-label text'), lines};
})"""

# Header cells of each visible table, by the table's label.
TABLES_JS = """() => Object.fromEntries([...document.querySelectorAll('.table-container, [data-testid=dataframe]')]
    .filter(t => t.offsetParent).map(t => {
        const block = t.closest('.block');
        const label = block ? (block.querySelector('[data-testid=block-info], label, .label')?.textContent || '') : '';
        return [label.trim(), [...t.querySelectorAll('thead th')].map(th => th.textContent.replace('⋮', '').trim()).filter(Boolean)];
    }))"""


@pytest.fixture(scope="module")
def shipped_app_url():
    from charrnn.app.page import build_app
    from charrnn.app.texts import CSS

    demo = build_app()
    demo.queue(default_concurrency_limit=4)
    _, url, _ = demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, css=CSS)
    yield url
    demo.close()


@pytest.fixture(scope="module")
def browser():
    """One headless Debian Chromium for a module's tests (the other browser tests import this fixture)."""
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def page(shipped_app_url, browser):
    page = browser.new_page(viewport=DESKTOP)
    # not "networkidle": the page keeps a heartbeat connection open (the app has session state)
    page.goto(shipped_app_url, wait_until="load", timeout=90_000)
    page.get_by_role("button", name="Generate").wait_for(timeout=90_000)
    yield page
    page.close()


def charts(page) -> list[dict]:
    return [c for c in page.evaluate(CHARTS_JS) if c]


def wait_for_charts(page, legends: list[list[str]], timeout=60_000) -> list[dict]:
    """Wait until the visible charts have exactly these legends (in order), then return them."""
    page.wait_for_function(f"want => JSON.stringify(({CHARTS_JS})().filter(c => c).map(c => c.legend)) === want",
                           arg=json.dumps(legends, separators=(",", ":")), timeout=timeout)
    return charts(page)


def assert_one_line_per_series(chart: dict):
    """Every name in the legend has its own drawn line, in its own colour."""
    assert len(chart["lines"]) == len(chart["legend"]), chart
    assert len({line["stroke"] for line in chart["lines"]}) == len(chart["legend"]), chart
    assert all(line["width"] > 20 for line in chart["lines"]), chart  # drawn across the plot, not a dot


def tables(page) -> dict[str, list[str]]:
    return page.evaluate(TABLES_JS)


def assert_real_headers(page, expected: dict[str, list[str]]):
    found = tables(page)
    for label, headers in expected.items():
        match = [h for name, h in found.items() if name.startswith(label)]
        assert match and match[0][:len(headers)] == headers, (label, found)
    assert all(h[:3] != ["1", "2", "3"] for h in found.values()), found


def visible(page, selector: str):
    return page.locator(f"{selector} >> visible=true")


def shoot(page, name: str):
    """A screenshot of the whole page. The window is made as tall as the page first: a full-page screenshot of
    a shorter window leaves the charts below the fold blank."""
    size = page.viewport_size
    page.set_viewport_size({"width": size["width"], "height": page.evaluate("document.body.scrollHeight")})
    page.wait_for_timeout(400)  # let the charts finish their layout
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    page.set_viewport_size(size)


def choose(page, label: str, option: str):
    """Pick an option of the visible dropdown with this label, as a person does."""
    box = visible(page, f"input[role=combobox][aria-label='{label}']").first
    box.click()
    page.get_by_role("option", name=option, exact=False).filter(has_text=re.compile(rf"^\W*{option}$")).first.click()
    page.keyboard.press("Escape")


def dropdown_options(page, label: str) -> list[str]:
    visible(page, f"input[role=combobox][aria-label='{label}']").first.click()
    options = visible(page, "[role=option]").all_text_contents()
    page.keyboard.press("Escape")
    return [o.strip("✓ ") for o in options]


def sample_texts(page) -> list[str]:
    return page.evaluate("() => [...document.querySelectorAll('.sample-box textarea')].filter(t => t.offsetParent)"
                         ".map(t => t.value)")


# Generate -----------------------------------------------------------------------------------------------------
def test_generate_shows_the_text_growing_and_the_seed_it_used(page):
    visible(page, "label:has-text('Seed') input").first.fill("-1")
    visible(page, "textarea[placeholder^='Start of the text']").first.fill("JULIET:\n")
    # long enough to be seen growing: 600 characters can be done before the first look (~0.2 s here)
    visible(page, "input[aria-label='number input for Length (characters)']").first.fill("3000")
    page.get_by_role("button", name="Generate").click()
    page.wait_for_function("() => { const t = [...document.querySelectorAll('.sample-box textarea')]"
                           ".filter(t => t.offsetParent)[0]; return t && t.value.startsWith('JULIET:') "
                           "&& t.value.length > 20; }", timeout=30_000)
    early = len(sample_texts(page)[0])
    status = visible(page, "text=/characters per sample in/").first
    status.wait_for(timeout=60_000)
    assert len(sample_texts(page)[0]) == 3000 + len("JULIET:\n") > early
    assert re.search(r"seed \d+\.", status.text_content())  # -1 drew a seed: the status says which
    shoot(page, "generate")


def test_stop_leaves_a_status_line_naming_the_seed(page):
    visible(page, "label:has-text('Seed') input").first.fill("1234")
    visible(page, "input[aria-label='number input for Length (characters)']").first.fill("5000")
    page.get_by_role("button", name="Generate").click()
    visible(page, "text=/^Seed 1234\\./").first.wait_for(timeout=30_000)  # it is writing
    page.get_by_role("button", name="Stop").click()
    status = visible(page, ".prose:has-text('Stopped')").first
    status.wait_for(timeout=10_000)
    assert "Seed 1234" in status.text_content()
    assert len(sample_texts(page)[0]) < 5000


# Compare ------------------------------------------------------------------------------------------------------
def test_compare_draws_every_chosen_model(page):
    page.get_by_role("tab", name="Compare cells").click()
    # before the first run: real headers, and a curve per model already
    assert_real_headers(page, {"The models": ["model", "cell", "parameters"], "Each generated": ["text written by"]})
    for chart in wait_for_charts(page, [["rnn", "gru", "lstm"]] * 2):
        assert_one_line_per_series(chart)
    page.get_by_role("button", name="Compare", exact=True).click()
    page.wait_for_function("() => { const ts = [...document.querySelectorAll('.sample-box textarea')]"
                           ".filter(t => t.offsetParent); return ts.length === 3 && ts.every(t => t.value.length "
                           ">= 400); }", timeout=90_000)
    # The scores are in once their table shows a number: its headers show long before on a busy machine, and
    # the model pickers' events below wait until this event ends.
    page.wait_for_function(r"() => [...document.querySelectorAll('.table-container')].some(c => c.offsetParent && "
                           r"c.innerText.includes('text written by') && /\n\d+\.\d+/.test(c.innerText))",
                           timeout=120_000)
    assert_real_headers(page, {"Each generated": ["text written by", "bits per character under rnn", "bits per character under gru"]})
    assert len(re.findall(r"\b3,3\d\d,\d\d\d\b", page.locator("body").inner_text())) >= 3  # as on the cards
    shoot(page, "compare")
    # a model that is not one of the first three (the data of a user's model looks the same)
    visible(page, "input[role=combobox][aria-label='Model']").nth(2).click()  # the third column's model
    visible(page, "[role=option]:has-text('lstm_best')").first.click()
    for chart in wait_for_charts(page, [["rnn", "gru", "lstm_best"]] * 2):
        assert_one_line_per_series(chart)
    shoot(page, "compare-lstm_best")


# Inside -------------------------------------------------------------------------------------------------------
def test_surprise_heat_map_and_table(page):
    page.get_by_role("tab", name="Inside").click()
    assert_real_headers(page, {"Bits per character": ["model", "bits per character"]})
    visible(page, "label:has-text('Show RNN, GRU and LSTM')").first.click()
    page.get_by_role("button", name="Show surprise").click()
    page.locator(".charrnn-heat span").first.wait_for(timeout=60_000)
    assert page.locator(".charrnn-heat >> visible=true").count() == 3
    shoot(page, "inside-surprise")


def test_neurons_keep_the_chosen_layer_and_state(page):
    page.get_by_role("tab", name="Neurons").click()
    assert_real_headers(page, {"Units": ["feature", "layer", "state", "unit"]})
    page.get_by_role("button", name="Show unit").click()
    title = visible(page, "text=/lstm, layer \\d, \\w+ unit/").first
    title.wait_for(timeout=60_000)
    assert "layer 1, hidden unit" in title.text_content()  # -1 = the last layer; 'hidden' as chosen
    shoot(page, "inside-neurons")


def test_gradient_flow_draws_three_lines_and_stops_at_underflow(page):
    page.get_by_role("tab", name="Gradient flow").click()
    assert_real_headers(page, {"Clipping": ["model", "cut above (gradient size)", "clipped steps"]})
    slider = visible(page, "input[aria-label='number input for Largest distance k']").first
    slider.fill("200")
    slider.press("Enter")
    page.get_by_role("button", name="Measure").click()
    flow, norms = wait_for_charts(page, [["rnn", "gru", "lstm"]] * 2, timeout=90_000)
    for chart in (flow, norms):
        assert_one_line_per_series(chart)
    shoot(page, "inside-gradient-flow")
    # the RNN's gradient underflows float32 within 200 steps: said so, not drawn as a value of 1e-30
    assert "-30" not in flow["axes"] and re.search(r"float32.*rnn from k = \d+", flow["title"])


def test_gates_follow_the_model_from_lstm_to_gru(page):
    page.get_by_role("tab", name="Gates").click()
    assert "rnn" not in dropdown_options(page, "Model (LSTM or GRU)")
    page.get_by_role("button", name="Show gates").click()
    visible(page, "text=/lstm, layer 0, unit 0: its forget gate averages/").first.wait_for(timeout=60_000)
    assert re.search(r"from the top:\s*input\s*forget\s*output", visible(page, ".charrnn-legend").first.inner_text())
    assert_real_headers(page, {"Mean gate activations": ["layer", "gate", "mean"]})
    choose(page, "Model (LSTM or GRU)", "gru")
    page.get_by_role("button", name="Show gates").click()
    visible(page, "text=/gru, layer 0, unit 0: its update gate averages/").first.wait_for(timeout=30_000)
    assert re.search(r"from the top:\s*reset\s*update\s*\(", visible(page, ".charrnn-legend").first.inner_text())
    assert "One step of the GRU" in visible(page, ".charrnn-equations").first.inner_text()
    shoot(page, "inside-gates")


def test_memory_test_draws_rnn_gru_and_lstm_all_visible(page):
    page.get_by_role("tab", name="Memory test").click()
    page.get_by_role("button", name="Run the memory test").click()
    [chart] = wait_for_charts(page, [["rnn", "gru", "lstm"]])
    assert_one_line_per_series(chart)
    assert len({line["dash"] for line in chart["lines"]}) == 3  # lines on top of each other stay apart
    assert not visible(page, "label:has-text('Text to look at')").count()  # the test reads no text
    shoot(page, "inside-memory")


def test_every_view_at_phone_width(page):
    """The same views on a phone: screenshots to look at, and each chart still draws its lines."""
    for tab, sub in (("Generate", None), ("Compare cells", None), ("Inside", "Surprise"), ("Inside", "Neurons"),
                     ("Inside", "Gradient flow"), ("Inside", "Gates"), ("Inside", "Memory test")):
        page.set_viewport_size(DESKTOP)  # a phone folds the sub-tabs into a menu: pick them at desktop width
        page.get_by_role("tab", name=tab).click()
        if sub:
            page.get_by_role("tab", name=sub).click()
        page.set_viewport_size(PHONE)
        page.wait_for_timeout(400)  # charts redraw at the new width
        assert all(len(c["lines"]) == len(c["legend"]) for c in charts(page))
        shoot(page, f"{(sub or tab).lower().replace(' ', '-')}-phone")
    page.set_viewport_size(DESKTOP)
