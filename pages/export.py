"""Export: take the chosen configuration away as a recipe, weights, ONNX or a script; or import one."""

import urllib.parse

import streamlit as st

from ui import compute, figures, own, state
from ui.config import UPLOAD, ExplorerConfig, uploads_enabled
from ui.engine import RecipeError, load_recipe_text

state.require_router()
config = st.session_state.explorer
st.title("Export: take this pruning with you")
state.show_notices()
if config.model == UPLOAD and own.current() is None and "import_message" in st.session_state:
    st.success(st.session_state.pop("import_message"))  # a recipe for a model file: the file is asked for next
    st.session_state.pop("import_recorded", None)
own.require_chosen(config.model)

with st.expander("What am I looking at?"):
    st.markdown(
        """
Exploring is half the job; the other half is using the pruned model somewhere else.

- The **recipe** is a small text file (YAML or JSON) that says exactly what was pruned and how:
  model, method, scope, sparsity, excluded layers, seed, plus the accuracy and sizes measured here,
  so anyone can check that they reproduced the same model. Import it back here to reopen this view.
- The **pruned weights** are a normal weights file (safetensors) for the same architecture, with
  the removed weights set to zero. It is as big as the original until it is compressed.
- For **structured** methods, the **smaller model** has the removed neurons physically gone:
  a smaller file, and less inference time with ordinary kernels (measured on *Size & speed*),
  also as **ONNX** for other runtimes. Zeros in the pruned weights only save time with a sparse
  kernel past a break-even sparsity, or as 2:4 on recent NVIDIA GPUs.
- The **script** re-applies the same pruning with PyTorch's own `torch.nn.utils.prune`, so you can
  prune your own copy of the model, or its trained weights, in your own code.
"""
    )

methods = list(config.methods)
method, sparsity = state.pick_method_and_sparsity("export", "e", methods[0], 0.5)

with st.spinner("Preparing files..."):
    bundle = compute.export_bundle(config.model, config.choice(method, sparsity))

metrics = bundle.metrics
if "accuracy" in metrics:
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Test accuracy", f"{metrics['accuracy']:.2%}")
    m2.metric(
        "Sparsity, effective (prunable weights)",
        f"{metrics['effective_sparsity']:.1%}",
        help=f"Zeros alone (direct): {metrics['actual_sparsity']:.1%}. "
        "Effective also counts what dead neurons take with them.",
    )
    m3.metric(
        "Parameters still needed", f"{metrics['effective_params']:,}", help=f"Nonzero: {metrics['nonzero_params']:,}"
    )
    m4.metric("Compression ratio, effective", f"{metrics['compression_ratio']:.2f}×")
else:  # an uploaded model without data: the files are made, nothing is measured
    st.info(f"No accuracy in the recipe: {own.current().no_data_reason if own.current() else 'no data'}.")
if config.model == UPLOAD:
    st.caption(
        "The recipe records your files by format and SHA-256, never by path: whoever re-applies it "
        "needs the same files."
    )

stem = f"prunelab-{compute.model_label(config.model).replace(' ', '-')}-{method.replace(':', '_')}-{sparsity:g}"
st.subheader("Download")
c1, c2, c3 = st.columns(3)
c1.download_button(
    "Recipe (YAML)", bundle.recipe_yaml, f"{stem}.yaml", "application/yaml", on_click="ignore", key="dl_yaml"
)
c1.download_button(
    "Recipe (JSON)", bundle.recipe_json, f"{stem}.json", "application/json", on_click="ignore", key="dl_json"
)
c2.download_button(
    "Pruned weights (.safetensors)",
    bundle.weights,
    f"{stem}.safetensors",
    "application/octet-stream",
    on_click="ignore",
    key="dl_weights",
)
if bundle.script is None:
    c3.info(f"No standalone script: {bundle.script_refused}.")
else:
    c3.download_button(
        "Standalone script (.py)",
        bundle.script,
        f"{stem}.py",
        "text/x-python",
        on_click="ignore",
        key="dl_script",
        help="Applies the same pruning with torch.nn.utils.prune: `apply_pruning(model)`, or "
        "`python script.py --weights IN.safetensors --out OUT.safetensors`. Recipes that fine-tune need "
        "`apply_pruning(model, X_train, y_train)` (and the initial weights for a lottery ticket).",
    )
if bundle.shrunk is not None and bundle.onnx is not None:
    c2.download_button(
        "Smaller model weights (.safetensors)",
        bundle.shrunk,
        f"{stem}-shrunk.safetensors",
        "application/octet-stream",
        on_click="ignore",
        key="dl_shrunk",
    )
    c3.download_button(
        "Smaller model (ONNX)",
        bundle.onnx,
        f"{stem}.onnx",
        "application/octet-stream",
        on_click="ignore",
        key="dl_onnx",
        help=f"Checked with onnxruntime: largest difference from PyTorch {bundle.onnx_max_abs_difference:.1e}.",
    )
else:
    c2.caption("Structured methods also offer the physically smaller model, as safetensors and ONNX.")
if bundle.own_onnx is not None:
    c1.download_button(
        "Pruned model (your ONNX graph)",
        bundle.own_onnx,
        f"{stem}-pruned.onnx",
        "application/octet-stream",
        on_click="ignore",
        key="dl_own_onnx",
        help="Your uploaded ONNX file with the pruned weights written into its own graph: same inputs, "
        "outputs and operators, zeros in place.",
    )
for note in bundle.notes:
    st.info(note)

sizes = bundle.sizes
st.plotly_chart(
    figures.bar_comparison(
        list(sizes),
        [b / 1024 for b in sizes.values()],
        "Size of each file",
        "Size (KB)",
        fmt="{:,.1f} KB",
        x_title="file",
    ),
    key="export_sizes",
)
st.caption(
    "The pruned weights keep every zero, so the file is as big as the dense one until compressed; "
    "removing neurons makes the file itself smaller."
)

if config.allocation:
    st.subheader("The per-layer proposal from Sensitivity")
    proposal_yaml = compute.allocation_recipe(config.model, config.allocation_choice())
    pairs = ", ".join(f"{k} {v:.0%}" for k, v in config.allocation)
    st.caption(f"{figures.method_label(config.allocation_method)} with {pairs}.")
    st.download_button(
        "Per-layer proposal recipe (YAML)", proposal_yaml, f"{stem}-per-layer.yaml",
        "application/yaml", on_click="ignore", key="dl_alloc",
        help="Apply it with `python -m pruning_core apply RECIPE --out DIR`, or get a script with `script RECIPE`.",
    )  # fmt: skip

with st.expander("Recipe preview"):
    st.code(bundle.recipe_yaml, language="yaml")
if bundle.script is not None:
    with st.expander("Script preview"):
        st.code(bundle.script, language="python")

st.subheader("Share this view")
base = st.context.url.split("?")[0] if st.context.url else ""
query = urllib.parse.urlencode(st.query_params.to_dict())
st.code(f"{base}?{query}" if query else base, language=None)
st.caption("Use the copy button on the right of the link; everything on this page is in it.")

st.subheader("Import a recipe")


def _recipe_model(recipe) -> str:
    """What the recipe's model is, and for an own model whether this session holds that file."""
    if not recipe.is_own_model:
        return recipe.model
    wanted = recipe.model_file["sha256"]
    loaded = own.current()
    if loaded is not None and loaded.loaded.sha256 == wanted:
        return f"your model ({recipe.model_file['format']} {wanted[:8]}, the file uploaded here)"
    return f"the settings for a {recipe.model_file['format']} model file (SHA-256 {wanted[:12]}...): upload that file"


def import_recipe() -> None:
    """Runs before the page's widgets exist, so it may move them (sidebar included)."""
    uploaded = st.session_state.get("recipe_upload")
    if uploaded is None:
        return
    try:
        recipe = load_recipe_text(uploaded.getvalue())
    except RecipeError as exc:
        st.session_state.import_error = (
            f"**{uploaded.name}** is not a recipe PruneLab can use. Nothing was changed.\n\n"
            + "\n".join(f"- {problem}" for problem in exc.problems)
        )
        return
    if recipe.scope == "per-layer":
        st.session_state.import_error = (
            f"**{uploaded.name}** sets a sparsity per layer; the explorer sweeps one sparsity for all layers, so "
            "nothing was changed. Apply it on the command line: `python -m pruning_core apply RECIPE --out DIR`."
        )
        return
    if recipe.is_own_model and not uploads_enabled():
        st.session_state.import_error = (
            f"**{uploaded.name}** is for your own model file, and this server does not accept uploads. "
            "Nothing was changed. Re-apply it on the command line."
        )
        return
    current: ExplorerConfig = st.session_state.config
    levels = tuple(sorted(set(current.levels) | {recipe.sparsity}))
    state.set_config(
        ExplorerConfig(
            model=UPLOAD if recipe.is_own_model else recipe.model,
            methods=(recipe.method,) + tuple(m for m in current.methods if m != recipe.method),
            scope=recipe.scope,
            s_min=current.s_min,
            s_max=current.s_max,
            n_levels=current.n_levels,
            explicit_levels=current.explicit_levels if recipe.sparsity in current.levels else levels,
            exclude=recipe.exclude,
            seed=recipe.seed,
        )
    )
    st.session_state.export_method = recipe.method
    st.session_state.export_sparsity = recipe.sparsity
    st.session_state.import_message = (
        f"Restored {_recipe_model(recipe)} · {recipe.method} · {recipe.scope} · {recipe.sparsity:.0%} "
        f"from {uploaded.name}."
    )
    st.session_state.import_recorded = recipe.provenance.get("metrics", {})


st.file_uploader(
    "Recipe file (.yaml, .yml or .json)", type=["yaml", "yml", "json"], key="recipe_upload", on_change=import_recipe
)
if "import_error" in st.session_state:
    st.error(st.session_state.pop("import_error"))
if "import_message" in st.session_state:
    st.success(st.session_state.pop("import_message"))
    recorded = st.session_state.pop("import_recorded", {})
    if "accuracy" in recorded:
        same = abs(recorded["accuracy"] - metrics["accuracy"]) < 1e-9
        (st.success if same else st.warning)(
            f"Recorded in the recipe: accuracy {recorded['accuracy']:.2%}; reproduced here: {metrics['accuracy']:.2%}"
            + (" (identical)." if same else ". They differ: check the versions in the recipe's provenance.")
        )
