"""A user's model with its data, as one value every path takes: the CLI, the app, studies, the API.

>>> own = load_own("model.onnx", data="data.csv", label_column="label")
>>> pruning_core.sweep(own.model, own.split, ["magnitude"], [0, 0.5, 0.9])
>>> recipe = Recipe.from_choice(OWN_MODEL, choice, model_file=own.model_identity, data_file=own.data_identity)

Without data, data-free methods and the size and speed views still work; ``split`` is then None
and :attr:`OwnModel.no_data_reason` says why accuracy cannot be shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from pruning_core.loaders.common import DEFAULT_LIMITS, Limits
from pruning_core.loaders.data import LoadedData, load_data
from pruning_core.loaders.model import LoadedModel, load_model
from pruning_core.loaders.state_dict import Factory

NO_DATA = "no data was given: accuracy needs labelled data (a CSV with a label column, or an NPZ)"


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
    refusal raises ``UntrustedFileError`` naming the problem and what would be valid."""
    model_filename = model_filename or Path(str(model)).name
    loaded = load_model(model, filename=model_filename, factory=factory, limits=limits)
    checked = None
    if data is not None:
        data_filename = data_filename or Path(str(data)).name
        checked = load_data(data, filename=data_filename, model=loaded, label_column=label_column, limits=limits)
    return OwnModel(
        loaded=loaded,
        data=checked,
        factory=factory if isinstance(factory, str) else None,
        label_column=label_column if checked is not None and checked.format == "csv" else None,
    )
