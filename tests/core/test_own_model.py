"""Bring your own model and data: hostile files are refused, nothing runs, nothing is left behind;
real files load into models that compute what onnxruntime / PyTorch compute, and prune.

Rules checked here:
- every file of the hostile corpus (tests/hostile/make_hostile.py) raises UntrustedFileError with a
  message naming the problem; no payload runs (its marker file never appears) and no file is created;
- the payloads are live: loaded the unsafe way, they do run (so "no marker" can fail);
- sizes are checked before reading: a 300 MB file is refused without being opened;
- a converted ONNX model computes what onnxruntime computes (allclose), its Linear/Conv layers are
  found as prunable and named after the ONNX weights; pruned weights written back into the user's
  graph give onnxruntime the pruned model's outputs;
- safetensors/.pt state dicts load into a named architecture and reproduce its outputs;
- data is split stratified and seeded, and checked against the model.
"""

from __future__ import annotations

import io
import pathlib
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from core_helpers import FEW, cases, layers
from hypothesis import given
from own_model_helpers import (
    ResidualNet,
    WideMLP,
    fit_readout,
    onnxruntime_outputs,
    residual_net,
    to_onnx,
)
from safetensors.torch import save
from torch import nn

import pruning_core
import sample_models
from pruning_core.loaders import Limits, UntrustedFileError, load_data, load_model
from pruning_core.loaders.onnx_model import probe

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.hostile.make_hostile import Hostile, build_corpus, torch_export_load_runs_it  # noqa: E402


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, Path, dict[str, Hostile]]:
    directory = tmp_path_factory.mktemp("hostile")
    marker = tmp_path_factory.mktemp("marker") / "PAYLOAD_RAN"
    entries = build_corpus(directory, marker)
    return directory, marker, {e.name: e for e in entries}


HOSTILE_NAMES = [
    "pickle-runs-command", "bare-pickle", "legacy-pt", "full-pickled-model", "torchscript", "pt2-pickled-weight",
    "pt2-renamed-pt",
    "truncated-safetensors", "lying-safetensors", "safetensors-absurd-shape", "safetensors-huge-header",
    "nan-safetensors", "wrong-keys-safetensors", "onnx-external-data", "onnx-custom-domain",
    "onnx-absurd-initializer", "onnx-absurd-input", "onnx-padding-bomb", "onnx-nan-weights", "onnx-garbage",
    "upload-300mb",
    "npz-zip-bomb", "npz-lying-header", "npz-object-array", "labels-out-of-range", "csv-wrong-columns",
    "csv-missing-label", "csv-text-feature", "csv-nan-feature",
]  # fmt: skip


def _load(entry: Hostile, source) -> None:
    kwargs = dict(entry.kwargs)
    if isinstance(kwargs.get("model"), str):
        kwargs["model"] = sample_models.load_sample(kwargs["model"]).model
    loader = load_model if entry.kind == "model" else load_data
    loader(source, filename=entry.filename, limits=Limits(**entry.limits), **kwargs)


def test_corpus_covers_every_case(corpus):
    assert sorted(corpus[2]) == sorted(HOSTILE_NAMES)


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_file_is_refused_and_nothing_runs_or_remains(name, corpus, tmp_path, monkeypatch):
    directory, marker, entries = corpus
    entry = entries[name]
    monkeypatch.chdir(tmp_path)  # anything written to the working directory would show up here
    before = sorted(p.name for p in directory.iterdir())
    for source in (directory / entry.filename, None):
        if source is None:
            if entry.name == "upload-300mb":
                continue  # the path form is the point: the bytes are never read
            source = (directory / entry.filename).read_bytes()  # an upload: bytes, no path
        with pytest.raises(UntrustedFileError) as raised:
            _load(entry, source)
        assert entry.expect in str(raised.value).lower(), str(raised.value)
    assert not marker.exists(), "a payload ran while loading"
    assert sorted(p.name for p in directory.iterdir()) == before
    assert list(tmp_path.iterdir()) == []


def test_refusals_are_value_errors_with_one_type():
    assert issubclass(UntrustedFileError, ValueError)


def test_command_payload_is_live_when_unpickled_unsafely(corpus):
    """The marker test can fail: the same bytes loaded with weights_only=False do run the command."""
    directory, marker, _ = corpus
    data = (directory / "weights.pt").read_bytes()
    try:
        torch.load(io.BytesIO(data), weights_only=False)
        assert marker.exists()
    finally:
        marker.unlink(missing_ok=True)


@pytest.mark.slow
def test_pt2_payload_runs_under_torch_export_load(tmp_path):
    """Why .pt2 is refused: torch 2.13's torch.export.load runs the crafted archive's pickle."""
    marker = tmp_path / "PT2_RAN"
    build_corpus(tmp_path / "corpus", marker)
    assert torch_export_load_runs_it(tmp_path / "corpus" / "program.pt2", marker)


def test_size_is_checked_before_the_file_is_opened(corpus, monkeypatch):
    directory, _, _ = corpus

    def never(*args, **kwargs):
        raise AssertionError("the file was opened")

    monkeypatch.setattr(pathlib.Path, "open", never)
    with pytest.raises(UntrustedFileError, match="300.0 MB; the limit is 100.0 MB"):
        load_model(directory / "huge.onnx", filename="huge.onnx")


def test_unknown_and_code_formats_are_refused_by_name():
    for filename, fragment in [("m.pkl", "pickle"), ("m.joblib", "skl2onnx"), ("m.exe", "unsupported model format")]:
        with pytest.raises(UntrustedFileError, match=fragment):
            load_model(b"\x80\x04K\x01.", filename=filename)
    with pytest.raises(UntrustedFileError, match="use .csv or .npz"):
        load_data(b"1,2", filename="d.xlsx")


# --- ONNX ---------------------------------------------------------------------------------------


def _digits_images():
    return sample_models.datasets.digits_images()


@pytest.fixture(scope="module")
def trained_residual():
    data = _digits_images()
    return fit_readout(residual_net(), data.X_train, data.y_train), data


@pytest.mark.parametrize("keep_batchnorm", [False, True])
def test_converted_onnx_matches_onnxruntime(keep_batchnorm, trained_residual):
    model, data = trained_residual
    onnx_bytes = to_onnx(model, data.X_test, keep_batchnorm=keep_batchnorm)
    loaded = load_model(onnx_bytes, filename="net.onnx")
    (reference,) = onnxruntime_outputs(onnx_bytes, data.X_test)
    with torch.inference_mode():
        ours = loaded.model(data.X_test).numpy()
    np.testing.assert_allclose(ours, reference, atol=1e-4, rtol=1e-4)
    expected = ["stem", "depthwise", "pointwise", "branch_a", "branch_b", "fc1", "fc2"]
    assert pruning_core.prunable_layers(loaded.model) == expected
    assert loaded.model.depthwise.groups == 16
    assert ("stem_bn" in dict(loaded.model.named_modules())) == keep_batchnorm
    assert loaded.input_shape == (1, 8, 8) and loaded.format == "onnx"
    assert not loaded.model.training


def test_converted_onnx_runs_mlp_with_gates_and_many_ops():
    generator = torch.Generator().manual_seed(0)
    model = WideMLP().eval()
    x = torch.randn(32, 13, generator=generator)
    onnx_bytes = to_onnx(model, x)
    loaded = load_model(onnx_bytes, filename="mlp.onnx")
    with torch.inference_mode():
        np.testing.assert_allclose(loaded.model(x).numpy(), onnxruntime_outputs(onnx_bytes, x)[0], atol=1e-5)
    assert pruning_core.prunable_layers(loaded.model) == ["fc1", "gate", "fc2", "out"]


def test_two_graphs_with_the_same_layers_are_different_architectures():
    """The dataflow cache is keyed by class: each converted graph gets its own class."""

    class Skip(WideMLP):
        def forward(self, x):
            return self.out(torch.tanh(self.fc2(torch.relu(self.fc1(x)) + self.gate(x))))

    x = torch.zeros(2, 13)
    a = load_model(to_onnx(WideMLP(), x), filename="a.onnx").model
    b = load_model(to_onnx(Skip(), x), filename="b.onnx").model
    assert type(a) is not type(b)


def test_scikit_learn_pipeline_from_skl2onnx_matches_onnxruntime():
    skl2onnx = pytest.importorskip("skl2onnx")
    from sklearn.datasets import load_wine
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = load_wine(return_X_y=True)
    X = X.astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = make_pipeline(StandardScaler(), MLPClassifier((32, 16), max_iter=300, random_state=0)).fit(X, y)
    onnx_bytes = skl2onnx.to_onnx(clf, X[:1], options={id(clf): {"zipmap": False}}, target_opset=17)
    onnx_bytes = onnx_bytes.SerializeToString()
    loaded = load_model(onnx_bytes, filename="wine.onnx")
    labels, probabilities = onnxruntime_outputs(onnx_bytes, torch.from_numpy(X))
    with torch.inference_mode():
        logits = loaded.model(torch.from_numpy(X))
    np.testing.assert_allclose(torch.softmax(logits, 1).numpy(), probabilities, atol=1e-5)
    assert (logits.argmax(1).numpy() == labels).all()
    assert pruning_core.prunable_layers(loaded.model) == ["coefficient", "coefficient1", "coefficient2"]
    assert any("softmax" in note for note in loaded.notes)
    # MatMul weights are stored transposed: written back, onnxruntime sees the pruned model.
    pruned = pruning_core.apply_masks(
        loaded.model, pruning_core.compute_masks(loaded.model, "magnitude", "global", 0.8)
    )
    _, pruned_probabilities = onnxruntime_outputs(loaded.pruned_onnx(pruned), torch.from_numpy(X))
    with torch.inference_mode():
        expected = torch.softmax(pruned(torch.from_numpy(X)), 1).numpy()
    np.testing.assert_allclose(expected, pruned_probabilities, atol=1e-5)
    assert np.abs(expected - probabilities).max() > 1e-3  # pruning changed something


def test_zipmap_output_is_refused_with_the_export_option():
    skl2onnx = pytest.importorskip("skl2onnx")
    from sklearn.datasets import load_wine
    from sklearn.linear_model import LogisticRegression

    X, y = load_wine(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = LogisticRegression(max_iter=50).fit(X.astype(np.float32), y)
    onnx_bytes = skl2onnx.to_onnx(clf, X[:1].astype(np.float32)).SerializeToString()
    with pytest.raises(UntrustedFileError, match="zipmap"):
        load_model(onnx_bytes, filename="zip.onnx")


def test_unsupported_operator_is_named():
    from onnx import TensorProto, helper

    node = helper.make_node("Resize", ["input", "", "scales"], ["out"], name="resize")
    scales = helper.make_tensor("scales", TensorProto.FLOAT, [4], [1, 1, 2, 2])
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, 4, 4])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 1, 8, 8])], [scales],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(UntrustedFileError, match="cannot convert: Resize"):
        load_model(model.SerializeToString(), filename="r.onnx")


def test_probe_refuses_before_an_oversized_intermediate_is_built():
    x = torch.zeros(1, 13)
    loaded = load_model(to_onnx(WideMLP(), x), filename="m.onnx")
    with pytest.raises(UntrustedFileError, match="would produce 48 elements"):
        probe(loaded.model, x, Limits(max_activation_elements=40))
    with pytest.raises(UntrustedFileError, match="multiply-adds"):
        probe(loaded.model, x, Limits(max_macs_per_sample=100))


def test_pruned_weights_written_back_keep_the_users_graph(trained_residual):
    import onnx

    model, data = trained_residual
    onnx_bytes = to_onnx(model, data.X_test)
    loaded = load_model(onnx_bytes, filename="net.onnx")
    masks = pruning_core.compute_masks(loaded.model, "magnitude", "global", 0.7)
    pruned = pruning_core.apply_masks(loaded.model, masks).eval()
    written = loaded.pruned_onnx(pruned)
    original, rewritten = onnx.load_from_string(onnx_bytes), onnx.load_from_string(written)
    assert [(n.name, n.op_type) for n in rewritten.graph.node] == [(n.name, n.op_type) for n in original.graph.node]
    (reference,) = onnxruntime_outputs(written, data.X_test)
    with torch.inference_mode():
        np.testing.assert_allclose(pruned(data.X_test).numpy(), reference, atol=1e-4, rtol=1e-4)
    from onnx import numpy_helper

    stored = {t.name: numpy_helper.to_array(t) for t in rewritten.graph.initializer}
    sources = loaded.conversion.weight_sources.values()
    assert sum(int((stored[s.initializer] == 0).sum()) for s in sources) >= sum(int((~m).sum()) for m in masks.values())


def test_loaded_onnx_keeps_its_graph_without_the_weights_it_writes_back(trained_residual):
    """The loaded model holds the file minus the initializers written from the module (not a second
    copy of every weight), and writing the unpruned module back gives the file's initializers again."""
    import onnx
    from onnx import numpy_helper

    model, data = trained_residual
    onnx_bytes = to_onnx(model, data.X_test)
    loaded = load_model(onnx_bytes, filename="net.onnx")
    weight_bytes = sum(4 * p.numel() for n, p in loaded.model.named_parameters() if n.endswith(".weight"))
    assert loaded.source_bytes is not None and len(loaded.source_bytes) < len(onnx_bytes) - weight_bytes // 2
    original = {t.name: numpy_helper.to_array(t) for t in onnx.load_from_string(onnx_bytes).graph.initializer}
    written = onnx.load_from_string(loaded.pruned_onnx(loaded.model))
    assert {t.name for t in written.graph.initializer} == set(original)
    for tensor in written.graph.initializer:
        np.testing.assert_allclose(numpy_helper.to_array(tensor), original[tensor.name], rtol=1e-6, atol=0)


# --- state dicts --------------------------------------------------------------------------------


def test_safetensors_with_a_factory_reproduces_the_model():
    model = residual_net()
    x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    data = save({k: v.contiguous() for k, v in model.state_dict().items()})
    loaded = load_model(data, filename="w.safetensors", factory="own_model_helpers:residual_net")
    with torch.inference_mode():
        torch.testing.assert_close(loaded.model(x), model(x))
    assert loaded.format == "safetensors" and loaded.input_shape == (1, 8, 8)
    with pytest.raises(UntrustedFileError, match="disabled here"):
        load_model(data, filename="w.safetensors", factory="os:getcwd", limits=Limits(factory_imports=False))


def test_pt_state_dict_loads_with_weights_only_and_checkpoints_are_unwrapped():
    sample = sample_models.load_sample("moons-mlp")
    buffer = io.BytesIO()
    torch.save({"epoch": 3, "state_dict": sample.model.state_dict()}, buffer)
    loaded = load_model(buffer.getvalue(), filename="ckpt.pt", factory="moons-mlp")
    x = sample.data.X_test
    with torch.inference_mode():
        torch.testing.assert_close(loaded.model(x), sample.model(x))
    assert any("'state_dict'" in note for note in loaded.notes)


def test_shape_mismatch_lists_every_problem():
    state = sample_models.load_sample("moons-mlp").model.state_dict()
    state["fc1.weight"] = torch.zeros(3, 2)
    state["extra"] = torch.zeros(1)
    del state["fc3.bias"]
    with pytest.raises(UntrustedFileError) as raised:
        load_model(save(state), filename="w.safetensors", factory="moons-mlp")
    message = str(raised.value)
    assert "missing keys: fc3.bias" in message and "unexpected keys: extra" in message and "fc1.weight" in message


# --- data ---------------------------------------------------------------------------------------


def _csv(X: np.ndarray, y: np.ndarray) -> bytes:
    header = ",".join(f"f{i}" for i in range(X.shape[1])) + ",label\n"
    rows = "".join(",".join(f"{v:.6g}" for v in row) + f",{label}\n" for row, label in zip(X, y))
    return (header + rows).encode()


def test_csv_is_split_stratified_seeded_and_reshaped_for_the_model():
    from sklearn.datasets import load_digits

    digits = load_digits()
    X, y = digits.data[:600] / 16.0, digits.target[:600]
    model = load_model(to_onnx(residual_net(), torch.zeros(2, 1, 8, 8)), filename="n.onnx")
    first = load_data(_csv(X, y), filename="d.csv", model=model, label_column="label")
    again = load_data(_csv(X, y), filename="d.csv", model=model, label_column="label")
    split = first.split
    assert split.X_train.shape[1:] == (1, 8, 8) and first.n_classes == 10
    assert len(split.X_test) == 120 and len(first.X_val) == 48 and len(split.X_train) == 432
    torch.testing.assert_close(split.X_test, again.split.X_test)
    for part in (split.y_train, split.y_test, first.y_val):
        share = torch.bincount(part, minlength=10).double() / len(part)
        assert (share - torch.bincount(torch.as_tensor(y), minlength=10).double() / len(y)).abs().max() < 0.03
    if "X_val" in getattr(type(split), "_fields", ()):
        torch.testing.assert_close(split.X_val, first.X_val)


def test_npz_with_given_splits_keeps_them():
    rng = np.random.default_rng(0)
    arrays = {
        "X_train": rng.normal(size=(80, 2)).astype(np.float32), "y_train": np.arange(80) % 2,
        "X_test": rng.normal(size=(20, 2)).astype(np.float32), "y_test": np.arange(20) % 2,
    }  # fmt: skip
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    loaded = load_data(buffer.getvalue(), filename="d.npz", model=sample_models.load_sample("moons-mlp").model)
    np.testing.assert_array_equal(loaded.split.X_test.numpy(), arrays["X_test"])
    assert len(loaded.split.X_train) + len(loaded.X_val) == 80


def test_evaluation_budget_is_checked_against_rows_and_cost():
    loaded = load_model(to_onnx(WideMLP(), torch.zeros(2, 13)), filename="m.onnx")
    X = np.zeros((100, 13), np.float32)
    with pytest.raises(UntrustedFileError, match="evaluation budget"):
        load_data(_csv(X, np.arange(100) % 3), filename="d.csv", model=loaded, limits=Limits(max_eval_macs=10_000))


def test_absent_classes_are_noted():
    X = np.random.default_rng(0).normal(size=(40, 2))
    loaded = load_data(_csv(X, np.zeros(40, int)), filename="d.csv", label_column="label",
                       model=sample_models.load_sample("moons-mlp").model)  # fmt: skip
    assert any("classes 1 of the model's 2 outputs never occur" in note for note in loaded.notes)


# --- pruning converted models -------------------------------------------------------------------


@pytest.mark.parametrize("source", ["onnx", "safetensors"])
def test_pruning_runs_on_converted_models_and_dense_accuracy_matches(source, trained_residual, tmp_path):
    model, data = trained_residual
    if source == "onnx":
        onnx_bytes = to_onnx(model, data.X_test)
        loaded = load_model(onnx_bytes, filename="net.onnx")
        (reference,) = onnxruntime_outputs(onnx_bytes, data.X_test)
        reference_accuracy = float((reference.argmax(1) == data.y_test.numpy()).mean())
    else:
        path = tmp_path / "w.safetensors"
        path.write_bytes(save({k: v.contiguous() for k, v in model.state_dict().items()}))
        loaded = load_model(path, filename=path.name, factory=ResidualNet)
        with torch.inference_mode():
            reference_accuracy = float((model(data.X_test).argmax(1) == data.y_test).double().mean())
    masks = pruning_core.compute_masks(loaded.model, "magnitude", "global", 0.5)
    assert set(masks) == {f"{n}.weight" for n in pruning_core.prunable_layers(loaded.model)}
    table = pruning_core.sweep(loaded.model, data, ["magnitude", "random"], [0.0, 0.5, 0.9])
    dense = table[table.target_sparsity == 0.0]
    assert (dense.accuracy == reference_accuracy).all(), (dense.accuracy.tolist(), reference_accuracy)
    assert reference_accuracy > 0.7
    assert table.actual_sparsity.max() > 0.85


def test_loaded_module_is_not_shared_state():
    """Two loads of the same bytes are independent modules (pruning one never touches the other)."""
    onnx_bytes = to_onnx(WideMLP(), torch.zeros(2, 13))
    a = load_model(onnx_bytes, filename="m.onnx").model
    b = load_model(onnx_bytes, filename="m.onnx").model
    with torch.no_grad():
        a.fc1.weight.zero_()
    assert b.fc1.weight.abs().sum() > 0
    assert isinstance(a, nn.Module)


class _SignalNet(nn.Module):
    """Conv1d, AvgPool1d, LeakyReLU, a view via x.size(0) (Shape/Gather/Concat/Reshape), log-softmax."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(2, 6, 4, stride=2, dilation=1)
        self.pool = nn.AvgPool1d(2)
        self.head = nn.Linear(6 * 5, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(nn.functional.leaky_relu(self.conv(x), 0.2))
        return torch.log_softmax(self.head(x.view(x.size(0), -1)), dim=1)


def test_conv1d_view_and_shape_arithmetic_match_onnxruntime():
    generator = torch.Generator().manual_seed(1)
    model = _SignalNet().eval()
    x = torch.randn(8, 2, 23, generator=generator)
    onnx_bytes = to_onnx(model, x)
    loaded = load_model(onnx_bytes, filename="signal.onnx")
    with torch.inference_mode():
        np.testing.assert_allclose(loaded.model(x).numpy(), onnxruntime_outputs(onnx_bytes, x)[0], atol=1e-5)
    assert isinstance(loaded.model.conv, nn.Conv1d) and pruning_core.prunable_layers(loaded.model) == ["conv", "head"]


def test_asymmetric_conv_pads_match_onnxruntime():
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.normal(size=(3, 2, 3, 3)).astype(np.float32), "conv.weight")
    node = helper.make_node("Conv", ["input", "conv.weight"], ["out"], pads=[0, 1, 2, 1], strides=[2, 1])
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 2, 7, 5])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)], [weight],
    )  # fmt: skip
    onnx_bytes = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    x = torch.randn(2, 2, 7, 5, generator=torch.Generator().manual_seed(0))
    loaded = load_model(onnx_bytes, filename="pads.onnx")
    with torch.inference_mode():
        np.testing.assert_allclose(loaded.model(x).numpy(), onnxruntime_outputs(onnx_bytes, x)[0], atol=1e-5)


def test_unknown_input_dims_are_checked_when_data_arrives():
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((3, 5), np.float32), "fc.weight")
    node = helper.make_node("MatMul", ["input", "fc.weight"], ["out"])
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", "features"])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["n", 5])], [weight],
    )  # fmt: skip
    loaded = load_model(helper.make_model(graph).SerializeToString(), filename="dyn.onnx")
    assert loaded.input_shape is None and any("unknown dimensions" in n for n in loaded.notes)
    X = np.zeros((30, 4))
    with pytest.raises(UntrustedFileError, match=r"does not (accept|run)"):
        load_data(_csv(X, np.arange(30) % 5), filename="d.csv", model=loaded, label_column="label")
    data = load_data(_csv(np.zeros((30, 3)), np.arange(30) % 5), filename="d.csv", model=loaded, label_column="label")
    assert data.n_classes == 5


def test_concurrent_loads_agree():
    """Loading is per call: threads loading the same bytes get equal, independent models."""
    from concurrent.futures import ThreadPoolExecutor

    x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(5))
    onnx_bytes = to_onnx(residual_net(), x)

    def run(_: int) -> torch.Tensor:
        with torch.inference_mode():
            return load_model(onnx_bytes, filename="m.onnx").model(x)

    with ThreadPoolExecutor(4) as pool:
        outputs = list(pool.map(run, range(8)))
    for out in outputs[1:]:
        torch.testing.assert_close(out, outputs[0])


@FEW
@given(case=cases())
def test_any_small_model_converts_to_what_onnxruntime_computes(case):
    """Random MLPs, conv+BatchNorm stacks and 1-D CNNs (BatchNorm kept as a node): the converted
    module matches onnxruntime, and its prunable weights are the original's, in order."""
    onnx_bytes = to_onnx(case.model, case.x, keep_batchnorm=True)
    loaded = load_model(onnx_bytes, filename="case.onnx")
    with torch.inference_mode():
        ours = loaded.model(case.x).numpy()
    np.testing.assert_allclose(ours, onnxruntime_outputs(onnx_bytes, case.x)[0], atol=1e-4, rtol=1e-4)
    original = [m.weight for m in layers(case.model).values()]
    converted = [m.weight for m in layers(loaded.model).values()]
    assert len(converted) == len(original)
    for a, b in zip(original, converted):
        torch.testing.assert_close(a, b)


def test_weights_behind_a_transpose_are_layers_and_written_back_through_it():
    """Exports without constant folding read weights through Transpose: still Linear layers, and
    pruned weights go back into the original initializer (transposed back)."""
    x = torch.randn(16, 13, generator=torch.Generator().manual_seed(2))
    onnx_bytes = to_onnx(WideMLP(), x, keep_batchnorm=True)  # do_constant_folding=False
    loaded = load_model(onnx_bytes, filename="t.onnx")
    assert pruning_core.prunable_layers(loaded.model) == ["fc1", "gate", "fc2", "out"]
    pruned = pruning_core.apply_masks(
        loaded.model, pruning_core.compute_masks(loaded.model, "magnitude", "global", 0.6)
    )
    with torch.inference_mode():
        expected = pruned(x).numpy()
    np.testing.assert_allclose(expected, onnxruntime_outputs(loaded.pruned_onnx(pruned), x)[0], atol=1e-5)


def test_converted_modules_survive_pickle_and_deepcopy():
    """Worker processes receive models by pickle; the per-graph class is rebuilt by name."""
    import copy
    import pickle

    x = torch.randn(3, 13, generator=torch.Generator().manual_seed(4))
    module = load_model(to_onnx(WideMLP(), x), filename="m.onnx").model
    for clone in (pickle.loads(pickle.dumps(module)), copy.deepcopy(module)):
        assert type(clone) is type(module)
        with torch.inference_mode():
            torch.testing.assert_close(clone(x), module(x))


def test_limits_bound_nodes_and_parameters_before_conversion():
    onnx_bytes = to_onnx(residual_net(), torch.zeros(2, 1, 8, 8))
    with pytest.raises(UntrustedFileError, match="nodes; at most 5"):
        load_model(onnx_bytes, filename="m.onnx", limits=Limits(max_onnx_nodes=5))
    with pytest.raises(UntrustedFileError, match="weight elements; at most 1,000"):
        load_model(onnx_bytes, filename="m.onnx", limits=Limits(max_parameters=1_000))
    state = save({k: v.contiguous() for k, v in residual_net().state_dict().items()})
    with pytest.raises(UntrustedFileError, match="elements; at most 1,000 are accepted"):
        load_model(state, filename="w.safetensors", factory=ResidualNet, limits=Limits(max_parameters=1_000))


class _EqualBiases(nn.Module):
    """Three layers whose biases are all zeros: the exporter stores one initializer for them."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 3)
        for layer in (self.a, self.b):
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c(torch.relu(self.b(torch.relu(self.a(x)))))


def test_layers_sharing_one_bias_initializer_are_all_prunable_and_say_so():
    import onnx

    model = _EqualBiases().eval()
    onnx_bytes = to_onnx(model, torch.zeros(4, 8))
    graph = onnx.load_from_string(onnx_bytes).graph
    owners = {i.name for i in graph.initializer}
    gemm_biases = [n.input[2] for n in graph.node if n.op_type == "Gemm"]
    assert [b in owners for b in gemm_biases].count(True) < 3, "no bias is shared: this test checks nothing"
    loaded = load_model(onnx_bytes, filename="m.onnx")
    assert pruning_core.prunable_layers(loaded.model) == ["a", "b", "c"]
    assert any("shared by several nodes" in note for note in loaded.notes)
    x = torch.randn(16, 8)
    (expected,) = onnxruntime_outputs(onnx_bytes, x)
    with torch.no_grad():
        assert np.allclose(loaded.model(x).numpy(), expected, atol=1e-5)
    # Unstructured pruning changes weights only: the graph takes them back.
    masks = pruning_core.compute_masks(loaded.model, "magnitude", "global", 0.5)
    masked = pruning_core.apply_masks(loaded.model, masks)
    (written,) = onnxruntime_outputs(loaded.pruned_onnx(masked), x)
    with torch.no_grad():
        assert np.allclose(written, masked(x).numpy(), atol=1e-5)
