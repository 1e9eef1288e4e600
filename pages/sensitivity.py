"""Sensitivity: which layers can lose weights, and a per-layer allocation that fits a budget."""

from dataclasses import replace

import streamlit as st

from ui import compute, figures, own, state
from ui.engine import get_method

state.require_router()
if st.session_state.pop("goto_tradeoff", False):
    st.switch_page("pages/tradeoff.py")
config = st.session_state.explorer
st.title("Sensitivity: how much can each layer lose?")
state.show_notices()
own.require_data(config.model, "Sensitivity")

with st.expander("What am I looking at?"):
    st.markdown(
        """
Layers are not equally important. Here each layer is pruned **on its own**, the others left
intact, at growing sparsity, and the drop in validation accuracy is recorded (test beside it) (Li et al. 2017; the
approach of Distiller and SparseML). Layers whose line stays flat can lose many weights; steep ones
cannot.

From these curves PruneLab proposes **one sparsity per layer** that reaches your overall target
while keeping the accuracy drop within your budget. Drops of single layers do not simply add up, so
the proposal is then checked with every layer pruned at once, and made more careful until it fits
the budget. If the target cannot be reached within the budget, you see how close it gets.
Send the proposal to the trade-off view to compare it with uniform and global pruning.

The proposal is chosen on a validation split, not the test set, so the test accuracy it reports
is not flattered by the choice. One-shot, without retraining: fine-tuning usually allows more.
"""
    )

methods = [m for m in config.methods if get_method(m).granularity != "n:m"] or ["magnitude"]
c1, c2, c3 = st.columns(3)
method = c1.selectbox("Method", methods, format_func=figures.method_label, key="sens_method")
target = c2.slider("Overall target sparsity", 0.1, 0.99, 0.8, step=0.01, key="sens_target", format="%.2f")
budget = c3.slider("Accuracy budget (points)", 0.0, 10.0, 1.0, step=0.25, key="sens_budget")

table = compute.sensitivity_table(config.model, method, config.exclude, config.seed)
left, right = st.columns([3, 2])
left.plotly_chart(figures.sensitivity_figure(table), key="sens_curves")
right.plotly_chart(figures.sensitivity_heatmap(table), key="sens_heatmap")

proposal = compute.sensitivity_proposal(config.model, method, config.exclude, config.seed, target, budget / 100)
params = table.groupby("layer", sort=False)["params"].first().to_dict()
m1, m2, m3 = st.columns(3)
m1.metric(
    "Overall sparsity of the proposal", f"{proposal.overall_sparsity:.1%}", f"target {target:.0%}", delta_color="off"
)
m2.metric(
    f"Measured accuracy drop on {proposal.split} (all layers at once)",
    f"{proposal.measured_drop * 100:.2f} points",
    f"budget {budget:g}; test: {proposal.test_drop * 100:.2f} points",
    delta_color="off",
    help="The proposal is chosen and checked against the budget on the validation split; the test drop is "
    "reported only, so it may exceed the budget.",
)
m3.metric("Meets the target?", "yes" if proposal.meets_target else "no")
if not proposal.meets_target:
    st.warning(
        f"{target:.0%} is out of reach within {budget:g} points of accuracy with one-shot {figures.method_label(method)}: "
        f"the best that fits the budget is {proposal.overall_sparsity:.1%}. Raise the budget, lower the target, or "
        "fine-tune (see Fine-tuning & schedules)."
    )
st.plotly_chart(figures.allocation_figure(proposal.layer_sparsities, params), key="sens_allocation")


def send() -> None:
    state.set_config(
        replace(
            st.session_state.config,
            allocation=tuple(proposal.layer_sparsities.items()),
            allocation_method=method,
        )
    )
    st.session_state.goto_tradeoff = True


st.button("Send the proposal to the trade-off view", on_click=send, type="primary", key="sens_send")
source = "--model-file YOUR_MODEL --data YOUR_DATA" if config.model == own.UPLOAD else f"--model {config.model}"
st.caption(
    f"Or take it away: `python -m pruning_core sensitivity {source} --method {method} --target {target:g} "
    f"--budget {budget:g}` prints the same table and proposal."
)
