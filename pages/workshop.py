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

revealed_key = f"ws_revealed_{lesson.id}"
compact = present and revealed_key in st.session_state  # on a projector the revealed chart is the screen
st.title(f"{numbers[lesson.id]}. {lesson.title}")
if not compact:
    # What the lesson teaches is its conclusion: it is shown with the reveal, not before the guess.
    st.caption(f"Lesson {numbers[lesson.id]} of {len(course)} · about {lesson.minutes} min")
if room:
    st.caption(f"Room **{room}**: your guess is counted anonymously (no names, counts only).")
if not compact:
    st.markdown(lesson.body)


def commit(current_lesson: L.Lesson, current_room: str | None) -> None:
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


def again(current_lesson: L.Lesson) -> None:
    st.session_state.pop(f"ws_revealed_{current_lesson.id}", None)


def prediction_ui(lesson: L.Lesson, revealed: bool) -> None:
    """The question: a choice or a slider, disabled once the guess is locked in."""
    question = lesson.question
    st.subheader("Your prediction")
    if question.kind == "choice":
        st.radio(question.text, question.options, key=f"ws_guess_{lesson.id}", index=None, disabled=revealed)
    else:
        st.slider(
            question.text,
            question.low,
            question.high,
            value=question.start,
            step=question.step,
            key=f"ws_guess_{lesson.id}",
            disabled=revealed,
            format="%g" + (" " + question.unit.replace("%", "%%") if question.unit else ""),
        )


def reveal_ui(lesson: L.Lesson, guess: float | str, answer: L.Answer, present: bool) -> None:
    """The guess beside the measurement: two numbers, a verdict, the chart and the explanation."""
    question = lesson.question
    if question.kind == "slider":
        left, right = st.columns(2)
        left.metric("Your guess", f"{guess:g}{f' {question.unit}' if question.unit else ''}")
        right.metric("Measured by the engine", answer.display)
    else:  # an option is a sentence: a metric would cut it short on a phone
        st.markdown(f"Your guess: **{guess}**  \nMeasured by the engine: **{answer.display}**")
    st.markdown(f"**{L.guess_verdict(lesson, guess, answer)}**")
    st.plotly_chart(L.revealed_figure(lesson, guess, present), key="ws_chart")
    st.markdown(L.explanation(lesson, answer))
    st.info(f"**The point:** {lesson.teaches}")
    if lesson.view.kind == "boundary":
        st.subheader("Move the cut")
        levels = list(lesson.view.levels)
        sparsity = st.select_slider(
            "Sparsity", levels, value=levels[len(levels) // 2], key="ws_boundary_s", format_func=lambda s: f"{s:.0%}"
        )
        st.plotly_chart(L.boundary_chart(lesson.view.model, sparsity, lesson.view.seed, present), key="ws_boundary")
        st.plotly_chart(L.histogram_chart(lesson.view.model, sparsity, lesson.view.seed), key="ws_hist")


def now_try_ui(lesson: L.Lesson) -> None:
    st.subheader("Now try")
    links = [f"- [{label}]({L.page_link(page, query)})" for label, page, query in lesson.now_try]
    page_for = {"trees": "decision-trees", "schedules": "schedules", "sensitivity": "sensitivity", "size": "size-speed"}
    links.append(
        "- [Open this lesson's choice in the explorer]"
        f"({L.explorer_link(lesson, page_for.get(lesson.view.kind, 'tradeoff'))})"
    )
    st.markdown("\n".join(links))
    st.button("Guess again", key=f"ws_again_{lesson.id}", on_click=again, args=(lesson,))
    position = [item.id for item in course].index(lesson.id)
    if position + 1 < len(course):
        st.caption(f"Next: **{course[position + 1].title}** (pick it above).")


@st.fragment
def predict_then_reveal(lesson: L.Lesson, room: str | None, present: bool, drawn_compact: bool) -> None:
    """The question, then the reveal. A fragment: locking a guess in reruns only this part of the
    page, not the router, sidebar and lesson text, so a room answering at once is served quickly."""
    revealed = f"ws_revealed_{lesson.id}" in st.session_state
    if present and revealed != drawn_compact:
        st.rerun()  # the projector switches between the lesson text and the chart alone: redraw it all
    if not (present and revealed):
        prediction_ui(lesson, revealed)
    if not revealed:
        st.button(
            "Lock in my guess and reveal",
            key=f"ws_reveal_{lesson.id}",
            type="primary",
            on_click=commit,
            args=(lesson, room),
        )
    if "ws_message" in st.session_state:
        st.warning(st.session_state.pop("ws_message"))
    # The measurement is computed while the attendee thinks, but nothing of it is shown before the guess.
    slot = st.empty()
    slot.progress(0.0, text="Preparing the measurement (it stays hidden until you lock in a guess)...")
    if revealed:
        _, answer = L.measured(lesson)
    else:
        _, answer = L.measured(lesson, progress=lambda f, m: slot.progress(min(1.0, f), text=f"Measuring: {m}"))
    slot.empty()
    if not revealed:
        st.info("The chart and the measured answer appear here once you lock in your guess.")
        return
    reveal_ui(lesson, st.session_state[f"ws_revealed_{lesson.id}"], answer, present)
    now_try_ui(lesson)


predict_then_reveal(lesson, room, present, compact)
