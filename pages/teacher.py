"""Teacher: links per lesson with controls hidden or locked, presenter mode, a QR code, a live poll."""

import streamlit as st

from ui import lessons as L
from ui import state, visibility
from ui.poll import PollError, check_code

state.require_router()
st.title("Teacher")
with st.expander("How a workshop runs"):
    st.markdown(
        """
1. **Open a room** below: it gets an unguessable 8-character code. Guesses are counted per room,
   anonymously (counts only, no names), and the room is forgotten when you close it or after
   hours of inactivity.
2. Put the **QR code** (or the link) on the projector; attendees open it on their phones.
3. Each lesson asks for a **prediction** first; the chart and the measurement stay hidden until
   an attendee locks in a guess. Your **live results** show the room's guesses beside the measured
   answer.
4. **Presenter mode** (`present=1`) is the same lesson in large type, without Streamlit's chrome,
   one chart per screen: open it on the projector's machine.

Links hide the explorer's sidebar by default (`hide=sidebar`); hide or lock more controls with
`hide=` and `lock=` (model, methods, scope, levels, exclude, seed) when a link opens an explorer page.
"""
    )

course = L.load_lessons()
by_id = {lesson.id: lesson for lesson in course}

store = L.poll_store()
if "teacher_room" not in st.session_state:
    st.session_state.teacher_room = None
    if "room" in st.query_params:
        try:
            code = check_code(st.query_params["room"])
            if store.is_open(code):
                st.session_state.teacher_room = code
            else:
                st.warning(f"Room {code} is not open any more (closed or expired); open a new one.", icon="⚠️")
        except PollError as exc:
            st.warning(f"Link: {exc}.", icon="⚠️")


def open_room() -> None:
    st.session_state.teacher_room = store.open_room()


def close_room() -> None:
    if st.session_state.teacher_room:
        store.close_room(st.session_state.teacher_room)
    st.session_state.teacher_room = None


room = st.session_state.teacher_room
if room and not store.is_open(room):
    st.warning(f"Room {room} expired; open a new one.", icon="⚠️")
    room = st.session_state.teacher_room = None
if room:
    st.query_params["room"] = room
elif "room" in st.query_params:
    del st.query_params["room"]

c1, c2 = st.columns([3, 1])
if room:
    c1.success(f"Room **{room}** is open.")
    c2.button("Close the room", key="teacher_close", on_click=close_room)
else:
    c1.info("No room open: links work without one, but guesses are not counted.")
    c2.button("Open a room", key="teacher_open", type="primary", on_click=open_room)

default_base = "http://localhost:8501"
try:
    from urllib.parse import urlsplit

    parts = urlsplit(st.context.url)
    default_base = f"{parts.scheme}://{parts.netloc}" if parts.netloc else default_base
except Exception:  # noqa: BLE001 - older Streamlit or no browser context: keep the default
    pass
base = st.text_input("Address attendees use to reach this server", default_base, key="teacher_base",
                     help="Behind a proxy or on a LAN, the address people type, e.g. http://10.0.0.5:8501")  # fmt: skip
if not base.startswith(("http://", "https://")) or len(base) > 200:
    st.error(f"{base[:60]!r} is not an http(s) address; using {default_base}.")
    base = default_base

numbers = {lesson.id: i + 1 for i, lesson in enumerate(course)}
if "teacher_lesson" not in st.session_state:
    wanted = st.query_params.get("lesson", course[0].id)
    if wanted not in by_id:
        st.warning(f"Link: lesson={wanted[:40]!r} is not a lesson; valid: {', '.join(by_id)}.", icon="⚠️")
        wanted = course[0].id
    st.session_state.teacher_lesson = wanted
lesson_id = st.selectbox(
    "Lesson", list(by_id), key="teacher_lesson", format_func=lambda i: f"{numbers[i]}. {by_id[i].title}"
)
lesson = by_id[lesson_id]
h1, h2 = st.columns(2)
hide = h1.multiselect("Hide", visibility.HIDEABLE, default=["sidebar"], key="teacher_hide")
lock = h2.multiselect("Lock (shown, not changeable)", list(visibility.CONTROLS), key="teacher_lock")

attendee = L.room_link(base, lesson, room, tuple(hide), tuple(lock))
presenter = L.room_link(base, lesson, room, tuple(hide), tuple(lock), present=True)
st.markdown("**Attendee link** (scan or type):")
st.code(attendee, language=None, wrap_lines=True)
st.markdown("**Presenter link** (for the projector):")
st.code(presenter, language=None, wrap_lines=True)
q1, q2 = st.columns([1, 2])
q1.image(L.qr_png(attendee), caption="Scan to open the lesson", width=260)
with q2:
    st.markdown(f"**{lesson.title}**: {lesson.teaches}")
    st.markdown(f"*Question:* {lesson.question.text}")


@st.fragment(run_every=2)
def live_results() -> None:
    """The room's guesses for the chosen lesson, refreshed every 2 s, beside the measurement."""
    code = st.session_state.get("teacher_room")
    if not code:
        st.caption("Open a room to see the attendees' guesses here, live.")
        return
    try:
        counts = store.counts(code, lesson.id)
    except PollError as exc:
        st.warning(str(exc))
        return
    slot = st.empty()
    slot.progress(0.0, text="Measuring the answer...")
    _, answer = L.measured(lesson)
    slot.empty()
    st.metric("Guesses in the room", sum(counts.values()))
    st.plotly_chart(L.poll_figure(lesson, counts, answer), key="teacher_poll")
    st.caption(f"Measured answer: **{answer.display}** (attendees see it after they commit their guess).")


st.subheader("Live results")
live_results()
st.button("Refresh now", key="teacher_refresh")

with st.expander("Every lesson's link"):
    st.markdown(
        "\n".join(
            f"{numbers[x.id]}. [{x.title}]({L.room_link(base, x, room, tuple(hide), tuple(lock))})" for x in course
        )
    )
