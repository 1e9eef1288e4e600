"""A JSON Schema for recipe files, generated from the registries ``recipe.from_dict`` reads, so the
schema, the loader and the CLI cannot disagree about method names, scopes, schedules or keys."""

from __future__ import annotations

from typing import Any

NM_PATTERN = r"^nm-[0-9]+:[0-9]+$"  # any N:M pattern; get_method checks 0 < N < M <= 64


def _number(minimum: float, exclusive_maximum: float | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "number", "minimum": minimum}
    if exclusive_maximum is not None:
        schema["exclusiveMaximum"] = exclusive_maximum
    return schema


def _closed(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = required
    return schema


def _calibration() -> dict[str, Any]:
    from pruning_core.choice import CALIBRATION_ORDERS, CALIBRATION_SPLITS

    return _closed(
        {
            "split": {"enum": list(CALIBRATION_SPLITS)},
            "samples": {"type": "integer", "minimum": 1, "maximum": 100_000},
            "order": {"enum": list(CALIBRATION_ORDERS)},
            "seed": {"type": "integer", "minimum": 0},
        }
    )


def _pruning() -> dict[str, Any]:
    from pruning_core.masks import SCOPES
    from pruning_core.methods import METHODS

    granularities = sorted({m.granularity for m in METHODS.values()} | {"n:m"})
    fraction = _number(0, 1)
    return _closed(
        {
            "method": {"anyOf": [{"enum": list(METHODS)}, {"type": "string", "pattern": NM_PATTERN}]},
            "granularity": {"enum": granularities},
            "scope": {"enum": list(SCOPES)},
            "sparsity": fraction,
            "layer_sparsities": {"type": "object", "additionalProperties": fraction, "minProperties": 1},
            "n_m": _closed({"n": {"type": "integer"}, "m": {"type": "integer"}}, ["n", "m"]),
            "exclude": {"type": "array", "items": {"type": "string"}},
            "seed": {"type": "integer", "minimum": 0},
            "calibration": _calibration(),
        },
        ["method"],
    )


def _schedule() -> dict[str, Any]:
    from pruning_core.schedules import SCHEDULES

    schema = _closed(
        {
            "kind": {"enum": list(SCHEDULES)},
            "rounds": {"type": "integer", "minimum": 1},
            "initial_sparsity": _number(0, 1),
            "pruning_steps": {"type": "integer", "minimum": 1},
            "rewind_iteration": {"type": "integer", "minimum": 0},
        }
    )
    return {"anyOf": [{"type": "null"}, schema]}


def _finetune() -> dict[str, Any]:
    from pruning_core.finetune import OPTIMIZERS

    schema = _closed(
        {
            "epochs": {"type": "integer", "minimum": 0},
            "lr": {"type": "number", "exclusiveMinimum": 0, "maximum": 10},
            "optimizer": {"enum": list(OPTIMIZERS)},
            "batch_size": {"type": "integer", "minimum": 1},
            "momentum": _number(0, 1),
            "weight_decay": {"type": "number", "minimum": 0, "maximum": 1},
            "seed": {"type": "integer", "minimum": 0},
        }
    )
    return {"anyOf": [{"type": "null"}, schema]}


def _sample_model(names: list[str]) -> dict[str, Any]:
    return _closed({"sample": {"enum": names}, "description": {"type": "object"}}, ["sample"])


def _own_model() -> dict[str, Any]:
    """A user's model file and data, by format and SHA-256 (never a path)."""
    import sample_models
    from pruning_core.recipe import DATA_FILE_FORMATS, MODEL_FILE_FORMATS

    digest = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
    model_file = _closed(
        {
            "format": {"enum": list(MODEL_FILE_FORMATS)},
            "sha256": digest,
            "factory": {  # a sample architecture's name, or package.module:function
                "anyOf": [
                    {"enum": sample_models.available()},
                    {"type": "string", "pattern": r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$"},
                ]
            },
        },
        ["format", "sha256"],
    )
    data_file = _closed(
        {"format": {"enum": list(DATA_FILE_FORMATS)}, "sha256": digest, "label_column": {"type": "string"}},
        ["format", "sha256"],
    )
    return _closed({"file": model_file, "data": data_file, "description": {"type": "object"}}, ["file"])


def recipe_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a PruneLab recipe: the keys, types and enums the loader
    accepts. Cross-field rules (a layer the model has, n_m matching the method) stay in the loader."""
    import sample_models
    from pruning_core.recipe import RECIPE_VERSION

    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "PruneLab pruning recipe",
        "type": "object",
        "additionalProperties": False,
        "required": ["version", "model", "pruning"],
        "properties": {
            "version": {"type": "integer", "minimum": 1, "maximum": RECIPE_VERSION},
            "model": {"oneOf": [_sample_model(sample_models.available()), _own_model()]},
            "pruning": _pruning(),
            "schedule": _schedule(),
            "finetune": _finetune(),
            "provenance": {"anyOf": [{"type": "null"}, {"type": "object"}]},
        },
    }
