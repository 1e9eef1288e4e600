"""The explorer's shared choice as one small, hashable object, and its round trip to the URL.

Every setting lives in the query string, so any view is a link that reopens exactly. Parsing a
link never raises: bad or unknown values fall back to defaults and are reported as notices.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import sample_models
from pruning_core.choice import PruningChoice
from pruning_core.methods import get_method, method_names

MAX_LEVELS = 40
MAX_QUERY_VALUE = 2_000  # no setting needs more; longer values are dropped unread (and not echoed)
SWEEP_SCOPES = ("global", "layerwise", "erk")


@dataclass(frozen=True)
class ExplorerConfig:
    """What the sidebar chooses: model, methods, scope, sparsity levels, excluded layers, seed."""

    model: str = "digits-mlp"
    methods: tuple[str, ...] = ("magnitude", "random", "structured-l1")
    scope: str = "global"
    s_min: float = 0.0
    s_max: float = 0.95
    n_levels: int = 20
    explicit_levels: tuple[float, ...] = ()  # overrides the range when given
    exclude: tuple[str, ...] = ()
    seed: int = 0
    allocation: tuple[tuple[str, float], ...] = ()  # explicit per-layer sparsities (a proposal)
    allocation_method: str = ""

    @property
    def levels(self) -> tuple[float, ...]:
        """The sparsities to sweep, ascending, rounded to 4 decimals."""
        if self.explicit_levels:
            return tuple(sorted(set(self.explicit_levels)))
        if self.n_levels == 1:
            return (round(self.s_min, 4),)
        step = (self.s_max - self.s_min) / (self.n_levels - 1)
        return tuple(sorted({round(self.s_min + i * step, 4) for i in range(self.n_levels)}))

    def choice(self, method: str, sparsity: float) -> PruningChoice:
        """The pruning choice the sidebar makes for ``method`` at ``sparsity``, as requested (every
        path resolves it the same way, with notes)."""
        return PruningChoice(
            method=method, scope=self.scope, sparsity=float(sparsity), exclude=tuple(self.exclude), seed=self.seed
        )

    def choices(self) -> tuple[PruningChoice, ...]:
        """One choice per chosen method and swept level, in that order."""
        return tuple(self.choice(method, level) for method in self.methods for level in self.levels)

    def allocation_choice(self) -> PruningChoice | None:
        """The per-layer proposal as a choice, or None without one."""
        if not self.allocation:
            return None
        return PruningChoice.per_layer(
            self.allocation_method, dict(self.allocation), exclude=tuple(self.exclude), seed=self.seed
        )

    def to_query(self) -> dict[str, str]:
        """Query parameters of this config; defaults are left out to keep links short."""
        default = ExplorerConfig()
        query = {
            "model": self.model,
            "methods": ",".join(self.methods),
            "scope": self.scope,
            "smin": _fmt(self.s_min),
            "smax": _fmt(self.s_max),
            "n": str(self.n_levels),
            "levels": ",".join(_fmt(s) for s in self.explicit_levels),
            "exclude": ",".join(self.exclude),
            "seed": str(self.seed),
            "alloc": f"{self.allocation_method}|" + ",".join(f"{k}:{_fmt(v)}" for k, v in self.allocation)
            if self.allocation
            else "",
        }
        defaults = {
            "model": default.model,
            "methods": ",".join(default.methods),
            "scope": default.scope,
            "smin": _fmt(default.s_min),
            "smax": _fmt(default.s_max),
            "n": str(default.n_levels),
            "levels": "",
            "exclude": "",
            "seed": "0",
            "alloc": "",
        }
        return {k: v for k, v in query.items() if v != defaults[k]}


QUERY_KEYS = ("model", "methods", "scope", "smin", "smax", "n", "levels", "exclude", "seed", "alloc")


def _fmt(x: float) -> str:
    return repr(float(x)).removesuffix(".0")  # shortest text that reads back as the same float


def _float(text: str) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


@dataclass
class _Parsed:
    config: ExplorerConfig = field(default_factory=ExplorerConfig)
    notices: list[str] = field(default_factory=list)


def from_query(query: Mapping[str, str], layers_of=None) -> tuple[ExplorerConfig, list[str]]:
    """Parse query parameters into a config; every bad value is replaced by its default and noted.

    ``layers_of(model_name)`` gives the prunable layers of a model, to check ``exclude``.
    """
    default = ExplorerConfig()
    notices: list[str] = []
    changes: dict = {}
    too_long = [key for key, value in query.items() if len(str(value)) > MAX_QUERY_VALUE]
    for key in too_long:
        notices.append(f"{key} is {len(str(query[key])):,} characters long (at most {MAX_QUERY_VALUE:,}); ignored")
    query = {key: value for key, value in query.items() if key not in too_long}

    model = query.get("model")
    if model is not None:
        if model in sample_models.available():
            changes["model"] = model
        else:
            notices.append(f"unknown model {model!r} in the link; using {default.model!r}")

    if "methods" in query:
        good, bad = [], []
        for name in (m.strip() for m in query["methods"].split(",")):
            if not name:
                continue
            try:
                get_method(name)
            except ValueError:
                bad.append(name)
            else:
                if name not in good:
                    good.append(name)
        if bad:
            notices.append(
                f"unknown method(s) {', '.join(map(repr, bad))} in the link ignored; valid: {', '.join(method_names())}"
            )
        if good:
            changes["methods"] = tuple(good)
        elif bad:
            notices.append(f"no valid method left; using {', '.join(default.methods)}")

    scope = query.get("scope")
    if scope is not None:
        if scope in SWEEP_SCOPES:
            changes["scope"] = scope
        else:
            notices.append(f"unknown scope {scope!r} in the link; valid: {', '.join(SWEEP_SCOPES)}")

    for key, attr in (("smin", "s_min"), ("smax", "s_max")):
        if key in query:
            value = _float(query[key])
            if value is None or not 0 <= value < 1:
                notices.append(f"{key}={query[key]!r} is not a sparsity in [0, 1); using {getattr(default, attr):g}")
            else:
                changes[attr] = value
    if changes.get("s_min", default.s_min) > changes.get("s_max", default.s_max):
        notices.append(
            f"the link's smallest sparsity smin={query.get('smin')!r} exceeds its largest smax={query.get('smax')!r}; "
            "using the default range"
        )
        changes.pop("s_min", None)
        changes.pop("s_max", None)

    if "n" in query:
        try:
            n = int(query["n"])
        except ValueError:
            n = -1
        if 1 <= n <= MAX_LEVELS:
            changes["n_levels"] = n
        else:
            notices.append(f"n={query['n']!r} is not a level count from 1 to {MAX_LEVELS}; using {default.n_levels}")

    if query.get("levels"):
        values = [_float(v) for v in query["levels"].split(",")]
        if values and all(v is not None and 0 <= v < 1 for v in values) and len(values) <= MAX_LEVELS:
            changes["explicit_levels"] = tuple(sorted(set(values)))
        else:
            notices.append(
                f"levels={query['levels']!r} is not a list of up to {MAX_LEVELS} sparsities in [0, 1); using the range"
            )

    if query.get("exclude"):
        names = tuple(n.strip() for n in query["exclude"].split(",") if n.strip())
        valid = layers_of(changes.get("model", default.model)) if layers_of else None
        bad = [n for n in names if valid is not None and n not in valid]
        if bad:
            notices.append(f"layer(s) {', '.join(map(repr, bad))} in the link are not in this model; not excluded")
        changes["exclude"] = tuple(n for n in names if n not in bad)

    if "seed" in query:
        try:
            changes["seed"] = int(query["seed"])
        except ValueError:
            notices.append(f"seed={query['seed']!r} is not an integer; using 0")

    if query.get("alloc"):
        allocation = _parse_allocation(
            query["alloc"], layers_of(changes.get("model", default.model)) if layers_of else None
        )
        if isinstance(allocation, str):
            notices.append(allocation)
        else:
            changes["allocation_method"], changes["allocation"] = allocation

    return replace(default, **changes), notices


def _parse_allocation(text: str, layers) -> tuple[str, tuple[tuple[str, float], ...]] | str:
    """``method|layer:s,layer:s`` into (method, pairs), or a notice saying what is wrong."""
    method, _, pairs = text.partition("|")
    try:
        get_method(method)
    except ValueError:
        return f"alloc={text!r} names unknown method {method!r}; per-layer proposal ignored"
    parsed = []
    for item in pairs.split(","):
        layer, _, value = item.partition(":")
        number = _float(value)
        if number is None or not 0 <= number < 1 or (layers is not None and layer not in layers):
            return f"alloc={text!r}: {item!r} is not layer:sparsity for a layer of this model; proposal ignored"
        parsed.append((layer, number))
    return method, tuple(parsed)
