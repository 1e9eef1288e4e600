"""Fine-tuning & schedules: one-shot vs prune-and-fine-tune, gradual, and lottery tickets."""

import time

import pandas as pd
import streamlit as st

from ui import compute, figures, own, state
from ui.engine import get_method, schedule_curve, steps_per_epoch

state.require_router()
config = st.session_state.explorer
st.title("Fine-tuning & schedules: recover what pruning costs")
state.show_notices()
own.require_data(config.model, "Fine-tuning")

with st.expander("What am I looking at?"):
    st.markdown(
        """
Pruning a trained network and using it straight away ("one-shot") loses accuracy. **Retraining
the remaining weights** for a little while, with the pruned ones held at zero, wins most of it
back. *How* you remove the weights matters too:

- **One-shot + fine-tuning**: remove everything at once, then retrain.
- **Iterative** (Han et al. 2015): remove a slice, retrain, remove another slice, retrain...
- **Gradual** (Zhu & Gupta 2017): raise the sparsity little by little *during* training.
- **Lottery ticket** (Frankle & Carbin 2019): after each pruning round, reset the surviving
  weights to the values they had *before training* and train again. The dashed line uses the same
  final mask with *random* new starting values and exactly the training the ticket's final model
  received (one round from its start): if the ticket is better, the starting values mattered.
  The hypothesis is about what *exists* (a sparse subnetwork that trains as well from its start),
  not a cheap way to find it: finding one costs a full training per round, several in all, and on
  larger networks it only works when rewinding to an early training iteration rather than to
  initialisation (Frankle et al. 2020).

Every trained curve gets the same training budget. Fine-tuning only ever uses the training data;
the test data is only used to measure. The second chart shows when each schedule removes weights;
the third compares training accuracy (dotted), test accuracy (solid) and accuracy on noisy test
inputs (dash-dot): a growing gap means the model memorises rather than generalises.
"""
    )
with st.expander("Pruning before, during or after training; seeds and noise"):
    st.markdown(
        """
- **After training** (this page, and every other view): prune a trained model, then fine-tune.
- **During training**: gradual pruning raises the sparsity as training goes.
- **At initialisation** (SNIP, SynFlow; and the random re-init control here): choose the mask
  before any training and train only the survivors. It is cheap, but Frankle et al. (2021) found
  such methods do about as well when their masks are shuffled within each layer: what they find is
  mostly how many weights each layer keeps, not which ones.
- **Random is a strong baseline once you retrain**: Liu et al. (2019) found pruned architectures
  trained from a fresh random start often match fine-tuned pruned weights, so much of what pruning
  finds is how many weights each layer keeps; random masks with those per-layer ratios are hard to
  beat. A method earns its keep by beating random at the same parameters and training budget.
- **Seeds and noise**: training depends on the seed and the order of batches, and the test set is
  small. Differences of a point or two between schedules can be noise; rerun with another seed.
"""
    )

unstructured = [m for m in config.methods if get_method(m).granularity != "n:m"] or ["magnitude"]
offered = list(compute.SCHEDULE_CURVES)
if config.model == own.UPLOAD:  # a lottery ticket rewinds to the weights before training: not in the file
    offered.remove("lottery")
    st.caption("Lottery tickets need the weights your model started training from, which the file does not hold.")
with st.form("schedule_settings"):
    c1, c2, c3 = st.columns(3)
    method = c1.selectbox("Method", unstructured, format_func=figures.method_label, key="sched_method")
    curves = c1.multiselect(
        "Schedules", offered, default=offered,
        format_func=lambda c: figures.SCHEDULE_STYLES[c][0], key="sched_curves",
    )  # fmt: skip
    n_levels = c2.slider("Sparsity levels to train at", 2, 10, 5, key="sched_levels")
    s_max = c2.slider("Highest sparsity", 0.5, 0.99, 0.95, step=0.01, key="sched_smax")
    epochs = c3.slider("Epochs per round", 1, 20, 2, key="sched_epochs")
    rounds = c3.slider("Rounds (iterative, lottery)", 2, 6, 3, key="sched_rounds")
    lr = c3.select_slider(
        "Learning rate", [1e-4, 3e-4, 1e-3, 3e-3, 1e-2], value=1e-3, key="sched_lr", format_func=lambda v: f"{v:g}"
    )
    run = st.form_submit_button("Run", type="primary")

levels = tuple(sorted({round(s_max * (i + 1) / n_levels, 4) for i in range(n_levels)}))
settings = (config.model, method, config.scope, levels, config.exclude, config.seed, tuple(curves), epochs, lr, rounds)
if run:
    st.session_state.sched_settings = settings
    st.session_state.sched_stopped = False
if st.session_state.get("sched_settings") != settings:
    st.info("Choose the schedules and settings, then press **Run**. On the digits models a run takes seconds.")
    st.stop()


uploaded = own.current() if config.model == own.UPLOAD else None
if uploaded is not None:
    too_costly = own.training_cost_problem(uploaded, epochs, rounds, len(levels), len(curves))
    if too_costly:
        st.error(f"Not run: {too_costly}.")
        st.stop()


def stop() -> None:
    st.session_state.sched_stopped = True


st.button("Stop", on_click=stop, key="sched_stop", help="Stops after the level being trained; finished schedules stay.")
bar = st.progress(0.0, text="Starting...")
frames, started = [], time.perf_counter()
stopped = st.session_state.get("sched_stopped", False)
if stopped:
    st.warning("Stopped: showing the schedules that had finished. Press **Run** to compute the rest.")
try:
    for i, curve in enumerate(curves):

        def progress(fraction: float, message: str, i: int = i, curve: str = curve) -> None:
            done = (i + fraction) / len(curves)
            elapsed = time.perf_counter() - started
            left = elapsed / done - elapsed if done > 0 else 0
            bar.progress(
                min(done, 1.0), text=f"{figures.SCHEDULE_STYLES[curve][0]}: {message} · about {left:.0f} s left in all"
            )

        frames.append(
            compute.schedule_sweep(
                config.model,
                method,
                config.scope,
                levels,
                config.exclude,
                config.seed,
                curve,
                epochs,
                lr,
                rounds,
                progress,
            )  # fmt: skip
        )
finally:  # also when a computation stops (an upload's time limit)
    bar.empty()
if not frames:
    st.stop()
table = pd.concat(frames, ignore_index=True)
dense = compute.dense_metrics(config.model)["accuracy"]
st.plotly_chart(figures.schedules_figure(table, dense), key="sched_accuracy")

data = compute.data_of(config.model)
curves_to_plot = {}
for curve in curves:
    schedule = compute.curve_schedule(curve, epochs, lr, rounds)
    if schedule is not None:
        curves_to_plot[curve] = schedule_curve(schedule, levels[-1], len(data.y_train))
    else:
        curves_to_plot[curve] = [(0, 0.0), (0, levels[-1])]
left, right = st.columns(2)
left.plotly_chart(figures.schedule_curves_figure(curves_to_plot), key="sched_curves_plot")
left.caption(
    f"Shown for the highest sparsity, {levels[-1]:.0%}; {steps_per_epoch(len(data.y_train), 64)} steps per epoch."
)
right.plotly_chart(figures.generalisation_figure(table[table["curve"] != "lottery-reinit"]), key="sched_gap")

st.subheader("Results")
st.dataframe(
    table[
        [
            "curve",
            "target_sparsity",
            "actual_sparsity",
            "accuracy",
            "train_accuracy",
            "noisy_accuracy",
            "loss",
            "finetune_epochs",
            "seconds",
        ]
    ],
    hide_index=True,
    column_config={
        c: st.column_config.NumberColumn(format="percent")
        for c in ("target_sparsity", "actual_sparsity", "accuracy", "train_accuracy", "noisy_accuracy")
    },
)
st.download_button(
    "Download results (CSV)",
    table.to_csv(index=False),
    f"prunelab-{config.model}-schedules.csv",
    "text/csv",
    on_click="ignore",
)
