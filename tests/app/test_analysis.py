"""Rules of pruning_core.analysis.knee_points: per method, the sparsest row still within tolerance of dense."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pruning_core
import sample_models
from pruning_core.analysis import knee_points

SWEEP_METHODS = ["magnitude", "random", "structured-l1", "nm-2:4"]
METRICS = ["accuracy", "loss", "precision", "recall", "f1"]


@pytest.fixture(scope="module")
def table():
    sample = sample_models.load_sample("digits-mlp")
    return pruning_core.sweep(sample.model, sample.data, SWEEP_METHODS, [0, 0.5, 0.9])


def rows(method: str, sparsities, values, metric: str = "accuracy") -> pd.DataFrame:
    return pd.DataFrame({"method": method, "actual_sparsity": list(sparsities), metric: list(values)})


def within(values: pd.Series, metric: str, dense: float, tolerance: float) -> pd.Series:
    return values <= dense + tolerance if metric == "loss" else values >= dense - tolerance


def assert_knee_rules(table: pd.DataFrame, knees: pd.DataFrame, metric: str, dense: float, tolerance: float) -> None:
    """The stated rules, checked row by row against the whole table."""
    assert knees["method"].is_unique
    assert set(knees["method"]) <= set(table["method"])
    assert list(knees.columns) == list(table.columns)
    for method, method_rows in table.groupby("method"):
        ok = method_rows[within(method_rows[metric], metric, dense, tolerance)]
        knee = knees[knees["method"] == method]
        if ok.empty:
            assert knee.empty, f"{method} is never within tolerance but has a knee"
            continue
        assert len(knee) == 1, f"{method} has a row within tolerance but no knee"
        knee_row = knee.iloc[0]
        assert within(pd.Series([knee_row[metric]]), metric, dense, tolerance).all()
        assert knee_row["actual_sparsity"] == ok["actual_sparsity"].max()
        # the knee is one of the method's own rows, unchanged
        same = (method_rows[table.columns] == knee_row[table.columns]) | (
            method_rows[table.columns].isna() & knee_row[table.columns].isna()
        )
        matches = method_rows[same.all(axis=1)]
        assert len(matches) >= 1


# --- on a real sweep -------------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("tolerance", [0.0, 0.01, 0.03])
def test_real_sweep_knees_follow_the_rules(table, metric, tolerance):
    dense = float(table.loc[table["actual_sparsity"].idxmin(), metric])
    knees = knee_points(table, metric=metric, tolerance=tolerance, dense=dense)
    assert_knee_rules(table, knees, metric, dense, tolerance)
    assert len(knees) <= len(SWEEP_METHODS)


@pytest.mark.parametrize("metric", METRICS)
def test_dense_defaults_to_the_metric_at_the_lowest_sparsity(table, metric):
    dense = float(table.loc[table["actual_sparsity"].idxmin(), metric])
    pd.testing.assert_frame_equal(knee_points(table, metric=metric), knee_points(table, metric=metric, dense=dense))


def test_real_sweep_every_sweeping_method_has_a_knee_at_or_above_dense(table):
    # every sweeping method has a sparsity-0 row equal to the dense model, so each has a knee
    knees = knee_points(table, tolerance=0.0)
    swept = {m for m, r in table.groupby("method") if (r["target_sparsity"] == 0).any()}
    assert swept <= set(knees["method"])


def test_unreachable_dense_leaves_every_method_out(table):
    assert knee_points(table, dense=2.0, tolerance=0.01).empty
    assert knee_points(table, metric="loss", dense=-1.0, tolerance=0.01).empty


# --- hand-made tables --------------------------------------------------------------------------------------


def test_knee_is_the_sparsest_row_within_tolerance_even_after_a_dip():
    table = rows("m", [0.0, 0.3, 0.5, 0.7, 0.9], [0.90, 0.85, 0.895, 0.80, 0.10])
    knees = knee_points(table, tolerance=0.01)
    assert knees["actual_sparsity"].tolist() == [0.5]
    assert knees["accuracy"].tolist() == [0.895]


def test_knee_ignores_row_order():
    table = rows("m", [0.9, 0.5, 0.0, 0.7, 0.3], [0.10, 0.895, 0.90, 0.80, 0.85])
    assert knee_points(table, tolerance=0.01)["actual_sparsity"].tolist() == [0.5]


def test_rows_better_than_dense_count_as_within():
    table = rows("m", [0.0, 0.5, 0.9], [0.90, 0.95, 0.60])
    assert knee_points(table, tolerance=0.0)["actual_sparsity"].tolist() == [0.5]


def test_loss_is_lower_is_better():
    table = rows("m", [0.0, 0.3, 0.6, 0.9], [0.30, 0.28, 0.50, 0.25], metric="loss")
    knees = knee_points(table, metric="loss", tolerance=0.005)
    assert knees["actual_sparsity"].tolist() == [0.9]
    # a loss far below dense is better, hence within any tolerance
    better = rows("m", [0.0, 0.9], [0.30, 0.01], metric="loss")
    assert knee_points(better, metric="loss", tolerance=0.0)["actual_sparsity"].tolist() == [0.9]
    # read as higher-is-better the same numbers would stop at the dense row
    as_accuracy = table.rename(columns={"loss": "accuracy"})
    assert knee_points(as_accuracy, tolerance=0.005)["actual_sparsity"].tolist() == [0.6]


def test_method_never_within_tolerance_is_absent():
    table = pd.concat(
        [rows("good", [0.0, 0.5], [0.90, 0.895]), rows("bad", [0.5, 0.9], [0.50, 0.20])], ignore_index=True
    )
    knees = knee_points(table, tolerance=0.01)
    assert knees["method"].tolist() == ["good"]
    assert knees["actual_sparsity"].tolist() == [0.5]


def test_one_row_per_method_in_first_seen_order():
    table = pd.concat(
        [rows("b", [0.0, 0.5, 0.9], [0.9, 0.9, 0.9]), rows("a", [0.0, 0.5, 0.9], [0.9, 0.9, 0.1])],
        ignore_index=True,
    )
    knees = knee_points(table, tolerance=0.0)
    assert knees["method"].tolist() == ["b", "a"]
    assert knees["actual_sparsity"].tolist() == [0.9, 0.5]
    assert list(knees.index) == [0, 1]


def test_empty_table_gives_an_empty_result_with_the_same_columns():
    empty = rows("m", [], [])
    for metric in ("accuracy", "loss"):
        knees = knee_points(empty.rename(columns={"accuracy": metric}), metric=metric)
        assert knees.empty
        assert list(knees.columns) == ["method", "actual_sparsity", metric]


def test_tolerance_zero_at_dense_keeps_exactly_the_rows_matching_dense():
    table = rows("m", [0.0, 0.25, 0.5, 0.75], [0.9, 0.9, 0.89999, 0.9])
    knees = knee_points(table, tolerance=0.0)
    assert knees["actual_sparsity"].tolist() == [0.75]
    # the dense row alone
    only_dense = rows("m", [0.0, 0.5], [0.9, 0.8])
    assert knee_points(only_dense, tolerance=0.0)["actual_sparsity"].tolist() == [0.0]
    loss = rows("m", [0.0, 0.5, 0.9], [0.3, 0.3, 0.30001], metric="loss")
    assert knee_points(loss, metric="loss", tolerance=0.0)["actual_sparsity"].tolist() == [0.5]


def test_caller_table_is_not_modified():
    table = rows("m", [0.5, 0.0, 0.9], [0.89, 0.9, 0.1])
    before = table.copy()
    knee_points(table, tolerance=0.02)
    pd.testing.assert_frame_equal(table, before)


# --- any table ---------------------------------------------------------------------------------------------

# Metrics on a 1/1000 grid and tolerances at odd multiples of 1/2000: no row lies exactly on the
# tolerance boundary, so "within" is never decided by float rounding.
grid = st.integers(0, 1000).map(lambda k: k / 1000)
tolerances = st.integers(0, 100).map(lambda k: (2 * k + 1) / 2000)


@st.composite
def tables(draw, metric: str) -> pd.DataFrame:
    n = draw(st.integers(0, 25))
    return pd.DataFrame(
        {
            "method": draw(st.lists(st.sampled_from(["a", "b", "c", "nm"]), min_size=n, max_size=n)),
            "actual_sparsity": draw(st.lists(st.integers(0, 99).map(lambda k: k / 100), min_size=n, max_size=n)),
            metric: draw(st.lists(grid, min_size=n, max_size=n)),
        }
    )


@settings(max_examples=120, deadline=None)
@given(
    st.sampled_from(["accuracy", "loss", "f1"]).flatmap(lambda m: st.tuples(st.just(m), tables(m))), tolerances, grid
)
def test_any_table_knees_follow_the_rules(metric_table, tolerance, dense):
    metric, table = metric_table
    knees = knee_points(table, metric=metric, tolerance=tolerance, dense=dense)
    assert_knee_rules(table, knees, metric, dense, tolerance)


@settings(max_examples=80, deadline=None)
@given(st.sampled_from(["accuracy", "loss"]).flatmap(lambda m: st.tuples(st.just(m), tables(m))), tolerances)
def test_any_table_with_default_dense_follows_the_rules(metric_table, tolerance):
    metric, table = metric_table
    knees = knee_points(table, metric=metric, tolerance=tolerance)
    if table.empty:
        assert knees.empty
        return
    dense = float(table.loc[table["actual_sparsity"].idxmin(), metric])
    assert_knee_rules(table, knees, metric, dense, tolerance)


# --- known bugs -------------------------------------------------------------------------------------------


def concatenated_sweeps() -> pd.DataFrame:
    """Two per-method sweeps joined with pd.concat and no ignore_index: row labels repeat (0, 1, 2, 0, 1, 2)."""
    return pd.concat(
        [rows("magnitude", [0.0, 0.5, 0.9], [0.90, 0.895, 0.50]), rows("random", [0.0, 0.5, 0.9], [0.90, 0.892, 0.10])]
    )


def test_repeated_index_labels_still_give_one_knee_per_method():
    table = concatenated_sweeps()
    knees = knee_points(table, tolerance=0.01, dense=0.9)
    assert_knee_rules(table, knees, "accuracy", 0.9, 0.01)


def test_repeated_index_labels_with_default_dense():
    table = concatenated_sweeps()
    pd.testing.assert_frame_equal(
        knee_points(table, tolerance=0.01), knee_points(table.reset_index(drop=True), tolerance=0.01)
    )


@pytest.mark.parametrize(
    ("metric", "dense", "value", "tolerance"),
    [
        # digits test set: 360 samples; dense 355 correct, pruned 328 correct = exactly 7.5 points worse;
        # the trade-off page passes its 7.5-point slider as 7.5 / 100
        ("accuracy", 355 / 360, 328 / 360, 7.5 / 100),
        ("loss", 0.7, 0.8, 0.1),
    ],
)
def test_a_row_exactly_at_the_tolerance_is_within(metric, dense, value, tolerance):
    table = rows("m", [0.0, 0.5], [dense, value], metric=metric)
    knees = knee_points(table, metric=metric, tolerance=tolerance, dense=dense)
    assert knees["actual_sparsity"].tolist() == [0.5]
