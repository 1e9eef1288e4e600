"""CPU sparse kernel benchmark: one 4096x4096 Linear layer at batch 16, dense (``F.linear``) against
CSR (``torch.sparse.addmm``) at 50, 90 and 98 % sparsity, timed interleaved (median of repeats).

Zeros make a dense kernel no faster; a CSR kernel visits only the nonzeros but pays for indirect
access, so it loses at moderate sparsity and wins past a break-even point this benchmark brackets.
Also the whole sample models: dense against CSR Linear layers at 90 % global magnitude sparsity.
"""

from __future__ import annotations

import torch

import sample_models
from pruning_core import compute_masks
from pruning_core.latency import BreakEven, csr_model, measure_break_even
from pruning_core.masks import apply_masks
from pruning_core.shrink import compare_latency_ms

SHAPE, BATCH, SPARSITIES = (4096, 4096), 16, (0.5, 0.9, 0.98)
MODELS = ("digits-mlp", "moons-mlp")


def run(repeats: int = 15) -> dict:
    layer = measure_break_even(*SHAPE, batch=BATCH, sparsities=SPARSITIES, repeats=repeats)
    models = {}
    for name in MODELS:
        sample = sample_models.load_sample(name)
        masks = compute_masks(sample.model, "magnitude", "global", 0.9)
        masked = apply_masks(sample.model, masks).eval()
        dense_ms, csr_ms = compare_latency_ms([masked, csr_model(sample.model, masks)], sample.data.X_test, repeats)
        models[name] = (len(sample.data.X_test), dense_ms, csr_ms)
    return {"layer": layer, "models": models}


def report(results: dict) -> str:
    layer: BreakEven = results["layer"]
    lines = [
        f"CPU sparse kernel: {layer.out_features}x{layer.in_features} Linear, batch {layer.batch}, "
        f"{torch.get_num_threads()} torch threads, dense vs CSR interleaved (median)"
    ]
    for sparsity, dense, csr, speedup in zip(layer.sparsities, layer.dense_ms, layer.csr_ms, layer.speedups):
        verdict = "CSR faster" if speedup > 1 else "CSR slower"
        lines.append(
            f"  {sparsity:>4.0%} sparse   dense {dense:>8.3f} ms   CSR {csr:>8.3f} ms   "
            f"dense/CSR {speedup:>6.2f}x  ({verdict})"
        )
    pays = layer.pays_from
    lines.append(
        "  CSR pays from the measured level "
        + (f"{pays:.0%} (crossing about {layer.crossing:.0%})" if pays is not None else "(none measured)")
    )
    for name, (batch, dense, csr) in results["models"].items():
        lines.append(
            f"  {name} at 90 % global magnitude, batch {batch}: masked dense {dense:.3f} ms, "
            f"CSR Linear layers {csr:.3f} ms, dense/CSR {dense / csr:.2f}x"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(run()))
