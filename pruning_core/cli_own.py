"""Your own model on the command line: ``--model-file``, ``--data``, ``--model-factory``, ``--label-column``.

``sweep``, ``recipe``, ``apply``, ``sensitivity`` and ``layers`` take ``--model-file PATH`` where they
take a sample's ``--model NAME`` (exactly one of the two). Files are read by
``pruning_core.loaders`` without running code from them; a refusal is one ``error:`` line with exit
status 2. Without ``--data``, what needs no data still works (``layers``; ``recipe`` and ``apply``
for data-free methods) and what measures accuracy says so and what to pass. A recipe records each
file's format and SHA-256, never its path; ``apply`` checks the files given are those.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

import sample_models
from pruning_core.cli import UsageError, print_notes
from pruning_core.loaders import OwnModel, UntrustedFileError, load_own
from pruning_core.loaders.own import NO_LOTTERY

FILE_OPTIONS = ("data", "model_factory", "label_column")
DATA_HINT = (
    "add --data PATH (a .csv with a label column, or an .npz with X_train, y_train, X_test, y_test or X, y); "
    "without data, `layers` and data-free methods in `recipe` and `apply` still work"
)


def add_flags(parser: Any) -> None:
    """The own-model options, in their own ``--help`` group."""
    group = parser.add_argument_group("your own model (instead of --model)")
    group.add_argument(
        "--model-file",
        metavar="PATH",
        help=".onnx, or a state dict (.safetensors, or .pt read with weights_only) with --model-factory; "
        "nothing in the file is run",
    )
    group.add_argument(
        "--data",
        metavar="PATH",
        help="labelled data for it: .csv (features and a label column) or .npz (X_train, y_train, X_test, y_test; "
        "or X, y, split 80/20 stratified with seed 0); validation is 10 %% of train",
    )
    group.add_argument(
        "--model-factory",
        metavar="SPEC",
        help=f"a state dict's architecture: a sample's ({', '.join(sample_models.available())}) or "
        "package.module:function, imported from the current directory or sys.path and called with no arguments "
        "(default: the recipe's, for apply and sweep --recipe)",
    )
    group.add_argument(
        "--label-column",
        metavar="NAME",
        help="the CSV's label column (default: the one named label, target, y or class; or the recipe's)",
    )


@dataclass
class Subject:
    """What a command works on: a sample (its model and data) or the user's model (its data if given)."""

    label: str  # the "model" column of tables: the sample's name or the model file's name
    model: nn.Module
    data: Any = None  # a sample_models.DataSplit, or None (a user's model without --data)
    sample: str | None = None
    own: OwnModel | None = None

    @classmethod
    def of_sample(cls, name: str) -> Subject:
        if name not in sample_models.available():
            raise UsageError(f"unknown model {name!r}; valid models: {', '.join(sample_models.available())}")
        sample = sample_models.load_sample(name)
        return cls(label=name, model=sample.model, data=sample.data, sample=name)

    @property
    def source(self) -> str | OwnModel:
        """What ``pruning_core.export`` takes: the sample's name or the OwnModel."""
        return self.own if self.own is not None else str(self.sample)

    @property
    def n_classes(self) -> int:
        if self.own is not None:
            return self.own.data.n_classes if self.own.data is not None else 0
        return sample_models.get_spec(str(self.sample)).n_classes

    @property
    def example_input(self) -> torch.Tensor | None:
        """One input (the test split's first), or for a user's model without data its declared shape's."""
        if self.data is not None:
            return self.data.X_test[:1]
        return self.own.example_input if self.own is not None else None

    def init_state(self) -> Mapping[str, torch.Tensor] | None:
        """What the lottery schedule rewinds to: a sample's initial weights (a user's file has none)."""
        return None if self.own is not None else sample_models.initial_state(str(self.sample))

    @property
    def reinit(self) -> Callable[[int], Mapping[str, torch.Tensor]] | None:
        """The lottery's re-initialisation control: a fresh, seeded initialisation of a sample."""
        return None if self.own is not None else functools.partial(sample_models.initial_state, str(self.sample))

    def require_data(self, command: str, why: str) -> None:
        """Refuse a command that measures accuracy on a user's model given without data."""
        if self.data is None:
            raise UsageError(f"{command} {why}, which needs labelled data: {DATA_HINT}")

    def check_schedule(self, schedule: Any) -> None:
        """Refuse the lottery schedule for a user's model (the same refusal as the app and studies)."""
        if self.own is not None and schedule is not None and schedule.kind == "lottery":
            raise UsageError(NO_LOTTERY)


def sample_option(args: Any) -> str:
    """How the command names a sample: ``layers MODEL``, elsewhere ``--model NAME``."""
    return "MODEL" if getattr(args, "command", None) == "layers" else "--model NAME"


def check_model_options(args: Any, sample: str | None) -> None:
    """Exactly one of ``--model`` and ``--model-file``; the file options only with ``--model-file``."""
    model_file = getattr(args, "model_file", None)
    if sample and model_file:
        raise UsageError(f"give {sample_option(args)} (a sample) or --model-file PATH (your model), not both")
    if not model_file:
        given = [f"--{name.replace('_', '-')}" for name in FILE_OPTIONS if getattr(args, name, None) is not None]
        if given:
            raise UsageError(
                f"{', '.join(given)} {'goes' if len(given) == 1 else 'go'} with --model-file PATH (your model); "
                "a sample brings its own architecture and data"
            )


def subject(args: Any, sample: str | None, recipe: Any = None) -> Subject:
    """The sample ``sample`` names, or the ``--model-file`` (with ``--data``) loaded; for a recipe
    for a user's model its recorded factory and label column are the defaults."""
    check_model_options(args, sample)
    model_file = getattr(args, "model_file", None)
    if model_file is None:
        if not sample:
            raise UsageError(f"give {sample_option(args)} (a sample) or --model-file PATH (your model)")
        return Subject.of_sample(sample)
    own = load(args, recipe)
    print_notes(own.loaded.notes + (own.data.notes if own.data is not None else []))
    return Subject(label=Path(model_file).name, model=own.model, data=own.split, own=own)


def load(args: Any, recipe: Any = None) -> OwnModel:
    """The ``--model-file`` and ``--data`` loaded; a refusal is a one-line usage error."""
    recorded_model = (recipe.model_file if recipe is not None else None) or {}
    recorded_data = (recipe.data_file if recipe is not None else None) or {}
    factory = args.model_factory or recorded_model.get("factory")
    try:
        with importable_from_working_directory(factory):
            own = load_own(args.model_file, factory=factory)
    except UntrustedFileError as exc:
        hint = "; pass it with --model-factory" if factory is None and "architecture" in str(exc) else ""
        raise UsageError(f"--model-file {args.model_file!r} refused: {one_line(exc)}{hint}") from None
    if args.model_factory and own.loaded.format == "onnx":
        print_notes(["--model-factory is ignored: an ONNX file holds its own architecture"])
    if args.data is None:
        return own
    label_column = args.label_column or recorded_data.get("label_column")
    try:
        return own.with_data(args.data, label_column=label_column)
    except UntrustedFileError as exc:
        raise UsageError(f"--data {args.data!r} refused: {one_line(exc)}") from None


def one_line(exc: Exception) -> str:
    return " ".join(str(exc).split("\n"))


@contextlib.contextmanager
def importable_from_working_directory(factory: str | None) -> Iterator[None]:
    """A ``package.module:function`` factory imports from the working directory, as ``python -m``
    would (the installed ``prunelab`` command does not put it on ``sys.path``); restored after."""
    if not factory or ":" not in factory or os.getcwd() in sys.path:
        yield
        return
    sys.path.insert(0, os.getcwd())
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(os.getcwd())
