"""Lessons as data: every lesson file validates, runs its view and computes its answer; bad files
are refused with a message naming the problem; the explanation quotes only measured numbers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import plotly.graph_objects as go
import plotly.io as pio
import pytest

from ui import lessons as L

GOOD = (L.LESSON_DIR / "02-magnitude-vs-random.md").read_text()
COURSE_ORDER = [
    "what-pruning-does", "magnitude-vs-random", "global-vs-layerwise", "over-pruning-cliff",
    "fine-tuning-recovers", "zeros-are-numbers", "n-m-sparsity", "lottery-tickets", "sensitivity",
    "decision-trees",
]  # fmt: skip


def test_the_course_has_ten_lessons_in_the_issue_order():
    assert [lesson.id for lesson in L.load_lessons()] == COURSE_ORDER


@pytest.mark.parametrize("path", sorted(L.LESSON_DIR.glob("*.md")), ids=lambda p: p.stem)
def test_lesson_text_types_no_measured_numbers(path: Path):
    """Numbers in an explanation come from the engine: the reveal template has no percentages or
    decimals of its own (settings such as '95 %' belong to the question and the view)."""
    lesson = L.parse_lesson(path.read_bytes(), path.name)
    typed = re.findall(r"\d+\.\d+|\d+ ?%", lesson.reveal)
    allowed = {"95 %", "10 %", "50 %"}  # the Wilson interval's level, chance on 10 classes, 2:4's fixed density
    assert set(typed) <= allowed, f"{path.name} types numbers into its explanation: {set(typed) - allowed}"
    assert lesson.placeholders(), f"{path.name} quotes no measurement"
    assert 1 <= len(lesson.now_try) <= 3


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.replace("id: magnitude-vs-random", "id: Bad Id!"), "id 'Bad Id!'"),
        (lambda t: t.replace("answer: accuracy_at", "answer: no_such_answer"), "not a registered answer"),
        (lambda t: t.replace("model: digits-mlp", "model: resnet-9000", 1), "view model 'resnet-9000' is unknown"),
        (lambda t: t.replace("kind: slider", "kind: essay"), "question kind 'essay' is unknown"),
        (lambda t: t.replace("order: 2", "order: 2\nextra: &a [1]\nmore: *a"), "anchors and aliases"),
        (lambda t: t.replace("levels: [0, 0.2", "levels: [1.5, 0.2"), "levels"),
        (lambda t: t.replace("page: tradeoff", "page: nowhere", 1), "now_try item"),
        (lambda t: t.replace("---\n", "", 1), "between two '---' lines"),
        (lambda t: t.replace("title: Magnitude versus random", "title: [unclosed"), "not valid YAML"),
        (lambda t: t + "x" * L.MAX_LESSON_BYTES, "at most"),
    ],
)
def test_a_malformed_lesson_is_refused_with_a_clear_message(change, message):
    with pytest.raises(L.LessonError) as error:
        L.parse_lesson(change(GOOD), "bad.md")
    assert "bad.md" in str(error.value) and message in str(error.value)


def test_an_explanation_quoting_an_unmeasured_number_is_an_error():
    lesson = L.parse_lesson(GOOD.replace("{random_global_accuracy}", "{made_up_number}"), "x.md")
    data = L.run_view(lesson.view)
    with pytest.raises(L.LessonError, match="made_up_number"):
        L.compute_answer(lesson, data)


@pytest.mark.slow
@pytest.mark.parametrize("lesson", L.load_lessons(), ids=lambda lesson: lesson.id)
def test_every_lesson_runs_its_view_and_computes_its_answer(lesson: L.Lesson):
    data = L.run_view(lesson.view)
    answer = L.compute_answer(lesson, data)
    if lesson.question.kind == "slider":
        assert isinstance(answer.value, float)
    else:
        assert answer.value in lesson.question.options
    text = L.explanation(lesson, answer)
    assert "{" not in text, "every placeholder is filled"
    assert any(value in text for value in answer.facts.values()), "the explanation quotes the measurement"
    guess = lesson.question.options[0] if lesson.question.kind == "choice" else lesson.question.start
    fig = L.lesson_figure(lesson, data, guess, answer)
    names = [trace.name for trace in fig.data]
    drawn = any("guess" in str(name) for name in names) or any(
        "Your guess" in str(a.text) for a in fig.layout.annotations
    )
    assert drawn, "the guess is drawn on the chart beside the measurement"
    assert _overlaid(lesson, data, guess, answer) == json.loads(pio.to_json(fig)), "the shared path draws the same"


def _overlaid(lesson: L.Lesson, data: dict, guess, answer: L.Answer) -> dict:
    """The chart as the page serves it: the lesson's chart built once without the guess (shared,
    read-only), the guess as a small overlay on top. Also checks the shared part is left as it was."""
    base = L.lesson_figure(lesson, data).to_dict()
    before = pio.to_json(base)
    overlay = go.Figure()
    L.guess_marks(overlay, lesson, guess, answer)
    merged = json.loads(pio.to_json(L.with_overlay(base, overlay)))
    assert pio.to_json(base) == before, "the shared chart is never changed"
    return merged


@pytest.mark.parametrize("guess", [0.0, 37.0, 100.0])
def test_a_guess_overlay_draws_what_the_full_chart_draws(guess: float):
    lesson = next(x for x in L.load_lessons() if x.id == "n-m-sparsity")
    data = L.run_view(lesson.view)
    answer = L.compute_answer(lesson, data)
    full = L.lesson_figure(lesson, data, guess, answer)
    assert _overlaid(lesson, data, guess, answer) == json.loads(pio.to_json(full))


def test_links_open_pages_where_streamlit_serves_them():
    """The trade-off view is the default page: Streamlit serves it at / (and /tradeoff says "Page not found")."""
    assert L.page_link("tradeoff", {"model": "digits-mlp"}) == "/?model=digits-mlp"
    assert L.page_link("layers", {"model": "digits-mlp"}) == "/layers?model=digits-mlp"
    lesson = L.load_lessons()[1]
    assert L.explorer_link(lesson).startswith("/?")
