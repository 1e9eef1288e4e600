"""Rules of the sample model zoo: shipped weights, fresh eval-mode models, no training on load."""

from __future__ import annotations

import json

import pytest
import torch
from core_helpers import SAMPLES
from safetensors.torch import load_file

import sample_models
import sample_models.train


def test_available_lists_the_five_samples_in_display_order():
    assert sample_models.available() == SAMPLES


@pytest.mark.parametrize("name", SAMPLES)
def test_shipped_weights_reach_the_recorded_test_accuracy_within_half_a_point(name):
    sample = sample_models.load_sample(name)
    recorded = json.loads((sample_models.WEIGHTS_DIR / f"{name}.json").read_text())["test_accuracy"]
    assert sample.recorded_accuracy == pytest.approx(recorded)
    with torch.no_grad():
        accuracy = float((sample.model(sample.data.X_test).argmax(1) == sample.data.y_test).double().mean())
    assert abs(accuracy - recorded) <= 0.005, f"{name}: {accuracy:.4f} vs recorded {recorded:.4f}"


@pytest.mark.parametrize("name", SAMPLES)
def test_loaded_model_holds_exactly_the_shipped_weights(name):
    shipped = load_file(sample_models.WEIGHTS_DIR / f"{name}.safetensors")
    state = sample_models.load_sample(name).model.state_dict()
    assert set(state) == set(shipped)
    for key, value in shipped.items():
        assert torch.equal(state[key], value), key


@pytest.mark.parametrize("name", SAMPLES)
def test_load_sample_returns_a_fresh_model_each_call(name):
    first = sample_models.load_sample(name)
    reference = {k: v.clone() for k, v in first.model.state_dict().items()}
    with torch.no_grad():
        for p in first.model.parameters():
            p.mul_(0).add_(7.0)
        for b in first.model.buffers():
            b.zero_()
    first.model.train()
    second = sample_models.load_sample(name)
    assert second.model is not first.model
    for key, value in second.model.state_dict().items():
        assert torch.equal(value, reference[key]), f"{key} leaked from the previous call's model"
    assert not second.model.training


@pytest.mark.parametrize("name", SAMPLES)
def test_loaded_model_and_all_its_submodules_are_in_eval_mode(name):
    model = sample_models.load_sample(name).model
    assert all(not m.training for m in model.modules())


@pytest.mark.parametrize("name", SAMPLES)
def test_sample_metadata_is_consistent_with_model_and_data(name):
    sample = sample_models.load_sample(name)
    assert sample.name == name
    assert sample.description
    X_train, y_train, X_test, y_test = sample.data
    assert len(X_train) == len(y_train) and len(X_test) == len(y_test) > 0
    with torch.no_grad():
        assert sample.model(X_test[:2]).shape == (2, sample.n_classes)
    assert set(y_test.unique().tolist()) <= set(range(sample.n_classes))


@pytest.mark.parametrize("bad", ["nope", "digits_mlp", "", "DIGITS-MLP"])
def test_unknown_sample_name_raises_valueerror_listing_the_valid_names(bad):
    with pytest.raises(ValueError) as info:
        sample_models.load_sample(bad)
    message = str(info.value)
    assert repr(bad) in message
    for name in SAMPLES:
        assert name in message


def _forbid(*args, **kwargs):
    raise AssertionError("loading a sample must never train")


@pytest.mark.parametrize("name", SAMPLES)
def test_loading_never_trains(name, monkeypatch):
    monkeypatch.setattr(sample_models.train, "train_model", _forbid)
    monkeypatch.setattr(sample_models.train, "train", _forbid)
    monkeypatch.setattr(torch.Tensor, "backward", _forbid)
    monkeypatch.setattr(torch.optim.Optimizer, "step", _forbid)
    cache = getattr(sample_models, "_state_dict", None)
    if hasattr(cache, "cache_clear"):  # make the load read the weights file again
        cache.cache_clear()
    sample = sample_models.load_sample(name)
    assert not sample.model.training


def test_missing_weights_raise_filenotfounderror_instead_of_training(monkeypatch, tmp_path):
    monkeypatch.setattr(sample_models.train, "train_model", _forbid)
    monkeypatch.setattr(sample_models, "WEIGHTS_DIR", tmp_path)
    cache = getattr(sample_models, "_state_dict", None)
    if hasattr(cache, "cache_clear"):
        cache.cache_clear()
    try:
        with pytest.raises(FileNotFoundError, match="cancer-mlp"):
            sample_models.load_sample("cancer-mlp")
    finally:
        monkeypatch.undo()
        if hasattr(cache, "cache_clear"):
            cache.cache_clear()
