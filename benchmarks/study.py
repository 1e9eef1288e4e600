"""Study benchmark: a 40-cell study with fine-tuning (digits-mlp, magnitude and random, iterative
3 rounds x 3 epochs, 4 sparsities, 5 seeds) run locally in one process and on a local Ray with
2 CPUs; Ray's overhead per task; that both give the same results; and the spread across 5 seeds of
the random baseline and of iterative fine-tuning at 90 % on digits-mlp and digits-cnn.

Each configuration runs in a fresh process so neither inherits the other's thread pools. Target:
Ray >= 1.7x faster than local sequential for cells of a second or more (2 cores).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

SPEED_STUDY = {
    "version": 1,
    "name": "bench-speed",
    "model": {"sample": "digits-mlp"},
    "methods": ["magnitude", "random"],
    "sparsities": [0.5, 0.7, 0.8, 0.9],
    "schedules": [{"kind": "iterative", "rounds": 3, "finetune": {"epochs": 8}}],  # cells of about a second
    "seeds": {"count": 5},
}
SPREAD_STUDY = {
    "version": 1,
    "name": "bench-spread",
    "models": [{"sample": "digits-mlp"}, {"sample": "digits-cnn"}],
    "methods": ["random", "magnitude"],
    "sparsities": [0.9],
    "schedules": [{"kind": "oneshot"}, {"kind": "iterative", "rounds": 3, "finetune": {"epochs": 1}}],
    "seeds": {"count": 5},
}

CODE = """
import json, sys, time
import torch
from pruning_core.study import from_dict
from pruning_core.study_runner import run_study
study = from_dict(json.loads(sys.argv[1]))
backend, out = sys.argv[2], sys.argv[3]
result = {"cells": len(study.cells())}
if backend == "ray":
    import ray
    start = time.perf_counter()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    result["ray_start_s"] = time.perf_counter() - start
    noop = ray.remote(num_cpus=1)(lambda: None)
    ray.get([noop.remote() for _ in range(20)])  # warm the worker pool
    start = time.perf_counter()
    ray.get([noop.remote() for _ in range(500)])
    result["noop_task_ms"] = (time.perf_counter() - start) / 500 * 1000
    start = time.perf_counter()
    for _ in range(50):
        ray.get(noop.remote())
    result["noop_round_trip_ms"] = (time.perf_counter() - start) / 50 * 1000
    # start both workers' torch and engine imports once, as a long study amortises them
    start = time.perf_counter()
    warm = ray.remote(num_cpus=1)(lambda: __import__("pruning_core.study") and time.sleep(1))
    ray.get([warm.remote() for _ in range(2)])
    result["worker_warm_s"] = time.perf_counter() - start
start = time.perf_counter()
# local: sequential, one cell after another in this process; Ray: two CPUs
report = run_study(study, out, backend=backend, workers=2 if backend == "ray" else 1, progress=False)
result["study_s"] = time.perf_counter() - start
result["failed"] = report.failed
print(json.dumps(result))
"""


def _run(study: dict, backend: str, out: Path) -> dict:
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", CODE, json.dumps(study), backend, str(out)],
        cwd=root, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def run() -> dict:
    from pruning_core.study_runner import read_results
    from pruning_core.study_stats import summarise

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        local = _run(SPEED_STUDY, "local", tmp / "local.parquet")
        ray = _run(SPEED_STUDY, "ray", tmp / "ray.parquet")
        a, b = read_results(tmp / "local.parquet"), read_results(tmp / "ray.parquet")
        a_seconds, b_seconds = a.pop("seconds"), b.pop("seconds")
        equal = a.equals(b)
        # one row per cell here (schedules that train): the cells' own seconds, summed
        local["cell_s"], ray["cell_s"] = float(a_seconds.sum()), float(b_seconds.sum())
        spread_run = _run(SPREAD_STUDY, "ray", tmp / "spread.parquet")
        spread = summarise(read_results(tmp / "spread.parquet"))
    columns = ["model", "method", "schedule_name", "accuracy_mean", "accuracy_std", "accuracy_n"]
    columns += ["accuracy_ci_low", "accuracy_ci_high"]
    return {
        "local": local, "ray": ray, "equal": equal, "spread_run": spread_run,
        "spread": spread[columns].to_dict(orient="records"),
    }  # fmt: skip


def report(result: dict) -> str:
    local, ray = result["local"], result["ray"]
    speedup = local["study_s"] / ray["study_s"]
    lines = [
        f"Study benchmark: {local['cells']} cells "
        "(digits-mlp, magnitude+random, iterative 3x8 ep, 4 sparsities, 5 seeds)",
        f"  local, sequential in one process (1 torch thread): {local['study_s']:6.1f} s",
        f"  Ray, 2 CPUs (one task per cell, 1 thread):         {ray['study_s']:6.1f} s  "
        f"-> {speedup:.2f}x (target >= 1.7x)",
        f"  Ray start: {ray['ray_start_s']:.1f} s; workers' first import of torch and the engine: "
        f"{ray['worker_warm_s'] - 1:.1f} s (not in the study's time); "
        f"per no-op task: {ray['noop_task_ms']:.2f} ms pipelined, "
        f"{ray['noop_round_trip_ms']:.2f} ms one at a time",
        f"  sum of the cells' own times: local {local['cell_s']:.1f} s, Ray {ray['cell_s']:.1f} s "
        f"(Ray kept {ray['cell_s'] / ray['study_s']:.2f} cells running on average; a cell took "
        f"{ray['cell_s'] / local['cell_s']:.2f}x as long beside another as alone)",
        f"  results equal cell for cell (all columns but seconds): {result['equal']}",
        f"Spread across 5 seeds at 90 % sparsity ({result['spread_run']['study_s']:.1f} s on Ray):",
    ]
    table = pd.DataFrame(result["spread"])
    for row in table.itertuples():
        lines.append(
            f"  {row.model:<11} {row.method:<10} {row.schedule_name:<14} accuracy {row.accuracy_mean:6.1%} "
            f"± {row.accuracy_std:5.1%} (sd), "
            f"95 % CI [{row.accuracy_ci_low:6.1%}, {row.accuracy_ci_high:6.1%}], n={row.accuracy_n}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(run()))
