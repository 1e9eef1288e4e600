"""Workshop lessons: Markdown files with a validated YAML header, their views and their answers.

A lesson is data (``lessons/*.md``): what it teaches, the view it opens (a complete pruning choice),
a prediction question, an explanation template and "now try" links. What it *measures* is code: a
view kind runs the engine through the cached calls of ``ui/compute.py`` (shared by every session),
and a named answer function registered in :data:`ANSWERS` turns the measurement into the answer
and the numbers the explanation quotes (``{placeholders}``), so no figure is ever typed into a
lesson. Headers are read like recipes: bounded size, the safe loader, no anchors or aliases.
"""

from __future__ import annotations

import re
import string
import textwrap
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import torch
import yaml

import sample_models
from pruning_core import trees
from pruning_core.choice import PruningChoice
from pruning_core.masks import apply_masks, compute_masks
from pruning_core.methods import get_method
from ui import compute
from ui.config import ExplorerConfig, from_query
from ui.figures import SCHEDULE_STYLES, method_colour, method_label

LESSON_DIR = Path(__file__).resolve().parents[1] / "lessons"
MAX_LESSON_BYTES = 20_000
MAX_NESTING = 6
ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
VIEW_KINDS = ("boundary", "sweep", "size", "schedules", "sensitivity", "trees")
QUESTION_KINDS = ("choice", "slider")
PAGES = ("tradeoff", "layers", "size-speed", "schedules", "sensitivity", "export", "decision-trees", "workshop")
GUESS_COLOUR = "#d62728"
MEASURED_COLOUR = "#111111"


class LessonError(ValueError):
    """A lesson file that cannot be used; the message names the file and every problem."""


@dataclass(frozen=True)
class ViewSpec:
    """The view a lesson opens: a complete pruning choice plus the chart's axes and extras."""

    kind: str
    model: str = "digits-mlp"
    methods: tuple[str, ...] = ("magnitude",)
    scopes: tuple[str, ...] = ("global",)
    levels: tuple[float, ...] = (0.0, 0.5, 0.9)
    exclude: tuple[str, ...] = ()
    seed: int = 0
    x: str = "target_sparsity"
    y: str = "accuracy"
    extra: Mapping[str, Any] = field(default_factory=dict)

    def explorer_config(self) -> ExplorerConfig:
        """The same choice as the explorer's sidebar config, for "open in the explorer" links."""
        return ExplorerConfig(
            model=self.model,
            methods=self.methods,
            scope=self.scopes[0] if self.scopes[0] != "per-layer" else "global",
            explicit_levels=self.levels,
            exclude=self.exclude,
            seed=self.seed,
        )


@dataclass(frozen=True)
class Question:
    """The prediction asked before anything is shown: a choice, or a value on a slider."""

    text: str
    kind: str
    options: tuple[str, ...] = ()
    low: float = 0.0
    high: float = 100.0
    step: float = 1.0
    unit: str = "%"
    start: float = 50.0


@dataclass(frozen=True)
class Lesson:
    """One lesson file, validated."""

    id: str
    order: int
    title: str
    teaches: str
    minutes: int
    view: ViewSpec
    question: Question
    answer: str
    answer_args: Mapping[str, Any]
    reveal: str
    now_try: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...]
    body: str

    def placeholders(self) -> set[str]:
        """The ``{names}`` the explanation needs from its answer function."""
        return {name for _, name, _, _ in string.Formatter().parse(self.reveal) if name}


@dataclass(frozen=True)
class Answer:
    """What the engine measured for a question: the value (a number, or the right option), how to
    show it, where it sits on the chart, and the numbers the explanation quotes."""

    value: float | str
    display: str
    facts: Mapping[str, str]
    x: float | None = None  # the chart position of a value answer (its sparsity)
    category: str | None = None  # its series, where the chart puts series side by side (one level)
    axis: str = "y"  # a value guess is drawn on this axis of the chart


# ---------------------------------------------------------------------------------------------
# Reading lesson files


def _safe_yaml(text: str, where: str) -> Any:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        depth = 0
        for event in yaml.parse(text, Loader=loader):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise LessonError(f"{where}: YAML anchors and aliases (& and *) are not allowed in a lesson header")
            if isinstance(event, yaml.SequenceStartEvent | yaml.MappingStartEvent):
                depth += 1
                if depth > MAX_NESTING:
                    raise LessonError(f"{where}: the header nests more than {MAX_NESTING} levels deep")
            elif isinstance(event, yaml.SequenceEndEvent | yaml.MappingEndEvent):
                depth -= 1
        return yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 2}" if mark else ""
        raise LessonError(f"{where}: the header is not valid YAML{at}: {getattr(exc, 'problem', exc)}") from None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value)


_TOP = {"id", "order", "title", "teaches", "minutes", "view", "question", "answer", "answer_args", "reveal", "now_try"}
_VIEW = {"kind", "model", "methods", "scopes", "levels", "exclude", "seed", "x", "y", "extra"}
_QUESTION = {"text", "kind", "options", "low", "high", "step", "unit", "start"}


def parse_lesson(  # noqa: C901, PLR0912 - one check per header field, every problem listed at once
    text: str | bytes, where: str = "lesson"
) -> Lesson:
    """A lesson from its file text: ``---`` YAML header ``---`` then Markdown. Every problem found is
    reported at once in one :class:`LessonError` naming ``where``."""
    if isinstance(text, bytes):
        if len(text) > MAX_LESSON_BYTES:
            raise LessonError(f"{where}: the file is {len(text):,} bytes; a lesson is at most {MAX_LESSON_BYTES:,}")
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise LessonError(f"{where}: the file is not UTF-8 text") from None
    if len(text) > MAX_LESSON_BYTES:
        raise LessonError(f"{where}: the text is {len(text):,} characters; a lesson is at most {MAX_LESSON_BYTES:,}")
    match = re.match(r"\A---\n(.*?)\n---\n?(.*)\Z", text, re.DOTALL)
    if not match:
        raise LessonError(f"{where}: a lesson starts with a YAML header between two '---' lines")
    header = _safe_yaml(match.group(1), where)
    if not isinstance(header, dict):
        raise LessonError(f"{where}: the header must be a mapping of keys to values")
    problems: list[str] = []
    unknown = set(map(str, header)) - _TOP
    if unknown:
        problems.append(f"unknown key(s) {', '.join(sorted(unknown))}; valid: {', '.join(sorted(_TOP))}")
    for key in ("id", "title", "teaches", "answer", "reveal"):
        value = header.get(key)
        if not isinstance(value, str) or not value.strip():
            problems.append(f"'{key}' must be a non-empty text")
    if isinstance(header.get("id"), str) and not ID_PATTERN.match(header["id"]):
        problems.append(f"id {header['id']!r} must be lowercase letters, digits and '-' (at most 40)")
    for key in ("order", "minutes"):
        if not isinstance(header.get(key), int) or isinstance(header.get(key), bool) or not 0 < header[key] < 1000:
            problems.append(f"'{key}' must be a whole number from 1 to 999")
    if isinstance(header.get("answer"), str) and header["answer"] not in ANSWERS:
        problems.append(f"answer {header['answer']!r} is not a registered answer; valid: {', '.join(sorted(ANSWERS))}")
    answer_args = header.get("answer_args", {}) or {}
    if not isinstance(answer_args, dict):
        problems.append("'answer_args' must be a mapping")
        answer_args = {}
    view = _parse_view(header.get("view"), problems)
    question = _parse_question(header.get("question"), problems)
    now_try = _parse_now_try(header.get("now_try", []), problems)
    if problems:
        raise LessonError(f"{where}: " + "; ".join(problems))
    assert view is not None and question is not None
    reveal = header["reveal"].strip()
    try:
        list(string.Formatter().parse(reveal))
    except ValueError as exc:
        raise LessonError(f"{where}: the reveal text has a broken placeholder: {exc}") from None
    return Lesson(
        id=header["id"],
        order=header["order"],
        title=header["title"].strip(),
        teaches=header["teaches"].strip(),
        minutes=header["minutes"],
        view=view,
        question=question,
        answer=header["answer"],
        answer_args=dict(answer_args),
        reveal=reveal,
        now_try=now_try,
        body=match.group(2).strip(),
    )


def _parse_view(  # noqa: C901, PLR0912 - one check per view field, every problem listed at once
    view: Any, problems: list[str]
) -> ViewSpec | None:
    if not isinstance(view, dict):
        problems.append("'view' must be a mapping (kind, model, methods, scopes, levels, ...)")
        return None
    unknown = set(map(str, view)) - _VIEW
    if unknown:
        problems.append(f"view: unknown key(s) {', '.join(sorted(unknown))}")
    kind = view.get("kind")
    if kind not in VIEW_KINDS:
        problems.append(f"view kind {kind!r} is unknown; valid: {', '.join(VIEW_KINDS)}")
    model = view.get("model", "digits-mlp")
    if model not in sample_models.available():
        problems.append(f"view model {model!r} is unknown; valid: {', '.join(sample_models.available())}")
    methods = view.get("methods", ["magnitude"])
    if not isinstance(methods, list) or not methods:
        problems.append("view methods must be a non-empty list")
        methods = ["magnitude"]
    for method in methods:
        try:
            get_method(str(method))
        except ValueError:
            problems.append(f"view method {method!r} is unknown")
    scopes = view.get("scopes", ["global"])
    if not isinstance(scopes, list) or not scopes or any(s not in ("global", "layerwise", "erk") for s in scopes):
        problems.append(f"view scopes {scopes!r} must be a list of global, layerwise, erk")
        scopes = ["global"]
    levels = view.get("levels", [0, 0.5, 0.9])
    if not isinstance(levels, list) or not levels or not all(_number(v) and 0 <= v < 1 for v in levels):
        problems.append(f"view levels {levels!r} must be a list of sparsities in [0, 1)")
        levels = [0.0]
    if len(levels) > 40:
        problems.append("view levels: at most 40")
    seed = view.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        problems.append(f"view seed {seed!r} must be a non-negative integer")
        seed = 0
    exclude = view.get("exclude", [])
    if not isinstance(exclude, list):
        problems.append("view exclude must be a list of layer names")
        exclude = []
    extra = view.get("extra", {}) or {}
    if not isinstance(extra, dict):
        problems.append("view extra must be a mapping")
        extra = {}
    for pair in extra.get("series", []) if isinstance(extra.get("series", []), list) else [None]:
        if not (isinstance(pair, list) and len(pair) == 2 and pair[0] in methods and pair[1] in scopes):
            problems.append(
                f"view extra series item {pair!r} must be [method, scope] from the view's methods and scopes"
            )
    return ViewSpec(
        kind=str(kind),
        model=str(model),
        methods=tuple(map(str, methods)),
        scopes=tuple(scopes),
        levels=tuple(sorted({float(v) for v in levels})),
        exclude=tuple(map(str, exclude)),
        seed=seed,
        x=str(view.get("x", "target_sparsity")),
        y=str(view.get("y", "accuracy")),
        extra=dict(extra),
    )


def _parse_question(question: Any, problems: list[str]) -> Question | None:
    if not isinstance(question, dict):
        problems.append("'question' must be a mapping (text, kind, options or low/high/step)")
        return None
    unknown = set(map(str, question)) - _QUESTION
    if unknown:
        problems.append(f"question: unknown key(s) {', '.join(sorted(unknown))}")
    kind = question.get("kind")
    text = question.get("text")
    if not isinstance(text, str) or not text.strip():
        problems.append("question text must be a non-empty text")
    if kind == "choice":
        options = question.get("options")
        if not isinstance(options, list) or not 2 <= len(options) <= 8 or not all(isinstance(o, str) for o in options):
            problems.append("a choice question needs 2 to 8 text options")
            return None
        return Question(text=str(text), kind="choice", options=tuple(options))
    if kind == "slider":
        values = {k: question.get(k, d) for k, d in (("low", 0.0), ("high", 100.0), ("step", 1.0), ("start", 50.0))}
        if not all(_number(v) for v in values.values()) or not values["low"] < values["high"] or values["step"] <= 0:
            problems.append(f"a slider question needs numbers low < high and step > 0, not {values}")
            return None
        if not values["low"] <= values["start"] <= values["high"]:
            problems.append("the slider's start must lie between low and high")
            return None
        unit = question.get("unit", "%")
        low, high, step, start = (float(values[k]) for k in ("low", "high", "step", "start"))
        return Question(text=str(text), kind="slider", unit=str(unit), low=low, high=high, step=step, start=start)
    problems.append(f"question kind {kind!r} is unknown; valid: {', '.join(QUESTION_KINDS)}")
    return None


def _parse_now_try(items: Any, problems: list[str]) -> tuple:
    if not isinstance(items, list) or len(items) > 3:
        problems.append("'now_try' must be a list of at most 3 links (label, page, query)")
        return ()
    parsed = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("label"), str) or item.get("page") not in PAGES:
            problems.append(f"now_try item {item!r} needs a label and a page among {', '.join(PAGES)}")
            continue
        query = item.get("query", {}) or {}
        if not isinstance(query, dict):
            problems.append(f"now_try {item['label']!r}: query must be a mapping")
            continue
        query = {str(k): str(v) for k, v in query.items()}
        _, notices = from_query(query, layers_of=compute.prunable_layers)
        if notices:
            problems.append(f"now_try {item['label']!r}: {'; '.join(notices)}")
        parsed.append((item["label"], item["page"], tuple(sorted(query.items()))))
    return tuple(parsed)


@st.cache_resource(show_spinner=False)
def load_lessons(directory: str = str(LESSON_DIR)) -> list[Lesson]:
    """Every lesson in ``directory``, in course order; a bad file raises :class:`LessonError`.

    Shared by every session (``cache_resource``: no copy per rerun); lessons are frozen, read them only."""
    lessons = [
        parse_lesson(path.read_bytes()[: MAX_LESSON_BYTES + 1], path.name) for path in Path(directory).glob("*.md")
    ]
    ids = [lesson.id for lesson in lessons]
    duplicates = {i for i in ids if ids.count(i) > 1}
    if duplicates:
        raise LessonError(f"lesson id(s) used twice: {', '.join(sorted(duplicates))}")
    return sorted(lessons, key=lambda lesson: (lesson.order, lesson.id))


def page_link(page: str, query: Mapping[str, str] | tuple = ()) -> str:
    """A relative link that opens ``page`` with ``query``. The trade-off view is the app's default
    page, which Streamlit serves at ``/`` only (``/tradeoff`` opens it with a "Page not found" notice)."""
    query = dict(query)
    return f"/{'' if page == 'tradeoff' else page}" + (f"?{urlencode(query)}" if query else "")


def explorer_link(lesson: Lesson, page: str = "tradeoff") -> str:
    """The lesson's own choice opened in the full explorer."""
    return page_link(page, lesson.view.explorer_config().to_query())


# ---------------------------------------------------------------------------------------------
# Views: the engine calls behind a lesson (all cached and shared between sessions)


def _sweep_frames(spec: ViewSpec, progress=None) -> pd.DataFrame:
    frames = []
    series = [tuple(pair) for pair in spec.extra.get("series", ())] or [
        (m, s) for m in spec.methods for s in spec.scopes
    ]
    for i, (method, scope) in enumerate(series):

        def report(fraction: float, message: str, i: int = i) -> None:
            if progress is not None:
                progress(min(1.0, (i + fraction) / len(series)), message)

        table = compute.method_sweep(spec.model, method, scope, spec.levels, spec.exclude, spec.seed, progress=report)
        frames.append(table.assign(series=f"{method_label(method)}, {scope}"))
    return pd.concat(frames, ignore_index=True)


@st.cache_data(show_spinner=False, max_entries=64)
def boundary_grid(model: str, sparsity: float, seed: int = 0, resolution: int = 90) -> dict:
    """The pruned model's predicted class over a grid covering the 2-D data (moons): magnitude
    masks (global) from the engine, applied to a copy; the shared model is never touched."""
    sample = compute.shared_sample(model)
    X = torch.cat([sample.data.X_train, sample.data.X_test])
    if X.shape[1] != 2:
        raise ValueError(f"{model} does not take 2-D inputs; a decision boundary needs a 2-D model")
    masks = compute_masks(sample.model, "magnitude", "global", sparsity, seed=seed)
    pruned = apply_masks(sample.model, masks).eval()
    lo, hi = X.min(0).values - 0.5, X.max(0).values + 0.5
    xs, ys = torch.linspace(lo[0], hi[0], resolution), torch.linspace(lo[1], hi[1], resolution)
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1).reshape(-1, 2)
    with torch.inference_mode():
        prob = torch.softmax(pruned(grid), -1)[:, 1].reshape(resolution, resolution).numpy().copy()
        test_accuracy = float((pruned(sample.data.X_test).argmax(-1) == sample.data.y_test).float().mean())
    return {"x": xs.numpy(), "y": ys.numpy(), "prob": prob, "accuracy": test_accuracy}


@st.cache_data(show_spinner=False, max_entries=16)
def tree_view(noise: float, seed: int) -> dict:
    """The cost-complexity pruning path of a tree on breast cancer (optionally with flipped labels)."""
    data = trees.cancer_data(noise, seed)
    path = trees.pruning_path(data, seed)
    return {"path": path, "choice": trees.cv_choice(path).to_dict(), "flipped": data.flipped}


def run_view(spec: ViewSpec, progress=None) -> dict:
    """Measure what a lesson's view shows; cached calls only, so a room computes it once."""
    if spec.kind in ("sweep", "boundary"):
        return {"table": _sweep_frames(spec, progress), "dense": compute.dense_metrics(spec.model)}
    if spec.kind == "size":
        sparsity = float(spec.extra.get("sparsity", spec.levels[-1]))
        sizes = {
            m: compute.size_speed(
                spec.model,
                PruningChoice(
                    m,
                    spec.scopes[0] if m != "structured-l1" else "layerwise",
                    sparsity,
                    exclude=tuple(spec.exclude),
                    seed=spec.seed,
                ),
            )
            for m in spec.methods
        }
        return {"sizes": sizes, "sparsity": sparsity}
    if spec.kind == "schedules":
        extra = spec.extra
        curves = tuple(extra.get("curves", ("oneshot", "iterative")))
        frames = []
        for i, curve in enumerate(curves):

            def report(fraction: float, message: str, i: int = i) -> None:
                if progress is not None:
                    progress(min(1.0, (i + fraction) / len(curves)), message)

            frames.append(
                compute.schedule_sweep(
                    spec.model,
                    spec.methods[0],
                    spec.scopes[0],
                    spec.levels,
                    spec.exclude,
                    spec.seed,
                    curve,
                    int(extra.get("epochs", 1)),
                    float(extra.get("lr", 0.001)),
                    int(extra.get("rounds", 2)),
                    progress=report,
                )
            )
        return {"table": pd.concat(frames, ignore_index=True), "dense": compute.dense_metrics(spec.model)}
    if spec.kind == "sensitivity":
        table = compute.sensitivity_table(spec.model, spec.methods[0], spec.exclude, spec.seed)
        return {"table": table, "dense": compute.dense_metrics(spec.model)}
    if spec.kind == "trees":
        return tree_view(float(spec.extra.get("noise", 0.0)), spec.seed)
    raise ValueError(f"unknown view kind {spec.kind!r}")


# ---------------------------------------------------------------------------------------------
# Answers: named functions from a measurement to the answer and the explanation's numbers


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _row(table: pd.DataFrame, sparsity: float, **where: str) -> pd.Series:
    rows = table
    for column, value in where.items():
        rows = rows[rows[column] == value]
    if rows.empty:
        raise ValueError(f"no measured row for {where}")
    return rows.iloc[(rows["target_sparsity"] - sparsity).abs().argsort().iloc[0]]


def answer_accuracy_at(lesson: Lesson, data: dict) -> Answer:
    """Test accuracy of one method and scope at one sparsity, with every series' value beside it."""
    args = lesson.answer_args
    sparsity = float(args.get("sparsity", 0.9))
    table = data["table"]
    method, scope = args.get("method", lesson.view.methods[0]), args.get("scope", lesson.view.scopes[0])
    row = _row(table, sparsity, method=method, scope=scope)
    facts = {"sparsity": f"{row.target_sparsity:.0%}", "dense_accuracy": _pct(data["dense"]["accuracy"])}
    for (m, s), group in table.groupby(["method", "scope"]):
        key = re.sub(r"[^a-z0-9]+", "_", f"{m}_{s}")
        r = _row(group, sparsity)
        facts[f"{key}_accuracy"] = _pct(r.accuracy)
        facts[f"{key}_effective"] = _pct(r.effective_sparsity)
    facts["answer"] = _pct(row.accuracy)
    facts["kept_weights"] = f"{int(row.nonzero_params):,}"
    facts["total_weights"] = f"{int(row.total_params):,}"
    facts["interval"] = f"{_pct(row.accuracy_low)} to {_pct(row.accuracy_high)}"
    facts["test_samples"] = f"{int(row.test_samples)}"
    drop = data["dense"]["accuracy"] - row.accuracy
    facts["drop_points"] = f"{100 * drop:.1f}"
    others = table[(table["method"] != method) | (table["scope"] != scope)]
    if not others.empty:
        other = _row(others, sparsity, method=others.iloc[0].method, scope=others.iloc[0].scope)
        gap = float(row.accuracy - other.accuracy)
        facts["gap_points"] = f"{100 * abs(gap):.1f}"
        facts["comparison"] = "within a point of" if abs(gap) < 0.01 else ("above" if gap > 0 else "below")
        overlap = row.accuracy_low <= other.accuracy_high and other.accuracy_low <= row.accuracy_high
        facts["noise_note"] = (
            "their 95 % intervals overlap, so the test set cannot tell them apart"
            if overlap
            else "the gap is larger than their 95 % intervals"
        )
    return Answer(
        100 * row.accuracy,
        _pct(row.accuracy),
        facts,
        x=float(row.target_sparsity),
        category=series_name(str(method), str(scope)),
    )


def answer_better_scope(lesson: Lesson, data: dict) -> Answer:
    """Which of two scopes (or methods) keeps more accuracy at a high sparsity; and whether any
    layer collapsed (was emptied) there, read from the engine's own masks."""
    args = lesson.answer_args
    sparsity = float(args.get("sparsity", 0.99))
    table = data["table"]
    facts: dict[str, str] = {"sparsity": f"{sparsity:.1%}", "dense_accuracy": _pct(data["dense"]["accuracy"])}
    scores = {}
    for (method, scope), group in table.groupby(["method", "scope"]):
        key = re.sub(r"[^a-z0-9]+", "_", f"{method}_{scope}")
        row = _row(group, sparsity)
        scores[key] = float(row.accuracy)
        facts[f"{key}_accuracy"] = _pct(row.accuracy)
        choice = PruningChoice(
            method, scope, float(row.target_sparsity), exclude=tuple(lesson.view.exclude), seed=lesson.view.seed
        )
        layers = compute.layer_view(lesson.view.model, choice).table
        emptiest = layers.loc[layers["sparsity"].idxmax()]
        facts[f"{key}_emptiest_layer"] = str(emptiest.layer)
        facts[f"{key}_emptiest_sparsity"] = f"{emptiest.sparsity:.2%}"
        facts[f"{key}_collapsed"] = (
            "collapsed (a layer is empty)" if (layers["nonzero"] == 0).any() else "no layer empty"
        )
    mapping: Mapping[str, str] = args.get("options", {})
    best = max(scores, key=lambda name: scores[name])
    tolerance = float(args.get("same_within_points", 1.0)) / 100
    ordered = sorted(scores.values())
    if len(ordered) > 1 and ordered[-1] - ordered[-2] <= tolerance and "same" in mapping:
        value = mapping["same"]
    else:
        value = mapping.get(best, best)
    facts["answer"] = value
    return Answer(value, value, facts)


def answer_layer_collapse(lesson: Lesson, data: dict) -> Answer:
    """Whether one series (method and scope) empties a whole layer at the lesson's sparsity, with
    every series' accuracy and emptiest layer as facts."""
    facts = dict(answer_better_scope(lesson, data).facts)
    args = lesson.answer_args
    key = re.sub(r"[^a-z0-9]+", "_", f"{args.get('method', 'magnitude')}_{args.get('scope', 'global')}")
    collapsed = facts[f"{key}_collapsed"].startswith("collapsed")
    outcome = "collapsed" if collapsed else "intact"
    value = args.get("options", {}).get(outcome, outcome)
    facts["answer"] = value
    return Answer(value, value, facts)


def answer_cliff(lesson: Lesson, data: dict) -> Answer:
    """The last sparsity before validation accuracy first falls more than ``tolerance`` points
    below dense (the knee, chosen on validation, reported on test)."""
    from pruning_core.analysis import knee_points

    tolerance = float(lesson.answer_args.get("tolerance_points", 1.0)) / 100
    table = data["table"]
    dense_val = compute.dense_validation_metrics(lesson.view.model)["accuracy"]
    knee = knee_points(table, metric="accuracy", tolerance=tolerance, dense=dense_val).iloc[0]
    after = table[table["target_sparsity"] > knee.target_sparsity].sort_values("target_sparsity")
    facts = {
        "knee": f"{knee.target_sparsity:.0%}",
        "knee_accuracy": _pct(knee.accuracy),
        "tolerance": f"{100 * tolerance:g}",
        "dense_accuracy": _pct(data["dense"]["accuracy"]),
        "next_sparsity": f"{after.iloc[0].target_sparsity:.0%}" if len(after) else "none",
        "next_accuracy": _pct(after.iloc[0].accuracy) if len(after) else "none",
        "last_sparsity": f"{table.target_sparsity.max():.0%}",
        "last_accuracy": _pct(table.sort_values("target_sparsity").iloc[-1].accuracy),
    }
    facts["answer"] = facts["knee"]
    return Answer(100 * float(knee.target_sparsity), facts["knee"], facts, axis="x")


def answer_schedule(lesson: Lesson, data: dict) -> Answer:
    """Which training curve ends most accurate at the lesson's sparsity, with each curve's value."""
    args = lesson.answer_args
    table = data["table"]
    sparsity = float(args.get("sparsity", lesson.view.levels[-1]))
    mapping: Mapping[str, str] = args.get("options", {})
    facts = {"sparsity": f"{sparsity:.0%}", "dense_accuracy": _pct(data["dense"]["accuracy"])}
    scores = {}
    for curve, group in table.groupby("curve"):
        key = re.sub(r"[^a-z0-9]+", "_", str(curve))
        row = _row(group, sparsity)
        scores[str(curve)] = float(row.accuracy)
        facts[f"{key}_accuracy"] = _pct(row.accuracy)
        facts[f"{key}_low"], facts[f"{key}_high"] = _pct(row.accuracy_low), _pct(row.accuracy_high)
    best = max(scores, key=lambda name: scores[name])
    ordered = sorted(scores.values())
    tolerance = float(args.get("same_within_points", 0.0)) / 100
    value = mapping["same"] if "same" in mapping and ordered[-1] - ordered[-2] <= tolerance else mapping.get(best, best)
    facts["answer"] = value
    facts["gap_points"] = f"{100 * (ordered[-1] - ordered[-2]):.1f}"
    intervals_overlap = len(scores) > 1 and all(
        _row(table[table.curve == c], sparsity).accuracy_low <= max(scores.values()) for c in scores
    )
    facts["noise_note"] = (
        "the curves' 95 % intervals overlap, so this ordering is within the noise of a test set this size"
        if intervals_overlap
        else "the gap is larger than the 95 % intervals of the test set"
    )
    return Answer(value, value, facts)


def answer_file_size(lesson: Lesson, data: dict) -> Answer:
    """Whether zeros in place make the saved file smaller, and what latency did (with noise)."""
    sizes = data["sizes"]
    method = lesson.answer_args.get("method", lesson.view.methods[0])
    result = sizes[method]
    ratio = result.file_masked / result.file_dense
    mapping: Mapping[str, str] = lesson.answer_args.get("options", {})
    value = mapping.get("same" if abs(ratio - 1) < 0.01 else "smaller", "")
    facts = {
        "sparsity": f"{data['sparsity']:.0%}",
        "file_dense": f"{result.file_dense / 1024:.1f} KiB",
        "file_masked": f"{result.file_masked / 1024:.1f} KiB",
        "gzip_dense": f"{result.file_dense_gzip / 1024:.1f} KiB",
        "gzip_masked": f"{result.file_masked_gzip / 1024:.1f} KiB",
        "latency_dense": f"{result.latency_dense_ms:.2f} ms",
        "latency_masked": f"{result.latency_masked_ms:.2f} ms",
        "answer": value,
    }
    for name, res in sizes.items():
        key = re.sub(r"[^a-z0-9]+", "_", name)
        if res.shrunk is not None:
            facts[f"{key}_file_shrunk"] = f"{res.shrunk.file_bytes / 1024:.1f} KiB"
            facts[f"{key}_latency_shrunk"] = f"{res.shrunk.latency_ms:.2f} ms"
            facts[f"{key}_params_shrunk"] = f"{res.shrunk.params:,}"
    return Answer(value, value, facts)


def answer_sensitive_layer(lesson: Lesson, data: dict) -> Answer:
    """The layer that loses least validation accuracy when pruned alone to a high sparsity."""
    table = data["table"]
    sparsity = float(lesson.answer_args.get("sparsity", table["sparsity"].max()))
    at = table[(table["sparsity"] - sparsity).abs() < 1e-6]
    if at.empty:
        at = table[table["sparsity"] == table["sparsity"].max()]
    best = at.loc[at["accuracy_drop"].idxmin()]
    worst = at.loc[at["accuracy_drop"].idxmax()]
    facts = {
        "sparsity": f"{float(at.sparsity.iloc[0]):.0%}",
        "best_layer": str(best.layer),
        "best_drop": f"{100 * best.accuracy_drop:.1f}",
        "best_params": f"{int(best.params):,}",
        "worst_layer": str(worst.layer),
        "worst_drop": f"{100 * worst.accuracy_drop:.1f}",
        "worst_params": f"{int(worst.params):,}",
        "answer": str(best.layer),
    }
    return Answer(str(best.layer), str(best.layer), facts)


def answer_tree_alpha(lesson: Lesson, data: dict) -> Answer:
    """The number of leaves of the tree cross-validation picks, beside the unpruned tree."""
    path, choice = data["path"], data["choice"]
    full = path.iloc[0]
    facts = {
        "full_leaves": f"{int(full.leaves)}",
        "full_train": _pct(full.train_accuracy),
        "full_test": _pct(full.test_accuracy),
        "cv_alpha": f"{choice['ccp_alpha']:.4f}",
        "cv_leaves": f"{int(choice['leaves'])}",
        "cv_train": _pct(choice["train_accuracy"]),
        "cv_test": _pct(choice["test_accuracy"]),
        "best_test": _pct(path.test_accuracy.max()),
        "flipped": f"{data['flipped']}",
        "answer": f"{int(choice['leaves'])}",
    }
    return Answer(float(choice["leaves"]), facts["cv_leaves"], facts, x=float(choice["ccp_alpha"]))


ANSWERS: dict[str, Callable[[Lesson, dict], Answer]] = {
    "accuracy_at": answer_accuracy_at,
    "better_scope": answer_better_scope,
    "layer_collapse": answer_layer_collapse,
    "cliff": answer_cliff,
    "schedule": answer_schedule,
    "file_size": answer_file_size,
    "sensitive_layer": answer_sensitive_layer,
    "tree_alpha": answer_tree_alpha,
}


def compute_answer(lesson: Lesson, data: dict) -> Answer:
    """The registered answer for a lesson's measurement; every placeholder of the explanation must
    be among its facts (a lesson that quotes a number nobody measured is a bug)."""
    answer = ANSWERS[lesson.answer](lesson, data)
    missing = lesson.placeholders() - set(answer.facts)
    if missing:
        raise LessonError(
            f"lesson {lesson.id}: the explanation uses {', '.join(sorted(missing))}, which answer "
            f"{lesson.answer!r} does not compute (it gives {', '.join(sorted(answer.facts))})"
        )
    if lesson.question.kind == "choice" and answer.value not in lesson.question.options:
        raise LessonError(f"lesson {lesson.id}: measured answer {answer.value!r} is not one of the options")
    return answer


def explanation(lesson: Lesson, answer: Answer) -> str:
    """The explanation with the engine's numbers filled in."""
    return lesson.reveal.format_map(dict(answer.facts))


def guess_verdict(lesson: Lesson, guess: float | str, answer: Answer) -> str:
    """One sentence comparing the guess with the measurement."""
    if lesson.question.kind == "choice":
        return "Your guess matches the measurement." if guess == answer.value else "The measurement says otherwise."
    gap = float(guess) - float(answer.value)
    unit = "points" if lesson.question.unit == "%" else lesson.question.unit  # a gap between percentages
    if abs(gap) <= 2 * lesson.question.step:
        return "Spot on: within a couple of steps of the measurement."
    return f"You were {abs(gap):.0f}{' ' + unit if unit else ''} too {'high' if gap > 0 else 'low'}."


# ---------------------------------------------------------------------------------------------
# Figures (plain functions: data in, figure out; the guess drawn beside the measurement)

COMPACT_LAYOUT = dict(
    # the title sits below Plotly's toolbar (top right), which covers it on a 390 px phone otherwise
    margin=dict(l=50, r=10, t=90, b=40),
    title_yref="container",
    title_y=1,
    title_yanchor="top",
    title_pad_t=40,
    legend=dict(orientation="h", yanchor="top", y=-0.25, x=0, xanchor="left"),
    title_font_size=15,
    title_x=0,
    title_xanchor="left",
    hovermode="closest",
)


def _guess_marks(fig: go.Figure, lesson: Lesson, guess: float | str, answer: Answer) -> None:
    if lesson.question.kind == "slider" and answer.axis == "y" and answer.x is not None:
        x: float | str = answer.x * (100 if lesson.view.kind != "trees" else 1)
        label_at = "top left"
        if one_level(lesson) and answer.category:
            x, label_at = answer.category, "middle right"  # the first category sits at the left edge
        fig.add_trace(
            go.Scatter(
                x=[x],
                y=[float(guess)],
                mode="markers+text",
                name="your guess",
                marker=dict(symbol="x", size=14, color=GUESS_COLOUR),
                text=["your guess"],
                textposition=label_at,
            )
        )
        fig.add_trace(
            go.Scatter(
                x=[x],
                y=[float(answer.value)],
                mode="markers",
                name="measured",
                marker=dict(symbol="circle-open", size=16, color=MEASURED_COLOUR, line=dict(width=3)),
            )
        )
    elif lesson.question.kind == "slider" and answer.axis == "x":
        fig.add_vline(x=float(guess), line=dict(color=GUESS_COLOUR, dash="dash", width=3))
        fig.add_vline(x=float(answer.value), line=dict(color=MEASURED_COLOUR, width=2))
        fig.add_trace(
            go.Scatter(x=[None], y=[None], mode="lines", name="your guess", line=dict(color=GUESS_COLOUR, dash="dash"))
        )
        fig.add_trace(
            go.Scatter(x=[None], y=[None], mode="lines", name="measured knee", line=dict(color=MEASURED_COLOUR))
        )
    else:
        # In the top margin, right-aligned under the title: inside the plot it would cover the bars
        # or the lines the question is about.
        fig.add_annotation(
            text=f"Your guess: {guess}<br>Measured: {answer.display}",
            xref="paper",
            yref="paper",
            x=1,
            y=1,
            xanchor="right",
            yanchor="bottom",
            yshift=4,
            showarrow=False,
            align="right",
            bgcolor="rgba(255,255,255,0.9)",
            bordercolor="#888",
        )


def series_name(method: str, scope: str) -> str:
    """How a lesson chart names one method and scope (also the category of a one-level chart)."""
    return f"{method_label(method)} ({scope})"


def one_level(lesson: Lesson) -> bool:
    """Whether a sweep lesson measures a single sparsity: its chart compares methods side by side
    (a sparsity axis with one position would pile every point onto one spot)."""
    return lesson.view.kind in ("sweep", "boundary") and len(lesson.view.levels) == 1


def sweep_figure(lesson: Lesson, data: dict) -> go.Figure:
    """Accuracy (percent) against sparsity (percent), one line per method and scope, dense dotted;
    at a single sparsity, one point per method and scope with its 95 % interval."""
    fig = go.Figure()
    table = data["table"]
    dashes = {"global": "solid", "layerwise": "dash", "erk": "dot"}
    single = one_level(lesson)
    for (method, scope), group in table.groupby(["method", "scope"], sort=False):
        group = group.sort_values("target_sparsity")
        name = series_name(method, scope)
        interval = dict(
            type="data",
            symmetric=False,
            array=100 * (group.accuracy_high - group.accuracy),
            arrayminus=100 * (group.accuracy - group.accuracy_low),
        )
        fig.add_trace(
            go.Scatter(
                x=[name] * len(group) if single else 100 * group.target_sparsity,
                y=100 * group.accuracy,
                mode="markers" if single else "lines+markers",
                name=name,
                line=dict(color=method_colour(method), dash=dashes.get(scope)),
                marker=dict(size=12) if single else None,
                error_y=interval if single else None,
                hovertemplate="%{x}: %{y:.1f} %% accuracy<extra></extra>"
                if single
                else "%{x:.1f} %% sparsity: %{y:.1f} %% accuracy<extra></extra>",
            )
        )
    fig.add_hline(
        y=100 * data["dense"]["accuracy"],
        line=dict(color="#777", dash="dot"),
        annotation_text="dense",
        annotation_position="bottom" if single else "bottom left",  # between the points, or left of the lines
    )
    fig.update_layout(
        title_text=f"{lesson.view.model}: test accuracy vs sparsity"
        if not single
        else f"{lesson.view.model}: test accuracy at {lesson.view.levels[0]:.0%} sparsity",
        xaxis_title="sparsity (% of weights removed)" if not single else "method (scope)",
        yaxis_title="test accuracy (%)",
        height=430,
        **COMPACT_LAYOUT,
    )
    return fig


def _curve_label(curve: str) -> str:
    """A training curve's name as the Schedules page says it, wrapped to fit a bar on a phone."""
    return "<br>".join(textwrap.wrap(SCHEDULE_STYLES.get(curve, (curve,))[0], 16))


def schedules_figure(lesson: Lesson, data: dict) -> go.Figure:
    """Accuracy per training curve at each sparsity, with 95 % intervals."""
    table = data["table"]
    fig = go.Figure()
    for sparsity, group in table.groupby("target_sparsity"):
        fig.add_trace(
            go.Bar(
                x=[_curve_label(curve) for curve in group.curve],
                y=100 * group.accuracy,
                marker_color=[SCHEDULE_STYLES.get(curve, ("", "#4c78a8"))[1] for curve in group.curve],
                name=f"{sparsity:.0%} sparsity",
                error_y=dict(
                    type="data",
                    symmetric=False,
                    array=100 * (group.accuracy_high - group.accuracy),
                    arrayminus=100 * (group.accuracy - group.accuracy_low),
                ),
            )
        )
    fig.add_hline(y=100 * data["dense"]["accuracy"], line=dict(color="#777", dash="dot"), annotation_text="dense")
    low = max(0.0, 100 * float(table.accuracy_low.min()) - 5)
    fig.update_layout(
        title_text=f"{lesson.view.model}: test accuracy by schedule",
        yaxis_title="test accuracy (%)",
        yaxis_range=[low, 100],
        barmode="group",
        height=430,
        **COMPACT_LAYOUT,
    )
    return fig


def size_figure(lesson: Lesson, data: dict) -> go.Figure:
    """File size (KiB) of the dense, zeros-in-place and neurons-removed models per method."""
    fig = go.Figure()
    first = next(iter(data["sizes"].values()))
    bars = {"dense": first.file_dense / 1024}
    for method, result in data["sizes"].items():
        bars[f"{method_label(method)}: zeros in place"] = result.file_masked / 1024
        if result.shrunk is not None:
            removed = "neurons removed" if get_method(method).granularity == "structured" else "dead neurons removed"
            bars[f"{method_label(method)}: {removed}"] = result.shrunk.file_bytes / 1024
    fig.add_trace(
        go.Bar(
            x=list(bars.values()),
            y=list(bars),
            orientation="h",
            marker_color="#4c78a8",
            text=[f"{v:.0f} KiB" for v in bars.values()],
            textposition="auto",
            name="file size",
        )
    )
    fig.update_layout(
        title_text=f"{lesson.view.model}: safetensors file at {data['sparsity']:.0%} sparsity",
        xaxis_title="file size (KiB)",
        height=360,
        showlegend=False,
        **COMPACT_LAYOUT,
    )
    fig.update_yaxes(automargin=True)
    return fig


def sensitivity_figure(lesson: Lesson, data: dict) -> go.Figure:
    """Validation accuracy against the sparsity of one layer pruned alone, one line per layer."""
    fig = go.Figure()
    for layer, group in data["table"].groupby("layer", sort=False):
        fig.add_trace(
            go.Scatter(
                x=100 * group.sparsity,
                y=100 * group.accuracy,
                mode="lines+markers",
                name=f"{layer} ({int(group.params.iloc[0]):,} weights)",
            )
        )
    fig.update_layout(
        title_text=f"{lesson.view.model}: one layer pruned at a time",
        yaxis_title="validation accuracy (%)",
        xaxis_title="sparsity of that layer (%)",
        height=430,
        **COMPACT_LAYOUT,
    )
    return fig


def trees_figure(lesson: Lesson, data: dict) -> go.Figure:
    """Train, test and cross-validated accuracy against ccp_alpha, leaves on a second axis."""
    path = data["path"]
    fig = go.Figure()
    for column, name, colour in (
        ("train_accuracy", "train", "#1f77b4"),
        ("test_accuracy", "test", "#ff7f0e"),
        ("cv_accuracy", "cross-validated (train folds)", "#2ca02c"),
    ):
        fig.add_trace(
            go.Scatter(
                x=path.ccp_alpha,
                y=100 * path[column],
                mode="lines+markers",
                name=name,
                line=dict(color=colour, shape="hv"),
            )
        )
    fig.add_trace(
        go.Scatter(
            x=path.ccp_alpha,
            y=path.leaves,
            mode="lines",
            name="leaves (right axis)",
            yaxis="y2",
            line=dict(color="#999", dash="dot", shape="hv"),
        )
    )
    fig.add_vline(x=data["choice"]["ccp_alpha"], line=dict(color=MEASURED_COLOUR, width=2))
    fig.update_layout(
        title_text="Decision tree: accuracy vs ccp_alpha",
        xaxis_title="ccp_alpha",
        yaxis_title="accuracy (%)",
        yaxis2=dict(title="leaves", overlaying="y", side="right", rangemode="tozero", tickformat="d"),
        height=430,
        **COMPACT_LAYOUT,
    )
    fig.update_layout(margin=dict(l=50, r=50, t=90, b=40))
    # Most of the path sits at small alphas; the last steps (down to the root) stretch far to the right.
    upper = float(path.ccp_alpha.quantile(0.9)) * 1.3
    if upper > 0:
        fig.update_xaxes(
            range=[-upper * 0.03, upper],
            title_text="ccp_alpha",
        )
    return fig


def boundary_figure(model: str, grid: dict, sparsity: float) -> go.Figure:
    """The pruned model's decision regions with the training points, accuracy in the title."""
    sample = compute.shared_sample(model)
    X, y = sample.data.X_train.numpy(), sample.data.y_train.numpy()
    fig = go.Figure()
    fig.add_trace(
        go.Contour(
            x=grid["x"],
            y=grid["y"],
            z=grid["prob"],
            colorscale="RdBu",
            zmin=0,
            zmax=1,
            showscale=False,
            opacity=0.55,
            contours=dict(start=0, end=1, size=0.1),
            hoverinfo="skip",
            name="P(class 1)",
        )
    )
    for label, colour, symbol in ((0, "#b2182b", "circle"), (1, "#2166ac", "diamond")):
        keep = y == label
        fig.add_trace(
            go.Scatter(
                x=X[keep, 0],
                y=X[keep, 1],
                mode="markers",
                name=f"class {label} (train)",
                marker=dict(color=colour, size=5, symbol=symbol, line=dict(width=0.5, color="white")),
            )
        )
    fig.update_layout(
        title_text=f"{sparsity:.0%} pruned: test accuracy {grid['accuracy']:.1%}",
        height=430,
        xaxis_title="x₁",
        yaxis_title="x₂",
        **COMPACT_LAYOUT,
    )
    fig.update_xaxes(range=[float(grid["x"][0]), float(grid["x"][-1])])
    fig.update_yaxes(range=[float(grid["y"][0]), float(grid["y"][-1])])
    return fig


def histogram_figure(model: str, sparsity: float, seed: int = 0) -> go.Figure:
    """One layer's weight histogram with the magnitude cut at ``sparsity`` (kept vs pruned)."""
    view = compute.layer_view(model, PruningChoice("magnitude", "global", sparsity, seed=seed))
    layer = max(view.weights, key=lambda name: view.weights[name].size)
    weights, kept = view.weights[layer].ravel(), view.kept[layer].ravel()
    fig = go.Figure()
    edges = dict(start=float(weights.min()), end=float(weights.max()), size=float(np.ptp(weights)) / 60 or 1.0)
    fig.add_trace(go.Histogram(x=weights[kept], xbins=edges, name="kept", marker_color="#1f77b4"))
    fig.add_trace(go.Histogram(x=weights[~kept], xbins=edges, name="pruned", marker_color="#ff7f0e"))
    if view.threshold is not None:
        for sign in (-1, 1):
            fig.add_vline(x=sign * view.threshold, line=dict(dash="dot", color="#333"))
    fig.update_layout(
        barmode="stack",
        title_text=f"{layer}: {weights.size:,} weights, cut at |w| ≤ threshold",
        xaxis_title="weight value",
        yaxis_title="count",
        height=360,
        **COMPACT_LAYOUT,
    )
    return fig


def _tree_guess_marks(fig: go.Figure, lesson: Lesson, guess: float | str, answer: Answer) -> None:
    """The guessed and the chosen tree's leaf counts, on the leaves axis at the alpha CV picks."""
    fig.add_trace(
        go.Scatter(
            x=[answer.x],
            y=[float(guess)],
            yaxis="y2",
            mode="markers+text",
            name="your guess (leaves)",
            marker=dict(symbol="x", size=14, color=GUESS_COLOUR),
            text=["your guess"],
            textposition="middle left",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=[answer.x],
            y=[float(answer.value)],
            yaxis="y2",
            mode="markers",
            name="CV's tree (leaves)",
            marker=dict(symbol="circle-open", size=16, color=MEASURED_COLOUR, line=dict(width=3)),
        )
    )


FIGURES: dict[str, Callable[[Lesson, dict], go.Figure]] = {
    "sweep": sweep_figure,
    "boundary": sweep_figure,
    "schedules": schedules_figure,
    "size": size_figure,
    "sensitivity": sensitivity_figure,
    "trees": trees_figure,
}
MARKS: dict[str, Callable[[go.Figure, Lesson, Any, Answer], None]] = {"trees": _tree_guess_marks}


def guess_marks(fig: go.Figure, lesson: Lesson, guess: float | str, answer: Answer) -> None:
    """Draw the guess beside the measurement on ``fig`` (the lesson's chart, or an empty overlay)."""
    MARKS.get(lesson.view.kind, _guess_marks)(fig, lesson, guess, answer)


def lesson_figure(lesson: Lesson, data: dict, guess=None, answer: Answer | None = None) -> go.Figure:
    """The lesson's main chart, with the guess drawn beside the measurement once there is one."""
    fig = FIGURES[lesson.view.kind](lesson, data)
    if lesson.question.kind == "choice":  # room under the title for the note naming guess and answer
        fig.update_layout(margin_t=135, height=(fig.layout.height or 430) + 45)
    if guess is not None and answer is not None:
        guess_marks(fig, lesson, guess, answer)
    return fig


def with_overlay(base: Mapping[str, Any], overlay: go.Figure) -> go.Figure:
    """``base`` (a figure's ``to_dict()``) with ``overlay``'s traces, shapes and annotations added
    last, as drawing them on the figure itself would. Nothing is validated again: both parts were
    validated when built, and re-validating the whole chart per guess costs ~15x more. ``base`` is
    shared and only read."""
    extra = overlay.to_dict()
    layout = dict(base["layout"])
    for key in ("shapes", "annotations"):
        if extra["layout"].get(key):
            layout[key] = [*layout.get(key, ()), *extra["layout"][key]]
    return go.Figure({"data": [*base["data"], *extra["data"]], "layout": layout}, _validate=False)


def presenter_height(fig: go.Figure, present: bool) -> go.Figure:
    """A copy sized for a projector (one chart per screen) when presenting."""
    if not present:
        return fig
    fig = go.Figure(fig)
    fig.update_layout(height=680, font=dict(size=20), title=dict(font=dict(size=26)))
    return fig


@st.cache_resource(show_spinner=False)
def poll_store():
    """The room poll shared by every session of this process (and, with ``PRUNELAB_CACHE_DIR``, by
    every process of the deployment through files)."""
    import os

    from ui.poll import PollStore

    return PollStore(directory=os.environ.get("PRUNELAB_CACHE_DIR") or None)


def poll_bucket(lesson: Lesson, guess: float | str) -> str:
    """A guess as the poll counts it: the option, or the slider value on the question's steps."""
    if lesson.question.kind == "choice":
        return str(guess)
    return f"{float(guess):g}"


def room_link(
    base_url: str,
    lesson: Lesson,
    room: str | None,
    hide: tuple[str, ...] = ("sidebar",),
    lock: tuple[str, ...] = (),
    present: bool = False,
) -> str:
    """The full link attendees (or a projector) open for a lesson, optionally in a room."""
    from ui.visibility import Visibility

    query = {"lesson": lesson.id}
    if room:
        query["room"] = room
    query.update(Visibility(frozenset(hide), frozenset(lock), present).to_query())
    return base_url.rstrip("/") + page_link("workshop", query)


def qr_png(text: str, scale: int = 8) -> bytes:
    """A QR code of ``text`` as PNG bytes (segno, pure Python)."""
    import io

    import segno

    buffer = io.BytesIO()
    segno.make(text, error="m").save(buffer, kind="png", scale=scale, border=2)
    return buffer.getvalue()


def poll_figure(lesson: Lesson, counts: Mapping[str, int], answer: Answer) -> go.Figure:
    """The room's guesses as bars (every option, or every value guessed), the measurement marked."""
    if lesson.question.kind == "choice":
        labels = list(lesson.question.options)
        values = [counts.get(option, 0) for option in labels]
        colours = [MEASURED_COLOUR if option == answer.value else "#9ecae1" for option in labels]
        fig = go.Figure(
            go.Bar(
                x=values,
                y=labels,
                orientation="h",
                marker_color=colours,
                text=values,
                textposition="auto",
                name="guesses",
            )
        )
        fig.update_yaxes(autorange="reversed", automargin=True)
        fig.update_xaxes(title_text="guesses", rangemode="tozero")
    else:
        numeric = sorted((float(k), v) for k, v in counts.items())
        fig = go.Figure(
            go.Bar(x=[k for k, _ in numeric], y=[v for _, v in numeric], marker_color="#9ecae1", name="guesses")
        )
        fig.add_vline(
            x=float(answer.value),
            line=dict(color=MEASURED_COLOUR, width=3),
            annotation_text=f"measured {answer.display}",
        )
        fig.update_xaxes(
            title_text=f"guess ({lesson.question.unit or 'value'})",
            range=[lesson.question.low - lesson.question.step, lesson.question.high + lesson.question.step],
        )
        fig.update_yaxes(title_text="guesses", rangemode="tozero")
    total = sum(counts.values())
    fig.update_layout(title_text=f"The room's guesses ({total})", height=380, showlegend=False, **COMPACT_LAYOUT)
    return fig


@st.cache_resource(show_spinner=False, max_entries=64)
def _measured(lesson_id: str, signature: str) -> tuple[dict, Answer]:
    lesson = next(item for item in load_lessons() if item.id == lesson_id)
    data = run_view(lesson.view)
    result = data, compute_answer(lesson, data)
    with _READY_LOCK:
        _READY.add(signature)
    return result


_READY: set[str] = set()  # signatures of lessons measured in this process (only grows; guarded)
_READY_LOCK = threading.Lock()


def measured(lesson: Lesson, progress=None) -> tuple[dict, Answer]:
    """(data, answer) of a lesson, computed once per server and shared by every session: a room of
    thirty revealing at once must not rerun the answer's pandas work thirty times. Read-only.
    ``progress`` sees the engine's progress the first time (cached engine calls are instant)."""
    signature = repr(lesson)
    with _READY_LOCK:
        ready = signature in _READY
    if progress is not None and not ready:
        run_view(lesson.view, progress=progress)  # fills the shared engine caches with progress shown
    return _measured(lesson.id, signature)


@st.cache_resource(show_spinner=False, max_entries=64)
def _base_figure(lesson_id: str, signature: str, present: bool) -> dict:
    lesson = next(item for item in load_lessons() if item.id == lesson_id)
    data, _ = _measured(lesson_id, signature)
    return presenter_height(lesson_figure(lesson, data), present).to_dict()


@st.cache_resource(show_spinner=False, max_entries=1024)
def _revealed_figure(lesson_id: str, signature: str, guess: float | str, present: bool) -> go.Figure:
    lesson = next(item for item in load_lessons() if item.id == lesson_id)
    _, answer = _measured(lesson_id, signature)
    overlay = go.Figure()
    guess_marks(overlay, lesson, guess, answer)
    return with_overlay(_base_figure(lesson_id, signature, present), overlay)


def revealed_figure(lesson: Lesson, guess: float | str, present: bool = False) -> go.Figure:
    """The lesson's chart with ``guess`` drawn: the chart is built once per lesson and shared, the
    guess is a small overlay (a room answering at once must not build thirty charts). Cached per
    guess too (guesses are on the question's steps or options, so there are few). Never mutate it."""
    return _revealed_figure(lesson.id, repr(lesson), guess, present)


@st.cache_resource(show_spinner=False, max_entries=128)
def boundary_chart(model: str, sparsity: float, seed: int = 0, present: bool = False) -> go.Figure:
    """Lesson 1's decision regions at ``sparsity``, built once and shared. Never mutate it."""
    return presenter_height(boundary_figure(model, boundary_grid(model, sparsity, seed), sparsity), present)


@st.cache_resource(show_spinner=False, max_entries=128)
def histogram_chart(model: str, sparsity: float, seed: int = 0) -> go.Figure:
    """Lesson 1's weight histogram with the cut at ``sparsity``, built once and shared. Never mutate it."""
    return histogram_figure(model, sparsity, seed)
