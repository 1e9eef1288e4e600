"""Rules of the sample model zoo: shipped weights, fresh eval-mode models, no training on load."""

from __future__ import annotations

import json
import math

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
    X_train, y_train, X_test, y_test, X_val, y_val = sample.data
    assert len(X_train) == len(y_train) and len(X_test) == len(y_test) > 0 and len(X_val) == len(y_val) > 0
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


def _rows(X: torch.Tensor) -> set[bytes]:
    return {row.numpy().tobytes() for row in X.reshape(len(X), -1)}


@pytest.mark.parametrize("name", SAMPLES)
def test_validation_split_shares_no_sample_with_train_or_test(name):
    data = sample_models.load_sample(name).data
    train, val, test = _rows(data.X_train), _rows(data.X_val), _rows(data.X_test)
    # every row is distinct within a split (so the set comparison below sees every sample) ...
    assert len(train) == len(data.X_train) and len(val) == len(data.X_val) and len(test) == len(data.X_test)
    assert not train & val, "a validation sample is also in train"
    assert not val & test, "a validation sample is also in test"
    assert not train & test


@pytest.mark.parametrize("name", SAMPLES)
def test_validation_split_is_stratified_and_carved_out_of_train_only(name):
    data = sample_models.load_sample(name).data
    n_classes = sample_models.load_sample(name).n_classes
    n_fit, n_val = len(data.y_train), len(data.y_val)
    # validation takes VAL_FRACTION of the original train rows (rounded up as scikit-learn does)
    assert n_val == math.ceil(round(sample_models.datasets.VAL_FRACTION * (n_fit + n_val), 9))
    fit_share = torch.bincount(data.y_train, minlength=n_classes).double() / n_fit
    val_share = torch.bincount(data.y_val, minlength=n_classes).double() / n_val
    # stratified: each class's share in validation is within one sample of its share in train
    assert torch.all((fit_share - val_share).abs() <= 1.0 / n_val + 1e-12), (fit_share, val_share)


@pytest.mark.parametrize("name", ["digits-mlp", "moons-mlp"])
def test_test_split_is_unchanged_by_the_validation_split(name):
    """The test split is the one of a plain seeded train/test split: validation never touches it."""
    from sklearn.datasets import load_digits, make_moons
    from sklearn.model_selection import train_test_split

    if name == "digits-mlp":
        digits = load_digits()
        X, y, size = digits.data / 16.0, digits.target, 0.2
    else:
        X, y = make_moons(n_samples=1000, noise=0.25, random_state=0)
        size = 0.3
    _, X_test, _, y_test = train_test_split(X, y, test_size=size, random_state=0, stratify=y)
    data = sample_models.load_sample(name).data
    assert torch.equal(data.y_test, torch.as_tensor(y_test))
    assert torch.allclose(data.X_test, torch.as_tensor(X_test, dtype=torch.float32))
