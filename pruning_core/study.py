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

Models: a sample (``{sample: digits-mlp}``) or the user's own file with its data
(``{file: model.onnx, data: data.csv, label_column: label}``, and ``factory:`` naming the
architecture of a state dict: ``package.module:function`` or a sample architecture). Paths are
relative to the study file's directory; the file is loaded (without running code from it) when the
study is validated, and cells and results record its format and SHA-256, never its path. Lottery
schedules rewind to the weights a model was trained *from*, which a model file does not hold, so
they are refused for own models at validation (a re-initialisation is not that model's ticket).

Randomness: every stochastic part takes the cell's seed: random methods (``sweep(seed=)``),
fine-tuning shuffling (``FineTuneConfig(seed=)``), the lottery control's re-initialisation
(``reinit(seed + 1)`` inside the engine). Calibration samples (Taylor, Wanda, ...) are the first
256 train samples by default (``calibration: first``), the same for every seed; with
``calibration: seeded`` each cell draws them with the engine's
``Calibration(order="shuffled", seed=<cell seed>)``, so the calibration sample differs per seed.
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
_MODEL_KEYS = {"sample", "file", "data", "factory", "label_column"}
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
class ModelSpec:
    """Where a study's model comes from: a sample by name, or a user's file and its data. The
    paths are where *this* machine finds the files; they are neither compared nor described, so a
    cell's id and its results depend on the files' contents (format and SHA-256) only."""

    label: str  # the results' "model" column: the sample's name, or "onnx model 1a2b3c4d"
    sample: str | None = None
    identity: str = ""  # own model: canonical JSON of {"model": {format, sha256, ...}, "data": {...}}
    file: str | None = field(default=None, compare=False)
    data: str | None = field(default=None, compare=False)
    factory: str | None = field(default=None, compare=False)  # in the identity already
    label_column: str | None = field(default=None, compare=False)

    def describe(self) -> dict[str, Any]:
        return {"sample": self.sample} if self.sample is not None else json.loads(self.identity)

    def load_own(self) -> Any:
        """Load the user's model and data (an OwnModel); UntrustedFileError when a file is refused."""
        from pruning_core.loaders import load_own

        return load_own(self.file, data=self.data, factory=self.factory, label_column=self.label_column)

    def load_bundle(self) -> SampleBundle:
        """The model and data every cell of this model shares (loaded once per process)."""
        if self.sample is not None:
            return SampleBundle.load(self.sample)
        own = self.load_own()
        if own_identity(own) != self.identity:
            raise StudyError([f"{self.file!r} changed since the study was validated: run the study again"])
        return own_bundle(self, own)


def own_identity(own: Any) -> str:
    """An own model's identity as canonical JSON: the model's and data's format and SHA-256."""
    return json.dumps({"model": own.model_identity, "data": own.data_identity}, sort_keys=True)


def own_bundle(spec: ModelSpec, own: Any) -> SampleBundle:
    """An own model as a bundle: no initial weights (lottery schedules are refused for it)."""
    return SampleBundle(spec.label, own.model, own.split, None)


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
    spec: ModelSpec | None = None  # None: the sample named ``model``

    @property
    def model_spec(self) -> ModelSpec:
        return self.spec if self.spec is not None else ModelSpec(self.model, sample=self.model)

    def describe(self) -> dict[str, Any]:
        """Everything that determines the cell's result, in a canonical form (the id hashes it).
        The schedule's display name is left out: renaming a schedule does not change its results."""
        return {
            "format": CELL_FORMAT,
            "model": self.model_spec.describe(),
            "method": self.method,
            "scope": self.scope,
            "schedule": self.schedule.describe(),
            "seed": self.seed,
            "sparsities": [float(s) for s in self.sparsities],
            "exclude": sorted(self.exclude),
            "calibration": _describe_calibration(self.calibration),
        }

    @functools.cached_property
    def cell_id(self) -> str:
        """A stable id: the first 16 hex digits of the SHA-256 of the canonical description."""
        text = json.dumps(self.describe(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _describe_calibration(calibration: str) -> Any:
    """ "first" as it always was; "seeded" as the engine's shuffled draw (its seed is the cell's)."""
    return calibration if calibration == "first" else {"order": "shuffled", "samples": 256}


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
    specs: tuple[ModelSpec, ...] = ()  # one per model (samples may be left out: made from the name)
    # own models loaded at validation, as bundles (model and data only: the file's bytes are let go)
    loaded: dict[str, SampleBundle] = field(default_factory=dict, compare=False, hash=False, repr=False)

    def spec(self, model: str) -> ModelSpec:
        return next((s for s in self.specs if s.label == model), ModelSpec(model, sample=model))

    def bundle(self, spec: ModelSpec) -> SampleBundle:
        """A model's bundle, reusing an own model already loaded when the study was validated."""
        return self.loaded.get(spec.label) or spec.load_bundle()

    def cells(self) -> list[Cell]:
        """The study's cells in a fixed order (model, schedule, method, scope, seed, sparsity)."""
        cells = []
        for model in self.models:
            spec = self.spec(model)
            for schedule in self.schedules:
                level_groups = [(s,) for s in self.sparsities] if schedule.trains else [self.sparsities]
                for method in self.methods:
                    for scope in self.scopes:
                        for seed in self.seeds:
                            for levels in level_groups:
                                cells.append(
                                    Cell(
                                        model,
                                        method,
                                        scope,
                                        schedule,
                                        seed,
                                        levels,
                                        self.exclude,
                                        self.calibration,
                                        None if spec.sample else spec,
                                    )  # fmt: skip
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


def from_dict(  # noqa: C901, PLR0912, PLR0915 - one check per field, every problem listed
    data: Any, base_dir: str | Path | None = None
) -> Study:
    """Validate parsed study data; raise StudyError listing every problem found. Own models' paths
    are relative to ``base_dir`` (the study file's directory; default: the working directory)."""
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
    specs, loaded = _models(model_entries, base_dir, problems)
    models = [spec.label for spec in specs]

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
    for spec in specs:
        module = loaded[spec.label].model if spec.sample is None else sample_models.get_spec(spec.sample).build()
        layers = prunable_layers(module)
        bad = [x for x in exclude if x not in layers]
        if bad:
            problems.append(
                f"cannot exclude {', '.join(map(repr, bad))}: not layers of {spec.label}; valid: {', '.join(layers)}"
            )

    schedules = _schedules(data.get("schedules", [{"kind": "oneshot"}]), problems)
    if loaded and any(s.kind == "lottery" for s in schedules):
        problems.append(
            "a lottery schedule rewinds to the weights a model was trained from, which your model file does not "
            "hold: use oneshot, iterative or gradual schedules with your own model (lottery works on the samples)"
        )
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
        name=name, source=dict(data), specs=tuple(specs), loaded=loaded,
    )  # fmt: skip


def _models(entries: list, base_dir: str | Path | None, problems: list[str]) -> tuple[list[ModelSpec], dict[str, Any]]:
    """Each model entry checked: a known sample, or an own model file and data that load."""
    import sample_models

    specs: list[ModelSpec] = []
    loaded: dict[str, SampleBundle] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            problems.append(
                f"a model is a mapping like {{sample: digits-mlp}} or {{file: model.onnx, ...}}, not {entry!r}"
            )
            continue
        unknown = sorted(set(map(str, entry)) - _MODEL_KEYS)
        if unknown:
            problems.append(f"unknown key(s) in a model: {', '.join(unknown)}; valid: {', '.join(sorted(_MODEL_KEYS))}")
            continue
        if "file" in entry:
            spec, own = _own_model(entry, Path(base_dir or "."), problems)
            if spec is None:
                continue
            loaded[spec.label] = own_bundle(spec, own)
        else:
            sample = entry.get("sample")
            if sample not in sample_models.available():
                problems.append(f"unknown sample model {sample!r}; valid: {', '.join(sample_models.available())}")
                continue
            spec = ModelSpec(sample, sample=sample)
        if any(s.label == spec.label for s in specs):
            problems.append(f"model {spec.label!r} is listed twice")
        else:
            specs.append(spec)
    return specs, loaded


def _own_model(entry: Mapping, base_dir: Path, problems: list[str]) -> tuple[ModelSpec | None, Any]:
    """An own model entry's files found, loaded and checked (once: the runner reuses the result)."""
    from pruning_core.loaders import UntrustedFileError

    if "sample" in entry:
        problems.append(
            f"a model is either a sample ({{sample: NAME}}) or your own file ({{file: ..., data: ...}}), "
            f"not both: {entry!r}"
        )
        return None, None
    texts = {k: entry.get(k) for k in ("file", "data", "factory", "label_column")}
    bad = [k for k, v in texts.items() if v is not None and (not isinstance(v, str) or not v)]
    if bad or texts["data"] is None:
        why = "give data: a study measures accuracy" if texts["data"] is None else f"not {dict(entry)!r}"
        problems.append(
            "an own model is {file: MODEL, data: DATA} (paths relative to the study file) with optional "
            "factory: package.module:function or a sample architecture (for a state dict) and label_column: NAME "
            f"(for a CSV); {why}"
        )
        return None, None
    paths = {k: base_dir / str(texts[k]) for k in ("file", "data")}
    missing = [f"{k} {str(p)!r}" for k, p in paths.items() if not p.is_file()]
    if missing:
        problems.append(f"cannot find the own model's {' and '.join(missing)} (paths are relative to the study file)")
        return None, None
    spec = ModelSpec(
        "", file=str(paths["file"].resolve()), data=str(paths["data"].resolve()), factory=texts["factory"],
        label_column=texts["label_column"],
    )  # fmt: skip
    try:
        own = spec.load_own()
    except (UntrustedFileError, OSError) as exc:
        problems.append(f"cannot use the own model {texts['file']!r} with data {texts['data']!r}: {exc}")
        return None, None
    return ModelSpec(own.name, identity=own_identity(own), **_paths(spec)), own


def _paths(spec: ModelSpec) -> dict[str, Any]:
    return {"file": spec.file, "data": spec.data, "factory": spec.factory, "label_column": spec.label_column}


def _schedules(  # noqa: C901, PLR0912 - one check per schedule key, every problem listed
    entries: Any, problems: list[str]
) -> list[StudySchedule]:
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
                    f"unknown key(s) in the finetune of {where}: {', '.join(unknown)}; "
                    f"valid: {', '.join(sorted(_FINETUNE_KEYS))}"
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
        if (
            unknown
            or not isinstance(count, int)
            or isinstance(count, bool)
            or not 1 <= count <= MAX_SEEDS
            or (not _is_int(start) or start < 0)
        ):
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


def loads(text: str | bytes, fmt: str | None = None, base_dir: str | Path | None = None) -> Study:
    """Parse and validate a study from YAML (or JSON) text, with the recipe reader's bounds: size
    and nesting checked before any object is built, safe loader, anchors and aliases refused."""
    from pruning_core.recipe import RecipeError, _parse

    if len(text) > MAX_STUDY_BYTES:
        raise StudyError([f"the study is {len(text):,} bytes; a study file is at most {MAX_STUDY_BYTES:,}"])
    try:
        data = _parse(text, fmt)
    except RecipeError as exc:
        raise StudyError([p.replace("a recipe", "a study") for p in exc.problems]) from None
    return from_dict(data, base_dir)


def load(path: str | Path) -> Study:
    """Read and validate a study file (.yaml, .yml or .json)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise StudyError([f"cannot read {str(path)!r}: {exc.strerror}"]) from None
    return loads(data, "json" if path.suffix.lower() == ".json" else None, base_dir=path.parent)


# --- running one cell --------------------------------------------------------------------------

IDENTITY_COLUMNS = ["cell_id", "status", "error", "model", "schedule_name", "calibration"]


@dataclass(frozen=True)
class SampleBundle:
    """What a cell needs of its model: the trained model, its data and initial weights. Built once
    per model and shared by every cell (put once into Ray's object store)."""

    name: str
    model: nn.Module
    data: Any
    init_state: dict[str, torch.Tensor] | None  # None for an own model (no lottery schedules)

    @classmethod
    def load(cls, name: str) -> SampleBundle:
        import sample_models

        sample = sample_models.load_sample(name)
        return cls(name, sample.model, sample.data, sample_models.initial_state(name))


def calibration_for(cell: Cell) -> Any:
    """The engine's calibration for a cell: the first train samples, or a draw seeded by the cell."""
    from pruning_core.choice import Calibration

    return Calibration(order="shuffled", seed=cell.seed) if cell.calibration == "seeded" else Calibration()


def run_cell(cell: Cell, bundle: SampleBundle) -> pd.DataFrame:
    """Compute one cell through the public ``sweep`` API: its rows, with the identity columns first
    (and, for an own model, the model's and data's format and SHA-256)."""
    import sample_models
    from pruning_core.sweep import sweep

    spec = cell.model_spec
    reinit = functools.partial(sample_models.initial_state, cell.model) if spec.sample is not None else None
    table = sweep(
        bundle.model, bundle.data, [cell.method], list(cell.sparsities), scope=cell.scope, exclude=cell.exclude,
        seed=cell.seed, schedule=cell.schedule.build(cell.seed), init_state=bundle.init_state, reinit=reinit,
        calibration=calibration_for(cell),
    )  # fmt: skip
    identity = {
        "cell_id": cell.cell_id, "status": "ok", "error": "", "model": cell.model,
        "schedule_name": cell.schedule.name, "calibration": cell.calibration, **_file_columns(spec),
    }  # fmt: skip
    for i, (column, value) in enumerate(identity.items()):
        table.insert(i, column, value)
    table["seed"] = cell.seed
    return table


def _file_columns(spec: ModelSpec) -> dict[str, str]:
    """An own model's format and SHA-256 (and its data's) as result columns; nothing for a sample."""
    if spec.sample is not None:
        return {}
    identity = spec.describe()
    return {
        "model_format": identity["model"]["format"], "model_sha256": identity["model"]["sha256"],
        "data_format": identity["data"]["format"], "data_sha256": identity["data"]["sha256"],
    }  # fmt: skip


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
                **_file_columns(cell.model_spec),
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
