"""Fault values (hw/faults.py) and the paged memory model (hw/memory.py, SDM Vol.3 §4.6/§4.7)."""

from __future__ import annotations

import pytest

from uintr_emu.hw.faults import (
    VECTOR_GP,
    VECTOR_PF,
    VECTOR_SS,
    VECTOR_UD,
    ArchFault,
    GeneralProtection,
    InvalidOpcode,
    PageFault,
    StackFault,
)
from uintr_emu.hw.memory import PAGE_SIZE, PagedMemory, read_u64, write_u64

# -- faults --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "vector", "mnemonic", "text"),
    [
        (
            GeneralProtection("SENDUIPI: UITT index 256 > UITTSZ 255"),
            VECTOR_GP,
            "#GP",
            "#GP(0): SENDUIPI: UITT index 256 > UITTSZ 255",
        ),
        (InvalidOpcode("CLUI: CR4.UINTR = 0"), VECTOR_UD, "#UD", "#UD: CLUI: CR4.UINTR = 0"),
        (StackFault("UIRET: pop"), VECTOR_SS, "#SS", "#SS(0): UIRET: pop"),
    ],
)
def test_fault_vector_mnemonic_and_str_sdm_table_6_1(
    fault: ArchFault, vector: int, mnemonic: str, text: str
) -> None:
    assert isinstance(fault, ArchFault)
    assert (fault.vector, fault.mnemonic, fault.error_code) == (vector, mnemonic, 0)
    assert str(fault) == text
    assert fault.rule in text


@pytest.mark.parametrize(
    ("protection", "write", "user", "code"),
    [
        (False, False, False, 0),
        (True, False, False, 1),
        (False, True, False, 2),
        (False, False, True, 4),
        (True, True, True, 7),
    ],
)
def test_page_fault_error_code_bits_sdm_4_7(
    protection: bool, write: bool, user: bool, code: int
) -> None:
    f = PageFault(0x1234, write=write, protection=protection, user=user)
    assert (f.vector, f.mnemonic, f.error_code, f.address) == (VECTOR_PF, "#PF", code, 0x1234)
    assert (f.write, f.protection, f.user) == (write, protection, user)
    assert str(f).startswith(f"#PF({code:#x}): ")
    assert "0x1234" in str(f)


# -- memory --------------------------------------------------------------------------------------

USER = 0x10_0000
KERNEL = 0xFFFF_8880_0000_0000


@pytest.fixture
def mem() -> PagedMemory:
    m = PagedMemory()
    m.map(USER, PAGE_SIZE, user=True, writable=True)
    m.map(USER + PAGE_SIZE, PAGE_SIZE, user=True, writable=False)
    m.map(KERNEL, PAGE_SIZE, user=False, writable=True)
    return m


def test_memory_round_trip_user_and_supervisor(mem: PagedMemory) -> None:
    mem.write(USER + 8, b"abcdefgh", supervisor=False)
    assert mem.read(USER + 8, 8, supervisor=False) == b"abcdefgh"
    assert mem.read(USER + 8, 8, supervisor=True) == b"abcdefgh"
    write_u64(mem, KERNEL, 0x1122334455667788, True)
    assert read_u64(mem, KERNEL, True) == 0x1122334455667788
    assert mem.read(KERNEL, 8, supervisor=True) == bytes.fromhex("8877665544332211")


@pytest.mark.parametrize(
    ("addr", "write", "supervisor", "protection"),
    [
        (0x5000, False, False, False),  # not mapped
        (0x5000, True, True, False),  # not mapped, supervisor
        (KERNEL, False, False, True),  # user read of a supervisor page
        (KERNEL, True, False, True),  # user write of a supervisor page
        (USER + PAGE_SIZE, True, False, True),  # write to a read-only page
        (USER + PAGE_SIZE, True, True, True),  # supervisor write to read-only, CR0.WP = 1
    ],
)
def test_memory_page_fault_kinds_sdm_4_6(
    mem: PagedMemory, addr: int, write: bool, supervisor: bool, protection: bool
) -> None:
    with pytest.raises(PageFault) as exc:
        if write:
            mem.write(addr, b"\0" * 8, supervisor=supervisor)
        else:
            mem.read(addr, 8, supervisor=supervisor)
    f = exc.value
    assert (f.address, f.write, f.protection, f.user) == (addr, write, protection, not supervisor)


def test_memory_read_only_page_is_readable(mem: PagedMemory) -> None:
    assert mem.read(USER + PAGE_SIZE, 4, supervisor=False) == b"\0\0\0\0"


def test_memory_cross_page_access_and_fault_address_convention(mem: PagedMemory) -> None:
    # Both pages writable: a write crossing the boundary lands on both.
    mem.map(USER + PAGE_SIZE, PAGE_SIZE, user=True, writable=True)
    mem.write(USER + PAGE_SIZE - 4, b"12345678", supervisor=False)
    assert mem.read(USER + PAGE_SIZE - 4, 8, supervisor=False) == b"12345678"
    # Second page missing: the fault names the first byte of the faulting page, nothing stored.
    mem.unmap(USER + PAGE_SIZE, PAGE_SIZE)
    with pytest.raises(PageFault) as exc:
        mem.write(USER + PAGE_SIZE - 4, b"abcdefgh", supervisor=False)
    assert exc.value.address == USER + PAGE_SIZE
    assert mem.read(USER + PAGE_SIZE - 4, 4, supervisor=False) == b"1234"
    # First page missing: the fault names the access address itself.
    with pytest.raises(PageFault) as exc:
        mem.read(USER - 4, 8, supervisor=False)
    assert exc.value.address == USER - 4


def test_memory_map_existing_page_changes_rights_keeps_data(mem: PagedMemory) -> None:
    mem.write(USER, b"keep", supervisor=False)
    mem.map(USER, 1, user=False, writable=False)
    assert mem.read(USER, 4, supervisor=True) == b"keep"
    with pytest.raises(PageFault):
        mem.read(USER, 4, supervisor=False)


def test_memory_addresses_wrap_at_2_64() -> None:
    m = PagedMemory()
    m.map(0xFFFF_FFFF_FFFF_F000, PAGE_SIZE, user=True, writable=True)
    m.map(0, PAGE_SIZE, user=True, writable=True)
    m.write(0xFFFF_FFFF_FFFF_FFFC, b"wrapwrap", supervisor=False)
    assert m.read(0, 4, supervisor=False) == b"wrap"
    assert m.is_mapped(0xFFFF_FFFF_FFFF_F123)
