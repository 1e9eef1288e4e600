"""Workshop mode end to end: teacher links in Chromium (hidden controls, QR code, presenter mode)
and a room of concurrent protocol sessions whose guesses the teacher counts exactly."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import time
from pathlib import Path

import pytest

from benchmarks.browser import CHROMIUM, CHROMIUM_ARGS
from benchmarks.poll import measure

pytestmark = pytest.mark.e2e

SCREENSHOTS = Path(os.environ.get("PRUNELAB_SCREENSHOTS", "/tmp/prunelab-screenshots"))


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("no Chromium found: install it with `apt-get install -y chromium chromium-driver`")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _settle(page, timeout_ms: int = 180_000) -> None:
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout_ms)
    time.sleep(1)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout_ms)
    time.sleep(1)


def test_a_teacher_link_hides_the_sidebar_and_locks_controls(server, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{server}/?hide=sidebar&n=5")
    _settle(page)
    # The style arrives with the script's first elements; on a fresh server the first run also
    # starts the router, so wait for it (a sidebar never hidden still fails here).
    page.locator('[data-testid="stSidebar"]').wait_for(state="hidden", timeout=60_000)
    assert not page.locator('[data-testid="stSidebar"]').is_visible(), "hide=sidebar hides the sidebar"
    assert page.locator('[data-testid="stException"]').count() == 0
    page.goto(f"{server}/?hide=methods&lock=model&n=5")
    _settle(page)
    assert page.locator('[data-testid="stSidebar"]').is_visible()
    assert not page.locator(".st-key-w_methods").is_visible(), "hide=methods hides the methods"
    model = page.locator(".st-key-w_model")
    assert model.is_visible()
    assert model.evaluate("e => getComputedStyle(e).pointerEvents") == "none", "lock=model locks the model"
    page.close()


def test_the_teacher_page_shows_a_qr_code_and_presenter_mode_is_large_and_chromeless(server, browser):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1400})
    page.goto(f"{server}/teacher?lesson=n-m-sparsity")
    _settle(page)
    page.get_by_role("button", name="Open a room").click()
    _settle(page)
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=\"stImage\"] img')]"
        ".some(img => img.complete && img.naturalWidth > 100)",
        timeout=60_000,
    )  # the QR code image loaded and has a real size
    page.screenshot(path=str(SCREENSHOTS / "teacher.png"))
    link = page.locator('[data-testid="stCode"]', has_text="present=1").first.inner_text()
    page.close()

    presenter = browser.new_page(viewport={"width": 1400, "height": 1000})
    presenter.goto(link.strip().replace("http://localhost:8501", server))
    _settle(presenter)
    assert not presenter.locator('[data-testid="stSidebar"]').is_visible()
    assert not presenter.locator('header[data-testid="stHeader"]').is_visible()
    size = presenter.locator(".stMarkdown p").first.evaluate("e => parseFloat(getComputedStyle(e).fontSize)")
    assert size >= 22, f"presenter mode uses large type, not {size}px"
    presenter.get_by_role("button", name="Lock in my guess and reveal").click()
    presenter.wait_for_selector(".js-plotly-plot", timeout=180_000)
    presenter.screenshot(path=str(SCREENSHOTS / "presenter.png"))
    assert presenter.locator('[data-testid="stException"]').count() == 0
    presenter.close()


def test_an_attendee_on_a_phone_locks_in_a_guess_and_sees_the_reveal(server, browser):
    """The prediction and the reveal are a fragment: the answer reruns only that part of the page,
    and the browser shows the chart, the measurement and what the lesson teaches after it."""
    page = browser.new_page(viewport={"width": 390, "height": 844})
    page.goto(f"{server}/workshop?lesson=n-m-sparsity&hide=sidebar")
    _settle(page)
    assert page.locator(".js-plotly-plot").count() == 0, "nothing is revealed before the guess"
    assert page.get_by_text("The point:").count() == 0
    page.get_by_role("button", name="Lock in my guess and reveal").click()
    page.wait_for_selector(".js-plotly-plot", timeout=180_000)
    _settle(page)
    assert page.get_by_text("Measured by the engine").count() == 1
    assert page.get_by_text("The point:").count() == 1
    assert page.get_by_role("button", name="Guess again").count() == 1
    assert page.locator('[data-testid="stException"]').count() == 0
    page.close()


def test_a_room_of_concurrent_attendees_is_counted_exactly_and_a_second_room_apart(server):
    # Playwright's sync API keeps an event loop in this thread: run the room in a thread of its own.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        first, second = pool.submit(asyncio.run, measure(server, sessions=8, second=3, think_s=2.0)).result()
    assert first.problems == [] and second.problems == []
    assert first.counted == "8", f"the teacher of room {first.room} sees {first.counted} guesses, not 8"
    assert second.counted == "3", f"the teacher of room {second.room} sees {second.counted} guesses, not 3"
    assert len(first.reveal_s) == 8 and len(second.reveal_s) == 3, "every answer was revealed"
