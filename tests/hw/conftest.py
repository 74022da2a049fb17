from __future__ import annotations

import pytest
from hwmachine import Machine, make_machine


@pytest.fixture
def machine() -> Machine:
    """Two x2APIC CPUs with CR4.UINTR = 1, kernel memory for UITT/UPIDs and a user stack."""
    return make_machine()
