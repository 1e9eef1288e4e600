"""The hostile-input corpus: files a user could upload to hurt PruneLab, generated at test time.

Each entry is built into a directory by :func:`build_corpus`; files whose payload would run code
create ``marker`` when (and only when) that code runs, so a test proves nothing ran by checking
that the marker does not exist. ``python -m tests.hostile.make_hostile DIR`` writes the corpus and
prints, for each file, the message PruneLab shows when it refuses it.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import shlex
import struct
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn


class TinyNet(nn.Module):
    """A model pickled whole by ``torch.save(model)``: what users most often upload."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


class RunsCommand:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


@dataclass
class Hostile:
    """One hostile file: how to load it and a fragment the refusal message must contain."""

    name: str
    filename: str
    kind: str  # "model" or "data"
    expect: str  # lower-case fragment of the refusal message
    what: str  # one line: what the file does
    kwargs: dict[str, Any] = field(default_factory=dict)
    limits: dict[str, int] = field(default_factory=dict)  # Limits overrides (for the small zip bomb)


def _safetensors(tensors: dict[str, torch.Tensor]) -> bytes:
    from safetensors.torch import save

    return save(tensors)


def _onnx_linear(mutate: Callable[[Any], None] | None = None) -> bytes:
    """A valid one-Gemm ONNX model (4 -> 2), optionally mutated."""
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((2, 4), np.float32), "fc.weight")
    bias = numpy_helper.from_array(np.zeros(2, np.float32), "fc.bias")
    node = helper.make_node("Gemm", ["input", "fc.weight", "fc.bias"], ["logits"], transB=1, name="fc")
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 2])], [weight, bias],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    if mutate is not None:
        mutate(model)
    return model.SerializeToString()


def _external(model: Any) -> None:
    from onnx import TensorProto

    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.ClearField("float_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "../../etc/passwd"), ("offset", "0"), ("length", "32")):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value


def _custom_domain(model: Any) -> None:
    from onnx import helper

    model.opset_import.append(helper.make_opsetid("com.evil.runtime", 1))
    node = helper.make_node("RunShell", ["logits"], ["out"], domain="com.evil.runtime", name="shell")
    model.graph.node.append(node)
    model.graph.output[0].name = "out"


def _absurd_initializer(model: Any) -> None:
    tensor = model.graph.initializer[0]
    del tensor.dims[:]
    tensor.dims.extend([1_000_000, 1_000_000])  # 10**12 floats = 4 TB, the file holds 32 bytes


def _absurd_input(model: Any) -> None:
    dim = model.graph.input[0].type.tensor_type.shape.dim[1]
    dim.ClearField("dim_param")
    dim.dim_value = 4_000_000_000


def _nan_weights(model: Any) -> None:
    from onnx import numpy_helper

    weight = np.ones((2, 4), np.float32)
    weight[0, 1] = np.nan
    model.graph.initializer[0].CopyFrom(numpy_helper.from_array(weight, "fc.weight"))


def _padding_bomb() -> bytes:
    """A 3x3 Conv on a 1x2x7x5 input with asymmetric pads of 900,000: one sample would pad to 10**12 floats."""
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((3, 2, 3, 3), np.float32), "conv.weight")
    node = helper.make_node("Conv", ["input", "conv.weight"], ["out"], pads=[0, 0, 900_000, 900_000], name="conv")
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 2, 7, 5])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)], [weight],
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _zip_bomb(path: Path, inflated_bytes: int) -> None:
    """An NPZ whose X.npy member is a valid array of zeros that deflates ~1000:1."""
    header = io.BytesIO()
    shape = (inflated_bytes // 4 // 64, 64)
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": shape})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("X.npy", "w", force_zip64=True) as member:
            member.write(header.getvalue())
            chunk = bytes(1 << 20)
            for _ in range(inflated_bytes // len(chunk)):
                member.write(chunk)
        archive.writestr("y.npy", _npy_bytes(np.zeros(shape[0], np.int64)))


def _lying_npy(path: Path) -> None:
    """An NPZ whose X.npy header declares 10**7 floats while holding 64."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (100_000, 100)})
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("X.npy", header.getvalue() + bytes(256))
        archive.writestr("y.npy", _npy_bytes(np.zeros(10, np.int64)))


def _evil_pt2(path: Path, marker: Path) -> None:
    """A real ``torch.export.save`` archive whose weight is switched to a pickle that runs a command:
    ``torch.export.load`` unpickles such weights with ``weights_only=False``."""
    program = torch.export.export(nn.Linear(2, 2), (torch.zeros(1, 2),))
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    source = zipfile.ZipFile(io.BytesIO(buffer.getvalue()))
    evil = io.BytesIO()
    torch.save(RunsCommand(marker), evil)
    with zipfile.ZipFile(path, "w") as out:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename.endswith("model_weights_config.json"):
                config = json.loads(data)
                config["config"]["weight"]["use_pickle"] = True
                data = json.dumps(config).encode()
            elif info.filename.endswith("weights/weight_0"):
                data = evil.getvalue()
            out.writestr(info, data)


def build_corpus(directory: Path, marker: Path) -> list[Hostile]:  # noqa: PLR0915 - one statement per hostile file
    """Write every hostile file into ``directory``; return how each must be refused."""
    directory.mkdir(parents=True, exist_ok=True)
    entries: list[Hostile] = []

    def add(entry: Hostile, content: bytes | None = None) -> None:
        if content is not None:
            (directory / entry.filename).write_bytes(content)
        entries.append(entry)

    buffer = io.BytesIO()
    torch.save({"fc.weight": torch.zeros(2, 4), "payload": RunsCommand(marker)}, buffer)
    add(Hostile("pickle-runs-command", "weights.pt", "model", "posix.system",
                "a state dict whose pickle calls os.system('touch MARKER') when unpickled",
                {"factory": "moons-mlp"}), buffer.getvalue())  # fmt: skip

    add(Hostile("bare-pickle", "bare.pt", "model", "bare pickle",
                "a plain pickle (pickle.dumps) whose __reduce__ runs a command", {"factory": "moons-mlp"}),
        pickle.dumps(RunsCommand(marker)))  # fmt: skip
    buffer = io.BytesIO()
    torch.save({"fc1.weight": torch.zeros(256, 2)}, buffer, _use_new_zipfile_serialization=False)
    add(Hostile("legacy-pt", "legacy.pt", "model", "legacy",
                "the pre-1.6 torch.save format, whose loader allocates declared sizes first",
                {"factory": "moons-mlp"}), buffer.getvalue())  # fmt: skip

    buffer = io.BytesIO()
    torch.save(TinyNet(), buffer)
    add(Hostile("full-pickled-model", "model.pt", "model", "safetensors.torch.save_file",
                "torch.save(model): a whole nn.Module pickled, needing its class to load",
                {"factory": "moons-mlp"}), buffer.getvalue())  # fmt: skip

    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(TinyNet()), buffer)
    add(Hostile("torchscript", "scripted.pt", "model", "torchscript",
                "a TorchScript archive: code, not weights", {"factory": "moons-mlp"}), buffer.getvalue())  # fmt: skip

    _evil_pt2(directory / "program.pt2", marker)
    add(Hostile("pt2-pickled-weight", "program.pt2", "model", "torch.export",
                "a torch.export archive whose weight is a pickle that runs a command under "
                "torch.export.load"))  # fmt: skip
    add(Hostile("pt2-renamed-pt", "renamed.pt", "model", "torch.export",
                "the same .pt2 archive renamed to .pt", {"factory": "moons-mlp"}),
        (directory / "program.pt2").read_bytes())  # fmt: skip

    good = _safetensors({"fc1.weight": torch.ones(256, 2), "fc1.bias": torch.zeros(256)})
    add(Hostile("truncated-safetensors", "truncated.safetensors", "model", "truncated",
                "a safetensors file cut 100 bytes short", {"factory": "moons-mlp"}), good[:-100])  # fmt: skip

    header = json.dumps({"fc1.weight": {"dtype": "F32", "shape": [256, 2], "data_offsets": [0, 64]}}).encode()
    add(Hostile("lying-safetensors", "lying.safetensors", "model", "lies",
                "a header declaring a 256x2 float tensor (2 KB) over a 64-byte range", {"factory": "moons-mlp"}),
        struct.pack("<Q", len(header)) + header + bytes(64))  # fmt: skip
    header = json.dumps({"fc1.weight": {"dtype": "F32", "shape": [100000, 100000], "data_offsets": [0, 2048]}})
    add(Hostile("safetensors-absurd-shape", "absurd.safetensors", "model", "10,000,000,000 elements",
                "a header declaring a 10**10-element tensor over 2 KB of data", {"factory": "moons-mlp"}),
        struct.pack("<Q", len(header)) + header.encode() + bytes(2048))  # fmt: skip

    add(Hostile("safetensors-huge-header", "huge-header.safetensors", "model", "header claims",
                "an 8-byte header length of 2**60", {"factory": "moons-mlp"}),
        struct.pack("<Q", 2**60) + b'{"a": 1}')  # fmt: skip

    nan = _safetensors({"fc1.weight": torch.full((4, 4), float("nan"))})
    add(Hostile("nan-safetensors", "nan.safetensors", "model", "nan",
                "NaN weights in a safetensors state dict",
                {"factory": _named_fc1}), nan)  # fmt: skip

    add(Hostile("wrong-keys-safetensors", "other.safetensors", "model", "missing keys",
                "weights of another architecture", {"factory": "moons-mlp"}),
        _safetensors({"conv.weight": torch.zeros(3, 3)}))  # fmt: skip

    add(Hostile("onnx-external-data", "external.onnx", "model", "../../etc/passwd",
                "an initializer whose data lives in ../../etc/passwd"), _onnx_linear(_external))  # fmt: skip
    add(Hostile("onnx-custom-domain", "custom.onnx", "model", "com.evil.runtime",
                "a node of a custom operator domain (com.evil.runtime.RunShell)"),
        _onnx_linear(_custom_domain))  # fmt: skip
    add(Hostile("onnx-absurd-initializer", "absurd.onnx", "model", "1000000, 1000000",
                "an initializer declaring 10**12 elements over 32 bytes"),
        _onnx_linear(_absurd_initializer))  # fmt: skip
    add(Hostile("onnx-absurd-input", "absurd-input.onnx", "model", "4,000,000,000",
                "an input declared 4e9 wide"), _onnx_linear(_absurd_input))  # fmt: skip
    add(Hostile("onnx-padding-bomb", "padding.onnx", "model", "would produce",
                "a Conv whose pads of 900,000 would allocate 10**12 floats for one sample"),
        _padding_bomb())  # fmt: skip
    add(Hostile("onnx-nan-weights", "nan.onnx", "model", "nan", "NaN in a Gemm weight"),
        _onnx_linear(_nan_weights))  # fmt: skip
    add(Hostile("onnx-garbage", "garbage.onnx", "model", "not a valid onnx",
                "random bytes named .onnx"), bytes(range(256)) * 4)  # fmt: skip

    huge = directory / "huge.onnx"
    with huge.open("wb") as handle:
        handle.truncate(300 * 1024 * 1024)  # sparse: 300 MB by stat, nothing written
    entries.append(Hostile("upload-300mb", "huge.onnx", "model", "300.0 mb", "a 300 MB upload (sparse file)"))

    _zip_bomb(directory / "bomb.npz", 64 * 1024 * 1024)
    entries.append(Hostile("npz-zip-bomb", "bomb.npz", "data", "zip bomb",
                           "an NPZ of ~64 KB inflating to 64 MB (limit 1 MB of data)",
                           limits={"max_data_bytes": 1024 * 1024}))  # fmt: skip
    _lying_npy(directory / "lying.npz")
    entries.append(Hostile("npz-lying-header", "lying.npz", "data", "lies",
                           "an .npy header declaring 10**7 floats (40 MB) over 256 bytes"))  # fmt: skip
    buffer = io.BytesIO()
    np.savez(buffer, X=np.array([[object()]], dtype=object), y=np.zeros(1, np.int64))
    add(Hostile("npz-object-array", "objects.npz", "data", "python objects",
                "an NPZ whose X needs pickle"), buffer.getvalue())  # fmt: skip

    rows = "\n".join(f"{i % 3}.0,{i % 5}.5,{i % 12}" for i in range(60))
    add(Hostile("labels-out-of-range", "labels.csv", "data", "out of range",
                "labels 0..11 for a 2-output model", {"model": "moons-mlp", "label_column": "label"}),
        f"x1,x2,label\n{rows}\n".encode())  # fmt: skip
    rows = "\n".join(f"{i % 3}.0,{i % 5}.5,{i % 4}.0,{i % 2}" for i in range(60))
    add(Hostile("csv-wrong-columns", "wrong.csv", "data", "expects 2",
                "three feature columns for a 2-input model", {"model": "moons-mlp", "label_column": "label"}),
        f"a,b,c,label\n{rows}\n".encode())  # fmt: skip
    add(Hostile("csv-missing-label", "nolabel.csv", "data", "no label column",
                "the named label column is absent", {"label_column": "species"}),
        f"x1,x2,label\n{rows}\n".encode())  # fmt: skip
    add(Hostile("csv-text-feature", "text.csv", "data", "not numeric",
                "a text feature column", {"label_column": "label"}),
        b"x1,colour,label\n" + b"".join(f"{i}.0,red,{i % 2}\n".encode() for i in range(20)))  # fmt: skip
    add(Hostile("csv-nan-feature", "nan.csv", "data", "nan",
                "an empty cell in a feature column", {"label_column": "label"}),
        b"x1,x2,label\n" + b"".join(f"{i}.0,{'' if i == 3 else i},{i % 2}\n".encode() for i in range(20)))  # fmt: skip
    return entries


def _named_fc1() -> nn.Module:
    model = nn.Module()
    model.fc1 = nn.Linear(4, 4)
    return model


def torch_export_load_runs_it(path: Path, marker: Path) -> bool:
    """Load ``path`` with ``torch.export.load`` in a separate process; True if that created ``marker``.

    Shows the ``.pt2`` refusal is needed: the stock loader runs the payload.
    """
    code = f"import torch\ntry:\n    torch.export.load({str(path)!r})\nexcept Exception:\n    pass\n"
    subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120, check=False)
    return marker.exists()


if __name__ == "__main__":
    from pruning_core.loaders import Limits, UntrustedFileError, load_data, load_model

    out = Path(sys.argv[1] if len(sys.argv) > 1 else "hostile-corpus")
    mark = out / "MARKER"
    for entry in build_corpus(out, mark):
        kwargs = dict(entry.kwargs)
        if entry.kind == "data" and isinstance(kwargs.get("model"), str):
            import sample_models

            kwargs["model"] = sample_models.load_sample(kwargs["model"]).model
        load = load_model if entry.kind == "model" else load_data
        try:
            load(out / entry.filename, filename=entry.filename, limits=Limits(**entry.limits), **kwargs)
            message = "LOADED (not refused!)"
        except UntrustedFileError as exc:
            message = str(exc)
        print(f"{entry.name} [{entry.filename}]: {entry.what}\n    -> {message}\n")
    print("marker exists:", mark.exists())
