"""Fine-tuning sweep benchmark: 10 levels x 1 epoch of masked fine-tuning on digits-mlp, on one
core and on two (levels in two worker processes, one thread each). Target: at most 10 s.

Each configuration runs in a fresh process (after a warm-up inside it) so that neither inherits
the other's thread pools."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CODE = """
import json, time, torch
import sample_models, pruning_core
from pruning_core.finetune import FineTuneConfig
from pruning_core.schedules import Schedule
{threads}
sample = sample_models.load_sample("{model}")
schedule = Schedule("oneshot", FineTuneConfig(epochs=1))
levels = [round(0.1 * i, 2) for i in range(10)]
pruning_core.sweep(sample.model, sample.data, ["magnitude"], [0.5], schedule=schedule)  # warm-up
times = []
for _ in range(3):
    start = time.perf_counter()
    pruning_core.sweep(sample.model, sample.data, ["magnitude"], levels, schedule=schedule, workers={workers})
    times.append(time.perf_counter() - start)
print(json.dumps(sorted(times)[1]))
"""

CONFIGS = {
    "1 core (1 thread, 1 process)": ("torch.set_num_threads(1)", 1),
    "2 cores (2 threads, 1 process)": ("", 1),
    "2 cores (2 processes x 1 thread)": ("torch.set_num_threads(1)", 2),
}


def run(model: str = "digits-mlp") -> dict[str, float]:
    root = Path(__file__).resolve().parents[1]
    results = {}
    for name, (threads, workers) in CONFIGS.items():
        code = CODE.format(threads=threads, model=model, workers=workers)
        done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=900)
        results[name] = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else float("nan")
    return results


def report(results: dict[str, float]) -> str:
    lines = ["Fine-tuning sweep: digits-mlp, 10 levels x 1 epoch, median of 3 (target <= 10 s)"]
    base = results["1 core (1 thread, 1 process)"]
    for name, seconds in results.items():
        lines.append(f"  {name:<36}{seconds:>7.2f} s   speedup over 1 core {base / seconds:>5.2f}x")
    return "\n".join(lines)
