"""Studies: a versioned YAML file describing many sweeps (models x methods x scopes x schedules x
seeds), validated like a recipe and expanded into *cells*, the unit of work that is computed,
stored, resumed and distributed.

A cell is model x method x scope x schedule x seed. What it covers is decided by cost:

- a schedule that does not train (one-shot, no fine-tuning) ranks the weights once and evaluates
  every level from that ranking, so its cell holds *all* the study's sparsities (one cell costs
  about as much as one level: splitting it would repeat the ranking per level);
- a schedule that trains costs one training run per level, so each sparsity is its own cell: cells
  of roughly equal cost that spread evenly over workers and lose little when one fails.

A cell's id is a hash of its canonical description (everything that determines its result), so a
study that is interrupted resumes where it stopped and a finished cell is never computed twice,
even after the study file gains seeds or sparsities.

Randomness: every stochastic part takes the cell's seed: random methods (``sweep(seed=)``),
fine-tuning shuffling (``FineTuneConfig(seed=)``), the lottery control's re-initialisation
(``reinit(seed + 1)`` inside the engine). Calibration batches (Taylor, Wanda, ...) are the first
256 train samples in the engine, which is deterministic and the same for every seed; with
``calibration: seeded`` the study shuffles the train split with the cell's seed first, so the
calibration sample differs per seed too (the fine-tuning data stay the same set).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

STUDY_VERSION = 1
CELL_FORMAT = 1  # bump when a cell's result would change for the same description (forces recompute)
MAX_STUDY_BYTES = 64_000
MAX_CELLS = 20_000
MAX_SEEDS = 1_000
CALIBRATION = ("first", "seeded")

_TOP_KEYS = {
    "version", "name", "model", "models", "methods", "scopes", "sparsities", "exclude", "schedules", "seeds",
    "calibration",
}  # fmt: skip
_MODEL_KEYS = {"sample"}  # {file: ..., sha256: ...} will join when studies take your own models
_SCHEDULE_KEYS = {"name", "kind", "rounds", "initial_sparsity", "pruning_steps", "rewind_iteration", "finetune"}
_FINETUNE_KEYS = {"epochs", "lr", "optimizer", "batch_size", "momentum", "weight_decay"}


class StudyError(ValueError):
    """A study file that cannot be used; ``problems`` lists every reason, one sentence each."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("invalid study: " + "; ".join(self.problems))


@dataclass(frozen=True)
class StudySchedule:
    """One schedule of a study: the engine's Schedule settings without the seed, plus a name."""

    name: str
    kind: str = "oneshot"
    settings: tuple[tuple[str, Any], ...] = ()  # rounds, initial_sparsity, ... as given
    finetune: tuple[tuple[str, Any], ...] | None = None  # FineTuneConfig fields except seed

    def build(self, seed: int):
        """The engine's ``Schedule`` with fine-tuning shuffled by ``seed``, or None without training."""
        from pruning_core.finetune import FineTuneConfig
        from pruning_core.schedules import Schedule

        finetune = FineTuneConfig(**dict(self.finetune), seed=seed) if self.finetune else None
        schedule = Schedule(kind=self.kind, finetune=finetune, **dict(self.settings))
        return schedule if schedule.kind != "oneshot" or schedule.finetune_epochs > 0 else None

    @property
    def trains(self) -> bool:
        return self.build(0) is not None

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, **dict(self.settings), "finetune": dict(self.finetune) if self.finetune else None}


@dataclass(frozen=True)
class Cell:
    """One unit of work: a model, method, scope, schedule and seed, at one or more sparsities."""

    model: str
    method: str
    scope: str
    schedule: StudySchedule
    seed: int
    sparsities: tuple[float, ...]
    exclude: tuple[str, ...] = ()
    calibration: str = "first"

    def describe(self) -> dict[str, Any]:
        """Everything that determines the cell's result, in a canonical form (the id hashes it).
        The schedule's display name is left out: renaming a schedule does not change its results."""
        return {
            "format": CELL_FORMAT,
            "model": {"sample": self.model},
            "method": self.method,
            "scope": self.scope,
            "schedule": self.schedule.describe(),
            "seed": self.seed,
            "sparsities": [float(s) for s in self.sparsities],
            "exclude": sorted(self.exclude),
            "calibration": self.calibration,
        }

    @functools.cached_property
    def cell_id(self) -> str:
        """A stable id: the first 16 hex digits of the SHA-256 of the canonical description."""
        text = json.dumps(self.describe(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Study:
    """A validated study: the grid to run and the seeds to run it with."""

    models: tuple[str, ...]
    methods: tuple[str, ...]
    sparsities: tuple[float, ...]
    seeds: tuple[int, ...]
    scopes: tuple[str, ...] = ("global",)
    schedules: tuple[StudySchedule, ...] = (StudySchedule("oneshot"),)
    exclude: tuple[str, ...] = ()
    calibration: str = "first"
    name: str = "study"
    source: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def cells(self) -> list[Cell]:
        """The study's cells in a fixed order (model, schedule, method, scope, seed, sparsity)."""
        cells = []
        for model in self.models:
            for schedule in self.schedules:
                level_groups = [(s,) for s in self.sparsities] if schedule.trains else [self.sparsities]
                for method in self.methods:
                    for scope in self.scopes:
                        for seed in self.seeds:
                            for levels in level_groups:
                                cells.append(
                                    Cell(model, method, scope, schedule, seed, levels, self.exclude, self.calibration)
                                )
        return cells


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _list_of(data: Mapping, key: str, what: str, problems: list[str], default: list | None = None) -> list:
    value = data.get(key, default)
    if value is None:
        problems.append(f"'{key}' is missing: give a list of {what}")
        return []
    if not isinstance(value, list) or not value:
        problems.append(f"'{key}' must be a non-empty list of {what}, not {value!r}")
        return []
    return value


def from_dict(data: Any) -> Study:
    """Validate parsed study data; raise StudyError listing every problem found."""
    import sample_models
    from pruning_core.masks import SCOPES
    from pruning_core.methods import get_method, method_names
    from pruning_core.targets import prunable_layers

    if not isinstance(data, dict):
        raise StudyError([f"a study is a mapping of keys to values, not {type(data).__name__}"])
    problems: list[str] = []
    unknown = sorted(set(map(str, data)) - _TOP_KEYS)
    if unknown:
        problems.append(f"unknown top-level key(s) {', '.join(unknown)}; valid: {', '.join(sorted(_TOP_KEYS))}")

    version = data.get("version")
    if version is None:
        problems.append(f"missing 'version' (this PruneLab writes version {STUDY_VERSION})")
    elif not _is_int(version):
        problems.append(f"'version' must be an integer, not {version!r}")
    elif version > STUDY_VERSION:
        problems.append(
            f"study version {version} is newer than this PruneLab understands (up to {STUDY_VERSION}); upgrade PruneLab"
        )
    elif version < 1:
        problems.append(f"'version' {version} is not a study version (1 is the first)")

    name = data.get("name", "study")
    if not isinstance(name, str) or not 0 < len(name) <= 200:
        problems.append(f"'name' must be text of 1 to 200 characters, not {name!r}")

    if "model" in data and "models" in data:
        problems.append("give either 'model' (one mapping) or 'models' (a list of mappings), not both")
    model_entries = data["models"] if "models" in data else [data.get("model")]
    if not isinstance(model_entries, list) or not model_entries:
        problems.append(f"'models' must be a non-empty list of mappings like {{sample: NAME}}, not {model_entries!r}")
        model_entries = []
    models: list[str] = []
    for entry in model_entries:
        if not isinstance(entry, dict):
            problems.append(f"a model is a mapping like {{sample: digits-mlp}}, not {entry!r}")
            continue
        unknown = sorted(set(map(str, entry)) - _MODEL_KEYS)
        if unknown:
            problems.append(
                f"unknown key(s) in a model: {', '.join(unknown)}; valid: sample (your own models come later)"
            )
        sample = entry.get("sample")
        if sample not in sample_models.available():
            problems.append(f"unknown sample model {sample!r}; valid: {', '.join(sample_models.available())}")
        elif sample in models:
            problems.append(f"model {sample!r} is listed twice")
        else:
            models.append(sample)

    methods: list[str] = []
    for name_ in _list_of(data, "methods", "method names", problems):
        try:
            canonical = get_method(name_).name if isinstance(name_, str) else None
        except ValueError:
            canonical = None
        if canonical is None:
            problems.append(f"unknown method {name_!r}; valid: {', '.join(method_names())} or nm-N:M")
        elif canonical in methods:
            problems.append(f"method {canonical!r} is listed twice")
        else:
            methods.append(canonical)

    scopes: list[str] = []
    for scope in _list_of(data, "scopes", "scopes", problems, default=["global"]):
        valid_scopes = [s for s in SCOPES if s != "per-layer"]
        if scope not in valid_scopes:
            problems.append(f"unknown scope {scope!r} for a study; valid: {', '.join(valid_scopes)}")
        elif scope in scopes:
            problems.append(f"scope {scope!r} is listed twice")
        else:
            scopes.append(scope)

    sparsities: list[float] = []
    for value in _list_of(data, "sparsities", "fractions in [0, 1)", problems):
        if not _is_number(value) or not 0 <= value < 1:
            problems.append(f"sparsity {value!r} is not a fraction in [0, 1), e.g. 0.9")
        elif float(value) in sparsities:
            problems.append(f"sparsity {value!r} is listed twice")
        else:
            sparsities.append(float(value))

    exclude = data.get("exclude", [])
    if not isinstance(exclude, list) or not all(isinstance(x, str) for x in exclude):
        problems.append(f"'exclude' must be a list of layer names, not {exclude!r}")
        exclude = []
    for model in models:
        layers = prunable_layers(sample_models.get_spec(model).build())
        bad = [x for x in exclude if x not in layers]
        if bad:
            problems.append(
                f"cannot exclude {', '.join(map(repr, bad))}: not layers of {model}; valid: {', '.join(layers)}"
            )

    schedules = _schedules(data.get("schedules", [{"kind": "oneshot"}]), problems)
    seeds = _seeds(data.get("seeds"), problems)

    calibration = data.get("calibration", "first")
    if calibration not in CALIBRATION:
        problems.append(f"unknown calibration {calibration!r}; valid: {', '.join(CALIBRATION)}")

    if not problems:
        n_cells = len(models) * len(methods) * len(scopes) * len(seeds)
        n_cells *= sum(len(sparsities) if s.trains else 1 for s in schedules)
        if n_cells > MAX_CELLS:
            problems.append(f"the study expands to {n_cells:,} cells; at most {MAX_CELLS:,} per study file")
    if problems:
        raise StudyError(problems)
    return Study(
        models=tuple(models), methods=tuple(methods), sparsities=tuple(sparsities), seeds=tuple(seeds),
        scopes=tuple(scopes), schedules=tuple(schedules), exclude=tuple(exclude), calibration=calibration,
        name=name, source=dict(data),
    )  # fmt: skip


def _schedules(entries: Any, problems: list[str]) -> list[StudySchedule]:
    from pruning_core.finetune import FineTuneConfig
    from pruning_core.schedules import Schedule

    if not isinstance(entries, list) or not entries:
        problems.append(
            f"'schedules' must be a non-empty list of mappings like {{kind: iterative, ...}}, not {entries!r}"
        )
        return []
    schedules: list[StudySchedule] = []
    for i, entry in enumerate(entries, start=1):
        where = f"schedule {i}"
        if not isinstance(entry, dict):
            problems.append(f"{where} must be a mapping like {{kind: oneshot}}, not {entry!r}")
            continue
        unknown = sorted(set(map(str, entry)) - _SCHEDULE_KEYS)
        if unknown:
            problems.append(
                f"unknown key(s) in {where}: {', '.join(unknown)}; valid: {', '.join(sorted(_SCHEDULE_KEYS))}"
            )
            continue
        finetune = entry.get("finetune")
        if finetune is not None:
            if not isinstance(finetune, dict):
                problems.append(f"'finetune' of {where} must be a mapping or null, not {finetune!r}")
                continue
            unknown = sorted(set(map(str, finetune)) - _FINETUNE_KEYS)
            if "seed" in finetune:
                problems.append(f"'finetune.seed' of {where} is set by each cell's seed: list seeds under 'seeds'")
                continue
            if unknown:
                problems.append(
                    f"unknown key(s) in the finetune of {where}: {', '.join(unknown)}; valid: {', '.join(sorted(_FINETUNE_KEYS))}"
                )
                continue
        settings = {k: v for k, v in entry.items() if k not in ("name", "kind", "finetune")}
        kind = entry.get("kind", "oneshot")
        try:
            Schedule(kind=kind, finetune=FineTuneConfig(**finetune) if finetune else None, **settings)
        except (TypeError, ValueError) as exc:
            problems.append(f"{where}: {exc}")
            continue
        name = entry.get("name") or _default_schedule_name(kind, settings, finetune)
        if not isinstance(name, str) or len(name) > 100:
            problems.append(f"the name of {where} must be text of at most 100 characters, not {name!r}")
            continue
        schedule = StudySchedule(
            name=name, kind=kind, settings=tuple(sorted(settings.items())),
            finetune=tuple(sorted(finetune.items())) if finetune else None,
        )  # fmt: skip
        if any(s.name == name for s in schedules):
            problems.append(f"two schedules are named {name!r}: give each a distinct 'name'")
        elif any(s.describe() == schedule.describe() for s in schedules):
            problems.append(f"{where} repeats an earlier schedule")
        else:
            schedules.append(schedule)
    return schedules


def _default_schedule_name(kind: str, settings: Mapping, finetune: Mapping | None) -> str:
    epochs = (finetune or {}).get("epochs", 1) if finetune else 0
    if kind == "oneshot":
        return "oneshot" + (f"+ft{epochs}" if epochs else "")
    if kind in ("iterative", "lottery"):
        return f"{kind}-{settings.get('rounds', 3)}x{epochs}"
    return f"{kind}-{epochs}"


def _seeds(value: Any, problems: list[str]) -> list[int]:
    """Seeds as a list ``[0, 1, 2]`` or a range ``{count: 5, start: 0}``."""
    if isinstance(value, dict):
        unknown = sorted(set(map(str, value)) - {"count", "start"})
        count, start = value.get("count"), value.get("start", 0)
        if unknown or not _is_int(count) or not 1 <= count <= MAX_SEEDS or not _is_int(start) or start < 0:
            problems.append(
                f"'seeds' as a mapping is {{count: N, start: S}} with 1 <= N <= {MAX_SEEDS} and S >= 0, not {value!r}"
            )
            return []
        return list(range(start, start + count))
    if not isinstance(value, list) or not value:
        problems.append(f"'seeds' must be a list of non-negative integers or {{count: N, start: 0}}, not {value!r}")
        return []
    seeds: list[int] = []
    for seed in value:
        if not _is_int(seed) or not 0 <= seed < 2**31:
            problems.append(f"seed {seed!r} is not an integer in [0, 2^31)")
        elif seed in seeds:
            problems.append(f"seed {seed} is listed twice")
        else:
            seeds.append(seed)
    if len(seeds) > MAX_SEEDS:
        problems.append(f"{len(seeds)} seeds; at most {MAX_SEEDS}")
    return seeds


def loads(text: str | bytes, fmt: str | None = None) -> Study:
    """Parse and validate a study from YAML (or JSON) text, with the recipe reader's bounds: size
    and nesting checked before any object is built, safe loader, anchors and aliases refused."""
    from pruning_core.recipe import RecipeError, _parse

    if len(text) > MAX_STUDY_BYTES:
        raise StudyError([f"the study is {len(text):,} bytes; a study file is at most {MAX_STUDY_BYTES:,}"])
    try:
        data = _parse(text, fmt)
    except RecipeError as exc:
        raise StudyError([p.replace("a recipe", "a study") for p in exc.problems]) from None
    return from_dict(data)


def load(path: str | Path) -> Study:
    """Read and validate a study file (.yaml, .yml or .json)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise StudyError([f"cannot read {str(path)!r}: {exc.strerror}"]) from None
    return loads(data, "json" if path.suffix.lower() == ".json" else None)


# --- running one cell --------------------------------------------------------------------------

IDENTITY_COLUMNS = ["cell_id", "status", "error", "model", "schedule_name", "calibration"]


@dataclass(frozen=True)
class SampleBundle:
    """What a cell needs of its model: the trained model, its data and initial weights. Built once
    per model and shared by every cell (put once into Ray's object store)."""

    name: str
    model: nn.Module
    data: Any
    init_state: dict[str, torch.Tensor]

    @classmethod
    def load(cls, name: str) -> SampleBundle:
        import sample_models

        sample = sample_models.load_sample(name)
        return cls(name, sample.model, sample.data, sample_models.initial_state(name))


def _seeded_split(data: Any, seed: int) -> Any:
    """The split with its train part shuffled by ``seed``: the engine calibrates on the first
    samples of the train split, so this makes the calibration sample depend on the seed."""
    order = torch.randperm(len(data.X_train), generator=torch.Generator().manual_seed(seed))
    return data._replace(X_train=data.X_train[order], y_train=data.y_train[order])


def run_cell(cell: Cell, bundle: SampleBundle) -> pd.DataFrame:
    """Compute one cell through the public ``sweep`` API: its rows, with the identity columns first."""
    import sample_models
    from pruning_core.sweep import sweep

    data = _seeded_split(bundle.data, cell.seed) if cell.calibration == "seeded" else bundle.data
    table = sweep(
        bundle.model, data, [cell.method], list(cell.sparsities), scope=cell.scope, exclude=cell.exclude,
        seed=cell.seed, schedule=cell.schedule.build(cell.seed), init_state=bundle.init_state,
        reinit=functools.partial(sample_models.initial_state, cell.model),
    )  # fmt: skip
    identity = {
        "cell_id": cell.cell_id, "status": "ok", "error": "", "model": cell.model,
        "schedule_name": cell.schedule.name, "calibration": cell.calibration,
    }  # fmt: skip
    for i, (column, value) in enumerate(identity.items()):
        table.insert(i, column, value)
    table["seed"] = cell.seed
    return table


def failed_rows(cell: Cell, error: str) -> pd.DataFrame:
    """The record of a failed cell: one row per sparsity it covers, status 'failed' and the error."""
    return pd.DataFrame(
        [
            {
                "cell_id": cell.cell_id,
                "status": "failed",
                "error": error,
                "model": cell.model,
                "schedule_name": cell.schedule.name,
                "calibration": cell.calibration,
                "method": cell.method,
                "scope": cell.scope,
                "target_sparsity": level,
                "schedule": cell.schedule.kind,
                "seed": cell.seed,
            }  # fmt: skip
            for level in cell.sparsities
        ]
    )


def execute_cell(cell: Cell, bundle: SampleBundle, threads: int = 0) -> pd.DataFrame:
    """Run a cell and never raise for the cell's own errors: a failure becomes a 'failed' record
    with the error text, so one bad cell does not stop a study. ``threads`` > 0 sets the torch
    thread count (only in worker processes, which belong to the study)."""
    if threads:
        torch.set_num_threads(threads)
    try:
        return run_cell(cell, bundle)
    except Exception as exc:  # noqa: BLE001 - reported in the results, not swallowed
        last = traceback.format_exception_only(type(exc), exc)[-1].strip()
        return failed_rows(cell, last)
