"""App timings in a real browser: time to first chart (cold server and new session on a warm one),
and time from a change in the sidebar to the updated chart. Printed, never asserted."""

from __future__ import annotations

import time

from benchmarks.browser import CHROMIUM, CHROMIUM_ARGS, streamlit_server, wait_for_title


def _pick_model(page, name: str) -> float:
    page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first.click()
    option = page.get_by_role("option", name=name)
    option.wait_for()
    start = time.perf_counter()  # before the click: the rerun may finish while click() returns
    option.click()
    wait_for_title(page, name)
    return time.perf_counter() - start


def _first_chart(browser, url: str):
    """A new page (a new session) and the seconds until its default chart is drawn."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    start = time.perf_counter()
    page.goto(url)
    wait_for_title(page, "digits-mlp")
    return page, time.perf_counter() - start


def run() -> dict[str, float] | str:
    if CHROMIUM is None:
        return "skipped: no Chromium (apt-get install -y chromium chromium-driver)"
    from playwright.sync_api import sync_playwright

    results = {}
    with streamlit_server() as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page, results["first chart, cold server (s)"] = _first_chart(browser, url)
        results["change model, first time (s)"] = _pick_model(page, "digits-cnn")
        results["change model back, cached (s)"] = _pick_model(page, "digits-mlp")
        other, results["first chart, new session on a warm server (s)"] = _first_chart(browser, url)
        results["change model, new model (s)"] = _pick_model(other, "cancer-mlp")
        browser.close()
    return results


def report(results: dict[str, float] | str) -> str:
    if isinstance(results, str):
        return f"App timings: {results}"
    lines = ["App timings in headless Chromium (targets: first chart < 3 s, change to chart < 2 s)"]
    lines += [f"  {name:<48}{value:>7.2f}" for name, value in results.items()]
    return "\n".join(lines)
