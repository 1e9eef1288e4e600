"""The whole app in a real browser: Playwright driving Debian's headless Chromium against `streamlit run`."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from benchmarks.browser import CHROMIUM, CHROMIUM_ARGS, require_chromium, wait_for_title

pytestmark = pytest.mark.e2e

CHART = '[data-testid="stPlotlyChart"] .js-plotly-plot'
ERROR = '[data-testid="stException"]'

require_chromium()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def chart_title(page) -> str:
    return page.locator(f"{CHART} .gtitle").first.text_content()


def wait_for_charts(page, n: int, timeout_ms: int = 120_000) -> None:
    page.wait_for_function(
        "(n) => document.querySelectorAll('.js-plotly-plot .gtitle').length >= n", arg=n, timeout=timeout_ms
    )


def assert_no_exception(page) -> None:
    assert page.locator(ERROR).count() == 0, page.locator(ERROR).first.text_content()


def test_a_deep_link_is_the_first_request_to_a_fresh_server(server, browser):
    """Streamlit runs a `pages/` folder old-style until a session calls st.navigation; a shared
    link to a page must still open with the router, sidebar and config."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{server}/layers?model=moons-mlp&n=4&methods=magnitude")
    wait_for_title(page, "Weight histograms")
    assert_no_exception(page)
    sidebar = page.locator('[data-testid="stSidebar"]')
    assert sidebar.get_by_text("Over-parameterised 2-256-256-2 MLP", exact=False).count() == 1, "the linked model"
    page.close()


LEGEND_JS = """(model) => {
    const chart = [...document.querySelectorAll('.js-plotly-plot')]
        .find(c => [...c.querySelectorAll('.gtitle')].some(t => t.textContent.includes(model)));
    return chart ? [...chart.querySelectorAll('.legendtext')].map(e => e.textContent).sort() : [];
}"""


def legend_of(page, model: str) -> list[str]:
    """The legend entries (sorted) of the chart whose title names ``model``."""
    return page.evaluate(f"({LEGEND_JS})", model)


def add_method(page, sidebar, label: str, name: str) -> None:
    """Pick a method in the sidebar, again if the click landed while a rerun redrew the sidebar."""
    for _ in range(3):
        sidebar.locator('[data-testid="stMultiSelect"]').first.click()
        page.get_by_role("option", name=label).click()
        page.keyboard.press("Escape")
        try:
            page.wait_for_function("(n) => location.href.includes(n)", arg=name, timeout=20_000)
            return
        except PlaywrightTimeout:
            continue


def test_explore_change_visit_every_page_and_share(server, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    start = time.perf_counter()
    page.goto(f"{server}/?n=8")
    page.wait_for_selector(CHART, timeout=120_000)
    first_chart_s = time.perf_counter() - start
    assert "digits-mlp" in chart_title(page)
    assert_no_exception(page)

    # Change the model in the sidebar: the chart follows and the URL records it.
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.locator('[data-testid="stSelectbox"]').first.click()
    page.get_by_role("option", name="cancer-mlp").click()
    start = time.perf_counter()
    wait_for_title(page, "cancer-mlp")
    change_s = time.perf_counter() - start
    assert "model=cancer-mlp" in page.url

    # Add a method: its line joins the legend of the model's chart. (Entries are read from the chart
    # whose title names the model: while a rerun redraws, the previous chart can still be in the page.)
    before = legend_of(page, "cancer-mlp")
    assert "Structured L2" not in before
    add_method(page, sidebar, "Structured L2", "structured-l2")
    page.wait_for_function(f"(m) => ({LEGEND_JS})(m).includes('Structured L2')", arg="cancer-mlp", timeout=120_000)
    assert legend_of(page, "cancer-mlp") == sorted([*before, "Structured L2"])
    assert "structured-l2" in page.url
    assert_no_exception(page)

    # Visit every page from the navigation.
    for label, expected in (
        ("Layers", "Weight histograms"),
        ("Export", "Size of each file"),
        ("Sensitivity", "Sensitivity heatmap"),
        ("Size & speed", "Parameters that must be stored"),
    ):
        page.locator('[data-testid="stSidebarNav"]').get_by_text(label, exact=True).click()
        wait_for_title(page, expected)
        assert_no_exception(page)
        assert "model=cancer-mlp" in page.url, "the shared config survives page changes"

    # A shared link reopens the same view in a fresh browser session.
    shared = page.url
    wait_for_charts(page, 4)  # parameters, latency, file sizes, and the sparse-kernel break-even
    titles = sorted(page.locator(f"{CHART} .gtitle").all_text_contents())
    other = browser.new_page(viewport={"width": 1400, "height": 1000})
    other.goto(shared)
    wait_for_charts(other, 4)
    assert sorted(other.locator(f"{CHART} .gtitle").all_text_contents()) == titles
    assert_no_exception(other)

    # A link with bad values opens with defaults and a notice, never an exception.
    other.goto(f"{server}/?model=nope&methods=bogus&n=0")
    wait_for_title(other, "digits-mlp")
    assert other.get_by_text("nope", exact=False).count() > 0
    assert_no_exception(other)
    print(f"\ntime to first chart: {first_chart_s:.2f} s; change of model to updated chart: {change_s:.2f} s")
