"""Cached engine calls for the app.

``st.cache_resource`` holds one model object per sample for every user of the server: nothing here
may modify it (the engine never does). Results are keyed by the choice that produced them
(``st.cache_data``, or the shared ``ResultCache`` for sweeps and figures, which also makes
concurrent requests for one key wait for a single computation), so the same choice made by many
workshop attendees is computed once.

A model a session uploaded (``model == UPLOAD``) never reaches those shared caches: every public
function here sends it to ``ui.own.cached``, which keeps its results in that session's state only.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st
import torch

import pruning_core
import sample_models
from pruning_core import export
from pruning_core import recipe as recipe_module
from pruning_core.apply import masks_for
from pruning_core.choice import PruningChoice
from pruning_core.latency import BreakEven, csr_layers, csr_model, largest_linear, measure_break_even
from pruning_core.masks import apply_masks
from pruning_core.recipe import Recipe
from pruning_core.shrink import compare_latency_ms, count_params, layer_shapes, shrink_with_notes
from ui import figures, own, workers
from ui.config import UPLOAD
from ui.results_cache import ResultCache


@st.cache_resource(show_spinner=False)
def shared_sample(name: str) -> sample_models.Sample:
    """The one shared copy of a sample model. Read it; never modify it."""
    return sample_models.load_sample(name)


def model_of(name: str) -> torch.nn.Module:
    """The model named ``name``: a shared sample, or this session's upload. Read it; never modify it."""
    return own.require_model().model if name == UPLOAD else shared_sample(name).model


def data_of(name: str) -> Any:
    """The model's data split (a ``DataSplit``), or None for an upload without data."""
    return own.require_model().split if name == UPLOAD else shared_sample(name).data


@st.cache_data(show_spinner=False)
def _sample_layers(name: str) -> list[str]:
    return pruning_core.prunable_layers(shared_sample(name).model)


def prunable_layers(name: str) -> list[str]:
    """The model's prunable layers; for an upload not loaded yet, none."""
    if name == UPLOAD:
        loaded = own.current()
        return pruning_core.prunable_layers(loaded.model) if loaded is not None else []
    return _sample_layers(name)


def known_layers(name: str) -> list[str] | None:
    """The model's prunable layers, or None while an upload is awaited (a link's exclusions are
    then kept unchecked until the file arrives)."""
    if name == UPLOAD and own.current() is None:
        return None
    return prunable_layers(name)


@st.cache_data(show_spinner=False)
def _sample_dense(name: str, split: str) -> dict[str, float]:
    s = shared_sample(name)
    return pruning_core.evaluate(s.model, getattr(s.data, f"X_{split}"), getattr(s.data, f"y_{split}"))


def _dense(name: str, split: str) -> dict[str, float]:
    if name != UPLOAD:
        return _sample_dense(name, split)

    def evaluate(o) -> dict[str, float]:
        return pruning_core.evaluate(o.model, getattr(o.split, f"X_{split}"), getattr(o.split, f"y_{split}"))

    return own.cached("dense", (split,), evaluate)


def dense_metrics(name: str) -> dict[str, float]:
    return _dense(name, "test")


def dense_validation_metrics(name: str) -> dict[str, float]:
    """The dense model's metrics on the validation split: the reference knees are selected against."""
    return _dense(name, "val")


def seed_spread(config, methods: list[str], n_seeds: int = 3) -> pd.DataFrame:
    """Each seeded method swept with ``n_seeds`` consecutive seeds from the config's, summarised
    (min, max, mean, std per level); each seed's sweep is stored like any other."""
    from pruning_core.stats import seed_spread as spread

    frames = []
    for method in methods:

        def run(seed: int, method: str = method) -> pd.DataFrame:
            return method_sweep(config.model, method, config.scope, config.levels, config.exclude, seed)

        seeds = range(config.seed, config.seed + n_seeds)
        frames.append(spread(run, seeds, metrics=("accuracy", "loss", "precision", "recall", "f1")))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _engine_digest() -> str:
    """A digest of the engine's and sample zoo's code and weights: results on disk from other code
    are never read back (the directory outlives the server)."""
    import hashlib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted([*root.glob("pruning_core/*.py"), *root.glob("sample_models/**/*.*"), Path(__file__)]):
        if path.suffix in (".py", ".json", ".safetensors"):
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:12]


@st.cache_resource(show_spinner=False)
def results() -> ResultCache:
    """Sweep tables shared by every session: one computation per distinct choice, however many
    sessions ask at once (the others wait for it and see its progress). With ``PRUNELAB_CACHE_DIR``
    set, several app processes (behind a proxy) share them too."""
    directory = os.environ.get("PRUNELAB_CACHE_DIR") or None
    return ResultCache(max_entries=512, directory=directory, name="sweeps", generation=_engine_digest())


@st.cache_resource(show_spinner=False)
def figure_cache() -> ResultCache:
    """Built figures by the choice they show, in memory: building one costs more server time than
    sending it, and every session viewing a choice would build the same one. Never mutate them."""
    return ResultCache(max_entries=256, name="figures")


def _execute(job, *args, progress=None):
    """Run an engine job in the worker pool when the server has one (``python -m ui.serve``), else
    in this thread (AppTest, plain ``streamlit run``)."""
    pool = workers.pool()
    if pool is None:
        return job(*args, progress=progress)
    return pool.run(job, *args, progress=progress)


def method_sweep(
    name: str, method: str, scope: str, levels: tuple[float, ...], exclude: tuple[str, ...], seed: int, progress=None
) -> pd.DataFrame:
    """One method's sweep; stored per method so adding a method to the overlay computes only it."""
    key = ("sweep", name, method, scope, tuple(levels), tuple(exclude), seed)
    args = (name, method, scope, tuple(levels), tuple(exclude), seed)
    if name == UPLOAD:  # this session's own: computed here, kept in the session
        return own.cached(
            "sweep",
            key[2:],
            lambda o: pruning_core.sweep(
                o.model, o.split, [method], list(levels), scope=scope, exclude=exclude, seed=seed, progress=progress
            ),
        )
    return results().get_or_compute(
        key,
        lambda report: _execute(workers.sample_sweep, *args, progress=report),
        progress=progress,
        what=f"sweep {name} {method} {scope}",
    )


def cached_figure(key: tuple, build):
    """The figure for ``key``, built once by ``build()`` and shared; treat it as read-only."""
    return figure_cache().get_or_compute(key, lambda report: build(), what=f"figure {key[0]}")


def _masks(model: torch.nn.Module, data: Any, choice: PruningChoice) -> dict[str, torch.Tensor]:
    """The choice's one-shot masks on the (shared) model, through the one apply path."""
    return masks_for(model, data, choice)


@dataclass(frozen=True)
class LayerView:
    """One choice's per-layer picture: weights and keep-masks by layer, a per-layer table, and the
    magnitude threshold (None for other methods or when nothing was pruned)."""

    weights: dict[str, np.ndarray]
    kept: dict[str, np.ndarray]
    table: pd.DataFrame
    threshold: float | None
    notes: tuple[str, ...] = ()


def layer_view(name: str, choice: PruningChoice) -> LayerView:
    """Weights, keep-masks and a per-layer table for one choice (one method at one sparsity)."""
    if name == UPLOAD:
        return own.cached("layers", (choice,), lambda o: build_layer_view(o.model, o.split, choice))
    return _sample_layer_view(name, choice)


@st.cache_data(show_spinner=False, max_entries=256)
def _sample_layer_view(name: str, choice: PruningChoice) -> LayerView:
    s = shared_sample(name)
    return build_layer_view(s.model, s.data, choice)


def build_layer_view(model: torch.nn.Module, data: Any, choice: PruningChoice) -> LayerView:
    """The layer view of ``choice`` on ``model`` (not modified) with its data (None: data-free)."""
    resolved, notes = choice.resolved()
    masks = _masks(model, data, resolved)
    modules = dict(model.named_modules())
    weights, kept, rows = {}, {}, []
    for layer in pruning_core.prunable_layers(model):
        w = modules[layer].weight.detach()
        mask = masks.get(f"{layer}.weight", torch.ones_like(w, dtype=torch.bool))
        weights[layer] = w.numpy().copy()
        kept[layer] = mask.numpy().copy()
        nonzero = int(torch.count_nonzero(w * mask))
        rows.append(
            {
                "layer": layer,
                "type": type(modules[layer]).__name__,
                "shape": " × ".join(map(str, w.shape)),
                "params": w.numel(),
                "nonzero": nonzero,
                "sparsity": 1 - nonzero / w.numel(),
                "excluded": layer in resolved.exclude,
            }
        )
    threshold = None
    if resolved.method_object.name == "magnitude":
        pruned = [np.abs(weights[n])[~kept[n]] for n in weights if (~kept[n]).any()]
        threshold = float(max(p.max() for p in pruned)) if pruned else None
    return LayerView(weights, kept, pd.DataFrame(rows), threshold, tuple(notes))


@dataclass(frozen=True)
class Shrunk:
    """The physically smaller model's measurements (structured pruning removes neurons)."""

    params: int
    shapes: dict[str, list[int]]
    file_bytes: int
    latency_ms: float
    max_abs_difference: float  # largest output difference from the masked model


@dataclass(frozen=True)
class SizeSpeed:
    """Masked versus CSR versus physically shrunk: parameters, shapes, file sizes and latency.
    ``shrunk`` is None when the model cannot be shrunk, and ``shrink_error`` says why."""

    params_dense: int
    params_nonzero: int
    shapes_before: dict[str, list[int]]
    file_dense: int
    file_dense_gzip: int
    file_masked: int
    file_masked_gzip: int
    csr_layers: dict[str, str]  # layer -> the kernel that runs it
    csr_max_abs_difference: float
    latency_dense_ms: float
    latency_masked_ms: float
    latency_csr_ms: float
    shrunk: Shrunk | None = None
    shrink_error: str | None = None
    notes: tuple[str, ...] = ()


def size_speed(name: str, choice: PruningChoice) -> SizeSpeed:
    """Masked versus physically shrunk: parameters, shapes, file sizes and measured CPU latency."""
    if name == UPLOAD:
        return own.cached("size", (choice,), lambda o: build_size_speed(o.model, o.split, own.example_input(o), choice))
    return _sample_size_speed(name, choice)


@st.cache_data(show_spinner=False, max_entries=64)
def _sample_size_speed(name: str, choice: PruningChoice) -> SizeSpeed:
    s = shared_sample(name)
    return build_size_speed(s.model, s.data, s.data.X_test, choice)


def build_size_speed(model: torch.nn.Module, data: Any, x: torch.Tensor, choice: PruningChoice) -> SizeSpeed:
    """Size and speed of ``choice`` on ``model`` (not modified), timed on the inputs ``x``."""
    resolved, notes = choice.resolved()
    masks = _masks(model, data, resolved)
    masked = apply_masks(model, masks).eval()
    dense_file, masked_file = export.state_dict_bytes(model), export.state_dict_bytes(masked)
    sparse = csr_model(model, masks)  # Linear and plain conv weights in CSR, run by torch.sparse
    with torch.inference_mode():
        reference = masked(x)
        csr_difference = float((sparse(x) - reference).abs().max())
    common = {
        "params_dense": count_params(model),
        "params_nonzero": int(sum(int(torch.count_nonzero(p)) for p in masked.parameters())),
        "shapes_before": {k: list(v) for k, v in layer_shapes(model).items()},
        "file_dense": len(dense_file),
        "file_dense_gzip": export.gzip_size(dense_file),
        "file_masked": len(masked_file),
        "file_masked_gzip": export.gzip_size(masked_file),
        "csr_layers": dict(csr_layers(sparse)),
        "csr_max_abs_difference": csr_difference,
        "notes": tuple(notes),
    }
    try:
        small, left = shrink_with_notes(model, masks, x[:1])
    except ValueError as exc:
        dense_ms, masked_ms, csr_ms = compare_latency_ms([model, masked, sparse], x)
        return SizeSpeed(
            **common,
            latency_dense_ms=dense_ms,
            latency_masked_ms=masked_ms,
            latency_csr_ms=csr_ms,
            shrink_error=str(exc),
        )
    with torch.inference_mode():
        difference = float((reference - small(x)).abs().max())
    dense_ms, masked_ms, csr_ms, small_ms = compare_latency_ms([model, masked, sparse, small], x)
    shrunk = Shrunk(
        params=count_params(small),
        shapes={k: list(v) for k, v in layer_shapes(small).items()},
        file_bytes=len(export.state_dict_bytes(small)),
        latency_ms=small_ms,
        max_abs_difference=difference,
    )
    common["notes"] = (*common["notes"], *(f"not removed: {note}" for note in left))
    return SizeSpeed(
        **common, latency_dense_ms=dense_ms, latency_masked_ms=masked_ms, latency_csr_ms=csr_ms, shrunk=shrunk
    )


def largest_linear_layer(name: str) -> tuple[str, int, int] | None:
    return largest_linear(model_of(name))


def example_batch(name: str) -> int:
    """How many inputs the Size & speed page times the model on."""
    return len(own.example_input(own.require_model())) if name == UPLOAD else len(shared_sample(name).data.y_test)


@st.cache_data(show_spinner=False, max_entries=16)
def sparse_break_even(out_features: int, in_features: int, batch: int) -> BreakEven:
    """Dense versus CSR latency of one Linear layer of this shape over a range of sparsities,
    measured once per shape and batch on this machine."""
    return measure_break_even(out_features, in_features, batch)


def sweep_all(config) -> pd.DataFrame:
    """Every chosen method's sweep, with a progress bar for the ones not cached yet."""
    placeholder = st.empty()
    frames = []
    n = len(config.methods)
    try:
        for i, method in enumerate(config.methods):

            def progress(fraction: float, message: str, i: int = i) -> None:
                placeholder.progress(min(1.0, (i + fraction) / n), text=f"Sweeping: {message}")

            frames.append(
                method_sweep(
                    config.model, method, config.scope, config.levels, config.exclude, config.seed, progress=progress
                )
            )
    finally:  # also when a computation stops (an upload's time limit)
        placeholder.empty()
    return pd.concat(frames, ignore_index=True)


def tradeoff_table(config) -> pd.DataFrame:
    """Every chosen method's sweep (computed or waited for) plus the per-layer proposal's row."""
    frames = [
        method_sweep(config.model, m, config.scope, config.levels, config.exclude, config.seed) for m in config.methods
    ]
    if config.allocation:
        frames.append(
            allocation_row(config.model, config.allocation_method, config.allocation, config.exclude, config.seed)
        )
    return pd.concat(frames, ignore_index=True)


def tradeoff_view(
    config, x: str, y: str, tolerance_points: float, intervals: bool = False, seeds: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame, object, pd.DataFrame | None]:
    """(table, knees, figure, seed spread) of the trade-off page for one choice and chart setting,
    built once and shared by every session showing it (the tables are the caller's own copies; the
    figure is shared: never mutate it). Knees are chosen on validation against the dense model's
    validation score; ``seeds`` > 0 sweeps the seeded methods with that many seeds for a band."""
    table = tradeoff_table(config)
    seeded = [m for m in config.methods if pruning_core.get_method(m).uses_seed]
    spread = seed_spread(config, seeded, seeds) if seeds and seeded else None

    def build():
        from pruning_core.analysis import knee_points

        dense, dense_val = dense_metrics(config.model), dense_validation_metrics(config.model)
        scale = figures.Y_METRICS[y][1]
        knees = knee_points(table, metric=y, tolerance=tolerance_points / scale, dense=dense_val[y])
        x_title = figures.X_AXES[x][1].split(" (")[0].lower()
        fig = figures.tradeoff_figure(
            table, x=x, y=y, dense=dense[y], knees=knees,
            title=f"{model_label(config.model)}: {figures.Y_METRICS[y][0].split(' (')[0]} vs {x_title} "
            f"({config.scope} scope)",
            intervals=intervals, spread=spread,
        )  # fmt: skip
        return knees, fig

    key = ("tradeoff", dataclasses.astuple(config), x, y, tolerance_points, intervals, seeds)
    if config.model == UPLOAD:  # never in the shared figure cache
        knees, fig = own.cached("figure", key, lambda o: build())
    else:
        knees, fig = cached_figure(key, build)
    return table, knees.copy(), fig, spread


def model_label(name: str) -> str:
    """A model's name for titles: the sample's, or the upload's format and digest."""
    if name != UPLOAD:
        return name
    loaded = own.current()
    return loaded.name if loaded is not None else "your model"


def warm_views(config) -> None:
    """Compute what a link to ``config`` opens on every page, so the first visitors find it ready."""
    for name in sample_models.available():
        shared_sample(name)
        prunable_layers(name)
        dense_metrics(name)
        dense_validation_metrics(name)
    tradeoff_view(config, figures.TRADEOFF_X_DEFAULT, figures.TRADEOFF_Y_DEFAULT, figures.TRADEOFF_TOLERANCE_DEFAULT)
    levels = list(config.levels)
    nearest = lambda target: min(levels, key=lambda s: abs(s - target))  # noqa: E731
    layer_view(config.model, config.choice(config.methods[0], nearest(0.9)))


def first_layer_pixel_counts(name: str, kept_first: np.ndarray) -> tuple[np.ndarray, int] | None:
    """For the digits models: kept first-layer connections per input pixel (8x8), and the maximum.

    For the MLP a pixel's connections are its column of fc1. For the CNN, a pixel touches every
    filter at each kernel offset that covers it; a transposed convolution of the keep-mask over an
    all-ones map counts them.
    """
    if name == "digits-mlp":
        counts = kept_first.reshape(kept_first.shape[0], 8, 8).sum(0)
        return counts.astype(int), kept_first.shape[0]
    if name == "digits-cnn":
        conv = shared_sample(name).model.conv1
        mask = torch.as_tensor(kept_first, dtype=torch.float32)
        ones = torch.ones(1, mask.shape[0], 8, 8)
        counts = torch.nn.functional.conv_transpose2d(ones, mask, padding=conv.padding)[0, 0]
        full = torch.nn.functional.conv_transpose2d(ones, torch.ones_like(mask), padding=conv.padding)[0, 0]
        return counts.round().int().numpy(), int(full.max())
    return None


@dataclass(frozen=True)
class ExportBundle:
    """Every file the Export page offers for one choice, with the sizes to compare. ``script`` is
    None when the generator refuses the method (``script_refused`` says why); ``shrunk`` and
    ``onnx`` are None unless the method removes neurons."""

    recipe: Recipe
    recipe_yaml: str
    recipe_json: str
    metrics: dict[str, Any]
    weights: bytes
    sizes: dict[str, int]
    notes: tuple[str, ...]
    script: str | None = None
    script_refused: str | None = None
    shrunk: bytes | None = None
    onnx: bytes | None = None
    onnx_max_abs_difference: float | None = None
    own_onnx: bytes | None = None  # an uploaded ONNX model's own graph with the pruned weights

    @property
    def downloads(self) -> tuple[str, ...]:
        """The downloads this bundle offers, by kind."""
        offered = ["recipe_yaml", "recipe_json", "weights"]
        offered += [kind for kind in ("script", "shrunk", "onnx", "own_onnx") if getattr(self, kind) is not None]
        return tuple(offered)


def build_export_bundle(name: str, choice: PruningChoice) -> ExportBundle:
    """The Export page's files for one choice: its recipe, applied through the one path (so the
    weights are the sweep's), the script or the generator's refusal, and the smaller model."""
    from pruning_core.script import generate_script

    unmeasured, notes = export.recipe_for(name, choice, metrics={})
    applied = export.apply_recipe(unmeasured)  # measures the applied choice once, as the sweep does
    made = dataclasses.replace(unmeasured, provenance=recipe_module.provenance(applied.metrics))
    try:
        script, script_refused = generate_script(made), None
    except ValueError as exc:  # a method the script generator cannot reproduce bit for bit
        script, script_refused = None, str(exc)
    sample = shared_sample(name)
    dense = export.state_dict_bytes(sample.model)
    weights = export.state_dict_bytes(applied.model)
    sizes = {
        "dense": len(dense),
        "dense, gzip": export.gzip_size(dense),
        "pruned (zeros in place)": len(weights),
        "pruned, gzip": export.gzip_size(weights),
    }
    shrunk = onnx_model = difference = None
    if applied.shrunk is not None:
        shrunk = export.state_dict_bytes(applied.shrunk)
        onnx_model = export.onnx_bytes(applied.shrunk, applied.example_input)
        difference = export.onnx_max_difference(onnx_model, applied.shrunk, applied.example_input)
        sizes["neurons removed"] = len(shrunk)
        sizes["neurons removed, ONNX"] = len(onnx_model)
    return ExportBundle(
        recipe=made,
        recipe_yaml=recipe_module.dumps(made, "yaml"),
        recipe_json=recipe_module.dumps(made, "json"),
        metrics=dict(applied.metrics),
        weights=weights,
        sizes=sizes,
        notes=tuple(dict.fromkeys([*notes, *applied.notes])),
        script=script,
        script_refused=script_refused,
        shrunk=shrunk,
        onnx=onnx_model,
        onnx_max_abs_difference=difference,
    )


OWN_SCRIPT_REFUSED = (
    "the standalone script rebuilds a sample model and cannot rebuild yours; take the pruned weights "
    "or the pruned ONNX, or re-apply the recipe to your file on the command line"
)


def _own_metrics(o, resolved: PruningChoice) -> dict[str, Any]:
    """The sweep row of exactly this choice on the upload (nothing without data)."""
    if o.split is None:
        return {}
    table = pruning_core.sweep(
        o.model, o.split, [resolved.method], [resolved.sparsity_argument], scope=resolved.scope,
        exclude=resolved.exclude, seed=resolved.seed, calibration=resolved.calibration,
    )  # fmt: skip
    row = table.iloc[0]
    return {k: row[k].item() if hasattr(row[k], "item") else row[k] for k in export.RECORDED_METRICS}


OWN_ONNX_TOLERANCE = 1e-3  # largest output difference (relative to the outputs' scale) accepted


def _own_onnx(o, pruned: torch.nn.Module) -> tuple[bytes | None, str | None]:
    """The user's ONNX graph with ``pruned``'s weights, checked with onnxruntime against ``pruned``
    on the example inputs; (None, why) when it cannot be written or computes something else."""
    x = own.example_input(o)
    try:
        written = o.loaded.pruned_onnx(pruned)
        # The graph value the module computes (a scikit-learn export's first output is the labels).
        output = o.loaded.conversion.output_name if o.loaded.conversion is not None else None
        difference = export.onnx_max_difference(written, pruned, x, output)
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types; the reason is shown
        return None, str(exc)
    with torch.inference_mode():
        scale = max(1.0, float(pruned.eval()(x).abs().max()))
    if difference > OWN_ONNX_TOLERANCE * scale:
        return None, (
            f"onnxruntime's outputs from the rewritten graph differ from the pruned model's by up to "
            f"{difference:.3g}; take the pruned weights or the smaller model's ONNX instead"
        )
    return written, None


def build_own_export_bundle(o, choice: PruningChoice) -> ExportBundle:
    """The Export page's files for the session's upload: a recipe recording the files' format and
    SHA-256 (never a path), the pruned weights, the user's own ONNX graph with them, and for
    structured methods the smaller model."""
    from pruning_core.apply import apply_choice

    resolved, notes = choice.resolved()
    applied = apply_choice(o.model, o.split, resolved)  # a pruned copy: the session's model is untouched
    metrics = _own_metrics(o, applied.choice)
    made = Recipe.from_choice(
        recipe_module.OWN_MODEL, applied.choice, provenance=recipe_module.provenance(metrics),
        model_file=o.model_identity, data_file=o.data_identity,
    )  # fmt: skip
    dense, weights = export.state_dict_bytes(o.model), export.state_dict_bytes(applied.model)
    sizes = {
        "dense": len(dense),
        "dense, gzip": export.gzip_size(dense),
        "pruned (zeros in place)": len(weights),
        "pruned, gzip": export.gzip_size(weights),
    }
    all_notes = [*notes, *applied.notes]
    own_onnx = None
    if o.loaded.format == "onnx":
        own_onnx, problem = _own_onnx(o, applied.model)
        if own_onnx is not None:
            sizes["pruned, your ONNX graph"] = len(own_onnx)
        else:
            all_notes.append(f"your ONNX graph with the pruned weights is not offered: {problem}")
    shrunk = onnx_model = difference = None
    if resolved.method_object.granularity == "structured":
        try:
            x = own.example_input(o)
            small, left = shrink_with_notes(applied.model, applied.masks, x[:1])
            all_notes += [f"not removed: {note}" for note in left]
            shrunk = export.state_dict_bytes(small)
            onnx_model = export.onnx_bytes(small, x)
            difference = export.onnx_max_difference(onnx_model, small, x)
            sizes["neurons removed"] = len(shrunk)
            sizes["neurons removed, ONNX"] = len(onnx_model)
        except (ValueError, RuntimeError) as exc:
            shrunk = onnx_model = difference = None
            all_notes.append(f"not shrunk physically: {exc}")
    return ExportBundle(
        recipe=made, recipe_yaml=recipe_module.dumps(made, "yaml"), recipe_json=recipe_module.dumps(made, "json"),
        metrics=metrics, weights=weights, sizes=sizes, notes=tuple(dict.fromkeys(all_notes)),
        script_refused=OWN_SCRIPT_REFUSED, shrunk=shrunk, onnx=onnx_model, onnx_max_abs_difference=difference,
        own_onnx=own_onnx,
    )  # fmt: skip


def export_bundle(name: str, choice: PruningChoice) -> ExportBundle:
    """Every file the Export page offers for one choice, with its size, built once per choice."""
    if name == UPLOAD:
        return own.cached("export", (choice,), lambda o: build_own_export_bundle(o, choice))
    return _sample_export_bundle(name, choice)


@st.cache_data(show_spinner=False, max_entries=64)
def _sample_export_bundle(name: str, choice: PruningChoice) -> ExportBundle:
    return build_export_bundle(name, choice)


SCHEDULE_CURVES = workers.SCHEDULE_CURVES
curve_schedule = workers.curve_schedule


def schedule_sweep(
    name: str, method: str, scope: str, levels: tuple[float, ...], exclude: tuple[str, ...], seed: int,
    curve: str, epochs: int, lr: float, rounds: int, progress=None, cached_only: bool = False,
) -> pd.DataFrame | None:  # fmt: skip
    """One schedule's sweep (stored like the other sweeps), with a ``curve`` column; with
    ``cached_only``, None unless it was computed before."""
    key = ("schedule", name, method, scope, tuple(levels), tuple(exclude), seed, curve, epochs, lr, rounds)
    if name == UPLOAD:
        return _own_schedule_sweep(key[2:], progress, cached_only)
    if cached_only:
        return results().get(key)
    args = (name, method, scope, tuple(levels), tuple(exclude), seed, curve, epochs, lr, rounds)

    def compute(report) -> pd.DataFrame:
        return _execute(workers.sample_schedule_sweep, *args, progress=report)

    return results().get_or_compute(key, compute, progress=progress, what=f"schedule sweep {name} {method} {curve}")


def _own_schedule_sweep(args: tuple, progress, cached_only: bool) -> pd.DataFrame | None:
    """A schedule sweep of this session's upload, trained in this session (no lottery: the weights
    it was trained from are not in the file)."""
    method, scope, levels, exclude, seed, curve, epochs, lr, rounds = args
    if cached_only:
        return own.peek("schedule", args)

    def compute(o) -> pd.DataFrame:
        table = pruning_core.sweep(
            o.model, o.split, [method], list(levels), scope=scope, exclude=exclude, seed=seed, progress=progress,
            schedule=workers.curve_schedule(curve, epochs, lr, rounds), generalisation=True,
        )  # fmt: skip
        table["curve"] = curve
        return table

    return own.cached("schedule", args, compute)


def allocation_row(name: str, method: str, allocation: tuple, exclude: tuple[str, ...], seed: int) -> pd.DataFrame:
    """The sweep row of an explicit per-layer allocation, labelled as a proposal."""
    if name == UPLOAD:
        args = (method, allocation, exclude, seed)
        return own.cached("allocation", args, lambda o: _allocation_row(o.model, o.split, *args))
    return _sample_allocation_row(name, method, allocation, exclude, seed)


@st.cache_data(show_spinner=False, max_entries=128)
def _sample_allocation_row(name: str, method: str, allocation: tuple, exclude: tuple, seed: int) -> pd.DataFrame:
    s = shared_sample(name)
    return _allocation_row(s.model, s.data, method, allocation, exclude, seed)


def _allocation_row(model, data, method: str, allocation: tuple, exclude: tuple, seed: int) -> pd.DataFrame:
    row = pruning_core.sweep(model, data, [method], [dict(allocation)], scope="per-layer", exclude=exclude, seed=seed)
    row["method"] = f"{method} (per-layer proposal)"
    return row


def sensitivity_table(name: str, method: str, exclude: tuple[str, ...], seed: int) -> pd.DataFrame:
    from pruning_core.sensitivity import layer_sensitivity

    if name == UPLOAD:
        return own.cached(
            "sensitivity",
            (method, exclude, seed),
            lambda o: layer_sensitivity(o.model, o.split, method, exclude=exclude, seed=seed),
        )
    return _sample_sensitivity_table(name, method, exclude, seed)


@st.cache_data(show_spinner="Pruning one layer at a time...", max_entries=64)
def _sample_sensitivity_table(name: str, method: str, exclude: tuple[str, ...], seed: int) -> pd.DataFrame:
    from pruning_core.sensitivity import layer_sensitivity

    s = shared_sample(name)
    return layer_sensitivity(s.model, s.data, method, exclude=exclude, seed=seed)


def sensitivity_proposal(name: str, method: str, exclude: tuple[str, ...], seed: int, target: float, budget: float):
    from pruning_core.sensitivity import propose

    if name == UPLOAD:
        table = sensitivity_table(name, method, exclude, seed)
        return own.cached(
            "proposal",
            (method, exclude, seed, target, budget),
            lambda o: propose(o.model, o.split, table, target, budget, method, exclude, seed),
        )
    return _sample_sensitivity_proposal(name, method, exclude, seed, target, budget)


@st.cache_data(show_spinner="Checking the proposal with every layer pruned at once...", max_entries=256)
def _sample_sensitivity_proposal(name: str, method: str, exclude: tuple, seed: int, target: float, budget: float):
    from pruning_core.sensitivity import propose

    s = shared_sample(name)
    return propose(
        s.model, s.data, sensitivity_table(name, method, exclude, seed), target, budget, method, exclude, seed
    )


def allocation_recipe(name: str, choice: PruningChoice) -> str:
    """The YAML recipe of an explicit per-layer allocation (measured, like every export)."""
    if name == UPLOAD:
        return own.cached("allocation_recipe", (choice,), lambda o: export_bundle(name, choice).recipe_yaml)
    return _sample_allocation_recipe(name, choice)


@st.cache_data(show_spinner=False, max_entries=64)
def _sample_allocation_recipe(name: str, choice: PruningChoice) -> str:
    return recipe_module.dumps(export.recipe_for(name, choice)[0])
