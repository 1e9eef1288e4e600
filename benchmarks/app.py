"""App timings in a real browser: time to first chart (cold server and new session on a warm one),
and time from a change in the sidebar to the updated chart. Printed, never asserted."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CHART_TITLE = ".js-plotly-plot .gtitle"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_title(page, text: str) -> None:
    page.wait_for_function(
        "(t) => [...document.querySelectorAll('.js-plotly-plot .gtitle')].some(e => e.textContent.includes(t))",
        arg=text,
        timeout=180_000,
    )


def _pick_model(page, name: str) -> float:
    page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first.click()
    option = page.get_by_role("option", name=name)
    option.wait_for()
    start = time.perf_counter()  # before the click: the rerun may finish while click() returns
    option.click()
    _wait_title(page, name)
    return time.perf_counter() - start


def run() -> dict[str, float] | str:
    chromium = shutil.which("chromium")
    if chromium is None:
        return "skipped: no Chromium (apt-get install -y chromium chromium-driver)"
    from playwright.sync_api import sync_playwright

    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "app.py",
            "--server.headless",
            "true",
            "--server.port",
            str(port),
            "--browser.gatherUsageStats",
            "false",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ},
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                if urllib.request.urlopen(f"{url}_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.2)
        results = {}
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            start = time.perf_counter()
            page.goto(url)
            _wait_title(page, "digits-mlp")
            results["first chart, cold server (s)"] = time.perf_counter() - start
            results["change model, first time (s)"] = _pick_model(page, "digits-cnn")
            results["change model back, cached (s)"] = _pick_model(page, "digits-mlp")
            other = browser.new_page(viewport={"width": 1400, "height": 1000})
            start = time.perf_counter()
            other.goto(url)
            _wait_title(other, "digits-mlp")
            results["first chart, new session on a warm server (s)"] = time.perf_counter() - start
            results["change model, new model (s)"] = _pick_model(other, "cancer-mlp")
            browser.close()
        return results
    finally:
        server.terminate()
        server.wait(timeout=20)


def report(results: dict[str, float] | str) -> str:
    if isinstance(results, str):
        return f"App timings: {results}"
    lines = ["App timings in headless Chromium (targets: first chart < 3 s, change to chart < 2 s)"]
    lines += [f"  {name:<48}{value:>7.2f}" for name, value in results.items()]
    return "\n".join(lines)
