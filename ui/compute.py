"""Cached engine calls for the app.

``st.cache_resource`` holds one model object per sample for every user of the server: nothing here
may modify it (the engine never does). Results are keyed by the choice that produced them
(``st.cache_data``, or the shared ``SweepStore`` for sweeps), so the same choice made by many
workshop attendees is computed once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np
import pandas as pd
import streamlit as st
import torch

import pruning_core
import sample_models
from pruning_core import export
from pruning_core.latency import BreakEven, csr_layers, csr_model, largest_linear, measure_break_even
from pruning_core.masks import apply_masks, compute_masks
from pruning_core.shrink import compare_latency_ms, count_params, layer_shapes, shrink


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


class SweepStore:
    """Sweep tables shared by every session, least recently used dropped first.

    ``st.cache_data`` replays the Streamlit calls a cached function makes, and refuses a progress
    bar created outside it; sweeps must report progress, so their results live here instead, in
    one store held by ``st.cache_resource``. Tables are returned as copies.
    """

    def __init__(self, max_entries: int = 512):
        self.max_entries = max_entries
        self._tables: OrderedDict[tuple, pd.DataFrame] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> pd.DataFrame | None:
        with self._lock:
            table = self._tables.get(key)
            if table is not None:
                self._tables.move_to_end(key)
            return None if table is None else table.copy()

    def put(self, key: tuple, table: pd.DataFrame) -> None:
        with self._lock:
            self._tables[key] = table.copy()
            self._tables.move_to_end(key)
            while len(self._tables) > self.max_entries:
                self._tables.popitem(last=False)


@st.cache_resource(show_spinner=False)
def sweep_store() -> SweepStore:
    return SweepStore()


def method_sweep(
    name: str, method: str, scope: str, levels: tuple[float, ...], exclude: tuple[str, ...], seed: int, progress=None
) -> pd.DataFrame:
    """One method's sweep; stored per method so adding a method to the overlay computes only it."""
    key = (name, method, scope, tuple(levels), tuple(exclude), seed)
    store = sweep_store()
    table = store.get(key)
    if table is None:
        s = shared_sample(name)
        table = pruning_core.sweep(
            s.model, s.data, [method], list(levels), scope=scope, exclude=exclude, seed=seed, progress=progress
        )
        store.put(key, table)
    return table


def _masks(name: str, method: str, scope: str, sparsity: float, exclude: tuple[str, ...], seed: int):
    s = shared_sample(name)
    method_scope = scope if scope in pruning_core.get_method(method).scopes else "layerwise"
    return compute_masks(
        s.model, method, method_scope, sparsity, exclude=exclude, seed=seed,
        X_calib=s.data.X_train[:256], y_calib=s.data.y_train[:256],
    )  # fmt: skip


@st.cache_data(show_spinner=False, max_entries=256)
def layer_view(name: str, method: str, scope: str, sparsity: float, exclude: tuple[str, ...], seed: int) -> dict:
    """Weights, keep-masks and a per-layer table for one method at one sparsity."""
    s = shared_sample(name)
    masks = _masks(name, method, scope, sparsity, exclude, seed)
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
                "excluded": layer in exclude,
            }
        )
    threshold = None
    if pruning_core.get_method(method).name == "magnitude":
        pruned = [np.abs(weights[n])[~kept[n]] for n in weights if (~kept[n]).any()]
        threshold = float(max(p.max() for p in pruned)) if pruned else None
    return {"weights": weights, "kept": kept, "table": pd.DataFrame(rows), "threshold": threshold}


@st.cache_data(show_spinner=False, max_entries=64)
def size_speed(name: str, method: str, scope: str, sparsity: float, exclude: tuple[str, ...], seed: int) -> dict:
    """Masked versus physically shrunk: parameters, shapes, file sizes and measured CPU latency."""
    s = shared_sample(name)
    masks = _masks(name, method, scope, sparsity, exclude, seed)
    masked = apply_masks(s.model, masks).eval()
    x = s.data.X_test
    result = {
        "params_dense": count_params(s.model),
        "params_nonzero": int(sum(int(torch.count_nonzero(p)) for p in masked.parameters())),
        "shapes_before": {k: list(v) for k, v in layer_shapes(s.model).items()},
    }
    dense_file, masked_file = export.state_dict_bytes(s.model), export.state_dict_bytes(masked)
    result["file_dense"], result["file_dense_gzip"] = len(dense_file), export.gzip_size(dense_file)
    result["file_masked"], result["file_masked_gzip"] = len(masked_file), export.gzip_size(masked_file)
    sparse = csr_model(s.model, masks)  # Linear and plain conv weights in CSR, run by torch.sparse
    result["csr_layers"] = csr_layers(sparse)
    with torch.inference_mode():
        reference = masked(x)
        result["csr_max_abs_difference"] = float((sparse(x) - reference).abs().max())
    try:
        small = shrink(s.model, masks)
    except ValueError as exc:
        result["shrink_error"] = str(exc)
        latencies = compare_latency_ms([s.model, masked, sparse], x)
        result["latency_dense_ms"], result["latency_masked_ms"], result["latency_csr_ms"] = latencies
        return result
    with torch.inference_mode():
        result["max_abs_difference"] = float((reference - small(x)).abs().max())
    result["params_shrunk"] = count_params(small)
    result["shapes_after"] = {k: list(v) for k, v in layer_shapes(small).items()}
    result["file_shrunk"] = len(export.state_dict_bytes(small))
    latencies = compare_latency_ms([s.model, masked, sparse, small], x)
    (
        result["latency_dense_ms"],
        result["latency_masked_ms"],
        result["latency_csr_ms"],
        result["latency_shrunk_ms"],
    ) = latencies
    return result


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


@st.cache_data(show_spinner=False, max_entries=64)
def export_bundle(name: str, method: str, scope: str, sparsity: float, exclude: tuple[str, ...], seed: int) -> dict:
    """Every file the Export page offers for one choice, with its size, built once per choice."""
    from pruning_core import export, recipe
    from pruning_core.script import generate_script

    made = export.make_recipe(name, method, scope, sparsity, exclude, seed)
    applied = export.apply_recipe(made)
    sample = shared_sample(name)
    dense = export.state_dict_bytes(sample.model)
    weights = export.state_dict_bytes(applied.model)
    bundle = {
        "recipe": made,
        "recipe_yaml": recipe.dumps(made, "yaml"),
        "recipe_json": recipe.dumps(made, "json"),
        "script": generate_script(made),
        "metrics": applied.metrics,
        "weights": weights,
        "sizes": {
            "dense": len(dense),
            "dense, gzip": export.gzip_size(dense),
            "pruned (zeros in place)": len(weights),
            "pruned, gzip": export.gzip_size(weights),
        },
        "notes": applied.notes,
    }
    if applied.shrunk is not None:
        shrunk = export.state_dict_bytes(applied.shrunk)
        onnx_model = export.onnx_bytes(applied.shrunk, applied.example_input)
        bundle["shrunk"] = shrunk
        bundle["onnx"] = onnx_model
        bundle["onnx_max_abs_difference"] = export.onnx_max_difference(
            onnx_model, applied.shrunk, applied.example_input
        )
        bundle["sizes"]["neurons removed"] = len(shrunk)
        bundle["sizes"]["neurons removed, ONNX"] = len(onnx_model)
    return bundle


SCHEDULE_CURVES = ("oneshot", "oneshot+ft", "iterative", "gradual", "lottery")


def curve_schedule(curve: str, epochs: int, lr: float, rounds: int):
    """The Schedule behind one curve of the schedules page; every trained curve gets the same
    training budget (rounds x epochs) so the comparison is fair."""
    from pruning_core.finetune import FineTuneConfig
    from pruning_core.schedules import Schedule

    per_round = FineTuneConfig(epochs=epochs, lr=lr)
    total = FineTuneConfig(epochs=epochs * rounds, lr=lr)
    return {
        "oneshot": None,
        "oneshot+ft": Schedule("oneshot", total),
        "iterative": Schedule("iterative", per_round, rounds=rounds),
        "gradual": Schedule("gradual", total),
        "lottery": Schedule("lottery", per_round, rounds=rounds),
    }[curve]


def schedule_sweep(
    name: str, method: str, scope: str, levels: tuple[float, ...], exclude: tuple[str, ...], seed: int,
    curve: str, epochs: int, lr: float, rounds: int, progress=None, cached_only: bool = False,
) -> pd.DataFrame | None:  # fmt: skip
    """One schedule's sweep (stored like the other sweeps), with a ``curve`` column; with
    ``cached_only``, None unless it was computed before."""
    import functools

    key = ("schedule", name, method, scope, tuple(levels), tuple(exclude), seed, curve, epochs, lr, rounds)
    store = sweep_store()
    table = store.get(key)
    if table is None and not cached_only:
        s = shared_sample(name)
        table = pruning_core.sweep(
            s.model, s.data, [method], list(levels), scope=scope, exclude=exclude, seed=seed, progress=progress,
            schedule=curve_schedule(curve, epochs, lr, rounds), init_state=sample_models.initial_state(name),
            reinit=functools.partial(sample_models.initial_state, name),
        )  # fmt: skip
        table["curve"] = [curve if kind != "lottery-reinit" else kind for kind in table["schedule"]]
        store.put(key, table)
    return table


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
def allocation_recipe(name: str, method: str, allocation: tuple, exclude: tuple[str, ...], seed: int) -> str:
    """The YAML recipe of an explicit per-layer allocation (measured, like every export)."""
    from pruning_core import export, recipe

    return recipe.dumps(export.make_recipe(name, method, "per-layer", dict(allocation), exclude, seed))
