"""The explorer's shared choice as one small, hashable object, and its round trip to the URL.

Every setting lives in the query string, so any view is a link that reopens exactly. Parsing a
link never raises: bad or unknown values fall back to defaults and are reported as notices.

``URL_FIELDS`` declares each setting once, as TensorFlow Playground's ``PROPS`` table does: its
query key, the ``ExplorerConfig`` attribute(s) it holds, how its value is written and read back
(with the notice a bad value gets), and the sidebar widget(s) that show it. ``to_query``,
``from_query`` and the sidebar's widget sync loop over that table; adding a setting is adding
one ``UrlField``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import sample_models
from pruning_core.choice import PruningChoice
from pruning_core.methods import get_method, method_names

MAX_LEVELS = 40
MAX_QUERY_VALUE = 2_000  # no setting needs more; longer values are dropped unread (and not echoed)
SWEEP_SCOPES = ("global", "layerwise", "erk")

LayersOf = Callable[[str], Any]  # model name -> its prunable layer names (None when not known yet)

UPLOAD = "upload"  # the model name (selector, config, URL) of the model this session uploaded
UPLOADS_ENV = "PRUNELAB_UPLOADS"


def uploads_enabled() -> bool:
    """Whether this server accepts users' model files: ``PRUNELAB_UPLOADS=0`` turns them off (a
    workshop server), and with them every upload widget and the ``model=upload`` link."""
    return os.environ.get(UPLOADS_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


UPLOAD_SECONDS_ENV = "PRUNELAB_UPLOAD_SECONDS"
UPLOAD_SECONDS_DEFAULT = 120.0


def upload_seconds() -> float | None:
    """The wall-clock limit on each computation on an uploaded model (loading it, a sweep, a view):
    ``PRUNELAB_UPLOAD_SECONDS`` seconds (0 refuses every one: for tests), ``off`` for no limit (a
    private server); unset or unreadable, 120 s."""
    text = os.environ.get(UPLOAD_SECONDS_ENV, "").strip().lower()
    if text in ("off", "none", "no"):
        return None
    value = _float(text)
    return value if value is not None and value >= 0 else UPLOAD_SECONDS_DEFAULT


def model_names() -> list[str]:
    """What the model selector offers: the samples, plus the session's upload when uploads are on."""
    return sample_models.available() + ([UPLOAD] if uploads_enabled() else [])


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
        return to_query(self)


# --- the table ---------------------------------------------------------------------------------------


class BadValue(ValueError):
    """A link's value that cannot be used; the message is the notice shown to the user."""


KEEP = object()  # returned by a parser when the link's value changes nothing (and needs no notice)


@dataclass
class ParseContext:
    """What a field's parser may read besides its own text: the model the link chose so far (fields
    are read in table order), the layers of a model, and a list to add notices to."""

    model: str
    layers_of: LayersOf | None
    notices: list[str]

    def layers(self) -> Any:
        return self.layers_of(self.model) if self.layers_of else None


@dataclass(frozen=True)
class Widget:
    """A sidebar widget showing a setting: its session-state key, its kind, and its value for a config."""

    key: str
    kind: str  # the Streamlit widget: selectbox, multiselect, radio, slider, text_input, number_input
    value: Callable[[ExplorerConfig], Any]


@dataclass(frozen=True)
class UrlField:
    """One setting's URL round trip: ``format`` writes the attributes' value as the ``key``'s text;
    ``parse`` reads it back or raises :class:`BadValue` with the notice (the default is kept).

    A field of several attributes (``alloc``) formats and parses a tuple of their values.
    ``skip_empty`` ignores an empty value silently instead of parsing it.
    """

    key: str
    attrs: tuple[str, ...]
    format: Callable[[Any], str]
    parse: Callable[[str, ParseContext], Any]
    widgets: tuple[Widget, ...] = ()
    skip_empty: bool = False

    def get(self, config: ExplorerConfig) -> Any:
        values = tuple(getattr(config, attr) for attr in self.attrs)
        return values if len(values) > 1 else values[0]

    def changes(self, value: Any) -> dict[str, Any]:
        return dict(zip(self.attrs, value, strict=True)) if len(self.attrs) > 1 else {self.attrs[0]: value}

    def default(self) -> Any:
        return self.get(ExplorerConfig())


def _fmt(x: float) -> str:
    return repr(float(x)).removesuffix(".0")  # shortest text that reads back as the same float


def _float(text: str) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _parse_model(text: str, context: ParseContext) -> str:
    if text == UPLOAD and not uploads_enabled():
        raise BadValue(f"this server does not accept uploaded models; using {ExplorerConfig.model!r}")
    if text not in model_names():
        raise BadValue(
            f"unknown model {text!r} in the link; valid: {', '.join(model_names())}; using {ExplorerConfig.model!r}"
        )
    context.model = text
    return text


def _parse_methods(text: str, context: ParseContext) -> Any:
    good: list[str] = []
    bad: list[str] = []
    for name in (m.strip() for m in text.split(",")):
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
        context.notices.append(
            f"unknown method(s) {', '.join(map(repr, bad))} in the link ignored; valid: {', '.join(method_names())}"
        )
    if good:
        return tuple(good)
    if bad:
        raise BadValue(f"no valid method left; using {', '.join(ExplorerConfig.methods)}")
    return KEEP


def _parse_scope(text: str, context: ParseContext) -> str:
    if text not in SWEEP_SCOPES:
        raise BadValue(f"unknown scope {text!r} in the link; valid: {', '.join(SWEEP_SCOPES)}")
    return text


def _sparsity_parser(key: str, attr: str) -> Callable[[str, ParseContext], float]:
    def parse(text: str, context: ParseContext) -> float:
        value = _float(text)
        if value is None or not 0 <= value < 1:
            default = getattr(ExplorerConfig(), attr)
            raise BadValue(f"{key}={text!r} is not a sparsity in [0, 1); using {default:g}")
        return value

    return parse


def _parse_n_levels(text: str, context: ParseContext) -> int:
    try:
        n = int(text)
    except ValueError:
        n = -1
    if not 1 <= n <= MAX_LEVELS:
        raise BadValue(f"n={text!r} is not a level count from 1 to {MAX_LEVELS}; using {ExplorerConfig.n_levels}")
    return n


def _parse_levels(text: str, context: ParseContext) -> tuple[float, ...]:
    values = [_float(v) for v in text.split(",")]
    if not (values and len(values) <= MAX_LEVELS and all(v is not None and 0 <= v < 1 for v in values)):
        raise BadValue(f"levels={text!r} is not a list of up to {MAX_LEVELS} sparsities in [0, 1); using the range")
    return tuple(sorted({v for v in values if v is not None}))


def _parse_exclude(text: str, context: ParseContext) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    valid = context.layers()
    bad = [n for n in names if valid is not None and n not in valid]
    if bad:
        context.notices.append(f"layer(s) {', '.join(map(repr, bad))} in the link are not in this model; not excluded")
    return tuple(n for n in names if n not in bad)


def _parse_seed(text: str, context: ParseContext) -> int:
    try:
        return int(text)
    except ValueError:
        raise BadValue(f"seed={text!r} is not an integer; using 0") from None


def _format_allocation(value: tuple[tuple[tuple[str, float], ...], str]) -> str:
    pairs, method = value
    return f"{method}|" + ",".join(f"{k}:{_fmt(v)}" for k, v in pairs) if pairs else ""


def _parse_allocation(text: str, context: ParseContext) -> tuple[tuple[tuple[str, float], ...], str]:
    """``method|layer:s,layer:s`` into (pairs, method)."""
    method, _, pairs = text.partition("|")
    try:
        get_method(method)
    except ValueError:
        raise BadValue(f"alloc={text!r} names unknown method {method!r}; per-layer proposal ignored") from None
    layers = context.layers()
    parsed = []
    for item in pairs.split(","):
        layer, _, value = item.partition(":")
        number = _float(value)
        if number is None or not 0 <= number < 1 or (layers is not None and layer not in layers):
            raise BadValue(
                f"alloc={text!r}: {item!r} is not layer:sparsity for a layer of this model; proposal ignored"
            )
        parsed.append((layer, number))
    return tuple(parsed), method


def _join(values) -> str:
    return ",".join(values)


W = "w_"  # prefix of the sidebar widgets' session-state keys

URL_FIELDS: tuple[UrlField, ...] = (
    UrlField("model", ("model",), str, _parse_model, (Widget(W + "model", "selectbox", lambda c: c.model),)),
    UrlField(
        "methods",
        ("methods",),
        _join,
        _parse_methods,
        (Widget(W + "methods", "multiselect", lambda c: list(c.methods)),),
    ),
    UrlField("scope", ("scope",), str, _parse_scope, (Widget(W + "scope", "radio", lambda c: c.scope),)),
    UrlField(
        "smin",
        ("s_min",),
        _fmt,
        _sparsity_parser("smin", "s_min"),
        (Widget(W + "range", "slider", lambda c: (c.s_min, c.s_max)),),
    ),
    UrlField(
        "smax",
        ("s_max",),
        _fmt,
        _sparsity_parser("smax", "s_max"),
        (Widget(W + "range", "slider", lambda c: (c.s_min, c.s_max)),),
    ),
    UrlField("n", ("n_levels",), str, _parse_n_levels, (Widget(W + "n", "slider", lambda c: c.n_levels),)),
    UrlField(
        "levels",
        ("explicit_levels",),
        lambda levels: ",".join(_fmt(s) for s in levels),
        _parse_levels,
        (
            Widget(W + "mode", "radio", lambda c: "List" if c.explicit_levels else "Range"),
            Widget(W + "list", "text_input", lambda c: ", ".join(f"{s:g}" for s in (c.explicit_levels or c.levels))),
        ),
        skip_empty=True,
    ),
    UrlField(
        "exclude",
        ("exclude",),
        _join,
        _parse_exclude,
        (Widget(W + "exclude", "multiselect", lambda c: list(c.exclude)),),
        skip_empty=True,
    ),
    UrlField("seed", ("seed",), str, _parse_seed, (Widget(W + "seed", "number_input", lambda c: c.seed),)),
    # The per-layer proposal comes from the Sensitivity page; the sidebar shows it as a caption.
    UrlField("alloc", ("allocation", "allocation_method"), _format_allocation, _parse_allocation, skip_empty=True),
)

QUERY_KEYS = tuple(f.key for f in URL_FIELDS)


def to_query(config: ExplorerConfig) -> dict[str, str]:
    """Query parameters of ``config``; a field at its default is left out to keep links short."""
    query = {}
    for url_field in URL_FIELDS:
        text = url_field.format(url_field.get(config))
        if text != url_field.format(url_field.default()):
            query[url_field.key] = text
    return query


def widget_values(config: ExplorerConfig) -> dict[str, Any]:
    """The sidebar widgets' session-state values that show ``config``."""
    return {widget.key: widget.value(config) for url_field in URL_FIELDS for widget in url_field.widgets}


def from_query(query: Mapping[str, str], layers_of: LayersOf | None = None) -> tuple[ExplorerConfig, list[str]]:
    """Parse query parameters into a config; every bad value is replaced by its default and noted.

    ``layers_of(model_name)`` gives the prunable layers of a model, to check ``exclude``.
    """
    default = ExplorerConfig()
    context = ParseContext(default.model, layers_of, [])
    too_long = [key for key, value in query.items() if len(str(value)) > MAX_QUERY_VALUE]
    for key in too_long:
        context.notices.append(
            f"{key} is {len(str(query[key])):,} characters long (at most {MAX_QUERY_VALUE:,}); ignored"
        )
    changes: dict[str, Any] = {}
    for url_field in URL_FIELDS:
        text = query.get(url_field.key)
        if text is None or url_field.key in too_long or (url_field.skip_empty and not text):
            continue
        try:
            value = url_field.parse(text, context)
        except BadValue as bad:
            context.notices.append(str(bad))
            continue
        if value is not KEEP:
            changes.update(url_field.changes(value))
    _check_range(query, changes, context.notices)
    return replace(default, **changes), context.notices


def _check_range(query: Mapping[str, str], changes: dict[str, Any], notices: list[str]) -> None:
    """A link whose smallest sparsity exceeds its largest gets the default range."""
    default = ExplorerConfig()
    if changes.get("s_min", default.s_min) > changes.get("s_max", default.s_max):
        notices.append(
            f"the link's smallest sparsity smin={query.get('smin')!r} exceeds its largest smax={query.get('smax')!r}; "
            "using the default range"
        )
        changes.pop("s_min", None)
        changes.pop("s_max", None)
