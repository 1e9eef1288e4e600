"""Own-model loading, measured: PruneLab's dense accuracy against the reference runtime's.

For each format, a model no sample resembles is built, saved in that format, loaded through
``pruning_core.loaders`` and swept at 0 %, 50 % and 90 % magnitude sparsity; the accuracy at 0 %
must equal the accuracy onnxruntime (ONNX files) or PyTorch (state dicts) computes on the same
test data. Run: ``python -m benchmarks.own_model``.
"""

from __future__ import annotations

import sys
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


def _row(name: str, loaded, data, reference: float, reference_name: str) -> dict:
    table = pruning_core.sweep(loaded.model, data.split, ["magnitude"], [0.0, 0.5, 0.9])
    acc = dict(zip(table.target_sparsity, table.accuracy))
    return {
        "format": name,
        "layers": len(pruning_core.prunable_layers(loaded.model)),
        "load_ms": round(loaded.load_seconds * 1000, 1),
        "test_samples": len(data.split.y_test),
        "prunelab_at_0": acc[0.0],
        reference_name: reference,
        "equal": acc[0.0] == reference,
        "at_50": acc[0.5],
        "at_90": acc[0.9],
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


if __name__ == "__main__":
    started = time.perf_counter()
    for row in measure():
        print(row)
    print(f"total {time.perf_counter() - started:.1f} s")
