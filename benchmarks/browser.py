"""Driving the real app in headless Chromium: shared by the end-to-end tests and the app benchmark."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Without the background-networking flags Chromium keeps trying hosts this closed network refuses.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class StreamlitProcess:
    """A running ``streamlit run``: its URL, the PID of the server process and where its stderr goes."""

    url: str
    pid: int
    stderr_path: Path | None


@contextlib.contextmanager
def streamlit_process(
    timeout_s: float = 120,
    *,
    project_dir: Path | str = ROOT,
    stderr_path: Path | str | None = None,
    warm: bool = True,
    wait_for_warm: bool = False,
) -> Iterator[StreamlitProcess]:
    """The app as ``make run`` starts it (``python -m ui.serve``: imports, engine worker processes,
    then the server) in ``project_dir`` on a free port, yielded once /_stcore/health answers ok.

    ``warm=False`` starts it with nothing computed (``PRUNELAB_WARM=0``); ``wait_for_warm`` also
    waits for the default views to be computed (the ``prunelab: warmed`` line; needs
    ``stderr_path``). stderr is discarded unless ``stderr_path`` is given: the room benchmark reads
    the app's log lines there. The PID lets callers read the server's CPU time and memory from /proc
    (the engine workers are its children).
    """
    port = free_port()
    stderr_file = open(stderr_path, "wb") if stderr_path is not None else None  # noqa: SIM115 - closed below
    # Lessons train for minutes in the background: tests and the room benchmark leave them out.
    env = {**os.environ, "PRUNELAB_WARM": "1" if warm else "0", "PRUNELAB_WARM_LESSONS": "0"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ui.serve", "--server.headless", "true", "--server.port", str(port),
         "--browser.gatherUsageStats", "false"],
        cwd=project_dir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=stderr_file if stderr_file is not None else subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout_s
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError(f"the app exited with code {proc.returncode} before answering") from None
                if time.time() > deadline:
                    raise RuntimeError(f"the app did not answer /_stcore/health within {timeout_s:.0f} s") from None
                time.sleep(0.3)
        while warm and wait_for_warm and stderr_path is not None:
            if b"prunelab: warmed" in Path(stderr_path).read_bytes():
                break
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"the app did not warm its default views within {timeout_s:.0f} s")
            time.sleep(0.2)
        yield StreamlitProcess(url, proc.pid, Path(stderr_path) if stderr_path is not None else None)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)
        if stderr_file is not None:
            stderr_file.close()


@contextlib.contextmanager
def streamlit_server(timeout_s: float = 90) -> Iterator[str]:
    """``streamlit run app.py`` on a free port; yields its URL once /_stcore/health answers ok."""
    with streamlit_process(timeout_s) as server:
        yield server.url


def wait_for_title(page, text: str, timeout_ms: int = 120_000) -> None:
    """Wait until some chart's title contains ``text``."""
    page.wait_for_function(
        "(t) => [...document.querySelectorAll('.js-plotly-plot .gtitle')].some(e => e.textContent.includes(t))",
        arg=text,
        timeout=timeout_ms,
    )


def require_chromium() -> None:
    """For a browser test module: fail in CI without Chromium (``.ci/run`` installs it), skip elsewhere."""
    import pytest

    if CHROMIUM is not None:
        return
    if os.environ.get("CI"):
        pytest.fail("Chromium is required in CI: .ci/run installs it with apt-get install chromium", pytrace=False)
    pytest.skip(
        "no Chromium found: install it with `apt-get install -y chromium chromium-driver` to run the browser tests",
        allow_module_level=True,
    )
