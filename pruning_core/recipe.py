"""Recipes: one validated, versioned description of a pruning choice, written as YAML or JSON.

A recipe names the model, the method and its settings, and records provenance (PruneLab and torch
versions, the metrics seen when it was exported) so a reader can check a reproduction. Loading
validates everything and reports every problem at once; YAML is read with the safe loader and
anchors/aliases are refused (they allow "billion laughs" memory bombs).
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import yaml

RECIPE_VERSION = 1
MAX_RECIPE_BYTES = 64_000  # a recipe naming a sparsity for each of 1,000 layers takes about 30 KB
MAX_NESTING = 16  # a recipe nests 3 levels deep; parsers take quadratic time on deep nesting
FORMATS = ("yaml", "json")


class RecipeError(ValueError):
    """A recipe that cannot be used; ``problems`` lists every reason, one sentence each."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("invalid recipe: " + "; ".join(self.problems))


@dataclass(frozen=True)
class Recipe:
    """A pruning choice, reproducible from this object alone."""

    model: str  # a sample model name, or "own" for a user's model file (see ``model_file``)
    method: str
    scope: str = "global"
    sparsity: float = 0.5
    layer_sparsities: dict[str, float] | None = None  # with scope "per-layer"
    exclude: tuple[str, ...] = ()
    seed: int = 0
    model_description: dict[str, Any] | None = None  # for a user model: what it is, free-form
    schedule: dict[str, Any] | None = None  # reserved for prune-and-fine-tune schedules
    finetune: dict[str, Any] | None = None  # reserved for fine-tuning settings
    provenance: dict[str, Any] = field(default_factory=dict)
    calibration: dict[str, Any] | None = None  # Calibration.to_dict(); None = the default calibration
    # A user's own model: {"format", "sha256"[, "factory"]}; its data: {"format", "sha256"[, "label_column"]}.
    # Identities only, never a path from the user's machine: whoever applies the recipe gives the files
    # again and ``source_problems`` checks they are the same bytes.
    model_file: dict[str, Any] | None = None
    data_file: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        # Stored complete, so a recipe made without a calibration equals the same recipe read back
        # (every recipe is written with its calibration).
        object.__setattr__(self, "calibration", self.calibration_object.to_dict())

    @property
    def is_own_model(self) -> bool:
        """True when the recipe is for a user's model file rather than a sample."""
        return self.model_file is not None

    @property
    def calibration_object(self):
        """The recipe's calibration spec as a ``Calibration`` (the default when the recipe has none)."""
        from pruning_core.choice import Calibration

        return Calibration.from_dict(self.calibration)

    def to_choice(self):
        """The recipe's pruning choice (method, scope, sparsity, exclude, seed, schedule, calibration)
        as the :class:`~pruning_core.choice.PruningChoice` every path applies."""
        from pruning_core.choice import PruningChoice

        common = {
            "exclude": tuple(self.exclude),
            "seed": self.seed,
            "schedule": self.schedule_object if self.trains else None,
            "calibration": self.calibration_object,
        }
        if self.scope == "per-layer":
            return PruningChoice.per_layer(self.method, dict(self.layer_sparsities or {}), **common)
        return PruningChoice(method=self.method, scope=self.scope, sparsity=float(self.sparsity), **common)

    @classmethod
    def from_choice(
        cls,
        model: str,
        choice,
        provenance: dict[str, Any] | None = None,
        model_description: dict[str, Any] | None = None,
        model_file: Mapping[str, Any] | None = None,
        data_file: Mapping[str, Any] | None = None,
    ) -> Recipe:
        """The recipe that records ``choice`` (pass a resolved one: a recipe records what is applied)
        completely for the sample ``model``, or with ``model_file`` (see :func:`file_identity`) for a
        user's model (``model`` is then ``"own"``)."""
        per_layer = isinstance(choice.sparsity, tuple)
        schedule = choice.schedule
        return cls(
            model=model,
            method=choice.method_object.name,
            scope=choice.scope,
            sparsity=0.0 if per_layer else float(choice.sparsity),
            layer_sparsities=dict(choice.sparsity) if per_layer else None,
            exclude=tuple(choice.exclude),
            seed=int(choice.seed),
            model_description=model_description,
            schedule=None if schedule is None else {k: v for k, v in schedule.to_dict().items() if k != "finetune"},
            finetune=None if schedule is None or schedule.finetune is None else schedule.finetune.to_dict(),
            provenance=dict(provenance or {}),
            calibration=choice.calibration.to_dict(),
            model_file=dict(model_file) if model_file else None,
            data_file=dict(data_file) if data_file else None,
        )

    @property
    def granularity(self) -> str:
        from pruning_core.methods import get_method

        return get_method(self.method).granularity

    @property
    def schedule_object(self):
        """The recipe's schedule and fine-tuning as a ``Schedule`` (one-shot without training if unset)."""
        from pruning_core.finetune import FineTuneConfig
        from pruning_core.schedules import Schedule

        finetune = FineTuneConfig(**self.finetune) if self.finetune else None
        return Schedule(**{**(self.schedule or {}), "finetune": finetune})

    @property
    def trains(self) -> bool:
        """True when reproducing the recipe involves training (fine-tuning or a multi-step schedule)."""
        return self.schedule_object.finetune_epochs > 0

    @property
    def sparsity_argument(self) -> float | dict[str, float]:
        """What ``compute_masks`` takes as ``sparsity`` for this recipe."""
        return dict(self.layer_sparsities or {}) if self.scope == "per-layer" else self.sparsity

    def to_dict(self) -> dict[str, Any]:
        from pruning_core.methods import get_method

        method = get_method(self.method)
        pruning: dict[str, Any] = {
            "method": self.method,
            "granularity": method.granularity,
            "scope": self.scope,
        }
        if self.scope == "per-layer":
            pruning["layer_sparsities"] = dict(self.layer_sparsities or {})
        else:
            pruning["sparsity"] = self.sparsity
        if method.granularity == "n:m":
            pruning["n_m"] = {"n": getattr(method, "n", None), "m": getattr(method, "m", None)}
        pruning["exclude"] = list(self.exclude)
        pruning["seed"] = self.seed
        pruning["calibration"] = self.calibration_object.to_dict()  # always written: the choice, complete
        model: dict[str, Any] = {"file": dict(self.model_file)} if self.model_file else {"sample": self.model}
        if self.data_file:
            model["data"] = dict(self.data_file)
        if self.model_description:
            model["description"] = dict(self.model_description)
        return {
            "version": RECIPE_VERSION,
            "model": model,
            "pruning": pruning,
            "schedule": self.schedule,
            "finetune": self.finetune,
            "provenance": dict(self.provenance),
        }


def provenance(metrics: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Versions and time of export, plus the metrics observed (numbers only)."""
    from pruning_core import __version__

    record: dict[str, Any] = {
        "prunelab_version": __version__,
        "torch_version": torch.__version__.split("+")[0],
        "exported_at": _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat(),
    }
    if metrics:
        record["metrics"] = {k: (v.item() if hasattr(v, "item") else v) for k, v in metrics.items()}
    return record


def dumps(recipe: Recipe, fmt: str = "yaml") -> str:
    """The recipe as YAML or JSON text."""
    data = recipe.to_dict()
    if fmt == "json":
        return json.dumps(data, indent=2) + "\n"
    if fmt == "yaml":
        return "# PruneLab pruning recipe\n" + yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
    raise ValueError(f"unknown recipe format {fmt!r}; valid formats: {', '.join(FORMATS)}")


def _parse(text: str | bytes, fmt: str | None) -> Any:
    if isinstance(text, bytes):
        if len(text) > MAX_RECIPE_BYTES:
            raise RecipeError([f"the file is {len(text):,} bytes; a recipe is at most {MAX_RECIPE_BYTES:,}"])
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise RecipeError(["the file is not UTF-8 text; a recipe is a YAML or JSON text file"]) from None
    if len(text) > MAX_RECIPE_BYTES:
        raise RecipeError([f"the text is {len(text):,} characters; a recipe is at most {MAX_RECIPE_BYTES:,}"])
    if fmt == "json" or (fmt is None and text.lstrip().startswith("{")):
        if _json_nesting_depth(text) > MAX_NESTING:
            raise RecipeError([f"the text nests more than {MAX_NESTING} levels deep; a recipe nests 3"])
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise RecipeError([f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"]) from None
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser when installed: ~10x faster
    try:
        _check_yaml_events(text, loader)
        return yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader (C or Python SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise RecipeError([f"not valid YAML{where}: {problem}"]) from None


def _json_nesting_depth(text: str) -> int:
    """How deep a JSON text nests its brackets (outside strings), in one linear pass."""
    deepest = depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _check_yaml_events(text: str, loader: type) -> None:
    """Read the YAML event stream and stop at the first anchor, alias or nesting deeper than
    ``MAX_NESTING``, before any object is built: YAML parsers take quadratic time on deep nesting."""
    depth = 0
    for event in yaml.parse(text, Loader=loader):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise RecipeError(["YAML anchors and aliases (& and *) are not allowed in a recipe"])
        if isinstance(event, yaml.SequenceStartEvent | yaml.MappingStartEvent):
            depth += 1
            if depth > MAX_NESTING:
                raise RecipeError([f"the text nests more than {MAX_NESTING} levels deep; a recipe nests 3"])
        elif isinstance(event, yaml.SequenceEndEvent | yaml.MappingEndEvent):
            depth -= 1


_TOP_KEYS = {"version", "model", "pruning", "schedule", "finetune", "provenance"}
_MODEL_KEYS = {"sample", "file", "data", "description"}
OWN_MODEL = "own"  # ``Recipe.model`` of a recipe for a user's model file
MODEL_FILE_FORMATS = ("onnx", "safetensors", "pt")
DATA_FILE_FORMATS = ("csv", "npz")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_FACTORY = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")  # package.module:function, or a sample's name


def file_identity(fmt: str, sha256: str, **extra: Any) -> dict[str, Any]:
    """A file's identity for a recipe: its format and SHA-256 (plus e.g. ``factory`` or
    ``label_column``; None values are left out). Never a path: the recipe travels."""
    return {"format": fmt, "sha256": sha256, **{k: v for k, v in extra.items() if v is not None}}


def _file_problems(section: Any, where: str, formats: tuple[str, ...], extra: dict[str, Any]) -> list[str]:
    """What is wrong with ``model.file`` or ``model.data`` (format, sha256, the optional extra keys)."""
    if not isinstance(section, dict):
        return [f"'{where}' must be a mapping with 'format' and 'sha256', not {section!r}"]
    problems = []
    unknown = sorted(set(map(str, section)) - {"format", "sha256", *extra})
    if unknown:
        valid = ", ".join(["format", "sha256", *extra])
        problems.append(f"unknown key(s) in '{where}': {', '.join(unknown)}; valid: {valid}")
    if section.get("format") not in formats:
        problems.append(f"'{where}.format' is {section.get('format')!r}; valid: {', '.join(formats)}")
    digest = section.get("sha256")
    if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
        problems.append(f"'{where}.sha256' must be 64 lowercase hexadecimal digits, not {digest!r}")
    for key, pattern in extra.items():
        value = section.get(key)
        if value is not None and (not isinstance(value, str) or (pattern and not pattern.fullmatch(value))):
            problems.append(
                f"'{where}.{key}' is {value!r}; "
                + ("give a sample architecture's name or package.module:function" if pattern else "give text")
            )
    return problems


def source_problems(recipe: Recipe, model_sha256: str | None, data_sha256: str | None = None) -> list[str]:
    """Why the files given do not match the ones a recipe for a user's model was made with (empty
    when they do, and always for a sample's recipe): the SHA-256 of each is compared."""
    if not recipe.is_own_model:
        return []
    problems = []
    model_file = recipe.model_file or {}
    wanted = str(model_file.get("sha256"))
    if model_sha256 is None:
        problems.append(
            f"this recipe is for a {model_file.get('format')} model file (SHA-256 {wanted[:12]}...); give it"
        )
    elif model_sha256 != wanted:
        problems.append(
            f"the model file's SHA-256 is {model_sha256[:12]}..., the recipe's is {wanted[:12]}...: not the same file"
        )
    if recipe.data_file and data_sha256 is not None and data_sha256 != recipe.data_file["sha256"]:
        problems.append(
            f"the data file's SHA-256 is {data_sha256[:12]}..., the recipe's is {recipe.data_file['sha256'][:12]}...: "
            "not the same data (the recipe's recorded metrics will differ)"
        )
    return problems


_PRUNING_KEYS = {
    "method",
    "granularity",
    "scope",
    "sparsity",
    "layer_sparsities",
    "n_m",
    "exclude",
    "seed",
    "calibration",
}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def from_dict(data: Any) -> Recipe:
    """Validate parsed recipe data; raise RecipeError listing every problem found."""
    if not isinstance(data, dict):
        raise RecipeError([f"a recipe is a mapping of keys to values, not {type(data).__name__}"])
    problems: list[str] = []
    unknown = sorted(set(map(str, data)) - _TOP_KEYS)
    if unknown:
        problems.append(f"unknown top-level key(s) {', '.join(unknown)}; valid: {', '.join(sorted(_TOP_KEYS))}")
    problems += _version_problems(data.get("version"))
    fields: dict[str, Any] = {}
    model_name, description = _model_section(data.get("model"), fields, problems)
    pruning = data.get("pruning")
    if not isinstance(pruning, dict):
        problems.append("'pruning' must be a mapping with at least 'method'")
        pruning = {}
    method = _pruning_method(pruning, fields, problems)
    layers = _sample_layers(model_name)
    _sparsity_fields(pruning, method, layers, model_name, fields, problems)
    _exclude_and_seed(pruning, layers, model_name, fields, problems)
    problems += _calibration_problems(pruning.get("calibration"), fields)
    for key in ("schedule", "finetune"):
        value = data.get(key)
        if value is not None and not isinstance(value, dict):
            problems.append(f"'{key}' must be a mapping or null, not {value!r}")
    problems += _schedule_problems(data.get("schedule"), data.get("finetune"))
    provenance_section = data.get("provenance", {})
    if provenance_section is None:
        provenance_section = {}
    if not isinstance(provenance_section, dict):
        problems.append("'provenance' must be a mapping")
        provenance_section = {}
    if problems:
        raise RecipeError(problems)
    return Recipe(
        model=str(model_name),
        model_description=description,
        schedule=data.get("schedule"),
        finetune=data.get("finetune"),
        provenance=provenance_section,
        **fields,
    )


def _version_problems(version: Any) -> list[str]:
    if version is None:
        return ["missing 'version' (this PruneLab writes version 1)"]
    if not isinstance(version, int) or isinstance(version, bool):
        return [f"'version' must be an integer, not {version!r}"]
    if version > RECIPE_VERSION:
        return [
            f"recipe version {version} is newer than this PruneLab understands (up to {RECIPE_VERSION}); "
            "upgrade PruneLab"
        ]
    if version < 1:
        return [f"'version' {version} is not a recipe version (1 is the first)"]
    return []


def _model_section(section: Any, fields: dict[str, Any], problems: list[str]) -> tuple[str | None, Any]:
    """The sample's name (or ``OWN_MODEL``) and the description; own-model identities go to ``fields``."""
    import sample_models

    samples = ", ".join(sample_models.available())
    if not isinstance(section, dict):
        problems.append(f"'model' must be a mapping with 'sample: NAME' ({samples}) or 'file: {{format, sha256}}'")
        return None, None
    unknown = sorted(set(map(str, section)) - _MODEL_KEYS)
    if unknown:
        problems.append(f"unknown key(s) in 'model': {', '.join(unknown)}; valid: {', '.join(sorted(_MODEL_KEYS))}")
    model_name = section.get("sample")
    description = section.get("description")
    if description is not None and not isinstance(description, dict):
        problems.append("'model.description' must be a mapping (name, architecture, notes...)")
    own = _own_model_fields(section, problems)
    if own:
        fields.update(own)
        return OWN_MODEL, description
    if model_name is None and "file" not in section:
        problems.append(f"'model' needs 'sample: NAME' ({samples}) or, for your own model, 'file: {{format, sha256}}'")
    elif model_name is not None and model_name not in sample_models.available():
        problems.append(f"unknown model {model_name!r}; valid: {samples}")
    return model_name, description


def _pruning_method(pruning: dict, fields: dict[str, Any], problems: list[str]) -> Any:
    """The recipe's method object (None when missing or unknown), with its granularity and N:M checked."""
    from pruning_core.methods import get_method, method_names

    unknown = sorted(set(map(str, pruning)) - _PRUNING_KEYS)
    if unknown:
        problems.append(f"unknown key(s) in 'pruning': {', '.join(unknown)}; valid: {', '.join(sorted(_PRUNING_KEYS))}")
    method = None
    method_name = pruning.get("method")
    if method_name is None and pruning:
        problems.append("'pruning.method' is missing")
    elif method_name is not None and not isinstance(method_name, str):
        problems.append(f"'pruning.method' must be text, not {method_name!r}")
    elif method_name is not None:
        try:
            method = get_method(method_name)
            fields["method"] = method.name
        except ValueError:
            problems.append(f"unknown method {method_name!r}; valid: {', '.join(method_names())} or nm-N:M")
    if method is not None and "granularity" in pruning and pruning["granularity"] != method.granularity:
        problems.append(
            f"'pruning.granularity' is {pruning['granularity']!r} but {method.name} is {method.granularity!r}"
        )
    n_m = pruning.get("n_m")
    if n_m is not None:
        pattern = {"n": getattr(method, "n", None), "m": getattr(method, "m", None)}
        if method is None or method.granularity != "n:m":
            problems.append("'pruning.n_m' is only for N:M methods")
        elif not isinstance(n_m, dict) or {"n": n_m.get("n"), "m": n_m.get("m")} != pattern:
            problems.append(f"'pruning.n_m' must be {{n: {pattern['n']}, m: {pattern['m']}}} for {method.name}")
    return method


def _sample_layers(model_name: str | None) -> list[str]:
    """A sample's prunable layers (empty for an own model: its layers are checked when it is loaded)."""
    import sample_models
    from pruning_core.targets import prunable_layers

    if model_name in sample_models.available():
        return prunable_layers(sample_models.get_spec(str(model_name)).build())
    return []


def _sparsity_fields(  # noqa: PLR0913 - the section, what was read before it, and where to write
    pruning: dict, method: Any, layers: list[str], model_name: Any, fields: dict[str, Any], problems: list[str]
) -> None:
    """Scope and sparsity (one fraction, or with scope per-layer a fraction per layer)."""
    from pruning_core.masks import SCOPES

    scope = pruning.get("scope", "global")
    if scope not in SCOPES:
        problems.append(f"unknown scope {scope!r}; valid: {', '.join(SCOPES)}")
    else:
        fields["scope"] = scope
    if scope == "per-layer":
        _layer_sparsities(pruning, layers, model_name, fields, problems)
        return
    if "layer_sparsities" in pruning:
        problems.append("'layer_sparsities' needs scope 'per-layer'")
    sparsity = pruning.get("sparsity")
    if sparsity is None:
        if method is None or method.fixed_sparsity is None:
            problems.append("'pruning.sparsity' is missing: give a fraction of weights to remove in [0, 1)")
        else:
            fields["sparsity"] = method.fixed_sparsity
    elif not _is_number(sparsity):
        problems.append(f"'pruning.sparsity' must be a number in [0, 1), not {sparsity!r}")
    elif not 0 <= sparsity < 1:
        problems.append(f"'pruning.sparsity' is {sparsity}; give a fraction in [0, 1), e.g. 0.9")
    else:
        fields["sparsity"] = float(sparsity)


def _layer_sparsities(
    pruning: dict, layers: list[str], model_name: Any, fields: dict[str, Any], problems: list[str]
) -> None:
    per_layer = pruning.get("layer_sparsities")
    if not isinstance(per_layer, dict) or not per_layer:
        problems.append("scope 'per-layer' needs 'pruning.layer_sparsities': a mapping of layer to fraction")
    else:
        for layer, value in per_layer.items():
            if layers and layer not in layers:
                problems.append(
                    f"layer_sparsities names {layer!r}, not a layer of {model_name}; valid: {', '.join(layers)}"
                )
            if not _is_number(value) or not 0 <= value < 1:
                problems.append(f"sparsity of layer {layer!r} is {value!r}; give a fraction in [0, 1)")
        fields["layer_sparsities"] = {str(k): float(v) for k, v in per_layer.items() if _is_number(v)}
    if "sparsity" in pruning:
        problems.append("give either 'sparsity' or, with scope 'per-layer', 'layer_sparsities', not both")


def _exclude_and_seed(
    pruning: dict, layers: list[str], model_name: Any, fields: dict[str, Any], problems: list[str]
) -> None:
    exclude = pruning.get("exclude", [])
    if not isinstance(exclude, list) or not all(isinstance(x, str) for x in exclude):
        problems.append(f"'pruning.exclude' must be a list of layer names, not {exclude!r}")
    else:
        bad = [x for x in exclude if layers and x not in layers]
        if bad:
            problems.append(
                f"cannot exclude {', '.join(map(repr, bad))}: not layers of {model_name}; valid: {', '.join(layers)}"
            )
        fields["exclude"] = tuple(exclude)
    seed = pruning.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63:
        problems.append(f"'pruning.seed' must be a non-negative integer, not {seed!r}")
    else:
        fields["seed"] = seed


_CALIBRATION_KEYS = {"split", "samples", "order", "seed"}


def _own_model_fields(section: dict, problems: list[str]) -> dict[str, Any]:
    """``model_file``/``data_file`` from a recipe's model section (empty for a sample's recipe);
    problems are appended."""
    if "file" not in section:
        if "data" in section:
            problems.append("'model.data' is only for your own model ('model.file'); a sample brings its data")
        return {}
    if "sample" in section:
        problems.append("'model' gives both 'sample' and 'file'; give one")
    import sample_models

    factory = re.compile("|".join([_FACTORY.pattern, *map(re.escape, sample_models.available())]))
    found = _file_problems(section["file"], "model.file", MODEL_FILE_FORMATS, {"factory": factory})
    data = section.get("data")
    if data is not None:
        found += _file_problems(data, "model.data", DATA_FILE_FORMATS, {"label_column": None})
    problems += found
    if found:
        return {}
    return {"model_file": dict(section["file"]), "data_file": dict(data) if data else None}


def _calibration_problems(section: Any, fields: dict[str, Any]) -> list[str]:
    """What is wrong with ``pruning.calibration`` (absent: the default calibration, as older recipes
    were made); a valid section is stored in ``fields``. Every problem is listed."""
    from pruning_core.choice import CALIBRATION_ORDERS, CALIBRATION_SPLITS, Calibration

    if section is None:
        return []
    if not isinstance(section, dict):
        return [f"'pruning.calibration' must be a mapping (split, samples, order, seed), not {section!r}"]
    problems = []
    unknown = sorted(set(map(str, section)) - _CALIBRATION_KEYS)
    if unknown:
        valid = ", ".join(sorted(_CALIBRATION_KEYS))
        problems.append(f"unknown key(s) in 'pruning.calibration': {', '.join(unknown)}; valid: {valid}")
    split = section.get("split", "train")
    if split not in CALIBRATION_SPLITS:
        problems.append(f"'pruning.calibration.split' is {split!r}; valid: {', '.join(CALIBRATION_SPLITS)}")
    samples = section.get("samples", 256)
    if not isinstance(samples, int) or isinstance(samples, bool) or not 1 <= samples <= 100_000:
        problems.append(f"'pruning.calibration.samples' must be an integer from 1 to 100000, not {samples!r}")
    order = section.get("order", "first")
    if order not in CALIBRATION_ORDERS:
        problems.append(f"'pruning.calibration.order' is {order!r}; valid: {', '.join(CALIBRATION_ORDERS)}")
    seed = section.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63:
        problems.append(f"'pruning.calibration.seed' must be a non-negative integer, not {seed!r}")
    if not problems:
        fields["calibration"] = Calibration.from_dict(section).to_dict()
    return problems


_SCHEDULE_KEYS = {"kind", "rounds", "initial_sparsity", "pruning_steps", "rewind_iteration"}
_FINETUNE_KEYS = {"epochs", "lr", "optimizer", "batch_size", "momentum", "weight_decay", "seed"}


def _schedule_problems(schedule: Any, finetune: Any) -> list[str]:
    """What is wrong with a recipe's schedule and fine-tuning sections (nothing when both are null)."""
    from pruning_core.finetune import FineTuneConfig
    from pruning_core.schedules import Schedule

    problems = []
    if isinstance(schedule, dict):
        unknown = sorted(set(map(str, schedule)) - _SCHEDULE_KEYS)
        if unknown:
            problems.append(
                f"unknown key(s) in 'schedule': {', '.join(unknown)}; valid: {', '.join(sorted(_SCHEDULE_KEYS))}"
            )
    if isinstance(finetune, dict):
        unknown = sorted(set(map(str, finetune)) - _FINETUNE_KEYS)
        if unknown:
            problems.append(
                f"unknown key(s) in 'finetune': {', '.join(unknown)}; valid: {', '.join(sorted(_FINETUNE_KEYS))}"
            )
    if problems or not isinstance(schedule or {}, dict) or not isinstance(finetune or {}, dict):
        return problems
    try:
        ft = FineTuneConfig(**finetune) if finetune else None
        Schedule(**{**(schedule or {}), "finetune": ft})
    except (TypeError, ValueError) as exc:
        problems.append(f"schedule/finetune: {exc}")
    return problems


def loads(text: str | bytes, fmt: str | None = None) -> Recipe:
    """Parse and validate a recipe from YAML or JSON text (format guessed when not given)."""
    if fmt is not None and fmt not in FORMATS:
        raise ValueError(f"unknown recipe format {fmt!r}; valid formats: {', '.join(FORMATS)}")
    return from_dict(_parse(text, fmt))


def load(path) -> Recipe:
    """Read a recipe file (.yaml, .yml or .json)."""
    from pathlib import Path

    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RecipeError([f"cannot read {str(path)!r}: {exc.strerror}"]) from None
    fmt = "json" if path.suffix.lower() == ".json" else None
    return loads(data, fmt)
