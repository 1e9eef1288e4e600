"""Size & speed: what pruning does to file size and CPU latency, masked versus physically smaller."""

import streamlit as st

from pruning_core.methods import get_method
from ui import compute, figures, state

state.require_router()
config = st.session_state.explorer
st.title("Size & speed: does pruning make the model smaller or faster?")
state.show_notices()

with st.expander("What am I looking at?", expanded=True):
    st.markdown(
        """
**Zeros are still numbers.** Unstructured pruning (magnitude, random, N:M) sets individual weights
to zero but leaves every matrix the same shape. A normal ("dense") CPU or GPU kernel multiplies
those zeros like any other number, so **the model is exactly as slow**, and saved as-is the **file
is exactly as big**. The zeros only pay off when the file is compressed (zeros compress well), or
with sparse kernels and hardware that skip them (N:M 2:4 on recent GPUs).

**Structured pruning removes whole neurons/filters.** Then the matrices really shrink: the pruned
rows go, and so do the matching inputs of the next layer. The smaller model computes exactly what
the masked one computes, with fewer parameters and less time. That is the answer to the most
common question about pruning libraries: *"why is my pruned model not faster?"*
"""
    )

methods = list(config.methods)
structured = [m for m in methods if get_method(m).granularity == "structured"]
method, sparsity = state.pick_method_and_sparsity("size", "s", structured[0] if structured else methods[0], 0.5)
if not structured:
    st.info("Add a structured method (Structured L1 or L2) in the sidebar to see a physically smaller model.")

with st.spinner("Measuring latency on the CPU..."):
    result = compute.size_speed(config.model, method, config.scope, sparsity, config.exclude, config.seed)

shrunk = "params_shrunk" in result and result["params_shrunk"] < result["params_dense"]
m1, m2, m3, m4 = st.columns(4)
m1.metric("Parameters (dense)", f"{result['params_dense']:,}")
m2.metric(
    "Nonzero after masking",
    f"{result['params_nonzero']:,}",
    f"{result['params_nonzero'] / result['params_dense'] - 1:.0%}",
)
if "params_shrunk" in result:
    m3.metric(
        "Parameters after removal",
        f"{result['params_shrunk']:,}",
        f"{result['params_shrunk'] / result['params_dense'] - 1:.0%}",
    )
    m4.metric(
        "Measured speedup (removed vs dense)",
        f"{result['latency_dense_ms'] / result['latency_shrunk_ms']:.2f}×",
    )
else:
    m3.metric("Parameters after removal", "n/a")
    st.warning(f"This model cannot be shrunk physically: {result.get('shrink_error')}")
if "params_shrunk" in result and not shrunk:
    st.info(
        f"{figures.method_label(method)} removed no whole neuron, so the physically pruned model is the "
        "dense model: only structured methods shrink layers."
    )

labels = ["dense", "masked (zeros)"] + (["neurons removed"] if "params_shrunk" in result else [])
params = [result["params_dense"], result["params_nonzero"]] + (
    [result["params_shrunk"]] if "params_shrunk" in result else []
)
latency = [result["latency_dense_ms"], result["latency_masked_ms"]] + (
    [result["latency_shrunk_ms"]] if "params_shrunk" in result else []
)
left, right = st.columns(2)
left.plotly_chart(
    figures.bar_comparison(labels, params, "Parameters that must be stored", "Nonzero parameters (count)"),
    key="size_params",
)
right.plotly_chart(
    figures.bar_comparison(
        labels,
        latency,
        f"Measured CPU latency, batch of {len(compute.shared_sample(config.model).data.y_test)}",
        "Median latency (ms)",
        fmt="{:.3f} ms",
    ),
    key="size_latency",
)

file_labels = ["dense", "dense, gzip", "masked", "masked, gzip"] + (["removed"] if "file_shrunk" in result else [])
file_sizes = [result["file_dense"], result["file_dense_gzip"], result["file_masked"], result["file_masked_gzip"]] + (
    [result["file_shrunk"]] if "file_shrunk" in result else []
)
fig = figures.bar_comparison(
    file_labels, [b / 1024 for b in file_sizes], "File size of the weights (safetensors)", "Size (KB)", fmt="{:,.1f} KB"
)
st.plotly_chart(fig, key="size_files")
st.caption(
    "A masked state dict keeps every zero: same size as dense. Compression (gzip) squeezes the zeros. "
    "Removing neurons makes the file itself smaller, no compression needed."
)

if "shapes_after" in result:
    import pandas as pd

    shapes = pd.DataFrame(
        {
            "layer": list(result["shapes_before"]),
            "shape before": [" × ".join(map(str, s)) for s in result["shapes_before"].values()],
            "shape after": [" × ".join(map(str, result["shapes_after"][k])) for k in result["shapes_before"]],
        }
    )
    st.subheader("Layer shapes")
    st.dataframe(shapes, hide_index=True)
    st.caption(
        f"Largest difference between the masked and the smaller model's outputs: {result['max_abs_difference']:.2e}."
    )
