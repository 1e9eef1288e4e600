"""Workshop, Teacher and Decision trees pages in AppTest: predict, then reveal; nothing before."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from ui import lessons as L

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 400


def _page_with_sidebar(page_path: str) -> None:
    import runpy

    import streamlit as st

    from ui import state, visibility

    state.init()
    visibility.sidebar_hook()
    st.session_state.explorer = state.sidebar()
    runpy.run_path(page_path)


def run_page(page: str, **query: str) -> AppTest:
    """One page with the shared sidebar, without st.navigation (see tests/app/test_pages.py)."""
    at = AppTest.from_function(_page_with_sidebar, args=(str(ROOT / "pages" / page),), default_timeout=TIMEOUT)
    for key, value in query.items():
        at.query_params[key] = value
    return at.run()


def _texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [m.value for m in at.caption] + [m.value for m in at.info]
    return "\n".join(parts)


def _charts(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def _shown(at: AppTest, label: str) -> list[str]:
    """What the page shows under ``label``: a metric (numbers) or a "label: **value**" line (options)."""
    values = [m.value for m in at.metric if m.label == label]
    return values + re.findall(rf"{re.escape(label)}: \*\*(.+?)\*\*", _texts(at))


def _commit(at: AppTest, lesson: L.Lesson, guess) -> AppTest:
    if lesson.question.kind == "choice":
        at.radio(key=f"ws_guess_{lesson.id}").set_value(guess)
    else:
        at.slider(key=f"ws_guess_{lesson.id}").set_value(guess)
    at.button(key=f"ws_reveal_{lesson.id}").click()
    return at.run()


@pytest.mark.slow
@pytest.mark.parametrize("lesson", L.load_lessons(), ids=lambda lesson: lesson.id)
def test_each_lesson_hides_the_answer_until_a_guess_then_shows_it_beside_the_guess(lesson: L.Lesson):
    at = run_page("workshop.py", lesson=lesson.id)
    assert not at.exception, at.exception
    answer = L.compute_answer(lesson, L.run_view(lesson.view))
    # Before the guess: no chart, no measured number, no explanation.
    assert not at.get("plotly_chart")
    assert not _shown(at, "Measured by the engine")
    assert lesson.teaches not in _texts(at), "what the lesson teaches is its conclusion: not before the guess"
    shown = re.search(rf"(?<![\w.]){re.escape(answer.display)}(?![\w.])", _texts(at))
    assert not shown, f"the measured {answer.display!r} is shown before the guess"
    assert "Now try" not in [h.value for h in at.subheader]

    guess = lesson.question.options[-1] if lesson.question.kind == "choice" else lesson.question.low
    at = _commit(at, lesson, guess)
    assert not at.exception, at.exception
    assert _shown(at, "Measured by the engine") == [answer.display]
    (your,) = _shown(at, "Your guess")
    assert str(guess).rstrip("0").rstrip(".") in your
    assert lesson.teaches in _texts(at)
    charts = _charts(at)
    assert charts, "the chart appears after the guess"
    main = charts[0]
    names = [trace.get("name", "") for trace in main["data"]]
    annotations = [a.get("text", "") for a in main["layout"].get("annotations", [])]
    assert any("guess" in n for n in names) or any("Your guess" in a for a in annotations)
    assert L.explanation(lesson, answer).splitlines()[0] in _texts(at)
    assert at.radio(key=f"ws_guess_{lesson.id}").disabled if lesson.question.kind == "choice" else True


def test_a_reveal_without_an_answer_asks_for_one_and_shows_nothing():
    lesson = next(x for x in L.load_lessons() if x.id == "zeros-are-numbers")
    at = run_page("workshop.py", lesson=lesson.id)
    at.button(key=f"ws_reveal_{lesson.id}").click()
    at.run()
    assert not at.exception
    assert any("Pick an answer first" in w.value for w in at.warning)
    assert not at.get("plotly_chart")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"lesson": "no-such-lesson"}, "is not a lesson"),
        ({"lesson": "n-m-sparsity", "room": "DROP TABLE"}, "room code"),
        ({"lesson": "n-m-sparsity", "room": "abcdefgh"}, "not open"),
        ({"lesson": "n-m-sparsity", "hide": "sidebar,everything"}, "unknown control"),
        ({"lesson": "n-m-sparsity", "present": "yes"}, "must be 0 or 1"),
    ],
)
def test_bad_workshop_links_give_a_notice_and_the_page_still_works(query, expected):
    at = run_page("workshop.py", **query)
    assert not at.exception
    assert any(expected in w.value for w in at.warning), [w.value for w in at.warning]
    assert at.button(key=f"ws_reveal_{at.session_state['ws_lesson']}")


def test_a_guess_in_a_room_is_counted_once_and_the_teacher_sees_it():
    store = L.poll_store()
    room = store.open_room()
    lesson = next(x for x in L.load_lessons() if x.id == "n-m-sparsity")
    at = run_page("workshop.py", lesson=lesson.id, room=room)
    at = _commit(at, lesson, 80.0)
    assert not at.exception
    at.button(key=f"ws_again_{lesson.id}").click()
    at = _commit(at.run(), lesson, 81.0)
    assert store.counts(room, lesson.id) == {"80": 1}, "one session counts once"

    teacher = run_page("teacher.py", room=room)
    teacher.selectbox(key="teacher_lesson").set_value(lesson.id)
    teacher.run()
    assert not teacher.exception
    (count,) = [m for m in teacher.metric if m.label == "Guesses in the room"]
    assert count.value == "1"
    store.close_room(room)
    assert not store.is_open(room)


def test_teacher_page_builds_links_with_hidden_controls_and_a_qr_code():
    at = run_page("teacher.py")
    assert not at.exception
    at.button(key="teacher_open").click()
    at.run()
    room = at.session_state["teacher_room"]
    codes = [c.value for c in at.code]
    assert any(f"room={room}" in c and "hide=sidebar" in c and "present" not in c for c in codes)
    assert any("present=1" in c for c in codes)
    assert at.get("image"), "the QR code is shown"
    at.button(key="teacher_close").click()
    at.run()
    assert not L.poll_store().is_open(room)


def test_decision_trees_page_shows_the_path_the_tree_and_cv_choice():
    at = run_page("decision_trees.py")
    assert not at.exception
    charts = _charts(at)
    assert len(charts) == 2
    assert "ccp_alpha" in charts[0]["layout"]["title"]["text"]
    leaves_before = int(next(m for m in at.metric if m.label == "Leaves").value)
    alphas = at.select_slider(key="dt_alpha").options
    at.select_slider(key="dt_alpha").set_value(float(alphas[-1])).run()
    assert not at.exception
    assert int(next(m for m in at.metric if m.label == "Leaves").value) < leaves_before
