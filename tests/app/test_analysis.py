"""Rules of pruning_core.analysis.knee_points: per method, in order of sparsity, the last row before
the selection metric (on validation) first leaves the tolerance of dense; the row reports test."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pruning_core
import sample_models
from pruning_core.analysis import knee_points, selection_column

SWEEP_METHODS = ["magnitude", "random", "structured-l1", "nm-2:4"]
METRICS = ["accuracy", "loss", "precision", "recall", "f1"]


@pytest.fixture(scope="module")
def table():
    sample = sample_models.load_sample("digits-mlp")
    return pruning_core.sweep(sample.model, sample.data, SWEEP_METHODS, [0, 0.5, 0.9])


def rows(method: str, sparsities, values, metric: str = "accuracy", test=None) -> pd.DataFrame:
    """A hand-made table: ``values`` on validation; the test column equals them unless given."""
    values = list(values)
    return pd.DataFrame(
        {
            "method": method,
            "actual_sparsity": list(sparsities),
            metric: list(test) if test is not None else values,
            f"val_{metric}": values,
        }
    )


def within(values: pd.Series, metric: str, dense: float, tolerance: float) -> pd.Series:
    return values <= dense + tolerance if metric == "loss" else values >= dense - tolerance


def expected_knee(method_rows: pd.DataFrame, column: str, metric: str, dense: float | None, tolerance: float):
    """The rule, written out independently: walk rows in sparsity order, stop at the first failure."""
    ordered = method_rows.sort_values("actual_sparsity", kind="stable")
    if dense is None:
        zero = ordered[ordered["actual_sparsity"] == 0]
        if zero.empty:
            return None
        dense = float(zero[column].iloc[0])
    last = None
    for _, row in ordered.iterrows():
        if not within(pd.Series([row[column]]), metric, dense, tolerance).all():
            break
        last = row
    return last


def assert_knee_rules(table, knees, metric, dense, tolerance, split="validation") -> None:
    """The stated rules, checked method by method against the whole table."""
    column = selection_column(metric, split)
    assert knees["method"].is_unique
    assert set(knees["method"]) <= set(table["method"])
    assert list(knees.columns) == list(table.columns)
    for method, method_rows in table.groupby("method"):
        expected = expected_knee(method_rows, column, metric, dense, tolerance)
        knee = knees[knees["method"] == method]
        if expected is None:
            assert knee.empty, f"{method} fails at its first row (or has no reference) but has a knee"
            continue
        assert len(knee) == 1, f"{method} has rows within tolerance before its first failure but no knee"
        knee_row = knee.iloc[0]
        assert knee_row["actual_sparsity"] == expected["actual_sparsity"]
        assert knee_row[column] == expected[column]
        # the knee is one of the method's own rows, unchanged (its test columns report it)
        same = (method_rows[table.columns] == knee_row[table.columns]) | (
            method_rows[table.columns].isna() & knee_row[table.columns].isna()
        )
        matches = method_rows[same.all(axis=1)]
        assert len(matches) >= 1


# --- the rule on hand-made tables ------------------------------------------------------------------------


def test_knee_is_the_last_point_before_the_first_crossing_not_a_point_after_a_dip():
    # the audit's example: the dip at 40 % ends the safe range, the recovery at 80 % does not count
    table = rows("m", [0, 0.2, 0.4, 0.6, 0.8, 0.95], [0.95, 0.948, 0.90, 0.93, 0.945, 0.50])
    knees = knee_points(table, tolerance=0.01)
    assert knees["actual_sparsity"].tolist() == [0.2]
    assert knees["accuracy"].tolist() == [0.948]


def test_knee_ignores_row_order():
    table = rows("m", [0.95, 0.4, 0.0, 0.8, 0.2, 0.6], [0.50, 0.90, 0.95, 0.945, 0.948, 0.93])
    assert knee_points(table, tolerance=0.01)["actual_sparsity"].tolist() == [0.2]


def test_selection_uses_validation_and_the_knee_reports_test():
    # validation says the model holds up to 50 %; test (which would say 90 %) only reports
    table = rows("m", [0.0, 0.5, 0.9], [0.90, 0.895, 0.80], test=[0.90, 0.70, 0.90])
    knees = knee_points(table, tolerance=0.01)
    assert knees["actual_sparsity"].tolist() == [0.5]
    assert knees["accuracy"].tolist() == [0.70], "the knee row carries its test accuracy unchanged"
    assert knee_points(table, tolerance=0.01, split="test")["actual_sparsity"].tolist() == [0.0]
    # and the other way round: test drops, validation holds: validation decides
    other = rows("m", [0.0, 0.5, 0.9], [0.90, 0.90, 0.90], test=[0.90, 0.50, 0.40])
    assert knee_points(other, tolerance=0.01)["actual_sparsity"].tolist() == [0.9]


def test_default_reference_is_the_methods_own_zero_row_not_another_methods():
    table = pd.concat(
        [rows("a", [0.0, 0.5], [0.99, 0.97]), rows("b", [0.0, 0.5, 0.9], [0.90, 0.895, 0.80])], ignore_index=True
    )
    knees = knee_points(table, tolerance=0.01)
    # a's reference is 0.99 (fails at 50 %); b's is its own 0.90, not a's 0.99
    assert dict(zip(knees["method"], knees["actual_sparsity"])) == {"a": 0.0, "b": 0.5}


def test_without_dense_a_method_with_no_zero_row_has_no_knee():
    table = pd.concat([rows("a", [0.0, 0.5], [0.9, 0.9]), rows("nm", [0.5], [0.9])], ignore_index=True)
    assert knee_points(table, tolerance=0.01)["method"].tolist() == ["a"]
    assert knee_points(table, tolerance=0.01, dense=0.9)["method"].tolist() == ["a", "nm"]


def test_rows_better_than_dense_count_as_within():
    table = rows("m", [0.0, 0.5, 0.9], [0.90, 0.95, 0.60])
    assert knee_points(table, tolerance=0.0)["actual_sparsity"].tolist() == [0.5]


def test_loss_is_lower_is_better():
    table = rows("m", [0.0, 0.3, 0.6, 0.9], [0.30, 0.28, 0.50, 0.25], metric="loss")
    # the loss rises past the tolerance at 60 %: the recovery at 90 % does not count
    assert knee_points(table, metric="loss", tolerance=0.005)["actual_sparsity"].tolist() == [0.3]
    better = rows("m", [0.0, 0.9], [0.30, 0.01], metric="loss")
    assert knee_points(better, metric="loss", tolerance=0.0)["actual_sparsity"].tolist() == [0.9]
    # read as higher-is-better the same numbers stop at the dense row
    as_accuracy = table.rename(columns={"loss": "accuracy", "val_loss": "val_accuracy"})
    assert knee_points(as_accuracy, tolerance=0.005)["actual_sparsity"].tolist() == [0.0]


def test_method_failing_at_its_first_row_is_absent():
    table = pd.concat(
        [rows("good", [0.0, 0.5], [0.90, 0.895]), rows("bad", [0.5, 0.9], [0.50, 0.20])], ignore_index=True
    )
    knees = knee_points(table, tolerance=0.01, dense=0.90)
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
    for metric in ("accuracy", "loss"):
        empty = rows("m", [], [], metric=metric)
        knees = knee_points(empty, metric=metric)
        assert knees.empty
        assert list(knees.columns) == list(empty.columns)


def test_tolerance_zero_stops_at_the_first_row_below_dense():
    table = rows("m", [0.0, 0.25, 0.5, 0.75], [0.9, 0.9, 0.89999, 0.9])
    assert knee_points(table, tolerance=0.0)["actual_sparsity"].tolist() == [0.25]
    loss = rows("m", [0.0, 0.5, 0.9], [0.3, 0.3, 0.30001], metric="loss")
    assert knee_points(loss, metric="loss", tolerance=0.0)["actual_sparsity"].tolist() == [0.5]


def test_a_table_without_validation_columns_is_refused_for_validation_selection():
    table = rows("m", [0.0, 0.5], [0.9, 0.9]).drop(columns="val_accuracy")
    with pytest.raises(ValueError, match="val_accuracy"):
        knee_points(table)
    assert knee_points(table, split="test")["actual_sparsity"].tolist() == [0.5]
    with pytest.raises(ValueError, match="split"):
        knee_points(table, split="train")


def test_caller_table_is_not_modified():
    table = rows("m", [0.5, 0.0, 0.9], [0.89, 0.9, 0.1])
    before = table.copy()
    knee_points(table, tolerance=0.02)
    pd.testing.assert_frame_equal(table, before)


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


# --- on a real sweep -------------------------------------------------------------------------------------


def test_real_sweep_has_validation_columns_for_every_metric(table):
    for metric in METRICS:
        column = selection_column(metric)
        assert column in table.columns and table[column].notna().all(), column


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("tolerance", [0.0, 0.01, 0.03])
def test_real_sweep_knees_follow_the_rules(table, metric, tolerance):
    sample = sample_models.load_sample("digits-mlp")
    dense = pruning_core.evaluate(sample.model, sample.data.X_val, sample.data.y_val)[metric]
    knees = knee_points(table, metric=metric, tolerance=tolerance, dense=dense)
    assert_knee_rules(table, knees, metric, dense, tolerance)
    assert len(knees) <= len(SWEEP_METHODS)


def test_real_sweep_every_method_with_a_zero_row_has_a_knee(table):
    knees = knee_points(table, tolerance=0.0)
    swept = {m for m, r in table.groupby("method") if (r["actual_sparsity"] == 0).any()}
    assert swept == set(knees["method"])


def test_unreachable_dense_leaves_every_method_out(table):
    assert knee_points(table, dense=2.0, tolerance=0.01).empty
    assert knee_points(table, metric="loss", dense=-1.0, tolerance=0.01).empty


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
            # distinct sparsities per table, so "in sparsity order" is one order
            "actual_sparsity": draw(
                st.lists(st.integers(0, 99).map(lambda k: k / 100), min_size=n, max_size=n, unique=True)
            ),
            metric: draw(st.lists(grid, min_size=n, max_size=n)),
            f"val_{metric}": draw(st.lists(grid, min_size=n, max_size=n)),
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
    test_knees = knee_points(table, metric=metric, tolerance=tolerance, dense=dense, split="test")
    assert_knee_rules(table, test_knees, metric, dense, tolerance, split="test")


@settings(max_examples=80, deadline=None)
@given(st.sampled_from(["accuracy", "loss"]).flatmap(lambda m: st.tuples(st.just(m), tables(m))), tolerances)
def test_any_table_with_default_dense_follows_the_rules(metric_table, tolerance):
    metric, table = metric_table
    knees = knee_points(table, metric=metric, tolerance=tolerance)
    assert_knee_rules(table, knees, metric, None, tolerance)


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
