"""Reading a sweep table: where each method's accuracy stops holding up.

Knees are *selected* on the validation split (columns ``val_<metric>``) and *reported* on the test
split: choosing the best point on the data that then reports it would flatter it.
"""

from __future__ import annotations

import pandas as pd

LOWER_IS_BETTER = {"loss"}
SPLITS = ("validation", "test")


def selection_column(metric: str, split: str = "validation") -> str:
    """The column a knee is chosen on: ``val_<metric>`` for validation, ``<metric>`` for test."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    return f"val_{metric}" if split == "validation" else metric


def knee_points(
    table: pd.DataFrame,
    metric: str = "accuracy",
    tolerance: float = 0.01,
    dense: float | None = None,
    split: str = "validation",
) -> pd.DataFrame:
    """Per method, the last row before the metric first leaves the tolerance of the dense model.

    Rows are taken in order of actual sparsity; a row is within when its metric (on ``split``) is at
    most ``tolerance`` below the dense model's (for loss: at most ``tolerance`` above). The knee is
    the row just before the first row that is not: a later recovery does not count, because the
    sparsities beyond a failure are not a safe operating range. ``dense`` is the dense model's
    metric on the same split; when None, each method's own 0 % sparsity row is its reference (a
    method without one has no knee). Methods whose first row is already outside have no knee.

    The rows returned are the table's own, so their test columns report the chosen points.
    """
    table = table.reset_index(drop=True)  # rows are picked by label; concatenated tables repeat labels
    if table.empty:
        return table
    column = selection_column(metric, split)
    if column not in table.columns:
        raise ValueError(
            f"the table has no {column!r} column to select knees on; sweep with a validation split, "
            "or select on split='test'"
        )
    lower_is_better = metric in LOWER_IS_BETTER
    tolerance += 1e-9  # a score exactly at the tolerance counts, whatever the float rounding
    chosen = []
    for _, rows in table.groupby("method", sort=False):
        rows = rows.sort_values("actual_sparsity", kind="stable")
        reference = dense
        if reference is None:
            zero = rows[rows["actual_sparsity"] == 0]
            if zero.empty:
                continue
            reference = float(zero[column].iloc[0])
        values = rows[column]
        ok = values <= reference + tolerance if lower_is_better else values >= reference - tolerance
        if values.isna().all():
            raise ValueError(f"no {column} values to select knees on; sweep with a validation split")
        first_out = (~ok).to_numpy().argmax() if not ok.all() else len(ok)
        if first_out > 0:
            chosen.append(rows.index[first_out - 1])
    return table.loc[chosen].reset_index(drop=True)
