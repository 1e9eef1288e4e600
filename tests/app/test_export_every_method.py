"""Every method exports: the Export page's files for every registered method on every sample model,
with the weights the engine computes, and the page itself shown for every method without an error."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load

import pruning_core
import sample_models
from pruning_core.choice import PruningChoice
from pruning_core.methods import get_method, method_names
from pruning_core.recipe import loads

METHODS = [*method_names(), "nm-2:4", "nm-1:4"]


@pytest.mark.slow
@pytest.mark.parametrize("model", sample_models.available())
@pytest.mark.parametrize("method", METHODS)
def test_export_bundle_offers_every_file_that_makes_sense(model, method):
    """Recipes and pruned weights always; the smaller model (safetensors and ONNX) exactly for
    structured methods; the script or the generator's own refusal. The weights are the engine's
    masks applied (first 256 train samples for calibration), the recipe reloads to the choice."""
    from ui.compute import build_export_bundle

    sample = sample_models.load_sample(model)
    choice = PruningChoice(method, "layerwise", 0.5)
    bundle = build_export_bundle(model, choice)
    resolved = choice.resolved()[0]

    assert {"recipe_yaml", "recipe_json", "weights"} <= set(bundle.downloads)
    assert loads(bundle.recipe_yaml).to_choice() == resolved
    assert loads(bundle.recipe_json).to_choice() == resolved
    structured = get_method(method).granularity == "structured"
    assert (bundle.shrunk is not None) == structured and (bundle.onnx is not None) == structured
    assert (bundle.script is None) != (bundle.script_refused is None)
    if bundle.script_refused is not None:
        assert bundle.script_refused.strip()

    masks = pruning_core.compute_masks(
        sample.model, resolved.method, resolved.scope, resolved.sparsity_argument, seed=resolved.seed,
        X_calib=sample.data.X_train[:256], y_calib=sample.data.y_train[:256],
    )  # fmt: skip
    expected = pruning_core.apply_masks(sample.model, masks).state_dict()
    weights = load(bundle.weights)
    assert weights.keys() == expected.keys()
    assert all(torch.equal(weights[k], expected[k]) for k in expected)


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_export_page_shows_every_method(method):
    """The page through AppTest: no exception, the recipe and weight downloads, and the script's
    download or the generator's refusal in its place."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(Path(__file__).resolve().parents[2] / "app.py"), default_timeout=600)
    at.query_params["model"] = "digits-cnn"
    at.query_params["methods"] = method
    at.query_params["levels"] = "0.5"
    at.run()
    at.switch_page("pages/export.py").run()
    assert not at.exception
    labels = {b.label for b in at.get("download_button")}
    assert {"Recipe (YAML)", "Recipe (JSON)", "Pruned weights (.safetensors)"} <= labels
    refused = any("No standalone script" in i.value for i in at.info)
    assert ("Standalone script (.py)" in labels) != refused
    structured = get_method(method).granularity == "structured"
    assert ("Smaller model (ONNX)" in labels) == structured
