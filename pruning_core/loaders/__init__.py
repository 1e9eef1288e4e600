"""Bring your own model and data: users' files loaded without running code from them.

>>> from pruning_core.loaders import load_model, load_data
>>> loaded = load_model("model.onnx", filename="model.onnx")
>>> data = load_data("data.csv", filename="data.csv", model=loaded, label_column="label")
>>> pruning_core.sweep(loaded.model, data.split, ["magnitude"], [0, 0.5, 0.9])

Every refusal raises :class:`UntrustedFileError` (a ValueError) whose message names the problem and
what would be valid; :class:`Limits` bounds what a file may cost (see ``common``'s docstring).
"""

from pruning_core.loaders.common import Limits, UntrustedFileError
from pruning_core.loaders.data import LoadedData, load_data
from pruning_core.loaders.model import LoadedModel, load_model
from pruning_core.loaders.own import OwnModel, load_own

__all__ = [
    "Limits",
    "LoadedData",
    "LoadedModel",
    "OwnModel",
    "UntrustedFileError",
    "load_data",
    "load_model",
    "load_own",
]
