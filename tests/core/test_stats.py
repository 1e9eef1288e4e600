"""Rules of pruning_core.stats: Wilson intervals agree with independent computations; seed spreads
summarise exactly the per-seed sweeps."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats

import pruning_core
import sample_models
from pruning_core.stats import accuracy_intervals, seed_spread, wilson_half_width, wilson_interval


def wilson_by_quadratic(k: int, n: int, z: float) -> tuple[float, float]:
    """The Wilson bounds as the roots in pi of (k/n - pi)^2 = z^2 pi (1 - pi) / n."""
    p = k / n
    a, b, c = 1 + z * z / n, -(2 * p + z * z / n), p * p
    roots = np.sort(np.roots([a, b, c]).real)
    return float(roots[0]), float(roots[1])


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 5000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_matches_scipy_binomtest(k_n):
    k, n = k_n
    expected = scipy_stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    low, high = wilson_interval(k, n)
    assert low == pytest.approx(expected.low, abs=1e-9)
    assert high == pytest.approx(expected.high, abs=1e-9)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 5000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
    st.floats(0.5, 3.5),
)
def test_wilson_bounds_solve_the_score_equation_for_any_z(k_n, z):
    k, n = k_n
    low, high = wilson_interval(k, n, z=z)
    expected_low, expected_high = wilson_by_quadratic(k, n, z)
    assert low == pytest.approx(max(0.0, expected_low), abs=1e-7)
    assert high == pytest.approx(min(1.0, expected_high), abs=1e-7)
    assert 0.0 <= low <= k / n <= high <= 1.0


def test_wilson_default_z_is_the_95_percent_normal_quantile():
    assert wilson_interval(349, 360) == wilson_interval(349, 360, z=float(scipy_stats.norm.ppf(0.975)))


def test_wilson_narrows_with_more_samples_and_refuses_impossible_counts():
    widths = [wilson_half_width(0.97, n) for n in (100, 360, 1000, 10000)]
    assert widths == sorted(widths, reverse=True)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    for k, n in [(5, 4), (-1, 4), (1, -1)]:
        with pytest.raises(ValueError):
            wilson_interval(k, n)


def test_accuracy_intervals_bound_every_accuracy():
    accuracy = pd.Series([0.0, 0.5, 349 / 360, 1.0])
    low, high = accuracy_intervals(accuracy, 360)
    assert all(lo <= a <= hi for lo, a, hi in zip(low, accuracy, high))


@pytest.fixture(scope="module")
def digits():
    return sample_models.load_sample("digits-mlp")


def test_sweep_intervals_are_wilson_on_the_test_count(digits):
    table = pruning_core.sweep(digits.model, digits.data, ["magnitude"], [0.0, 0.9])
    n = len(digits.data.y_test)
    assert (table["test_samples"] == n).all()
    assert (table["val_samples"] == len(digits.data.y_val)).all()
    for _, row in table.iterrows():
        correct = round(row["accuracy"] * n)
        expected = scipy_stats.binomtest(correct, n).proportion_ci(method="wilson")
        assert row["accuracy_low"] == pytest.approx(expected.low, abs=1e-9)
        assert row["accuracy_high"] == pytest.approx(expected.high, abs=1e-9)
        # the validation column is the validation split's own accuracy
    pruned = pruning_core.apply_masks(digits.model, pruning_core.compute_masks(digits.model, sparsity=0.9))
    val = pruning_core.evaluate(pruned, digits.data.X_val, digits.data.y_val)
    assert table["val_accuracy"].iloc[1] == pytest.approx(val["accuracy"], abs=1e-12)
    assert table["val_loss"].iloc[1] == pytest.approx(val["loss"], abs=1e-6)


def test_seed_spread_summarises_the_per_seed_sweeps(digits):
    seeds = [0, 1, 2]

    def run(seed: int) -> pd.DataFrame:
        return pruning_core.sweep(digits.model, digits.data, ["random", "magnitude"], [0.0, 0.6], seed=seed)

    spread = seed_spread(run, seeds)
    per_seed = {s: run(s) for s in seeds}
    for _, row in spread.iterrows():
        values = [
            float(
                t[(t["method"] == row["method"]) & (t["target_sparsity"] == row["target_sparsity"])]["accuracy"].iloc[0]
            )
            for t in per_seed.values()
        ]
        assert row["n_seeds"] == 3
        assert row["accuracy_min"] == min(values) and row["accuracy_max"] == max(values)
        assert row["accuracy_mean"] == pytest.approx(sum(values) / 3)
        mean = sum(values) / 3
        assert row["accuracy_std"] == pytest.approx(math.sqrt(sum((v - mean) ** 2 for v in values) / 2))
    magnitude = spread[spread["method"] == "magnitude"]
    assert (magnitude["accuracy_std"] == 0).all(), "a deterministic method moves with the seed"
    random_60 = spread[(spread["method"] == "random") & (spread["target_sparsity"] == 0.6)].iloc[0]
    assert random_60["accuracy_max"] > random_60["accuracy_min"], "random pruning did not move with the seed"
