"""The room simulator speaks Streamlit's protocol the way the browser does: on the landing view it
sees the same page, the same charts with the same titles and the same metrics as headless Chromium."""

from __future__ import annotations

import asyncio

import pytest

from benchmarks.browser import CHROMIUM, CHROMIUM_ARGS, require_chromium
from benchmarks.room import PageRun, StreamlitSession

pytestmark = pytest.mark.e2e

CHART = '[data-testid="stPlotlyChart"]'
ERROR = '[data-testid="stException"]'

require_chromium()


async def _simulate(url: str, then: str | None = None) -> list[PageRun]:
    async with StreamlitSession(url, timeout_s=180) as session:
        runs = [await session.open()]
        if then is not None:
            runs.append(await session.switch_page(then))
        return runs


def _seen_by_chromium(page) -> dict:
    """What a finished page shows in the browser, in the simulator's terms."""
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=180_000)
    return {
        "charts": page.locator(CHART).count(),
        "titles": [t.strip() for t in page.locator(f"{CHART} .js-plotly-plot .gtitle").all_text_contents()],
        "metrics": page.locator('[data-testid="stMetric"]').count(),
        "heading": page.locator('[data-testid="stMain"] h1').first.text_content().strip(),
        "exceptions": page.locator(ERROR).count(),
    }


def _seen_by_simulator(run: PageRun) -> dict:
    return {
        "charts": run.charts,
        "titles": run.chart_titles,
        "metrics": run.count("metric"),
        "heading": run.page_heading,
        "exceptions": len(run.exceptions),
    }


def _wait_for_charts(page, n: int) -> None:
    page.wait_for_function(
        "(n) => document.querySelectorAll('.js-plotly-plot .gtitle').length >= n", arg=n, timeout=180_000
    )


def test_simulator_and_chromium_see_the_same_landing_page_and_the_same_page_after_navigation(server):
    landing, layers = asyncio.run(_simulate(server, then="layers"))
    assert landing.status == layers.status == "finished"
    assert landing.charts >= 1 and layers.charts > landing.charts, "the Layers page draws several charts"

    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(server)
        _wait_for_charts(page, landing.charts)
        browser_landing = _seen_by_chromium(page)
        page.locator('[data-testid="stSidebarNav"]').get_by_text("Layers", exact=True).click()
        page.wait_for_function(
            "(t) => [...document.querySelectorAll('[data-testid=stMain] h1')].some(e => e.textContent.includes(t))",
            arg="Layers",
            timeout=180_000,
        )
        _wait_for_charts(page, layers.charts)
        browser_layers = _seen_by_chromium(page)
        browser.close()

    print(f"\nlanding: {browser_landing}\nlayers: {browser_layers}")
    assert _seen_by_simulator(landing) == browser_landing
    assert _seen_by_simulator(layers) == browser_layers
    assert browser_landing["exceptions"] == browser_layers["exceptions"] == 0
