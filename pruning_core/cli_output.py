"""How the command line shows results: a rounded table for people, CSV/JSON for programs, and
progress and warnings on stderr. Pure helpers; ``cli.py`` only wires them to its options."""

from __future__ import annotations

import json
import math
import os
import sys
from typing import TextIO

import pandas as pd

FORMATS = ("table", "csv", "json")
PROGRESS_ENV = "PRUNELAB_PROGRESS"
MAX_TEXT = 72  # longer text (descriptions) is cut in the table format; csv/json keep it whole
CHANCE_MARGIN = 0.02  # accuracy within 2 points of 1/n_classes reads as chance
EPOCH_FRACTION = 0.1  # fine-tuning below a tenth of the sample's own training is "far below"


class ColumnError(ValueError):
    """An unknown ``--columns`` name; the message lists the valid ones."""


def default_format(stream: TextIO | None = None, output: str | None = None) -> str:
    """``table`` when the output is a terminal (for people), ``csv`` otherwise (pipes keep working);
    for an ``--output`` file, ``json`` if its name ends in .json, else ``csv``."""
    if output:
        return "json" if output.lower().endswith(".json") else "csv"
    stream = sys.stdout if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return "table" if isatty is not None and isatty() else "csv"


def select_columns(table: pd.DataFrame, columns: str | None) -> pd.DataFrame:
    """The columns named in ``a,b,c`` in that order; every unknown name is reported at once."""
    if not columns:
        return table
    names = [name.strip() for name in columns.split(",")]
    unknown = [name for name in names if name not in table.columns]
    if unknown or not all(names):
        bad = ", ".join(repr(n) for n in unknown) or repr(columns)
        raise ColumnError(f"unknown column(s) {bad} in --columns; valid columns: {', '.join(table.columns)}")
    return table[names]


# What a sweep's table shows when no --columns are given: the columns people compare. CSV and
# JSON always carry every column.
SWEEP_TABLE_COLUMNS = (
    "model",
    "method",
    "scope",
    "schedule",
    "target_sparsity",
    "actual_sparsity",
    "nonzero_params",
    "compression_ratio",
    "accuracy",
    "val_accuracy",
    "seconds",
)


def table_view(table: pd.DataFrame, fmt: str, columns: str | None, summary: tuple[str, ...] = ()) -> pd.DataFrame:
    """The rows and columns to print: ``--columns`` if given; else for the table format the
    ``summary`` columns (when given), else everything."""
    if columns:
        return select_columns(table, columns)
    if fmt == "table" and summary:
        return table[[c for c in summary if c in table.columns]]
    return table


def _rounded(value: object) -> object:
    if isinstance(value, float) and not math.isnan(value):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"
    return value


def render(table: pd.DataFrame, fmt: str) -> str:
    """The table as text: ``table`` rounded for reading, ``csv``/``json`` at full precision."""
    if fmt == "json":
        return json.dumps(table.to_dict(orient="records"), indent=2) + "\n"
    if fmt == "csv":
        return table.to_csv(index=False)
    if table.empty:
        return "(no rows)\n"
    shown = table.map(_rounded).map(_shortened).astype(str)
    left = [not pd.api.types.is_numeric_dtype(table[c]) for c in table.columns]
    widths = [max(len(str(c)), *shown[c].str.len()) for c in table.columns]

    def line(cells: list[str]) -> str:
        padded = [f"{v:<{w}}" if lt else f"{v:>{w}}" for v, w, lt in zip(cells, widths, left, strict=True)]
        return "  ".join(padded).rstrip()

    rows = [line([str(c) for c in table.columns])]
    rows += [line(list(values)) for values in shown.itertuples(index=False)]
    return "\n".join(rows) + "\n"


def _shortened(value: object) -> object:
    if isinstance(value, str) and len(value) > MAX_TEXT:
        return value[: MAX_TEXT - 3] + "..."
    return value


def progress_enabled(quiet: bool, stream: TextIO | None = None) -> bool:
    """Progress shows on an interactive stderr unless ``--quiet``; ``PRUNELAB_PROGRESS=1`` forces it
    (tests, logs) and ``PRUNELAB_PROGRESS=0`` silences it."""
    forced = os.environ.get(PROGRESS_ENV)
    if forced is not None and forced.strip() != "":
        return forced.strip() not in ("0", "false", "no")
    if quiet:
        return False
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return bool(isatty is not None and isatty())


class ProgressBar:
    """A tqdm bar on stderr fed by the engine's ``progress(fraction, message)`` callback."""

    def __init__(self, description: str, enabled: bool) -> None:
        from tqdm import tqdm

        self.bar = tqdm(
            total=100, desc=description, file=sys.stderr, disable=not enabled, unit="%", leave=False, mininterval=0.5
        )

    def __call__(self, fraction: float, message: str) -> None:
        self.bar.set_postfix_str(message, refresh=False)
        self.bar.update(round(fraction * 100) - self.bar.n)

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Show the final state (updates in between are throttled), then clear the bar."""
        if not self.bar.disable:
            self.bar.refresh()
        self.bar.close()


def make_progress(description: str, quiet: bool) -> ProgressBar:
    return ProgressBar(description, progress_enabled(quiet))


def chance_warnings(table: pd.DataFrame, n_classes: int, majority_rate: float | None = None) -> list[str]:
    """One warning per row whose accuracy is near chance (within 2 points of 1/n_classes) or below
    the majority-class rate: such a row measures a broken model, not a pruning trade-off."""
    if "accuracy" not in table.columns:
        return []
    chance = 1.0 / n_classes
    warnings = []
    for row in table.to_dict(orient="records"):
        accuracy = row.get("accuracy")
        if accuracy is None or (isinstance(accuracy, float) and math.isnan(accuracy)):
            continue
        where = f"{row.get('method', '?')} at {float(row.get('target_sparsity', 0.0)):.0%} sparsity"
        if accuracy <= chance + CHANCE_MARGIN:
            warnings.append(f"{where}: accuracy {accuracy:.1%} is near chance ({chance:.1%} for {n_classes} classes)")
        elif majority_rate is not None and accuracy < majority_rate:
            warnings.append(
                f"{where}: accuracy {accuracy:.1%} is below always guessing the majority class ({majority_rate:.1%})"
            )
    return warnings


def budget_warning(finetune_epochs: int, sample_epochs: int, trains: bool) -> str | None:
    """A warning when a schedule that trains gets far less than the sample model's own training."""
    if not trains or sample_epochs <= 0 or finetune_epochs >= EPOCH_FRACTION * sample_epochs:
        return None
    return (
        f"{finetune_epochs} fine-tuning epoch(s) in total is far below the {sample_epochs} the sample model "
        "trained for; "
        "accuracies after fine-tuning may mostly reflect the short budget"
    )


def print_warnings(warnings: list[str]) -> None:
    for warning in dict.fromkeys(warnings):
        print(f"warning: {warning}", file=sys.stderr)


def layer_table(model, example_input=None) -> pd.DataFrame:
    """One row per prunable layer: its type, weight shape, weight and bias parameter counts, and
    whether it is an output layer (those are kept whole by structured methods)."""
    from pruning_core.graph import output_layers
    from pruning_core.targets import prunable_layers

    modules = dict(model.named_modules())
    outputs = output_layers(model, example_input)
    rows = []
    for name in prunable_layers(model):
        module = modules[name]
        bias = getattr(module, "bias", None)
        rows.append(
            {
                "layer": name,
                "type": type(module).__name__,
                "weight_shape": "x".join(str(d) for d in module.weight.shape),
                "weight_params": module.weight.numel(),
                "bias_params": bias.numel() if bias is not None else 0,
                "output_layer": name in outputs,
            }
        )
    return pd.DataFrame(rows)


def ignored_exclude_notes(method_granularities: dict[str, str], exclude: list[str], outputs: set[str]) -> list[str]:
    """A note for each excluded output layer under a structured method: structured methods keep
    output layers whole anyway, so that exclude changes nothing for them."""
    structured = [name for name, granularity in method_granularities.items() if granularity == "structured"]
    redundant = [layer for layer in exclude if layer.removesuffix(".weight") in outputs]
    if not structured or not redundant:
        return []
    return [
        f"--exclude {layer} changes nothing for {', '.join(structured)}: structured methods keep output layers whole"
        for layer in redundant
    ]
