"""Trade-off: a metric against size/sparsity, one line per method, with each method's knee."""

import pandas as pd
import streamlit as st

from pruning_core.analysis import knee_points
from ui import compute, figures, state

state.require_router()
config = st.session_state.explorer
st.title("Trade-off: how far can this model be pruned?")
state.show_notices()

with st.expander("What am I looking at?"):
    st.markdown(
        """
**Pruning** removes weights from a trained network. Each line is one way of choosing *which*
weights to remove; each point is the same trained model with a larger share of its weights set to
zero, then tested on data it never saw during training (no retraining here).

- The **dashed line** is the unpruned ("dense") model. Lines that stay near it are methods that
  remove weights the model did not need.
- The **star** on each line is its *knee*: the highest sparsity whose score is still within the
  tolerance of the dense model. That is how far you can go with that method "for free".
- **Sparsity** is the share of weights that are zero. **Compression ratio** is total parameters
  divided by nonzero ones. **Theoretical speedup** counts multiply-adds skipped; real dense
  hardware skips none of them (see *Size & speed*).
- *Random* is the baseline: a method that does not beat it has learnt nothing about importance.
"""
    )

X_DEFAULT, Y_DEFAULT, TOL_DEFAULT = next(iter(figures.X_AXES)), "accuracy", "1"
x_labels = {k: v[1] for k, v in figures.X_AXES.items()}
y_labels = {k: v[0] for k, v in figures.Y_METRICS.items()}
if "tradeoff_x" not in st.session_state:
    st.session_state.tradeoff_x = state.page_param("x", X_DEFAULT, list(x_labels))
    st.session_state.tradeoff_y = state.page_param("y", Y_DEFAULT, list(y_labels))
    tol_text = state.page_param("tol", TOL_DEFAULT)
    try:
        tol = float(tol_text)
        if not 0 <= tol <= 50:
            raise ValueError
    except ValueError:
        st.warning(f"Link: tol={tol_text!r} is not a tolerance from 0 to 50 points; using 1.", icon="⚠️")
        tol = 1.0
    st.session_state.tradeoff_tol = tol

left, middle, right = st.columns([2, 2, 2])
x = left.selectbox("x axis", list(x_labels), format_func=x_labels.get, key="tradeoff_x")
y = middle.selectbox("y axis", list(y_labels), format_func=y_labels.get, key="tradeoff_y")
tolerance = right.slider(
    "Knee tolerance (points below dense)",
    0.0,
    10.0,
    step=0.25,
    key="tradeoff_tol",
    help="The knee is the highest sparsity whose score is at most this many points worse than the dense model's.",
)
state.set_page_param("x", x, X_DEFAULT)
state.set_page_param("y", y, Y_DEFAULT)
state.set_page_param("tol", f"{tolerance:g}", TOL_DEFAULT)

table = compute.sweep_all(config)
if config.allocation:
    proposal = compute.allocation_row(
        config.model, config.allocation_method, config.allocation, config.exclude, config.seed
    )
    table = pd.concat([table, proposal], ignore_index=True)
dense = compute.dense_metrics(config.model)
scale = figures.Y_METRICS[y][1]
knees = knee_points(table, metric=y, tolerance=tolerance / scale if scale != 1 else tolerance, dense=dense[y])
sample = compute.shared_sample(config.model)
fig = figures.tradeoff_figure(
    table,
    x=x,
    y=y,
    dense=dense[y],
    knees=knees,
    title=f"{config.model}: {figures.Y_METRICS[y][0].split(' (')[0]} vs {x_labels[x].split(' (')[0].lower()} ({config.scope} scope)",
)
st.plotly_chart(fig, key="tradeoff_chart")

if not knees.empty:
    cols = st.columns(min(4, len(knees)))
    for col, (_, row) in zip(cols * 10, knees.iterrows()):
        col.metric(
            f"Knee: {figures.method_label(row['method'])}",
            f"{row['actual_sparsity']:.0%} sparse",
            f"{(row[y] - dense[y]) * scale:+.2f} {'points' if scale != 1 else ''}".strip(),
            delta_color="normal" if y != "loss" else "inverse",
        )
else:
    st.info("No method stays within the tolerance of the dense model at any swept sparsity above the lowest.")

st.subheader("Results")
st.caption(
    f"{len(table)} rows · test set of {len(sample.data.y_test)} samples · sparsity counts every Linear/Conv weight; "
    "sizes are float32 parameters; sparse size is the smaller of CSR and bitmask encodings per pruned tensor."
)
st.dataframe(
    table,
    hide_index=True,
    column_config={
        c: st.column_config.NumberColumn(format="percent")
        for c in (
            "target_sparsity",
            "actual_sparsity",
            "effective_sparsity",
            "sparsity_all_params",
            "accuracy",
            "precision",
            "recall",
            "f1",
        )
    },
)
st.download_button(
    "Download results (CSV)",
    data=table.assign(model=config.model).to_csv(index=False),
    file_name=f"prunelab-{config.model}-sweep.csv",
    mime="text/csv",
    on_click="ignore",
)
