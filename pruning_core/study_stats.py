"""Summaries of a study across seeds: mean, standard deviation, n and a 95 % confidence interval.

The interval is Student's t over seeds: mean +- t(0.975, n - 1) * s / sqrt(n), with s the sample
standard deviation (ddof=1). It describes the variation the seeds produce (random masks, shuffling,
calibration when seeded, re-initialisation); the test set is fixed, so it is not a test-sampling
interval. One seed gives no interval (NaN). Knees are found per seed, then summarised the same way.
"""

from __future__ import annotations

import math

import pandas as pd
from scipy import stats

from pruning_core.analysis import knee_points

GROUP = ["model", "method", "scope", "schedule_name", "schedule", "target_sparsity"]
CURVE = GROUP[:-1]  # one curve per (model, method, scope, schedule): the knee's unit
CONFIDENCE = 0.95


def t_quantile(n: int, confidence: float = CONFIDENCE) -> float:
    """Two-sided Student t quantile for a mean over ``n`` values (NaN for fewer than 2)."""
    if n < 2:
        return math.nan
    return float(stats.t.ppf(0.5 + confidence / 2, n - 1))


def _describe(values: pd.Series) -> dict[str, float]:
    values = values.dropna()
    n = len(values)
    mean = float(values.mean()) if n else math.nan
    std = float(values.std(ddof=1)) if n > 1 else math.nan
    half = t_quantile(n) * std / math.sqrt(n) if n > 1 else math.nan
    return {"mean": mean, "std": std, "n": n, "ci_low": mean - half, "ci_high": mean + half}


def _ok_rows(results: pd.DataFrame) -> pd.DataFrame:
    if "status" in results:
        results = results[results["status"] == "ok"]
    return results


def summarise(results: pd.DataFrame, metrics: tuple[str, ...] = ("accuracy",)) -> pd.DataFrame:
    """One row per (model, method, scope, schedule, target sparsity): for each metric its mean,
    standard deviation, n (seeds) and 95 % interval, as ``METRIC_mean``, ``METRIC_std``, ``METRIC_n``,
    ``METRIC_ci_low``, ``METRIC_ci_high``; plus the mean actual sparsity. Failed cells are left out."""
    results = _ok_rows(results)
    keys = [k for k in GROUP if k in results]
    rows = []
    for key, group in results.groupby(keys, sort=True, dropna=False):
        row = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        for metric in metrics:
            row.update({f"{metric}_{k}": v for k, v in _describe(group[metric]).items()})
        if "actual_sparsity" in group:
            row["actual_sparsity_mean"] = float(group["actual_sparsity"].mean())
        rows.append(row)
    return pd.DataFrame(rows)


def knees(results: pd.DataFrame, metric: str = "accuracy", tolerance: float = 0.01) -> pd.DataFrame:
    """Each curve's knee (the last sparsity before the metric first leaves ``tolerance`` of the
    curve's own 0 % point, as ``analysis.knee_points`` defines it) found per seed, then summarised
    over seeds: ``knee_mean``, ``knee_std``, ``knee_n``, ``knee_ci_low``, ``knee_ci_high`` (actual
    sparsity), ``seeds_without_knee`` and ``knee_split``. Knees are chosen on the validation columns
    when the results carry them (every sweep does), else on test, and ``knee_split`` says which.
    Include sparsity 0 in a study so the reference is the dense model."""
    results = _ok_rows(results)
    split = "validation" if f"val_{metric}" in results.columns else "test"
    keys = [k for k in CURVE if k in results]
    rows = []
    for key, curve in results.groupby(keys, sort=True, dropna=False):
        per_seed, missing = [], 0
        for _, seed_rows in curve.groupby("seed"):
            knee = knee_points(seed_rows, metric=metric, tolerance=tolerance, split=split)
            if knee.empty:
                missing += 1
            else:
                per_seed.append(float(knee["actual_sparsity"].iloc[0]))
        row = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        row.update({f"knee_{k}": v for k, v in _describe(pd.Series(per_seed, dtype=float)).items()})
        row["seeds_without_knee"] = missing
        row["knee_split"] = split
        rows.append(row)
    return pd.DataFrame(rows)


REQUIRED_COLUMNS = ("status", "model", "method", "scope", "schedule_name", "schedule", "target_sparsity", "seed")
MAX_RESULTS_BYTES = 50_000_000


def read_results_bytes(name: str, data: bytes, max_bytes: int = MAX_RESULTS_BYTES) -> pd.DataFrame:
    """A study's results from an uploaded file's bytes (Parquet or CSV by name), checked: size first,
    then that it parses and has the columns a study writes. Raises ValueError naming the problem."""
    import io

    if len(data) > max_bytes:
        raise ValueError(f"the file is {len(data):,} bytes; at most {max_bytes:,}")
    suffix = name.lower().rsplit(".", 1)[-1]
    if suffix not in ("parquet", "csv"):
        raise ValueError(f"{name!r} is not a .parquet or .csv file")
    try:
        table = pd.read_parquet(io.BytesIO(data)) if suffix == "parquet" else pd.read_csv(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 - any parse failure is the user's file, reported as such
        raise ValueError(f"{name!r} cannot be read as {suffix}: {str(exc).splitlines()[0][:200]}") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in table]
    if missing:
        raise ValueError(f"{name!r} lacks the column(s) {', '.join(missing)}: is it a study's results file?")
    ok = table[table["status"] == "ok"]
    for column in ("target_sparsity", "seed", "actual_sparsity", "accuracy"):
        if column in ok and not pd.api.types.is_numeric_dtype(ok[column]):
            raise ValueError(f"column {column!r} of {name!r} must hold numbers")
    if "accuracy" not in table:
        raise ValueError(f"{name!r} lacks the column accuracy: is it a study's results file?")
    return table
