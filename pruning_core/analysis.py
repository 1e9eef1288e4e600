"""Reading a sweep table: where each method's accuracy stops holding up."""

from __future__ import annotations

import pandas as pd

LOWER_IS_BETTER = {"loss"}


def knee_points(
    table: pd.DataFrame, metric: str = "accuracy", tolerance: float = 0.01, dense: float | None = None
) -> pd.DataFrame:
    """Per method, the row with the highest actual sparsity whose ``metric`` is within ``tolerance``
    of the dense model's (for loss: at most ``tolerance`` above it).

    ``dense`` defaults to the metric at the lowest sparsity swept. Methods that never stay within
    the tolerance are left out.
    """
    table = table.reset_index(drop=True)  # rows are picked by label; concatenated tables repeat labels
    if table.empty:
        return table
    if dense is None:
        dense = float(table.loc[table["actual_sparsity"].idxmin(), metric])
    lower_is_better = metric in LOWER_IS_BETTER
    tolerance += 1e-9  # a score exactly at the tolerance counts, whatever the float rounding
    ok = table[metric] <= dense + tolerance if lower_is_better else table[metric] >= dense - tolerance
    within = table[ok]
    if within.empty:
        return within
    return within.loc[within.groupby("method", sort=False)["actual_sparsity"].idxmax()].reset_index(drop=True)
