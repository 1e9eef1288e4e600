"""Cached engine calls for the app.

``st.cache_resource`` holds one model object per sample for every user of the server: nothing here
may modify it (the engine never does). Results are keyed by the choice that produced them
(``st.cache_data``, or the shared ``ResultCache`` for sweeps and figures, which also makes
concurrent requests for one key wait for a single computation), so the same choice made by many
workshop attendees is computed once.
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
from pruning_core.shrink import compare_latency_ms, count_params, layer_shapes, shrink
from ui import figures, workers
from ui.results_cache import ResultCache


@st.cache_resource(show_spinner=False)
def shared_sample(name: str) -> sample_models.Sample:
    """The one shared copy of a sample model. Read it; never modify it."""
    return sample_models.load_sample(name)


@st.cache_data(show_spinner=False)
def prunable_layers(name: str) -> list[str]:
    return pruning_core.prunable_layers(shared_sample(name).model)


@st.cache_data(show_spinner=False)
def dense_metrics(name: str) -> dict[str, float]:
    s = shared_sample(name)
    return pruning_core.evaluate(s.model, s.data.X_test, s.data.y_test)


@st.cache_data(show_spinner=False)
def dense_validation_metrics(name: str) -> dict[str, float]:
    """The dense model's metrics on the validation split: the reference knees are selected against."""
    s = shared_sample(name)
    return pruning_core.evaluate(s.model, s.data.X_val, s.data.y_val)


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
    return results().get_or_compute(
        key,
        lambda report: _execute(workers.sample_sweep, *args, progress=report),
        progress=progress,
        what=f"sweep {name} {method} {scope}",
    )


def cached_figure(key: tuple, build):
    """The figure for ``key``, built once by ``build()`` and shared; treat it as read-only."""
    return figure_cache().get_or_compute(key, lambda report: build(), what=f"figure {key[0]}")


def _masks(name: str, choice: PruningChoice) -> dict[str, torch.Tensor]:
    """The choice's one-shot masks on the shared sample, through the one apply path."""
    s = shared_sample(name)
    return masks_for(s.model, s.data, choice)


@dataclass(frozen=True)
class LayerView:
    """One choice's per-layer picture: weights and keep-masks by layer, a per-layer table, and the
    magnitude threshold (None for other methods or when nothing was pruned)."""

    weights: dict[str, np.ndarray]
    kept: dict[str, np.ndarray]
    table: pd.DataFrame
    threshold: float | None
    notes: tuple[str, ...] = ()


@st.cache_data(show_spinner=False, max_entries=256)
def layer_view(name: str, choice: PruningChoice) -> LayerView:
    """Weights, keep-masks and a per-layer table for one choice (one method at one sparsity)."""
    s = shared_sample(name)
    resolved, notes = choice.resolved()
    masks = _masks(name, resolved)
    modules = dict(s.model.named_modules())
    weights, kept, rows = {}, {}, []
    for layer in pruning_core.prunable_layers(s.model):
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


@st.cache_data(show_spinner=False, max_entries=64)
def size_speed(name: str, choice: PruningChoice) -> SizeSpeed:
    """Masked versus physically shrunk: parameters, shapes, file sizes and measured CPU latency."""
    s = shared_sample(name)
    resolved, notes = choice.resolved()
    masks = _masks(name, resolved)
    masked = apply_masks(s.model, masks).eval()
    x = s.data.X_test
    dense_file, masked_file = export.state_dict_bytes(s.model), export.state_dict_bytes(masked)
    sparse = csr_model(s.model, masks)  # Linear and plain conv weights in CSR, run by torch.sparse
    with torch.inference_mode():
        reference = masked(x)
        csr_difference = float((sparse(x) - reference).abs().max())
    common = {
        "params_dense": count_params(s.model),
        "params_nonzero": int(sum(int(torch.count_nonzero(p)) for p in masked.parameters())),
        "shapes_before": {k: list(v) for k, v in layer_shapes(s.model).items()},
        "file_dense": len(dense_file),
        "file_dense_gzip": export.gzip_size(dense_file),
        "file_masked": len(masked_file),
        "file_masked_gzip": export.gzip_size(masked_file),
        "csr_layers": dict(csr_layers(sparse)),
        "csr_max_abs_difference": csr_difference,
        "notes": tuple(notes),
    }
    try:
        small = shrink(s.model, masks)
    except ValueError as exc:
        dense_ms, masked_ms, csr_ms = compare_latency_ms([s.model, masked, sparse], x)
        return SizeSpeed(
            **common,
            latency_dense_ms=dense_ms,
            latency_masked_ms=masked_ms,
            latency_csr_ms=csr_ms,
            shrink_error=str(exc),
        )
    with torch.inference_mode():
        difference = float((reference - small(x)).abs().max())
    dense_ms, masked_ms, csr_ms, small_ms = compare_latency_ms([s.model, masked, sparse, small], x)
    shrunk = Shrunk(
        params=count_params(small),
        shapes={k: list(v) for k, v in layer_shapes(small).items()},
        file_bytes=len(export.state_dict_bytes(small)),
        latency_ms=small_ms,
        max_abs_difference=difference,
    )
    return SizeSpeed(
        **common, latency_dense_ms=dense_ms, latency_masked_ms=masked_ms, latency_csr_ms=csr_ms, shrunk=shrunk
    )


@st.cache_data(show_spinner=False)
def largest_linear_layer(name: str) -> tuple[str, int, int] | None:
    return largest_linear(shared_sample(name).model)


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
    for i, method in enumerate(config.methods):

        def progress(fraction: float, message: str, i: int = i) -> None:
            placeholder.progress(min(1.0, (i + fraction) / n), text=f"Sweeping: {message}")

        frames.append(
            method_sweep(
                config.model, method, config.scope, config.levels, config.exclude, config.seed, progress=progress
            )
        )
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
            title=f"{config.model}: {figures.Y_METRICS[y][0].split(' (')[0]} vs {x_title} ({config.scope} scope)",
            intervals=intervals, spread=spread,
        )  # fmt: skip
        return knees, fig

    key = ("tradeoff", dataclasses.astuple(config), x, y, tolerance_points, intervals, seeds)
    knees, fig = cached_figure(key, build)
    return table, knees.copy(), fig, spread


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

    @property
    def downloads(self) -> tuple[str, ...]:
        """The downloads this bundle offers, by kind."""
        offered = ["recipe_yaml", "recipe_json", "weights"]
        offered += [kind for kind in ("script", "shrunk", "onnx") if getattr(self, kind) is not None]
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


@st.cache_data(show_spinner=False, max_entries=64)
def export_bundle(name: str, choice: PruningChoice) -> ExportBundle:
    """Every file the Export page offers for one choice, with its size, built once per choice."""
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
    if cached_only:
        return results().get(key)
    args = (name, method, scope, tuple(levels), tuple(exclude), seed, curve, epochs, lr, rounds)

    def compute(report) -> pd.DataFrame:
        return _execute(workers.sample_schedule_sweep, *args, progress=report)

    return results().get_or_compute(key, compute, progress=progress, what=f"schedule sweep {name} {method} {curve}")


@st.cache_data(show_spinner=False, max_entries=128)
def allocation_row(name: str, method: str, allocation: tuple, exclude: tuple[str, ...], seed: int) -> pd.DataFrame:
    """The sweep row of an explicit per-layer allocation, labelled as a proposal."""
    s = shared_sample(name)
    row = pruning_core.sweep(
        s.model, s.data, [method], [dict(allocation)], scope="per-layer", exclude=exclude, seed=seed
    )
    row["method"] = f"{method} (per-layer proposal)"
    return row


@st.cache_data(show_spinner="Pruning one layer at a time...", max_entries=64)
def sensitivity_table(name: str, method: str, exclude: tuple[str, ...], seed: int) -> pd.DataFrame:
    from pruning_core.sensitivity import layer_sensitivity

    s = shared_sample(name)
    return layer_sensitivity(s.model, s.data, method, exclude=exclude, seed=seed)


@st.cache_data(show_spinner="Checking the proposal with every layer pruned at once...", max_entries=256)
def sensitivity_proposal(name: str, method: str, exclude: tuple[str, ...], seed: int, target: float, budget: float):
    from pruning_core.sensitivity import propose

    s = shared_sample(name)
    return propose(
        s.model, s.data, sensitivity_table(name, method, exclude, seed), target, budget, method, exclude, seed
    )


@st.cache_data(show_spinner=False, max_entries=64)
def allocation_recipe(name: str, choice: PruningChoice) -> str:
    """The YAML recipe of an explicit per-layer allocation (measured, like every export)."""
    return recipe_module.dumps(export.recipe_for(name, choice)[0])
