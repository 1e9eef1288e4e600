"""Shared setup of the page tests."""

import sys

import pytest


@pytest.fixture(autouse=True)
def _restore_main_module():
    """AppTest runs each script as a fresh ``__main__`` module and leaves it installed, its
    ``__file__`` a temporary file that is then deleted. Processes spawned later in the same test
    session (multiprocessing's "spawn" re-imports ``__main__`` by path) would then die at start.
    Put the real one back after every page test."""
    main = sys.modules["__main__"]
    yield
    sys.modules["__main__"] = main
