"""Size & speed: what pruning does to file size and CPU latency, masked versus physically smaller."""

import streamlit as st

from ui import compute, figures, own, state
from ui.engine import get_method

state.require_router()
config = st.session_state.explorer
st.title("Size & speed: does pruning make the model smaller or faster?")
state.show_notices()
own.require_chosen(config.model)

with st.expander("What am I looking at?", expanded=True):
    st.markdown(
        """
**Three ways to run a pruned model.**

- **Masked (zeros in place).** Unstructured pruning (magnitude, random, N:M) sets single weights to
  zero but keeps every matrix its shape. An ordinary ("dense") kernel multiplies those zeros like
  any other number: **exactly as slow**, and saved as-is **exactly as big** (gzip squeezes zeros).
- **Sparse kernel (CSR).** Store only the nonzero weights and their positions, and skip the zeros.
  Finding each weight's input costs extra memory traffic, so on a CPU a sparse kernel is *slower*
  than dense at moderate sparsity and faster only past a break-even sparsity, which depends on
  the layer size, the batch and the machine: it is measured for this server below.
- **Neurons removed (structured).** Whole neurons/filters go, with the matching inputs of the next
  layer: smaller dense matrices, faster with ordinary kernels, and exactly the same outputs.

On GPUs, dense kernels ignore zeros too; NVIDIA's sparse tensor cores (Ampere and later) speed up
exactly one pattern, 50 % as 2:4 (1:2 for FP32 weights), by up to 2x on the matrix multiplies.
"""
    )
with st.expander("FLOPs versus latency, and how to read these timings"):
    st.markdown(
        """
The Trade-off view's *theoretical speedup* counts multiply-adds that still involve a nonzero
weight. Latency is wall-clock time: memory traffic, format conversions and per-layer overhead
dominate small models like these, so fewer FLOPs rarely means proportionally less time, and with a
dense kernel zeros save no time at all. Timings here are medians of repeats, measured interleaved
(dense, masked, sparse, smaller in turn) on a server that other sessions share: compare the ratios,
not the milliseconds, and expect them to move a little between runs.
"""
    )

methods = list(config.methods)
structured = [m for m in methods if get_method(m).granularity == "structured"]
method, sparsity = state.pick_method_and_sparsity("size", "s", structured[0] if structured else methods[0], 0.5)
st.caption(f"**{figures.method_label(method)}**: {get_method(method).description}")
own.require_method_data(config.model, figures.method_label(method), get_method(method).needs_data)
if not structured:
    st.info("Add a structured method (Structured L1 or L2) in the sidebar to see a physically smaller model.")

with st.spinner("Measuring latency on the CPU..."):
    try:
        result = compute.size_speed(config.model, config.choice(method, sparsity))
    except ValueError as exc:  # an upload without data whose file does not say its input shape
        st.info(f"Cannot measure this model: {exc}.", icon="ℹ️")
        st.stop()

small = result.shrunk
for note in result.notes:  # how the request was adjusted (an N:M pattern's own sparsity, a scope fallback)
    st.info(note)
shrunk = small is not None and small.params < result.params_dense
m1, m2, m3, m4 = st.columns(4)
m1.metric("Parameters (dense)", f"{result.params_dense:,}")
m2.metric(
    "Nonzero after masking",
    f"{result.params_nonzero:,}",
    f"{result.params_nonzero / result.params_dense - 1:.0%}",
    delta_color="off",  # fewer parameters is the point of pruning, not a loss
)
if small is not None:
    m3.metric(
        "Parameters after removal",
        f"{small.params:,}",
        f"{small.params / result.params_dense - 1:.0%}",
        delta_color="off",
    )
    m4.metric(
        "Measured speedup (removed vs dense)",
        f"{result.latency_dense_ms / small.latency_ms:.2f}×" if shrunk else "none: same model",
    )
else:
    m3.metric("Parameters after removal", "n/a")
    st.warning(f"This model cannot be shrunk physically: {result.shrink_error}")
if small is not None and not shrunk:
    st.info(
        f"{figures.method_label(method)} removed no whole neuron, so the physically pruned model is the "
        "dense model: only structured methods shrink layers. Its latency differs from the dense one only by "
        "timing noise, which shows how far apart two identical models measure on this server."
    )

labels = ["dense", "masked (zeros)"] + (["neurons removed"] if small is not None else [])
params = [result.params_dense, result.params_nonzero] + ([small.params] if small is not None else [])
latency_labels = ["dense", "masked (zeros)", "sparse kernel (CSR)"] + (["neurons removed"] if small is not None else [])
latency = [result.latency_dense_ms, result.latency_masked_ms, result.latency_csr_ms] + (
    [small.latency_ms] if small is not None else []
)
left, right = st.columns(2)
left.plotly_chart(
    figures.bar_comparison(labels, params, "Parameters that must be stored", "Nonzero parameters (count)"),
    key="size_params",
)
right.plotly_chart(
    figures.bar_comparison(
        latency_labels,
        latency,
        f"Measured CPU latency, batch of {compute.example_batch(config.model)}",
        "Median latency (ms)",
        fmt="{:.3f} ms",
        colours=[figures.variant_colour(label) for label in latency_labels],
    ),
    key="size_latency",
)
masked_change = result.latency_masked_ms / result.latency_dense_ms - 1
right.caption(
    f"The masked model ran {abs(masked_change):.0%} {'faster' if masked_change < 0 else 'slower'} than dense "
    "here, but it runs the same dense kernels on the same shapes: a dense kernel multiplies zeros like "
    "any other number, so that difference is timing noise from a shared server, not a speed-up."
)
kernels = result.csr_layers
by_kind = {kind: [layer for layer, k in kernels.items() if k == kind] for kind in dict.fromkeys(kernels.values())}
dense_layers = [layer for layer in result.shapes_before if layer not in kernels]
csr_speed = result.latency_masked_ms / result.latency_csr_ms
right.caption(
    "Sparse kernel model: "
    + "; ".join(f"{kind} for {', '.join(layers)}" for kind, layers in by_kind.items())
    + (f"; dense for {', '.join(dense_layers)}" if dense_layers else "")
    + f". At {sparsity:.0%} sparsity it runs {csr_speed:.2f}× as fast as the masked model "
    f"({'faster' if csr_speed > 1 else 'slower'}); outputs agree to {result.csr_max_abs_difference:.1e}."
    + (" im2col copies every input patch before the product." if "im2col + CSR" in by_kind else "")
)

file_labels = ["dense", "dense, gzip", "masked", "masked, gzip"] + (["removed"] if small is not None else [])
file_sizes = [result.file_dense, result.file_dense_gzip, result.file_masked, result.file_masked_gzip] + (
    [small.file_bytes] if small is not None else []
)
fig = figures.bar_comparison(
    file_labels,
    [b / 1024 for b in file_sizes],
    "File size of the weights (safetensors)",
    "Size (KB)",
    fmt="{:,.1f} KB",
    colours=[figures.variant_colour(label) for label in file_labels],
)
st.plotly_chart(fig, key="size_files")
st.caption(
    "A masked state dict keeps every zero: same size as dense. Compression (gzip) squeezes the zeros. "
    "Removing neurons makes the file itself smaller, no compression needed."
)

if small is not None:
    import pandas as pd

    shapes = pd.DataFrame(
        {
            "layer": list(result.shapes_before),
            "shape before": [" × ".join(map(str, s)) for s in result.shapes_before.values()],
            "shape after": [" × ".join(map(str, small.shapes[k])) for k in result.shapes_before],
        }
    )
    st.subheader("Layer shapes")
    st.dataframe(shapes, hide_index=True)
    st.caption(
        f"Largest difference between the masked and the smaller model's outputs: {small.max_abs_difference:.2e}."
    )

st.subheader("When does a sparse kernel pay on this CPU?")
largest = compute.largest_linear_layer(config.model)
batch = compute.example_batch(config.model)
choices = {}
if largest is not None:
    name, out_features, in_features = largest
    choices[f"{name} of this model ({out_features}×{in_features}), batch {batch}"] = (out_features, in_features, batch)
choices["a layer of a larger model (1024×1024), batch 16"] = (1024, 1024, 16)
choices["a layer of a large model (4096×4096), batch 16 (takes a few seconds)"] = (4096, 4096, 16)
shape_label = st.selectbox("Layer to measure", list(choices), key="size_break_even_layer")
with st.spinner("Timing dense and CSR kernels at each sparsity..."):
    break_even = compute.sparse_break_even(*choices[shape_label])
st.plotly_chart(figures.sparse_kernel_figure(break_even), key="size_break_even")
top = max(break_even.sparsities)
if not break_even.clear:
    faster = ", ".join(f"{s:.0%}" for s in break_even.faster_at)
    slower = ", ".join(f"{s:.0%}" for s in break_even.sparsities if s not in break_even.faster_at)
    verdict = (
        f"No clear break-even in this measurement: the CSR kernel was faster at {faster} and slower at {slower}. "
        "Timings on a busy shared server are noisy, and for small layers both kernels are dominated by fixed "
        "overheads; try a larger layer."
    )
elif break_even.pays_from is None:
    verdict = (
        f"On this machine the CSR kernel is not faster than dense at any sparsity measured, up to {top:.0%}: "
        "for a layer this small, the work skipped is less than the overhead of the sparse format."
    )
elif break_even.pays_from == min(break_even.sparsities):
    verdict = (
        f"On this machine the CSR kernel is already faster at {break_even.pays_from:.0%}, the lowest level measured."
    )
else:
    verdict = (
        f"On this machine the CSR kernel is faster than dense from {break_even.pays_from:.0%} sparsity on "
        f"(the curve crosses 1× near {break_even.crossing:.0%}); below that, zeros cost time."
    )
st.markdown(verdict)
st.caption(
    "Random weights with exactly that fraction of zeros at random places, no bias; dense (torch.nn.Linear) "
    "and CSR (torch.sparse.addmm) timed interleaved, median of repeats, with the threads torch uses for every session."
)
