"""The Studies page: a results file gives one mean line per (method, schedule) with its 95 % band
and a table with mean, std and n; a bad file is refused with a message, never an exception."""

from __future__ import annotations

import io
import math
import statistics

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from tests.app.test_pages import figures, run_sidebar_app

T_975_DF2 = 4.302652729911275  # Student t, two-sided 95 %, 2 degrees of freedom


def results() -> pd.DataFrame:
    rows = []
    accuracies = {("random", 0.5): [0.6, 0.7, 0.65], ("random", 0.9): [0.2, 0.3, 0.1], ("magnitude", 0.5): [0.9] * 3}
    accuracies[("magnitude", 0.9)] = [0.8, 0.82, 0.78]
    for (method, sparsity), values in accuracies.items():
        for seed, accuracy in enumerate(values):
            rows.append(
                {
                    "cell_id": f"{method}{seed}",
                    "status": "ok",
                    "error": "",
                    "model": "digits-mlp",
                    "method": method,
                    "scope": "global",
                    "schedule_name": "oneshot",
                    "schedule": "oneshot",
                    "target_sparsity": sparsity,
                    "actual_sparsity": sparsity,
                    "seed": seed,
                    "accuracy": accuracy,
                    "loss": 1 - accuracy,
                }  # fmt: skip
            )
    rows.append({**rows[0], "cell_id": "x", "status": "failed", "error": "boom", "accuracy": math.nan})
    return pd.DataFrame(rows)


def upload(at: AppTest, name: str, data: bytes) -> AppTest:
    at.get("file_uploader")[0].set_value((name, data, "application/octet-stream"))
    return at.run()


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_a_results_file_shows_mean_lines_with_bands_and_the_table(fmt):
    table = results()
    data = table.to_parquet(index=False) if fmt == "parquet" else table.to_csv(index=False).encode()
    at = upload(run_sidebar_app("studies.py"), f"r.{fmt}", data)
    assert not at.exception
    (fig,) = figures(at)
    lines = [t for t in fig["data"] if t.get("mode") == "lines+markers"]
    bands = [t for t in fig["data"] if t.get("fill") == "toself"]
    assert len(lines) == 2 and len(bands) == 2
    random_line = next(t for t in lines if "Random" in t["name"])
    assert random_line["y"] == pytest.approx([65.0, 20.0])
    random_band = next(t for t in bands if "Random" in t["name"])
    half = T_975_DF2 * statistics.stdev([0.6, 0.7, 0.65]) / math.sqrt(3) * 100
    assert max(random_band["y"][:2] + random_band["y"][2:]) == pytest.approx(65.0 + half)
    shown = at.dataframe[0].value
    assert {"mean", "std", "n"} <= set(shown.columns)
    assert set(shown["n"]) == {3}
    assert any("1 cell(s) failed" in w.value for w in at.warning)


@pytest.mark.parametrize(
    "name, data, named",
    [
        ("r.parquet", b"not parquet at all", "cannot be read"),
        ("r.csv", b"a,b\n1,2\n", "lacks the column"),
    ],
)
def test_a_bad_file_is_refused_with_a_message(name, data, named):
    at = upload(run_sidebar_app("studies.py"), name, data)
    assert not at.exception
    assert any(named in e.value for e in at.error)
    assert not at.get("plotly_chart")


def test_an_oversize_file_is_refused_before_it_is_parsed():
    from pruning_core.study_stats import read_results_bytes

    with pytest.raises(ValueError, match="at most 10"):
        read_results_bytes("r.csv", b"x" * 11, max_bytes=10)
    assert isinstance(read_results_bytes("r.parquet", io.BytesIO(results().to_parquet()).getvalue()), pd.DataFrame)
