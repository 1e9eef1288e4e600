"""Your own model in a real browser: the sidebar's file inputs take an ONNX model and NPZ data, the
trade-off chart draws it, and a fresh session opened on the same link asks for the file again."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.browser import CHROMIUM, CHROMIUM_ARGS, require_chromium, wait_for_title
from tests.core.own_model_helpers import fit_readout, residual_net, to_onnx

pytestmark = pytest.mark.e2e

require_chromium()

ERROR = '[data-testid="stException"]'


def own_files() -> tuple[bytes, bytes]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    X = torch.tensor(digits.data / 16, dtype=torch.float32).reshape(-1, 1, 8, 8)
    y = torch.tensor(digits.target)
    model = fit_readout(residual_net(), X[:1400], y[:1400])
    buffer = io.BytesIO()
    np.savez(buffer, X=X.numpy(), y=y.numpy())
    return to_onnx(model, X), buffer.getvalue()


def test_upload_a_model_and_data_in_the_sidebar(server, tmp_path):
    from playwright.sync_api import sync_playwright

    onnx, npz = own_files()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{server}/?model=upload&methods=magnitude,structured-l1&levels=0,0.5,0.8")
        page.get_by_text("asks for the file again").wait_for(timeout=120_000)
        inputs = page.locator('[data-testid="stSidebar"] input[type="file"]')
        inputs.nth(0).set_input_files({"name": "resnet.onnx", "mimeType": "application/octet-stream", "buffer": onnx})
        page.get_by_text("The trade-off chart needs").wait_for(timeout=60_000)  # the model alone: accuracy says why not
        inputs.nth(1).set_input_files({"name": "digits.npz", "mimeType": "application/octet-stream", "buffer": npz})
        wait_for_title(page, "onnx model")
        assert page.locator(ERROR).count() == 0
        assert "model=upload" in page.url and "resnet" not in page.url  # settings in the link, never the file
        shots = Path(os.environ.get("PRUNELAB_SCREENSHOTS", tmp_path))
        shots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shots / "own-model-sidebar.png"))

        other = browser.new_page(viewport={"width": 1400, "height": 1000})  # another session, same link
        other.goto(page.url)
        other.get_by_text("asks for the file again").wait_for(timeout=60_000)
        assert other.locator('[data-testid="stPlotlyChart"]').count() == 0
        browser.close()
