"""Rules of pruning_core.sweep: the table's shape and every metric against an independent computation."""

from __future__ import annotations

import pytest
import torch
from core_helpers import FEW, NM, SAMPLES, layers
from hypothesis import given
from hypothesis import strategies as st
from sklearn.metrics import precision_recall_fscore_support

import sample_models
from pruning_core import COLUMNS, apply_masks, compute_masks, sweep

SWEEP_METHODS = ["magnitude", "random", "structured-l1", "nm-2:4"]
LEVELS = [0.0, 0.5, 0.9]
NM_SPARSITY = {"nm-2:4": 0.5, "nm-1:4": 0.75}


@pytest.fixture(scope="module")
def digits():
    return sample_models.load_sample("digits-mlp")


@pytest.fixture(scope="module")
def table(digits):
    return sweep(digits.model, digits.data, methods=SWEEP_METHODS, sparsities=LEVELS, scope="global")


def masked_model(sample, row):
    """The model each row describes, rebuilt independently with compute_masks + apply_masks."""
    sparsity = 0.0 if row["method"] in NM else row["target_sparsity"]
    masks = compute_masks(
        sample.model, method=row["method"], scope=row["scope"], sparsity=sparsity, seed=int(row["seed"])
    )
    return apply_masks(sample.model, masks).eval()


@torch.no_grad()
def dense_accuracy(model, X, y) -> float:
    return float((model(X).argmax(1) == y).double().mean())


# --- shape of the table ------------------------------------------------------------------------------


def test_sweep_table_has_exactly_the_documented_columns_in_order(table):
    assert list(table.columns) == COLUMNS


@FEW
@given(
    methods=st.lists(
        st.sampled_from(["magnitude", "random", "structured-l2", *NM]), min_size=1, max_size=4, unique=True
    ),
    levels=st.lists(st.sampled_from([0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 0.95]), min_size=1, max_size=4, unique=True),
)
def test_sweep_returns_one_row_per_method_and_target_sparsity_and_one_row_per_nm_method(methods, levels):
    sample = sample_models.load_sample("cancer-mlp")
    result = sweep(sample.model, sample.data, methods=methods, sparsities=levels)
    expected = set()
    for method in methods:
        if method in NM:
            expected.add((method, NM_SPARSITY[method]))
        else:
            expected.update((method, s) for s in levels)
    got = list(zip(result["method"], result["target_sparsity"], strict=True))
    assert len(got) == len(expected)
    assert set(got) == expected
    assert list(result.columns) == COLUMNS
    # train and noisy-input accuracy are opt-in (generalisation=True): NaN in a default sweep
    assert not result.drop(columns=["seconds", "train_accuracy", "noisy_accuracy"]).isna().any().any()
    assert result[["train_accuracy", "noisy_accuracy"]].isna().all().all()


# --- accuracy and classification metrics -------------------------------------------------------------


@pytest.mark.parametrize("name", SAMPLES)
def test_sparsity_zero_row_accuracy_equals_the_dense_models_accuracy(name):
    sample = sample_models.load_sample(name)
    X, y = sample.data.X_test, sample.data.y_test
    expected = dense_accuracy(sample.model, X, y)
    result = sweep(sample.model, sample.data, methods=["magnitude", "random", "structured-l2"], sparsities=[0.0])
    for _, row in result.iterrows():
        assert row["accuracy"] == pytest.approx(expected, abs=1e-9), row["method"]


@pytest.mark.parametrize(
    "method,sparsity", [("magnitude", 0.9), ("random", 0.5), ("random", 0.9), ("structured-l1", 0.9)]
)
def test_precision_recall_f1_equal_sklearn_macro_with_zero_division_0(digits, method, sparsity):
    result = sweep(digits.model, digits.data, methods=[method], sparsities=[sparsity])
    row = result.iloc[0]
    model = masked_model(digits, row)
    X, y = digits.data.X_test, digits.data.y_test
    with torch.no_grad():
        logits = model(X)
    pred = logits.argmax(1)
    precision, recall, f1, _ = precision_recall_fscore_support(
        y.numpy(), pred.numpy(), average="macro", zero_division=0
    )
    assert row["precision"] == pytest.approx(precision, abs=1e-9)
    assert row["recall"] == pytest.approx(recall, abs=1e-9)
    assert row["f1"] == pytest.approx(f1, abs=1e-9)
    assert row["accuracy"] == pytest.approx(float((pred == y).double().mean()), abs=1e-9)
    assert row["loss"] == pytest.approx(float(torch.nn.functional.cross_entropy(logits, y)), rel=1e-5)


@pytest.mark.parametrize("method", ["magnitude", "random"])
def test_macro_metrics_average_over_classes_in_labels_or_predictions_like_sklearn(digits, method):
    """On a test set lacking a class that the pruned model still predicts, sklearn's macro average
    runs over the union of labels and predictions; the sweep's metrics must do the same."""
    X, y = digits.data.X_test, digits.data.y_test
    masks = compute_masks(digits.model, method=method, scope="global", sparsity=0.9, seed=0)
    with torch.no_grad():
        pred = apply_masks(digits.model, masks)(X).argmax(1)
    wrong = pred[pred != y]
    assert len(wrong), "the test needs a misclassified sample"
    absent = int(wrong[0])  # predicted for a sample of another class; drop that class's samples
    keep = y != absent
    X, y, pred = X[keep], y[keep], pred[keep]
    assert (pred == absent).any() and not (y == absent).any()
    row = sweep(digits.model, (X, y), methods=[method], sparsities=[0.9], seed=0).iloc[0]
    precision, recall, f1, _ = precision_recall_fscore_support(
        y.numpy(), pred.numpy(), average="macro", zero_division=0
    )
    assert row["accuracy"] == pytest.approx(float((pred == y).double().mean()), abs=1e-9)
    assert row["precision"] == pytest.approx(precision, abs=1e-9)
    assert row["recall"] == pytest.approx(recall, abs=1e-9)
    assert row["f1"] == pytest.approx(f1, abs=1e-9)


# --- sizes -------------------------------------------------------------------------------------------


def test_actual_sparsity_is_the_fraction_of_zero_weights_in_the_prunable_layers(digits, table):
    for _, row in table.iterrows():
        model = masked_model(digits, row)
        weights = [m.weight for m in layers(model).values()]
        zeros = sum(int((w == 0).sum()) for w in weights)
        assert row["actual_sparsity"] == pytest.approx(zeros / sum(w.numel() for w in weights), abs=1e-12), (
            row["method"],
            row["target_sparsity"],
        )


def test_direct_compression_ratio_is_total_params_over_nonzero_params_counted_independently(digits, table):
    total = sum(p.numel() for p in digits.model.parameters())
    for _, row in table.iterrows():
        model = masked_model(digits, row)
        nonzero = sum(int(torch.count_nonzero(p)) for p in model.parameters())
        assert row["total_params"] == total
        assert row["nonzero_params"] == nonzero, (row["method"], row["target_sparsity"])
        assert row["direct_compression_ratio"] == pytest.approx(total / nonzero)


HAND_MACS = {
    "digits-mlp": 64 * 300 + 300 * 100 + 100 * 10,
    "digits-cnn": 16 * 1 * 9 * 8 * 8 + 32 * 16 * 9 * 4 * 4 + 128 * 64 + 64 * 10,
    "mnist1d-cnn": 32 * 1 * 5 * 20 + 32 * 32 * 5 * 10 + 32 * 32 * 5 * 5 + 160 * 10,
    "moons-mlp": 2 * 256 + 256 * 256 + 256 * 2,
    "cancer-mlp": 30 * 64 + 64 * 32 + 32 * 2,
}


@pytest.mark.parametrize("name", SAMPLES)
def test_dense_macs_equal_a_hand_count_of_linear_and_conv_multiply_adds(name):
    sample = sample_models.load_sample(name)
    result = sweep(sample.model, sample.data, methods=["magnitude"], sparsities=[0.0, 0.5])
    assert (result["dense_macs"] == HAND_MACS[name]).all()
    assert HAND_MACS["digits-mlp"] == 50200


def test_direct_macs_scale_each_layers_macs_by_its_density_for_an_mlp(digits):
    result = sweep(digits.model, digits.data, methods=["magnitude"], sparsities=[0.3, 0.8], scope="layerwise")
    for _, row in result.iterrows():
        masks = compute_masks(digits.model, method="magnitude", scope="layerwise", sparsity=row["target_sparsity"])
        # For a Linear layer, multiply-adds per sample = number of weights; so effective = nonzero weights.
        expected = sum(int(masks[f"{n}.weight"].sum()) for n in layers(digits.model))
        assert row["direct_macs"] == pytest.approx(expected)
        assert row["direct_speedup"] == pytest.approx(HAND_MACS["digits-mlp"] / expected)


@pytest.mark.parametrize("scope", ["global", "layerwise"])
@pytest.mark.parametrize("name", ["digits-mlp", "digits-cnn", "mnist1d-cnn"])
def test_theoretical_speedup_is_at_least_one_and_grows_with_magnitude_sparsity(name, scope):
    sample = sample_models.load_sample(name)
    levels = [0.0, 0.2, 0.4, 0.6, 0.8, 0.95]
    result = sweep(sample.model, sample.data, methods=["magnitude"], sparsities=levels, scope=scope)
    speedups = result.sort_values("target_sparsity")["theoretical_speedup"].tolist()
    assert speedups[0] == pytest.approx(1.0)
    assert all(s >= 1.0 for s in speedups)
    assert all(b > a for a, b in zip(speedups, speedups[1:])), speedups


def test_theoretical_speedup_is_at_least_one_for_every_method(table):
    assert (table["theoretical_speedup"] >= 1.0).all()


def test_sparse_bytes_are_below_dense_bytes_at_90_percent_and_equal_at_0_percent(digits):
    dense = sum(p.numel() * p.element_size() for p in digits.model.parameters())
    result = sweep(digits.model, digits.data, methods=["magnitude", "random"], sparsities=[0.0, 0.9])
    assert (result["dense_bytes"] == dense).all()
    for _, row in result.iterrows():
        if row["target_sparsity"] == 0.9:
            assert row["sparse_bytes"] < row["dense_bytes"], row["method"]
        else:  # indices would cost bytes: the dense encoding is picked
            assert row["sparse_bytes"] == row["dense_bytes"], row["method"]


# --- progress and reproducibility --------------------------------------------------------------------


def test_progress_is_called_with_increasing_fractions_ending_at_one(digits):
    calls = []
    result = sweep(
        digits.model,
        digits.data,
        methods=["magnitude", "nm-1:4", "random"],
        sparsities=[0.0, 0.5, 0.9],
        progress=lambda fraction, message: calls.append((fraction, message)),
    )
    fractions = [f for f, _ in calls]
    assert len(calls) == len(result) == 7
    assert all(0 < f <= 1 for f in fractions)
    assert all(b > a for a, b in zip(fractions, fractions[1:])), fractions
    assert fractions[-1] == 1.0
    assert all(isinstance(m, str) and m for _, m in calls)


@pytest.mark.parametrize("scope", ["global", "layerwise"])
def test_random_sweeps_are_reproducible_with_the_same_seed(digits, scope):
    def run(seed):
        result = sweep(digits.model, digits.data, methods=["random"], sparsities=[0.3, 0.9], scope=scope, seed=seed)
        return result.drop(columns=["seconds"])

    first, again, other = run(7), run(7), run(8)
    assert first.equals(again)
    assert (first["seed"] == 7).all()
    assert not first["loss"].equals(other["loss"]), "another seed should prune other weights"


# --- the table describes the model as it is at the time of the call ---------------------------------


def _edit_in_place(model, through_data: bool):
    """Zero fc1's bias and the first half of fc3's weights (fc3 is excluded from pruning below)."""
    with torch.no_grad():
        for tensor in (model.fc1.bias, model.fc3.weight[:, : model.fc3.weight.shape[1] // 2]):
            (tensor.data if through_data else tensor).zero_()


def _sweep_twice_and_compare(through_data: bool):
    sample = sample_models.load_sample("cancer-mlp")
    model = sample.model
    kwargs = dict(methods=["magnitude"], sparsities=[0.0, 0.5], exclude=["fc3"])
    sweep(model, sample.data, **kwargs)  # a first sweep, before the edit
    _edit_in_place(model, through_data)
    again = sweep(model, sample.data, **kwargs).drop(columns=["seconds"])
    fresh = sample_models.load_sample("cancer-mlp").model  # a different object with the same edited weights
    _edit_in_place(fresh, through_data)
    expected = sweep(fresh, sample.data, **kwargs).drop(columns=["seconds"])
    assert again["nonzero_params"].tolist() == expected["nonzero_params"].tolist()
    assert again["actual_sparsity"].tolist() == expected["actual_sparsity"].tolist()
    assert again.equals(expected)


def test_sweep_reflects_weights_edited_in_place_since_a_previous_sweep():
    _sweep_twice_and_compare(through_data=False)


def test_sweep_reflects_weights_edited_through_data_since_a_previous_sweep():
    _sweep_twice_and_compare(through_data=True)
