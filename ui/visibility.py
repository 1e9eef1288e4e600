"""Teacher links: controls hidden or locked from the URL, and a presenter mode.

As in TensorFlow Playground, a lesson link can hide controls (``hide=sidebar,methods``) or lock
them (``lock=model,scope``: shown, but they cannot be changed), and ``present=1`` turns the page into
a projector view (large type, Streamlit's chrome hidden, one chart per screen). Hiding is CSS on the
widgets' ``st-key-*`` containers; a locked widget is also greyed out and ignores the pointer, and
:func:`sidebar_hook` puts a locked setting back to the link's value before the sidebar reads it, so
a lock holds even against a keyboard. A bad value gives a notice naming the valid ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import streamlit as st

# Sidebar controls by URL name -> the session keys of their widgets (ui/state.py's "w_" keys).
CONTROLS: dict[str, tuple[str, ...]] = {
    "model": ("w_model",),
    "methods": ("w_methods",),
    "scope": ("w_scope",),
    "levels": ("w_mode", "w_range", "w_n", "w_list"),
    "exclude": ("w_exclude",),
    "seed": ("w_seed",),
}
HIDEABLE = ("sidebar", *CONTROLS)
MAX_PARAM_CHARS = 200


@dataclass(frozen=True)
class Visibility:
    """What a link hides, locks, and whether it presents."""

    hidden: frozenset[str] = frozenset()
    locked: frozenset[str] = frozenset()
    present: bool = False
    notices: tuple[str, ...] = field(default=())

    @property
    def sidebar_hidden(self) -> bool:
        """Whether the sidebar is hidden for this session (its widgets need not be drawn at all)."""
        return "sidebar" in self.hidden or self.present

    def to_query(self) -> dict[str, str]:
        """Query parameters that reproduce this visibility (empty ones left out)."""
        query = {}
        if self.hidden:
            query["hide"] = ",".join(name for name in HIDEABLE if name in self.hidden)
        if self.locked:
            query["lock"] = ",".join(name for name in CONTROLS if name in self.locked)
        if self.present:
            query["present"] = "1"
        return query


def parse(query: Mapping[str, str]) -> Visibility:
    """Read ``hide``, ``lock`` and ``present`` from query parameters; never raises."""
    notices: list[str] = []

    def names(key: str, valid: tuple[str, ...]) -> frozenset[str]:
        text = str(query.get(key, ""))
        if len(text) > MAX_PARAM_CHARS:
            notices.append(f"{key} is {len(text)} characters long; ignored")
            return frozenset()
        items = [item.strip() for item in text.split(",") if item.strip()]
        bad = [item for item in items if item not in valid]
        if bad:
            notices.append(f"{key}: unknown control(s) {', '.join(map(repr, bad))} ignored; valid: {', '.join(valid)}")
        return frozenset(item for item in items if item in valid)

    present_text = str(query.get("present", "0"))
    if present_text not in ("0", "1"):
        notices.append(f"present={present_text[:20]!r} must be 0 or 1; presenter mode off")
    return Visibility(names("hide", HIDEABLE), names("lock", tuple(CONTROLS)), present_text == "1", tuple(notices))


def current() -> Visibility:
    """This session's visibility, read from the URL on its first run (a teacher link holds for the
    whole session, across pages, even after the page's URL changes)."""
    if "visibility" not in st.session_state:
        st.session_state.visibility = parse(st.query_params.to_dict())
    return st.session_state.visibility


def css(visibility: Visibility) -> str:
    """The style sheet that hides and locks what ``visibility`` says."""
    rules = []
    if "sidebar" in visibility.hidden or visibility.present:
        rules.append(
            '[data-testid="stSidebar"], [data-testid="stSidebarCollapsedControl"], '
            '[data-testid="stExpandSidebarButton"], [data-testid="stSidebarNav"] {display: none !important;}'
        )
    for name in visibility.hidden & set(CONTROLS):
        rules.extend(f".st-key-{key} {{display: none !important;}}" for key in CONTROLS[name])
    for name in visibility.locked - visibility.hidden:
        rules.extend(f".st-key-{key} {{pointer-events: none; opacity: 0.55;}}" for key in CONTROLS[name])
    if visibility.present:
        rules.append(
            'header[data-testid="stHeader"], [data-testid="stToolbar"], [data-testid="stDecoration"], '
            "footer {display: none !important;}"
        )
        rules.append("html, body, .stMarkdown p, .stMarkdown li {font-size: 24px !important;}")
        rules.append("h1 {font-size: 3rem !important;} h2 {font-size: 2.2rem !important;}")
        rules.append(
            ".block-container, [data-testid='stMainBlockContainer'] {max-width: 100% !important; padding-top: 1rem !important;}"
        )
    return "\n".join(rules)


def sidebar_hook() -> None:
    """The sidebar's one call: apply the link's hiding and locks before the sidebar is drawn."""
    visibility = current()
    for notice in visibility.notices:
        st.session_state.setdefault("notices", [])
        if f"Teacher link: {notice}" not in st.session_state.notices:
            st.session_state.notices.append(f"Teacher link: {notice}")
    locked_config = st.session_state.setdefault("locked_widgets", {})
    for name in visibility.locked:
        for key in CONTROLS[name]:
            if key in st.session_state:
                locked_config.setdefault(key, st.session_state[key])
                st.session_state[key] = locked_config[key]
    style = css(visibility)
    if style:
        st.html(f"<style>{style}</style>")


def is_locked(name: str) -> bool:
    """Whether a control is locked or hidden by this session's link."""
    visibility = current()
    return name in visibility.locked or name in visibility.hidden
