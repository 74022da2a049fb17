"""The native fast path is part of the build: a missing library fails the suite.

setup.py compiles src/uintr_emu/native/fastpath.c into the package at install time.  If that
build fails or is skipped, the emulator still works (the Python model executes everything),
which is why nothing else would notice: the tests marked requires_native would not run.  Only
UINTR_EMU_NATIVE=0 in the environment turns the library off on purpose (the tests marked
requires_native are then skipped).  native_status is a fixture from tests/conftest.py.
"""

from __future__ import annotations

import pytest


def test_fast_path_is_built_unless_disabled(native_status) -> None:
    state, message = native_status()
    if state == "disabled":
        pytest.skip(message)
    if state != "built":
        pytest.fail(message, pytrace=False)
