"""Several app processes behind nginx (deploy/run_workshop.py), driven by headless Chromium.

Rules: a browser's session stays in one process (the page, its websocket, its uploads and its
media all reach the process its cookie names); new browsers go to the least busy process; and
a result one process computed is served by the others from the shared cache directory.
"""

from __future__ import annotations

import os
import shutil
import textwrap
import urllib.request
from pathlib import Path

import pytest

from benchmarks.browser import CHROMIUM, CHROMIUM_ARGS, free_port
from deploy.run_workshop import BACKEND_HEADER, COOKIE, ROOT, workshop

pytestmark = pytest.mark.e2e

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
CHART = '[data-testid="stPlotlyChart"] .js-plotly-plot'
ERROR = '[data-testid="stException"]'
COMPUTED = "prunelab: computed"
SWEEP_COMPUTED = "prunelab: computed sweep"

_missing = [what for what, found in (("nginx", NGINX), ("chromium", CHROMIUM)) if found is None]
if _missing:
    if os.environ.get("CI"):
        pytest.fail(f"{' and '.join(_missing)} required in CI: .ci/run installs them with apt-get", pytrace=False)
    pytest.skip(
        f"no {' or '.join(_missing)} found: `apt-get install -y nginx chromium` to run the proxy tests",
        allow_module_level=True,
    )

# A page that asks the shared cache for one slow-ish result and says which process computed it,
# with an upload and an image (served from the process's own memory at /media/...).
PROBE_APP = textwrap.dedent(
    """
    import os

    import numpy as np
    import streamlit as st

    from ui.results_cache import ResultCache


    @st.cache_resource
    def cache() -> ResultCache:
        return ResultCache(directory=os.environ["PRUNELAB_CACHE_DIR"], name="probe")


    def compute(progress):
        progress(0.5, "working")
        return os.getpid()


    computed_by = cache().get_or_compute(("probe",), compute, what="probe")
    st.markdown(f"served_by={os.getpid()} computed_by={computed_by}")
    st.image(np.full((8, 8, 3), 200, dtype=np.uint8), width=64)
    upload = st.file_uploader("A file", key="upload")
    if upload is not None:
        st.markdown(f"uploaded={upload.name}:{len(upload.getvalue())} served_by={os.getpid()}")
    """
)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def probe_room(tmp_path_factory):
    app = tmp_path_factory.mktemp("probe") / "probe_app.py"
    app.write_text(PROBE_APP)
    logs = tmp_path_factory.mktemp("logs")
    try:
        with workshop(processes=2, port=free_port(), app=app, log_dir=logs, cwd=ROOT) as running:
            yield running
    except RuntimeError as exc:
        pytest.fail(str(exc))


def backend_of(url: str, cookie: str | None) -> str:
    request = urllib.request.Request(f"{url}/_stcore/health")
    if cookie is not None:
        request.add_header("Cookie", f"{COOKIE}={cookie}")
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.headers[BACKEND_HEADER]


def read_marker(page, prefix: str) -> dict[str, str]:
    """``served_by=1 computed_by=2`` shown on the page, as a dict."""
    text = page.get_by_text(prefix).first.text_content()
    return dict(part.split("=", 1) for part in text.split())


def test_both_processes_answer_and_a_cookie_pins_http_requests(probe_room):
    for backend in probe_room.backends:
        assert backend_of(probe_room.url, backend.name) == backend.name
        assert [backend_of(probe_room.url, backend.name) for _ in range(5)] == [backend.name] * 5
    assert backend_of(probe_room.url, "b99") in {"b0", "b1"}, "an unknown cookie gets a working process"


def test_a_session_its_upload_and_its_media_stay_in_one_process_and_results_are_shared(probe_room, browser, tmp_path):
    first = browser.new_context()
    page = first.new_page()
    page.goto(probe_room.url)
    page.get_by_text("served_by=").first.wait_for(timeout=60_000)
    pinned = {c["name"]: c["value"] for c in first.cookies()}[COOKIE]
    pid = probe_room.backend(pinned).process.pid
    marker = read_marker(page, "served_by=")
    assert marker == {"served_by": str(pid), "computed_by": str(pid)}, "the websocket reached the page's process"

    # The image is served from that process's memory: from any other process it would be a 404.
    image = page.locator('[data-testid="stImage"] img, [data-testid="stFullScreenFrame"] img').first
    image.wait_for(timeout=30_000)
    page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=image.element_handle())

    # An upload goes to /_stcore/upload_file/<session>/...: only the session's process knows it.
    upload = tmp_path / "hello.txt"
    upload.write_bytes(b"hello")
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(upload))
    page.get_by_text("uploaded=").first.wait_for(timeout=30_000)
    assert read_marker(page, "uploaded=") == {"uploaded": "hello.txt:5", "served_by": str(pid)}
    assert page.locator(ERROR).count() == 0

    # While the first session's websocket is open, a new browser goes to the other process, which
    # serves the result the first process computed.
    second = browser.new_context()
    other = second.new_page()
    other.goto(probe_room.url)
    other.get_by_text("served_by=").first.wait_for(timeout=60_000)
    other_name = {c["name"]: c["value"] for c in second.cookies()}[COOKIE]
    assert other_name != pinned, "a new browser goes to the process with fewer open sessions"
    other_pid = probe_room.backend(other_name).process.pid
    assert read_marker(other, "served_by=") == {"served_by": str(other_pid), "computed_by": str(pid)}
    assert COMPUTED in probe_room.backend(pinned).log()
    assert COMPUTED not in probe_room.backend(other_name).log(), "the second process did not compute it again"
    first.close()
    second.close()


def _app_routes_sweeps_through_the_shared_cache() -> bool:
    return "ResultCache" in (ROOT / "ui" / "compute.py").read_text()


@pytest.mark.xfail(
    not _app_routes_sweeps_through_the_shared_cache(),
    reason="ui/compute.py does not use ui.results_cache.ResultCache yet",
    strict=True,
)
def test_the_real_app_computes_the_default_view_in_one_process_and_serves_it_from_the_other(
    browser, tmp_path, monkeypatch
):
    """Pinned to b0, a browser opens the default view: b0 computes the sweep. Pinned to b1, another
    opens the same view: b1 draws the chart from the shared cache and computes nothing itself."""
    monkeypatch.setenv("PRUNELAB_WARM", "0")  # else whichever process warms first computes
    with workshop(processes=2, port=free_port(), log_dir=tmp_path, cwd=ROOT) as room:
        pages = {}
        for name in ("b0", "b1"):
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            context.add_cookies([{"name": COOKIE, "value": name, "url": room.url}])
            page = context.new_page()
            page.goto(f"{room.url}/")
            page.wait_for_selector(CHART, timeout=180_000)
            assert page.locator(ERROR).count() == 0
            pages[name] = context
            if name == "b0":
                assert SWEEP_COMPUTED in room.backend("b0").log(), "b0 computed the default view"
        # Built figures are cached per process (cheap to build, not worth a file); results are shared.
        computed_by_b1 = [line for line in room.backend("b1").log().splitlines() if SWEEP_COMPUTED in line]
        assert computed_by_b1 == [], "b1 served the default view's sweeps from the shared cache"
        for context in pages.values():
            context.close()


def test_workshop_processes_take_no_model_uploads_unless_asked(monkeypatch, tmp_path):
    from deploy.run_workshop import _backend_env

    monkeypatch.delenv("PRUNELAB_UPLOADS", raising=False)
    assert _backend_env(tmp_path, 2, 1)["PRUNELAB_UPLOADS"] == "0"
    monkeypatch.setenv("PRUNELAB_UPLOADS", "1")
    assert _backend_env(tmp_path, 2, 1)["PRUNELAB_UPLOADS"] == "1"
