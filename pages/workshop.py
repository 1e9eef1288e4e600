"""Workshop: guided lessons, each a prediction, then the measurement beside the guess."""

import streamlit as st

from ui import lessons as L
from ui import state, visibility
from ui.poll import PollError, check_code

state.require_router()
view = visibility.current()
present = view.present

try:
    course = L.load_lessons()
except L.LessonError as exc:
    st.error(f"The lessons could not be read: {exc}")
    st.stop()
by_id = {lesson.id: lesson for lesson in course}

if "ws_lesson" not in st.session_state:
    wanted = st.query_params.get("lesson", course[0].id)
    if wanted not in by_id:
        st.warning(
            f"Link: lesson={wanted[:40]!r} is not a lesson; valid: {', '.join(by_id)}. Opening the first.", icon="⚠️"
        )
        wanted = course[0].id
    st.session_state.ws_lesson = wanted

room = None
if "room" in st.query_params:
    try:
        room = check_code(st.query_params["room"])
        if not L.poll_store().is_open(room):
            st.warning(f"Room {room} is not open (closed or expired): your guesses are not counted.", icon="⚠️")
            room = None
    except PollError as exc:
        st.warning(f"Link: {exc}. Your guesses are not counted.", icon="⚠️")
state.show_notices()

numbers = {lesson.id: i + 1 for i, lesson in enumerate(course)}
lesson_id = st.selectbox(
    "Lesson",
    list(by_id),
    key="ws_lesson",
    format_func=lambda i: f"{numbers[i]}. {by_id[i].title}",
    label_visibility="collapsed" if present else "visible",
)
lesson = by_id[lesson_id]
if st.query_params.get("lesson") != lesson.id:
    st.query_params["lesson"] = lesson.id

st.title(f"{numbers[lesson.id]}. {lesson.title}")
st.caption(f"Lesson {numbers[lesson.id]} of {len(course)} · about {lesson.minutes} min · {lesson.teaches}")
if room:
    st.caption(f"Room **{room}**: your guess is counted anonymously (no names, counts only).")
st.markdown(lesson.body)

revealed_key, voted_key = f"ws_revealed_{lesson.id}", f"ws_voted_{lesson.id}"
guess_key = f"ws_guess_{lesson.id}"
revealed = revealed_key in st.session_state
question = lesson.question
st.subheader("Your prediction")
if question.kind == "choice":
    guess = st.radio(question.text, question.options, key=guess_key, index=None, disabled=revealed)
else:
    guess = st.slider(
        question.text, question.low, question.high, value=question.start, step=question.step,
        key=guess_key, disabled=revealed, format="%g" + (" " + question.unit.replace("%", "%%") if question.unit else ""),
    )  # fmt: skip


def commit(current_lesson=lesson, current_room=room) -> None:
    """Lock the guess in (and count it once in the room's poll)."""
    value = st.session_state.get(f"ws_guess_{current_lesson.id}")
    if value is None:
        st.session_state.ws_message = "Pick an answer first."
        return
    st.session_state[f"ws_revealed_{current_lesson.id}"] = value
    if current_room and f"ws_voted_{current_lesson.id}" not in st.session_state:
        try:
            L.poll_store().vote(current_room, current_lesson.id, L.poll_bucket(current_lesson, value))
            st.session_state[f"ws_voted_{current_lesson.id}"] = True
        except PollError as exc:
            st.session_state.ws_message = f"Your guess was not counted in the room: {exc}."


def again(current_lesson=lesson) -> None:
    st.session_state.pop(f"ws_revealed_{current_lesson.id}", None)


if not revealed:
    st.button("Lock in my guess and reveal", key=f"ws_reveal_{lesson.id}", type="primary", on_click=commit)
if "ws_message" in st.session_state:
    st.warning(st.session_state.pop("ws_message"))

# The measurement is computed while the attendee thinks, but nothing of it is shown before the guess.
slot = st.empty()
slot.progress(0.0, text="Preparing the measurement (it stays hidden until you lock in a guess)...")
if revealed:
    data, answer = L.measured(lesson)
else:
    data, answer = L.measured(lesson, progress=lambda f, m: slot.progress(min(1.0, f), text=f"Measuring: {m}"))
slot.empty()

if not revealed:
    st.info("The chart and the measured answer appear here once you lock in your guess.")
    st.stop()

guess = st.session_state[revealed_key]
left, right = st.columns(2)
shown_guess = f"{guess:g}{(' ' + question.unit) if question.unit else ''}" if question.kind == "slider" else str(guess)
left.metric("Your guess", shown_guess)
right.metric("Measured by the engine", answer.display)
st.markdown(f"**{L.guess_verdict(lesson, guess, answer)}**")
st.plotly_chart(L.revealed_figure(lesson, guess, present), key="ws_chart")
st.markdown(L.explanation(lesson, answer))

if lesson.view.kind == "boundary":
    st.subheader("Move the cut")
    levels = list(lesson.view.levels)
    sparsity = st.select_slider("Sparsity", levels, value=levels[len(levels) // 2], key="ws_boundary_s",
                                format_func=lambda s: f"{s:.0%}")  # fmt: skip
    grid = L.boundary_grid(lesson.view.model, sparsity, lesson.view.seed)
    st.plotly_chart(
        L.presenter_height(L.boundary_figure(lesson.view.model, grid, sparsity), present), key="ws_boundary"
    )
    st.plotly_chart(L.histogram_figure(lesson.view.model, sparsity, lesson.view.seed), key="ws_hist")

st.subheader("Now try")
links = [f"- [{label}]({L.page_link(page, query)})" for label, page, query in lesson.now_try]
page_for = {"trees": "decision-trees", "schedules": "schedules", "sensitivity": "sensitivity", "size": "size-speed"}
links.append(
    f"- [Open this lesson's choice in the explorer]({L.explorer_link(lesson, page_for.get(lesson.view.kind, 'tradeoff'))})"
)
st.markdown("\n".join(links))
st.button("Guess again", key=f"ws_again_{lesson.id}", on_click=again)
position = [item.id for item in course].index(lesson.id)
if position + 1 < len(course):
    st.caption(f"Next: **{course[position + 1].title}** (pick it above).")
