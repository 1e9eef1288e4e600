"""PruneLab's pruning engine: pure Python + torch, usable from notebooks, scripts and the CLI.

>>> import sample_models, pruning_core
>>> sample = sample_models.load_sample("digits-mlp")
>>> masks = pruning_core.compute_masks(sample.model, method="magnitude", scope="global", sparsity=0.9)
>>> table = pruning_core.sweep(sample.model, sample.data, methods=["magnitude", "random"],
...                            sparsities=[0, 0.5, 0.9])
>>> own = pruning_core.load_own("net.onnx", data="data.csv", label_column="label")  # your own model
>>> table = pruning_core.sweep(own.model, own.split, ["magnitude"], [0, 0.5, 0.9])
>>> pruning_core.release_large_blocks()  # optional, once per process: freed big blocks go back to the OS

Nothing here modifies the caller's model.
"""

from pruning_core.allocator import release_large_blocks
from pruning_core.apply import Applied, apply_choice, masks_for
from pruning_core.choice import Calibration, PruningChoice
from pruning_core.graph import GraphError, trace_links
from pruning_core.loaders import Limits, OwnModel, UntrustedFileError, load_own
from pruning_core.masks import (
    SCOPES,
    MaskPlan,
    apply_masks,
    check_sparsity,
    compute_masks,
    erk_sparsities,
    mask_sparsity,
)
from pruning_core.methods import METHODS, PruningMethod, ScoringContext, get_method, method_names, register
from pruning_core.metrics import ModelProfile, evaluate, size_metrics
from pruning_core.shrink import (
    ShrinkNote,
    ShrinkReport,
    count_params,
    measure_latency_ms,
    shrink,
    shrink_report,
    shrink_with_notes,
)
from pruning_core.stats import seed_spread, wilson_interval
from pruning_core.sweep import COLUMNS, sweep
from pruning_core.targets import Target, find_targets, prunable_layers

__version__ = "0.1.0"

__all__ = [
    "COLUMNS",
    "Applied",
    "Calibration",
    "PruningChoice",
    "apply_choice",
    "masks_for",
    "METHODS",
    "SCOPES",
    "GraphError",
    "Limits",
    "OwnModel",
    "UntrustedFileError",
    "load_own",
    "release_large_blocks",
    "MaskPlan",
    "ModelProfile",
    "PruningMethod",
    "ScoringContext",
    "ShrinkReport",
    "Target",
    "apply_masks",
    "check_sparsity",
    "compute_masks",
    "count_params",
    "erk_sparsities",
    "evaluate",
    "find_targets",
    "get_method",
    "mask_sparsity",
    "measure_latency_ms",
    "method_names",
    "prunable_layers",
    "register",
    "shrink",
    "shrink_report",
    "shrink_with_notes",
    "ShrinkNote",
    "size_metrics",
    "seed_spread",
    "sweep",
    "trace_links",
    "wilson_interval",
]
