"""Studies: explore a study's results file (many seeds) with mean curves and 95 % bands."""

import streamlit as st

from ui import figures, state
from ui.engine import MAX_RESULTS_BYTES, knees, read_results_bytes, summarise

state.require_router()
st.title("Studies: how much of a difference is real?")

with st.expander("What am I looking at?"):
    st.markdown(
        """
A **study** runs the same pruning comparison with several **seeds**: random masks, the order of
training examples and (optionally) the calibration sample change with the seed. One run can be
lucky; the spread across seeds says how much of a difference between two methods is real.

Run one with `python -m pruning_core study STUDY.yaml --out results.parquet` (add `--backend ray`
to spread the cells over a Ray cluster), then upload the results file here. A study of your own
model names it by its format and SHA-256, never by a path on your machine. Each line is the
**mean** over seeds; the shaded band is the **95 % confidence interval** of that mean (Student t).
Where two bands overlap a lot, the study cannot tell the methods apart at that sparsity.
"""
    )

upload = st.file_uploader(
    f"A study's results file (.parquet or .csv, at most {MAX_RESULTS_BYTES // 1_000_000} MB)",
    type=["parquet", "csv"],
    key="study_results",
)
if upload is None:
    st.info("Upload the file that `python -m pruning_core study ... --out FILE` wrote.")
    st.stop()

try:
    results = read_results_bytes(upload.name, upload.getvalue())
except ValueError as exc:
    st.error(f"This file cannot be shown: {exc}")
    st.stop()

failed = results[results["status"] != "ok"]
if not failed.empty:
    st.warning(
        f"{failed['cell_id'].nunique() if 'cell_id' in failed else len(failed)} cell(s) failed and are left out; "
        "run the study again to retry them."
    )
ok = results[results["status"] == "ok"]
if ok.empty:
    st.error("The file holds no finished cells yet.")
    st.stop()

models = sorted(ok["model"].unique())
model = st.selectbox("Model", models, key="study_model")
metrics = [m for m in ("accuracy", "f1", "precision", "recall", "loss") if m in ok]
metric = st.selectbox("Metric", metrics, key="study_metric")
rows = ok[ok["model"] == model]
if "model_sha256" in rows and rows["model_sha256"].notna().any():
    first = rows.iloc[0]
    st.caption(
        f"Your own model: {first['model_format']} file, SHA-256 {first['model_sha256']}; "
        f"data: {first['data_format']} file, SHA-256 {first['data_sha256']}."
    )
summary = summarise(rows, metrics=(metric,))
st.plotly_chart(figures.study_bands_figure(summary, metric), key="study_bands")

st.subheader("Mean, standard deviation and n per point")
shown = summary.rename(columns={f"{metric}_{k}": k for k in ("mean", "std", "n", "ci_low", "ci_high")})
st.dataframe(shown, hide_index=True)

st.subheader("Knees across seeds")
st.caption("Per seed, the highest sparsity within 1 point of the lowest sparsity swept; then summarised.")
st.dataframe(knees(rows), hide_index=True)
