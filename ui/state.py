"""The shared sidebar and its two-way binding with the URL's query parameters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import cast

import streamlit as st

import sample_models
from pruning_core.methods import get_method, method_names
from ui import compute, own
from ui.config import (
    MAX_LEVELS,
    MAX_QUERY_VALUE,
    QUERY_KEYS,
    SWEEP_SCOPES,
    UPLOAD,
    ExplorerConfig,
    W,
    from_query,
    model_names,
    widget_values,
)
from ui.figures import method_label

_W = W  # prefix of the sidebar widgets' session-state keys (declared with the URL fields)


def _parse_levels(text: str) -> tuple[float, ...]:
    if len(text) > MAX_QUERY_VALUE:
        raise ValueError(f"the text is {len(text):,} characters long; at most {MAX_QUERY_VALUE:,}")
    values = []
    for item in text.replace(";", ",").split(","):
        item = item.strip()
        if not item:
            continue
        value = float(item)  # ValueError names the bad item
        if not 0 <= value < 1:
            raise ValueError(f"{item} is outside [0, 1)")
        values.append(value)
    if not values:
        raise ValueError("the list is empty")
    if len(values) > MAX_LEVELS:
        raise ValueError(f"at most {MAX_LEVELS} levels")
    return tuple(sorted(set(values)))


def _widgets_from(config: ExplorerConfig) -> None:
    """Move the sidebar widgets to show ``config`` (each URL field declares its widgets)."""
    for key, value in widget_values(config).items():
        st.session_state[key] = value


def init() -> None:
    """On a session's first run, read the URL into the config (defaults plus notices for bad values)."""
    if "config" in st.session_state:
        return
    config, notices = from_query(st.query_params.to_dict(), layers_of=compute.known_layers)
    st.session_state.config = config
    st.session_state.notices = notices
    _widgets_from(config)


def set_config(config: ExplorerConfig) -> None:
    """Replace the shared config (e.g. from a page) and move the sidebar widgets to match."""
    st.session_state.config = config
    _widgets_from(config)
    sync_url(config)


def config() -> ExplorerConfig:
    return st.session_state.config


def sync_url(config: ExplorerConfig) -> None:
    """Write ``config`` to the URL: every URL field's key set to its text, or removed at its default."""
    query = config.to_query()
    for key in QUERY_KEYS:
        if key in query:
            if st.query_params.get(key) != query[key]:
                st.query_params[key] = query[key]
        elif key in st.query_params:
            del st.query_params[key]


def _clear_allocation() -> None:
    st.session_state.config = replace(st.session_state.config, allocation=(), allocation_method="")


def _on_model_change() -> None:
    layers = compute.known_layers(st.session_state[_W + "model"])
    if layers is not None:
        st.session_state[_W + "exclude"] = [n for n in st.session_state[_W + "exclude"] if n in layers]


def _model_ui(sb) -> tuple[str, list[str]]:
    """The model selector (the samples, and the upload when the server allows it), what the chosen
    model is, and the layers the exclusion list may name."""
    model = sb.selectbox(
        "Model",
        model_names(),
        key=_W + "model",
        on_change=_on_model_change,
        format_func=lambda name: own.LABEL if name == UPLOAD else name,
        help="A small model shipped with PruneLab, trained on data that ships with scikit-learn "
        "or is generated locally"
        + ("; or your own model file, which stays in this session only." if UPLOAD in model_names() else "."),
    )
    if model != UPLOAD:
        sb.caption(sample_models.get_spec(model).description)
        return model, compute.prunable_layers(model)
    if own.upload_ui(sb) is None:  # awaiting the file: a link's exclusions stay as they were
        return model, list(st.session_state[_W + "exclude"])
    layers = compute.prunable_layers(model)
    chosen = list(st.session_state[_W + "exclude"])
    dropped = [n for n in chosen if n not in layers]
    if dropped:
        sb.info(f"Not in your model, no longer excluded: {', '.join(dropped)}.")
        st.session_state[_W + "exclude"] = [n for n in chosen if n in layers]
    foreign = [n for n, _ in st.session_state.config.allocation if n not in layers]
    if foreign:  # a link's per-layer proposal made for another model
        sb.info(f"The per-layer proposal names layers your model lacks ({', '.join(foreign)}); cleared.")
        _clear_allocation()
    return model, layers


def _levels_ui(sb, previous: ExplorerConfig) -> tuple[float, float, int, tuple[float, ...]]:
    """The sparsity levels: a range and a count, or a typed list (a bad list keeps the previous levels)."""
    mode = sb.radio("Sparsity levels", ["Range", "List"], key=_W + "mode", horizontal=True)
    explicit: tuple[float, ...] = ()
    s_min, s_max, n_levels = previous.s_min, previous.s_max, previous.n_levels
    if mode == "Range":
        chosen = sb.slider("Sparsity range", 0.0, 0.99, key=_W + "range", step=0.01, format="%.2f")
        s_min, s_max = cast(tuple[float, float], chosen)
        n_levels = sb.slider("Number of levels", 2, MAX_LEVELS, key=_W + "n")
    else:
        text = sb.text_input(
            "Sparsities (comma-separated fractions)", key=_W + "list", help="e.g. 0, 0.5, 0.8, 0.9, 0.95"
        )
        try:
            explicit = _parse_levels(text)
        except ValueError as exc:
            sb.error(
                f"Invalid sparsity list: {exc}. Give fractions in [0, 1) such as 0, 0.5, 0.9. "
                "Keeping the previous levels."
            )
            explicit = previous.explicit_levels or previous.levels
    return s_min, s_max, n_levels, explicit


def _allocation_ui(sb, previous: ExplorerConfig, model: str) -> bool:
    """Show the per-layer proposal while the model it was made for is chosen; True if it is kept."""
    if not (previous.allocation and previous.model == model):
        return False
    pairs = ", ".join(f"{k} {v:.0%}" for k, v in previous.allocation)
    sb.caption(f"Per-layer proposal ({method_label(previous.allocation_method)}): {pairs}")
    sb.button("Clear the per-layer proposal", on_click=_clear_allocation, key="w_clear_alloc")
    return True


def sidebar() -> ExplorerConfig:
    """Draw the shared sidebar and return the config it describes (also written to the URL)."""
    sb = st.sidebar
    sb.header("Model & pruning")
    model, layers = _model_ui(sb)
    previous: ExplorerConfig = st.session_state.config  # after the upload (which may clear a proposal)
    options = list(dict.fromkeys(method_names() + list(st.session_state[_W + "methods"])))
    methods = sb.multiselect(
        "Methods (overlaid)",
        options,
        key=_W + "methods",
        format_func=method_label,
        help="\n\n".join(f"**{method_label(m)}**: {get_method(m).description}" for m in options),
    )
    scope = sb.radio(
        "Scope",
        SWEEP_SCOPES,
        key=_W + "scope",
        horizontal=True,
        help="Global: one ranking across all layers. Layer-wise: the same sparsity in every layer. "
        "ERK: per-layer densities proportional to (fan-in + fan-out) / weights (Evci et al. 2020), "
        "so big layers lose more. N:M patterns are always per layer.",
    )
    s_min, s_max, n_levels, explicit = _levels_ui(sb, previous)
    exclude = sb.multiselect(
        "Layers to leave dense",
        layers,
        key=_W + "exclude",
        help="Excluded layers are never pruned (the classifier is a common choice).",
    )
    seed = sb.number_input("Seed (random method)", min_value=0, max_value=2**31 - 1, step=1, key=_W + "seed")
    if not methods:
        sb.warning("Pick at least one method; showing the previous selection.")
        methods = list(previous.methods)
    keep_allocation = _allocation_ui(sb, previous, model)
    current = ExplorerConfig(
        model=model,
        methods=tuple(methods),
        scope=scope,
        s_min=float(s_min),
        s_max=float(s_max),
        n_levels=int(n_levels),
        explicit_levels=explicit,
        exclude=tuple(exclude),
        seed=int(seed),
        allocation=previous.allocation if keep_allocation else (),
        allocation_method=previous.allocation_method if keep_allocation else "",
    )
    st.session_state.config = current
    sync_url(current)
    return current


def show_notices() -> None:
    for notice in st.session_state.get("notices", []):
        st.warning(f"Link: {notice}.", icon="⚠️")


def page_param(key: str, default: str, valid: Sequence[str] | None = None) -> str:
    """A page's own URL parameter, validated; an invalid value gives the default and a notice."""
    value = st.query_params.get(key, default)
    if valid is not None and value not in valid:
        st.warning(f"Link: {key}={value!r} is not one of {', '.join(valid)}; using {default!r}.", icon="⚠️")
        return default
    return value


def set_page_param(key: str, value: str, default: str) -> None:
    if value == default:
        if key in st.query_params:
            del st.query_params[key]
    elif st.query_params.get(key) != value:
        st.query_params[key] = value


def pick_method_and_sparsity(
    prefix: str, url_prefix: str, default_method: str, default_level: float, columns: Sequence | None = None
) -> tuple[str, float]:
    """A page's method and swept-sparsity choice, in session keys ``{prefix}_method``/``_sparsity``
    and bound to URL parameters ``{url_prefix}m``/``{url_prefix}s``.

    Returns the method and the sparsity to prune at: a fixed-pattern method's own sparsity (N:M)
    whatever the slider says. A link naming a method or level that is not swept gets a notice.
    """
    config: ExplorerConfig = st.session_state.config
    levels, methods = list(config.levels), list(config.methods)
    method_key, level_key = f"{prefix}_method", f"{prefix}_sparsity"
    nearest = lambda target: min(levels, key=lambda s: abs(s - target))  # noqa: E731
    if method_key not in st.session_state:
        st.session_state[method_key] = page_param(f"{url_prefix}m", default_method, methods)
        wanted = page_param(f"{url_prefix}s", "")
        try:
            level = float(wanted) if wanted else None
        except ValueError:
            level = None
        if wanted and level not in levels:
            st.warning(
                f"Link: {url_prefix}s={wanted!r} is not one of the swept sparsities; using the nearest.", icon="⚠️"
            )
        st.session_state[level_key] = level if level in levels else nearest(default_level if level is None else level)
    if st.session_state[method_key] not in methods:
        st.session_state[method_key] = default_method if default_method in methods else methods[0]
    if st.session_state[level_key] not in levels:
        st.session_state[level_key] = nearest(st.session_state[level_key])
    left, right = columns if columns is not None else st.columns(2)
    method = left.selectbox("Method", methods, format_func=method_label, key=method_key)
    fixed = get_method(method).fixed_sparsity
    sparsity = right.select_slider(
        "Sparsity (one of the swept levels)",
        levels,
        key=level_key,
        format_func=lambda s: f"{s:.0%}",
        disabled=fixed is not None,
        help="N:M patterns have a fixed sparsity." if fixed is not None else None,
    )
    set_page_param(f"{url_prefix}m", method, default_method)
    set_page_param(f"{url_prefix}s", f"{sparsity:g}", "")
    return method, fixed if fixed is not None else sparsity


def require_router() -> None:
    """Run the app's router if a page was started without it, then stop.

    Streamlit treats a folder named ``pages`` as an old-style multipage app until some session
    has called ``st.navigation``: a deep link (``/layers?...``) as the very first request to a fresh
    server would run the page alone, without the sidebar and config. Running ``app.py`` here
    calls ``st.navigation``, which switches the server to the router and runs this page properly.
    """
    if "explorer" in st.session_state:
        return
    import runpy
    from pathlib import Path

    runpy.run_path(str(Path(__file__).resolve().parents[1] / "app.py"), run_name="__main__")
    st.stop()
