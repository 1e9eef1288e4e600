"""Layers: what one method at one sparsity did to each layer."""

import numpy as np
import streamlit as st

from ui import compute, figures, own, state
from ui.engine import get_method

state.require_router()
config = st.session_state.explorer
st.title("Layers: where did the pruning go?")
state.show_notices()
own.require_chosen(config.model)

with st.expander("What am I looking at?"):
    st.markdown(
        """
A network is a stack of **layers**; each holds a grid of **weights**. Pick one pruning method and
one sparsity to see, layer by layer, which weights it removed.

- **Histograms**: the values of a layer's weights. Blue bars are kept, orange are pruned. Magnitude
  pruning removes the weights closest to zero, so the orange sits in the middle, between the dotted
  threshold lines. Random pruning takes evenly from everywhere.
- **Sparsity per layer**: with a *global* scope, layers with many small weights lose more. Any
  layer can empty under global pruning (**layer collapse**): then nothing flows through it and
  accuracy falls to chance. Layer-wise scope cannot collapse a layer; SynFlow avoids it globally.
- **Mask**: each row is a neuron (or filter), each column one of its inputs. Structured methods
  remove whole rows.
"""
    )
with st.expander("Effective sparsity: weights that are nonzero but useless"):
    st.markdown(
        """
Effective sparsity counts weights that can no longer affect the output, e.g. the inputs of a
removed neuron: once every outgoing weight of a neuron is pruned, its incoming weights still
count as nonzero but compute nothing that reaches the output. At high global sparsity this makes
the real sparsity higher than the nominal one; when a whole layer empties, everything before it is
effectively pruned.
"""
    )

c1, c2, c3 = st.columns([2, 2, 1])
method, sparsity = state.pick_method_and_sparsity("layers", "l", config.methods[0], 0.9, columns=(c1, c2))
st.caption(f"**{figures.method_label(method)}**: {get_method(method).description}")
own.require_method_data(config.model, figures.method_label(method), get_method(method).needs_data)
if "layers_log" not in st.session_state:
    st.session_state.layers_log = state.page_param("log", "0", ["0", "1"]) == "1"
log_count = c3.checkbox("Log counts", key="layers_log")
state.set_page_param("log", "1" if log_count else "0", "0")

view = compute.layer_view(config.model, config.choice(method, sparsity))
table = view.table
for note in view.notes:  # how the request was adjusted (an N:M pattern's own sparsity, a scope fallback)
    st.info(note)
total, nonzero = int(table["params"].sum()), int(table["nonzero"].sum())
if get_method(method).granularity == "structured":
    st.caption(
        "Structured methods remove whole neurons/filters but never the output layer's (they are the "
        "classes), and every layer keeps at least one: overall sparsity can stay below the target."
    )
m1, m2, m3, m4 = st.columns(4)
m1.metric(
    "Prunable weights",
    f"{total:,}",
    help="Weights of every Linear and Conv layer: what pruning may remove (biases and BatchNorm are not counted).",
)
m2.metric("Nonzero after pruning", f"{nonzero:,}")
m3.metric("Overall sparsity", f"{1 - nonzero / total:.1%}")
if compute.data_of(config.model) is None:
    m4.metric("Test accuracy here", "no data", help="Upload labelled data in the sidebar to see accuracy.")
else:
    swept = compute.method_sweep(config.model, method, config.scope, config.levels, config.exclude, config.seed)
    at_level = swept.iloc[(swept["target_sparsity"] - sparsity).abs().argsort().iloc[0]]
    m4.metric(
        "Test accuracy here",
        f"{at_level['accuracy']:.1%}",
        f"{(at_level['accuracy'] - compute.dense_metrics(config.model)['accuracy']) * 100:+.1f} points vs dense",
        delta_color="off",
    )

st.plotly_chart(
    figures.layer_histograms(view.weights, view.kept, threshold=view.threshold, log_count=log_count),
    key="layers_hist",
)
left, right = st.columns([3, 2])
left.plotly_chart(figures.layer_sparsity_bars(table), key="layers_bars")
right.dataframe(
    table,
    hide_index=True,
    column_config={
        "sparsity": st.column_config.NumberColumn(format="percent"),
        "params": st.column_config.NumberColumn(format="localized"),
        "nonzero": st.column_config.NumberColumn(format="localized"),
    },
)

drawable = [layer for layer, mask in view.kept.items() if mask.size <= 40_000]
if drawable:
    left, right = st.columns([3, 2])
    layer = left.selectbox("Mask of layer", drawable, key="layers_mask_layer")
    left.plotly_chart(figures.mask_heatmap(view.kept[layer], layer), key="layers_mask")
    first = list(view.kept)[0]
    pixels = compute.first_layer_pixel_counts(config.model, view.kept[first])
    if pixels is not None:
        counts, most = pixels
        right.plotly_chart(figures.pixel_map(np.asarray(counts), most), key="layers_pixels")
        right.caption(figures.pixel_map_caption(np.asarray(counts)))
else:
    st.caption("Every layer is too large to draw as a mask (over 40,000 weights).")
