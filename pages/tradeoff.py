"""Trade-off: a metric against size/sparsity, one line per method, with each method's knee."""

import streamlit as st

from ui import compute, figures, own, state
from ui.engine import get_method, wilson_half_width

N_SEEDS = 3

state.require_router()
config = st.session_state.explorer
st.title("Trade-off: how far can this model be pruned?")
state.show_notices()
own.require_data(config.model, "The trade-off chart")

with st.expander("What am I looking at?"):
    st.markdown(
        """
**Pruning** removes weights from a trained network. Each line is one way of choosing *which*
weights to remove; each point is the same trained model with a larger share of its weights set to
zero, then tested on data it never saw during training (no retraining here).

- The **dashed line** is the unpruned ("dense") model. Lines that stay near it are methods that
  remove weights the model did not need.
- The **star** on each line is its *knee*: the last swept sparsity before the score first falls
  more than the tolerance below the dense model's, one-shot, without retraining, chosen on the
  validation split and reported on the test split (one sample is a fraction of a point here). It
  is a rough operating point, not a guarantee: a second seed or another split can move it, and
  fine-tuning usually goes further.
- **Sparsity** is the share of weights that are zero. **Compression ratio** is total parameters
  divided by nonzero ones. **Theoretical speedup** counts the multiply-adds that involve a nonzero
  weight: dense kernels skip none of the others, CPU sparse kernels pay only past a sparsity you
  can see measured on *Size & speed*, and GPUs accelerate only the 2:4 pattern.
- **Random** is the baseline: without retraining, a criterion that does not beat it is not telling
  important weights from unimportant ones. After retraining, random masks are a strong baseline.
"""
    )
with st.expander("Comparing fairly: matched parameters, validation versus test, intervals and seeds"):
    st.markdown(
        f"""
- **Compare at matched parameters.** Methods that reach different actual sparsities (structured
  ones keep the output layer, excluded layers stay dense) are compared fairly along the *nonzero
  parameters* axis, at the same count, not at the same target.
- **Effective sparsity** counts weights that can no longer affect the output, e.g. the inputs of a
  removed neuron: they are still nonzero, but nothing they compute reaches the output.
- **Validation versus test.** Every sample has three splits. Knees (and per-layer proposals) are
  **chosen on the validation split**, held out from training, and **reported on the test split**:
  choosing on the data that then reports the result would flatter it.
- **The knee** is the last sparsity before the validation score *first* falls below the
  tolerance; a method that dips and recovers keeps its knee before the dip.
- **95 % intervals** (Wilson) show how much a test accuracy could move by the luck of which
  samples are in the test set: with a few hundred samples, one image is a third of a point.
  Differences smaller than the bars are not results.
- **Seeds.** Random pruning, data-driven scores and any training depend on the seed. Run the
  random methods with {N_SEEDS} seeds to see the band one result could have fallen in.
- *Random (magnitude's allocation)* prunes as many weights per layer as global magnitude, at
  random: it separates *which layers* lose weights from *which weights* in them.
- **Layer collapse.** Under global unstructured pruning any layer can lose all its weights, not
  only the output layer; accuracy then falls to chance. SynFlow (data-free, iterative) avoids it.
"""
    )

X_DEFAULT, Y_DEFAULT = figures.TRADEOFF_X_DEFAULT, figures.TRADEOFF_Y_DEFAULT
TOL_DEFAULT = f"{figures.TRADEOFF_TOLERANCE_DEFAULT:g}"
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
    help="The knee is the last sparsity before the validation score first falls more than this many points "
    "below the dense model's (on validation); it is reported on test.",
)
seeded = [m for m in config.methods if get_method(m).uses_seed]
opt_left, opt_right = st.columns(2)
show_intervals = opt_left.checkbox(
    "Show 95 % intervals",
    key="tradeoff_ci",
    help="Wilson 95 % interval of each test accuracy: how far it could move with another draw of test samples.",
)
run_seeds = opt_right.checkbox(
    f"Run random methods with {N_SEEDS} seeds",
    key="tradeoff_seeds",
    disabled=not seeded,
    help=f"Sweeps each seeded method with seeds {config.seed} to {config.seed + N_SEEDS - 1} and shades "
    "the range between the lowest and highest result.",
)
state.set_page_param("x", x, X_DEFAULT)
state.set_page_param("y", y, Y_DEFAULT)
state.set_page_param("tol", f"{tolerance:g}", TOL_DEFAULT)

compute.sweep_all(config)  # computes (or waits for) what is missing, with a progress bar
n_seeds = N_SEEDS if run_seeds and seeded else 0
table, knees, fig, spread = compute.tradeoff_view(config, x, y, tolerance, intervals=show_intervals, seeds=n_seeds)
dense = compute.dense_metrics(config.model)
dense_val = compute.dense_validation_metrics(config.model)
scale = figures.Y_METRICS[y][1]
data = compute.data_of(config.model)
st.plotly_chart(fig, key="tradeoff_chart")
n_val = len(data.y_val)
noise = wilson_half_width(dense_val["accuracy"], n_val)
if y == "accuracy" and tolerance / scale < noise:
    st.warning(
        f"The tolerance ({tolerance:g} point{'' if tolerance == 1 else 's'}) is below the noise: "
        f"on the {n_val} validation samples that choose "
        f"the knees, the 95 % interval around the dense accuracy ({dense_val['accuracy']:.1%}) is "
        f"±{noise * 100:.1f} points, so knees this tight are partly chosen by chance.",
        icon="⚠️",
    )
if show_intervals and y != "accuracy":
    st.caption("95 % intervals are drawn for accuracy only (a proportion of test samples).")
if spread is not None and not spread.empty:
    widest = spread.loc[(spread[f"{y}_max"] - spread[f"{y}_min"]).idxmax()]
    st.caption(
        f"Over seeds {config.seed}–{config.seed + N_SEEDS - 1}, the widest range is "
        f"{figures.method_label(widest['method'])} at {widest['target_sparsity']:.0%} sparsity: "
        f"{widest[f'{y}_min'] * scale:.1f} to {widest[f'{y}_max'] * scale:.1f} "
        f"(mean {widest[f'{y}_mean'] * scale:.1f} ± {widest[f'{y}_std'] * scale:.1f} std)."
    )

if not knees.empty:
    cols = st.columns(min(4, len(knees)))
    for col, (_, row) in zip(cols * 10, knees.iterrows()):
        col.metric(
            f"Knee: {figures.method_label(row['method'])}",
            f"{row['effective_sparsity']:.0%} sparse",
            f"{(row[y] - dense[y]) * scale:+.2f} {'points' if scale != 1 else ''}".strip(),
            delta_color="off"
            if round((row[y] - dense[y]) * scale, 2) == 0
            else ("normal" if y != "loss" else "inverse"),
            help="The knee is the last sparsity before the validation score first falls more than the tolerance "
            f"below dense. {row['effective_params']:,.0f} parameters still needed ({row['actual_sparsity']:.0%} of "
            "the weights are zeros; effective sparsity also counts what dead neurons take with them). "
            f"Chosen on validation ({row[f'val_{y}'] * scale:.2f}), reported on test ({row[y] * scale:.2f}"
            + (f", 95 % interval {row['accuracy_low']:.1%} to {row['accuracy_high']:.1%})" if y == "accuracy" else ")"),
        )
else:
    st.info("No method starts within the tolerance of the dense model (on validation) at its lowest swept sparsity.")

st.subheader("Results")
st.caption(
    f"{len(table)} rows · test set of {len(data.y_test)} samples (reports), validation set of "
    f"{len(data.y_val)} (chooses the knees) · sparsity counts every Linear/Conv weight; "
    "sizes are float32 parameters; sparse size is the smallest of dense, CSR and bitmask encodings per pruned tensor."
)
# The full table is many columns of every row: converting it costs more server time than the chart,
# so it is drawn when asked for (the CSV below is built only when downloaded).
show_table = st.toggle("Show the results table", key="tradeoff_table")
if show_table:
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
                "accuracy_low",
                "accuracy_high",
                "val_accuracy",
                "val_precision",
                "val_recall",
                "val_f1",
            )  # fmt: skip
        },
    )
st.download_button(
    "Download results (CSV)",
    data=lambda: table.assign(model=compute.model_label(config.model)).to_csv(index=False),
    file_name=f"prunelab-{config.model}-sweep.csv",
    mime="text/csv",
    on_click="ignore",
)
