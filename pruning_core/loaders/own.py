"""A user's model with its data, as one value every path takes: the CLI, the app, studies, the API.

>>> own = load_own("model.onnx", data="data.csv", label_column="label")
>>> pruning_core.sweep(own.model, own.split, ["magnitude"], [0, 0.5, 0.9])
>>> recipe = Recipe.from_choice(OWN_MODEL, choice, model_file=own.model_identity, data_file=own.data_identity)

Without data, data-free methods and the size and speed views still work; ``split`` is then None
and :attr:`OwnModel.no_data_reason` says why accuracy cannot be shown.

The lottery schedule rewinds to the weights a model was trained from, which a user's file does not
hold: the CLI and ``pruning_core.export`` refuse it for a user's model (:data:`NO_LOTTERY`), as the
app and studies do.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pruning_core.deadline import time_limit
from pruning_core.loaders.common import DEFAULT_LIMITS, Limits
from pruning_core.loaders.data import LoadedData, load_data
from pruning_core.loaders.model import LoadedModel, load_model
from pruning_core.loaders.state_dict import Factory

NO_DATA = "no data was given: accuracy needs labelled data (a CSV with a label column, or an NPZ)"
NO_LOTTERY = (
    "a lottery schedule rewinds to the weights a model was trained from, which your model file does not hold: "
    "use oneshot, iterative or gradual schedules with your own model (lottery works on the samples)"
)


@dataclass
class OwnModel:
    """A loaded user model and, optionally, its checked and split data."""

    loaded: LoadedModel
    data: LoadedData | None = None
    factory: str | None = None  # ``package.module:function`` or a sample architecture's name
    label_column: str | None = None

    @property
    def model(self) -> nn.Module:
        """The model (eval mode). Shared: read it, copy it before changing it."""
        return self.loaded.model

    @property
    def split(self) -> Any:
        """The data as a ``sample_models.DataSplit`` (None without data)."""
        return None if self.data is None else self.data.split

    @property
    def no_data_reason(self) -> str | None:
        return NO_DATA if self.data is None else None

    @property
    def model_identity(self) -> dict[str, Any]:
        """What a recipe records of the model file: format, SHA-256, the architecture's factory."""
        from pruning_core.recipe import file_identity

        factory = self.factory if self.loaded.format != "onnx" else None
        return file_identity(self.loaded.format, self.loaded.sha256, factory=factory)

    @property
    def data_identity(self) -> dict[str, Any] | None:
        """What a recipe records of the data file (None without data)."""
        from pruning_core.recipe import file_identity

        if self.data is None:
            return None
        return file_identity(self.data.format, self.data.sha256, label_column=self.label_column)

    @property
    def name(self) -> str:
        """A short label for tables and titles: the format and the start of the model's digest."""
        return f"{self.loaded.format} model {self.loaded.sha256[:8]}"

    @property
    def example_input(self) -> torch.Tensor | None:
        """Inputs to run the model on: the test split's, else one zero sample of the declared input
        shape (None when neither data nor the model tells the shape)."""
        if self.data is not None:
            return self.data.split.X_test
        from pruning_core.dataflow import guess_input

        return guess_input(self.model)

    def with_data(
        self, data: Any, *, data_filename: str | None = None, label_column: str | None = None,
        limits: Limits = DEFAULT_LIMITS,
    ) -> OwnModel:  # fmt: skip
        """This model with ``data`` (a path, or bytes with ``data_filename``) loaded and checked
        against it; refusals raise ``UntrustedFileError``."""
        data_filename = data_filename or Path(str(data)).name
        checked = load_data(data, filename=data_filename, model=self.loaded, label_column=label_column, limits=limits)
        return replace(self, data=checked, label_column=label_column if checked.format == "csv" else None)


def load_own(
    model: Any,
    *,
    model_filename: str | None = None,
    data: Any = None,
    data_filename: str | None = None,
    factory: Factory | None = None,
    label_column: str | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> OwnModel:
    """Load a model file (a path, or bytes with ``model_filename``) and optionally its data; every
    refusal raises ``UntrustedFileError`` naming the problem and what would be valid. With
    ``limits.max_seconds``, loading stops with ``TimeLimitExceeded`` (one such refusal) after that
    many seconds (``pruning_core.deadline``)."""
    model_filename = model_filename or Path(str(model)).name
    with time_limit(limits.max_seconds, "loading the model", "(Limits.max_seconds): use a smaller model or data file"):
        loaded = load_model(model, filename=model_filename, factory=factory, limits=limits)
        own = OwnModel(loaded=loaded, factory=factory if isinstance(factory, str) else None)
        if data is None:
            return own
        return own.with_data(data, data_filename=data_filename, label_column=label_column, limits=limits)
