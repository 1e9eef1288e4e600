"""Own-model loading, measured (issue 12's closing measures; part of ``make bench``).

1. For each format (ONNX from PyTorch, ONNX from scikit-learn, safetensors, a ``.pt`` state
   dict), a model no sample resembles is saved in that format, loaded through
   ``pruning_core.loaders`` and swept at 0 %, 50 % and 90 % magnitude sparsity: the accuracy at
   0 % against the accuracy onnxruntime (ONNX files) or PyTorch (state dicts) computes on the
   same test data, and the sweep's time against the bare evaluations of its levels (one forward
   pass of the loaded module over the test and validation inputs per level) as a ratio.
2. Peak memory of a sweep on a ~25 M-parameter ONNX model (a wide MLP exported by torch.onnx,
   random data labelled by the model itself), in a fresh process so its RSS is its own: the
   rise of peak RSS over the process after its imports, for loading and for the sweep, against
   the bytes of the weights plus the data (target: within 3x).

Run: ``python -m benchmarks.own_model``. Ratios are printed; nothing is asserted on time.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save

import pruning_core
import sample_models
from pruning_core.loaders import load_data, load_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "core"))
from own_model_helpers import ResidualNet, fit_readout, onnxruntime_outputs, residual_net, to_onnx  # noqa: E402


def _csv(X: np.ndarray, y: np.ndarray) -> bytes:
    header = ",".join(f"f{i}" for i in range(X.shape[1])) + ",label\n"
    return (header + "".join(",".join(f"{v:.9g}" for v in r) + f",{t}\n" for r, t in zip(X, y))).encode()


LEVELS = [0.0, 0.5, 0.9]


def bare_seconds(model: torch.nn.Module, split, levels: int = len(LEVELS), batch_size: int = 512) -> float:
    """The least a sweep of ``levels`` levels must compute: per level, one forward pass over the test
    and validation inputs (best of 3)."""
    inputs = [x for x in (split.X_test, getattr(split, "X_val", None)) if x is not None and len(x)]
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        with torch.inference_mode():
            for _ in range(levels):
                for X in inputs:
                    for i in range(0, len(X), batch_size):
                        model(X[i : i + batch_size])
        best = min(best, time.perf_counter() - start)
    return best


def _row(name: str, loaded, data, reference: float, reference_name: str) -> dict:
    sweep_s = float("inf")
    for _ in range(3):  # best of 3, as the bare evaluations
        start = time.perf_counter()
        table = pruning_core.sweep(loaded.model, data.split, ["magnitude"], LEVELS)
        sweep_s = min(sweep_s, time.perf_counter() - start)
    bare_s = bare_seconds(loaded.model, data.split)
    acc = {float(level): float(value) for level, value in zip(table.target_sparsity, table.accuracy)}
    return {
        "format": name,
        "layers": len(pruning_core.prunable_layers(loaded.model)),
        "load_ms": round(loaded.load_seconds * 1000, 1),
        "test_samples": len(data.split.y_test),
        "prunelab_at_0": acc[0.0],
        reference_name: float(reference),
        "equal": bool(acc[0.0] == reference),
        "at_50": acc[0.5],
        "at_90": acc[0.9],
        "sweep_ms": round(sweep_s * 1000, 1),
        "bare_ms": round(bare_s * 1000, 2),
        "ratio": round(sweep_s / bare_s, 1),
    }


def measure() -> list[dict]:
    rows = []
    digits = sample_models.datasets.digits_images()
    X = np.concatenate([digits.X_train.numpy(), digits.X_test.numpy()]).reshape(-1, 64)
    y = np.concatenate([digits.y_train.numpy(), digits.y_test.numpy()])
    model = fit_readout(residual_net(), digits.X_train, digits.y_train)

    onnx_bytes = to_onnx(model, digits.X_test)
    loaded = load_model(onnx_bytes, filename="residual.onnx")
    data = load_data(_csv(X, y), filename="digits.csv", model=loaded, label_column="label")
    (out,) = onnxruntime_outputs(onnx_bytes, data.split.X_test)
    reference = float((out.argmax(1) == data.split.y_test.numpy()).mean())
    rows.append(_row("ONNX from PyTorch (residual, depthwise, concat)", loaded, data, reference, "reference"))

    state = save({k: v.contiguous() for k, v in model.state_dict().items()})
    loaded = load_model(state, filename="residual.safetensors", factory=ResidualNet)
    with torch.inference_mode():
        reference = float((model(data.split.X_test).argmax(1) == data.split.y_test).double().mean())
    rows.append(_row("safetensors + factory (same net, torch)", loaded, data, reference, "reference"))

    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    loaded = load_model(buffer.getvalue(), filename="residual.pt", factory=ResidualNet)
    rows.append(_row(".pt state dict + factory (weights_only)", loaded, data, reference, "reference"))

    try:
        import skl2onnx
        from sklearn.datasets import load_wine
        from sklearn.neural_network import MLPClassifier
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
    except ImportError:
        print("skl2onnx is not installed: scikit-learn row skipped")
        return rows
    Xw, yw = load_wine(return_X_y=True)
    Xw = Xw.astype(np.float32)
    data = load_data(_csv(Xw, yw), filename="wine.csv", label_column="label", seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = make_pipeline(StandardScaler(), MLPClassifier((32, 16), max_iter=300, random_state=0))
        clf.fit(data.split.X_train.numpy(), data.split.y_train.numpy())
    onnx_bytes = skl2onnx.to_onnx(clf, Xw[:1], options={id(clf): {"zipmap": False}}, target_opset=17)
    onnx_bytes = onnx_bytes.SerializeToString()
    loaded = load_model(onnx_bytes, filename="wine.onnx")
    data = load_data(_csv(Xw, yw), filename="wine.csv", model=loaded, label_column="label", seed=0)
    labels, _ = onnxruntime_outputs(onnx_bytes, data.split.X_test)
    reference = float((labels == data.split.y_test.numpy()).mean())
    rows.append(_row("ONNX from scikit-learn (scaler + MLP)", loaded, data, reference, "reference"))
    return rows


# --- peak memory of a sweep on a ~25 M-parameter ONNX model ------------------------------------------

WIDTHS = (1024, 4096, 4096, 1024, 10)  # 25.2 M parameters: 100.7 MB of float32 weights
SAMPLES = 3000


def build_large(directory: Path, widths: tuple[int, ...] = WIDTHS, samples: int = SAMPLES) -> None:
    """A wide MLP (random weights, non-zero biases) as ONNX and random inputs labelled by the model
    itself (so 0 % is 100 % accurate and pruning shows), as NPZ."""
    from torch import nn

    generator = torch.Generator().manual_seed(0)
    layers: list[nn.Module] = []
    for fan_in, fan_out in zip(widths, widths[1:]):
        linear = nn.Linear(fan_in, fan_out)
        with torch.no_grad():
            linear.weight.copy_(torch.randn(linear.weight.shape, generator=generator) / fan_in**0.5)
            # distinct biases: an exporter merges equal initializers (e.g. all-zero biases) into one
            linear.bias.copy_(torch.randn(fan_out, generator=generator) * 0.01)
        layers += [linear, nn.ReLU()]
    model = nn.Sequential(*layers[:-1]).eval()
    X = torch.randn(samples, widths[0], generator=generator)
    with torch.inference_mode():
        y = model(X).argmax(1)
    directory.mkdir(exist_ok=True)
    (directory / "wide.onnx").write_bytes(to_onnx(model, X))
    n = samples * 2 // 3
    np.savez(
        directory / "data.npz", X_train=X[:n].numpy(), y_train=y[:n].numpy(), X_test=X[n:].numpy(), y_test=y[n:].numpy()
    )


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak() -> None:
    """Linux: restart the process's peak RSS (VmHWM) from its current RSS."""
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


def memory_child(directory: Path, allocator: str) -> dict:
    """In a fresh process: load and sweep the large model, with peak RSS per phase (MB).

    ``allocator`` is "prunelab" (``release_large_blocks()``, as the command line, the app's server and
    its workers set it when they start) or "default" (glibc as a library user's process has it)."""
    from pruning_core.loaders import Limits, load_own

    torch.set_num_threads(1)  # this process is the benchmark's own
    if allocator == "prunelab":
        pruning_core.release_large_blocks()
    limits = Limits(max_model_bytes=200 * 2**20, max_parameters=60_000_000, max_tensor_elements=60_000_000)
    cold = _status_mb("VmRSS")
    # Warm-up: the same steps on a small model of the same kind (0.1 M parameters), so what any first
    # model costs a process once (shared-library code paged in, the modules loading imports: scikit-
    # learn's split, onnx) is in the base, and the rise measured is what this model's size costs.
    small = load_own(directory / "small" / "wide.onnx", data=directory / "small" / "data.npz", limits=limits)
    pruning_core.sweep(small.model, small.split, ["magnitude"], LEVELS)
    del small
    base = _status_mb("VmRSS")
    _reset_peak()
    own = load_own(directory / "wide.onnx", data=directory / "data.npz", limits=limits)
    load_peak, after_load = _status_mb("VmHWM"), _status_mb("VmRSS")
    _reset_peak()
    start = time.perf_counter()
    table = pruning_core.sweep(own.model, own.split, ["magnitude"], LEVELS)
    sweep_s = time.perf_counter() - start
    sweep_peak = _status_mb("VmHWM")
    split = own.split
    data_bytes = sum(int(t.numel() * t.element_size()) for t in split if t is not None)
    weight_bytes = sum(int(p.numel() * p.element_size()) for p in own.model.parameters())
    (logits,) = onnxruntime_outputs((directory / "wide.onnx").read_bytes(), split.X_test)
    return {
        "parameters": sum(p.numel() for p in own.model.parameters()),
        "allocator": allocator, "cold_mb": cold,
        "weights_mb": weight_bytes / 2**20, "data_mb": data_bytes / 2**20, "base_mb": base,
        "load_peak_mb": load_peak, "after_load_mb": after_load, "sweep_peak_mb": sweep_peak,
        "sweep_s": sweep_s, "bare_s": bare_seconds(own.model, split),
        "prunelab_at_0": float(table.accuracy.iloc[0]),
        "onnxruntime_at_0": float((logits.argmax(1) == split.y_test.numpy()).mean()),
        "at_90": float(table.accuracy.iloc[-1]),
    }  # fmt: skip


def _child(*args: str) -> str:
    """Run this module with ``args`` in a fresh process; its last line of output."""
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.own_model", *args], cwd=root, capture_output=True, text=True, check=True
    )
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""


def memory() -> list[dict]:
    """Build the large model in one process, measure it in others (so no process's RSS is another's):
    with the allocator setting PruneLab's own processes use, then with the library default."""
    with tempfile.TemporaryDirectory() as tmp:
        _child("--build", tmp)
        return [json.loads(_child("--memory", tmp, allocator)) for allocator in ("prunelab", "default")]


def run() -> dict:
    """Each part in a fresh process with one torch thread (a benchmark's process is its own)."""
    return {"formats": json.loads(_child("--formats")), "memory": memory()}


def report(result: dict) -> str:
    lines = ["Own models: accuracy at 0 % against the reference runtime; sweep (0/50/90 %) against bare evaluations"]
    for row in result["formats"]:
        lines.append(
            f"  {row['format']:<48} at 0 %: PruneLab {row['prunelab_at_0']:.4f}, reference {row['reference']:.4f} "
            f"(equal: {row['equal']}); sweep {row['sweep_ms']:.0f} ms vs bare {row['bare_ms']:.1f} ms "
            f"-> {row['ratio']:.1f}x"
        )
    first = result["memory"][0]
    total = first["weights_mb"] + first["data_mb"]
    lines.append(
        f"Peak memory, {first['parameters'] / 1e6:.1f} M-parameter ONNX MLP: weights {first['weights_mb']:.0f} MB + "
        f"data {first['data_mb']:.0f} MB = {total:.0f} MB. Rises over the process after its imports and a warm-up "
        "on a 0.1 M-parameter model of the same kind:"
    )
    names = {"prunelab": "as prunelab's CLI and app run it", "default": "library default allocator"}
    for m in result["memory"]:
        load, sweep = m["load_peak_mb"] - m["base_mb"], m["sweep_peak_mb"] - m["base_mb"]
        kept = m["after_load_mb"] - m["base_mb"]
        lines += [
            f"  {names[m['allocator']]}: loading peak +{load:.0f} MB ({load / total:.2f}x), kept +{kept:.0f} MB "
            f"({kept / total:.2f}x); sweep (3 levels) peak +{sweep:.0f} MB ({sweep / total:.2f}x; target <= 3x)",
            f"    the warm-up's one-time cost: +{m['base_mb'] - m['cold_mb']:.0f} MB; sweep {m['sweep_s']:.1f} s vs "
            f"bare evaluations {m['bare_s']:.1f} s -> {m['sweep_s'] / m['bare_s']:.1f}x; accuracy at 0 %: PruneLab "
            f"{m['prunelab_at_0']:.4f}, onnxruntime {m['onnxruntime_at_0']:.4f}; at 90 %: {m['at_90']:.4f}",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--build":
        build_large(Path(sys.argv[2]))
        build_large(Path(sys.argv[2]) / "small", widths=(64, 256, 256, 64, 10), samples=600)
    elif len(sys.argv) == 4 and sys.argv[1] == "--memory":
        print(json.dumps(memory_child(Path(sys.argv[2]), sys.argv[3])))
    elif len(sys.argv) == 2 and sys.argv[1] == "--formats":
        torch.set_num_threads(1)
        print(json.dumps(measure()))
    else:
        started = time.perf_counter()
        print(report(run()))
        print(f"total {time.perf_counter() - started:.1f} s")
