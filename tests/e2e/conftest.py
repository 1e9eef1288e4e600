"""Shared setup of the end-to-end tests."""

import pytest

from benchmarks.browser import streamlit_server


@pytest.fixture(scope="module")
def server():
    """The app started as ``make run`` starts it, on a free port, for one test module."""
    try:
        with streamlit_server() as url:
            yield url
    except RuntimeError as exc:
        pytest.fail(str(exc))
