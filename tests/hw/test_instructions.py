"""CLUI, STUI, TESTUI, UIRET and the common #UD rules of all five instructions (docs/uintr.md §6.1,
§6.3, §6.4; SDM instruction pages)."""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest
from hwmachine import USER_RFLAGS, USER_STACK_SIZE, USER_STACK_TOP, make_machine

from uintr_emu.hw.cpu import CR4_UINTR, CpuFeatures
from uintr_emu.hw.faults import GeneralProtection, InvalidOpcode, PageFault, StackFault
from uintr_emu.hw.uintr import IA32_UINTR_TT, UIRET_RFLAGS_MASK, UintrUnit

STACK = USER_STACK_TOP - 0x100

INSTRUCTIONS: list[tuple[str, Callable[[UintrUnit], object]]] = [
    ("CLUI", lambda c: c.clui()),
    ("STUI", lambda c: c.stui()),
    ("TESTUI", lambda c: c.testui(USER_RFLAGS)),
    ("UIRET", lambda c: c.uiret(STACK, USER_RFLAGS)),
    ("SENDUIPI", lambda c: c.senduipi(0)),
]


@pytest.mark.parametrize(("name", "run"), INSTRUCTIONS)
def test_all_five_ud_when_cr4_uintr_0_section_6_1(
    name: str, run: Callable[[UintrUnit], object]
) -> None:
    m = make_machine(1, enable=False)
    c = m.cpus[0]
    c.wrmsr(IA32_UINTR_TT, 0xFFFF_8880_0000_0001)  # SENDUIPI enabled: CR4 is what fails
    with pytest.raises(InvalidOpcode) as exc:
        run(c)
    assert str(exc.value) == f"#UD: {name}: CR4.UINTR = 0"
    assert c.state.uif is False


@pytest.mark.parametrize(("name", "run"), INSTRUCTIONS)
def test_all_five_ud_when_cpuid_uintr_0_section_6_1(
    name: str, run: Callable[[UintrUnit], object]
) -> None:
    c = make_machine(1, enable=False, features=CpuFeatures(uintr=False)).cpus[0]
    with pytest.raises(InvalidOpcode, match=rf"{name}: CPUID\.\(7,0\):EDX\.UINTR\[5\] = 0"):
        run(c)


def test_clui_stui_set_uif_section_6_3() -> None:
    c = make_machine(1).cpus[0]
    seen: list[str] = []
    c.events = lambda kind, **f: seen.append(kind)
    assert c.state.uif is False  # reset value
    c.stui()
    assert c.state.uif is True
    c.stui()
    assert c.state.uif is True
    c.clui()
    assert c.state.uif is False
    assert seen == ["stui", "stui", "clui"]


def test_instructions_work_at_any_cpl_section_6_1() -> None:
    c = make_machine(1).cpus[0]
    c.user_mode = False
    c.stui()
    assert c.testui(0) == 1


# TESTUI: CF := UIF; OF, SF, ZF, AF, PF := 0; others unchanged.
@pytest.mark.parametrize(
    ("uif", "rflags_in", "rflags_out"),
    [
        (True, 0x202, 0x203),
        (False, 0x203, 0x202),
        (True, 0x8D7 | 0x200, 0x203),  # CF PF AF ZF SF OF all set before
        (False, 0x8D7 | 0x200, 0x202),
        (True, 0x254702, 0x254703),  # TF, IF, DF, NT, RF, AC, ID kept
        (False, 0xFFFF_FFFF, 0xFFFF_FFFF & ~0x8D5),
    ],
)
def test_testui_flags_sdm_testui(uif: bool, rflags_in: int, rflags_out: int) -> None:
    c = make_machine(1).cpus[0]
    c.state.uif = uif
    assert c.testui(rflags_in) == rflags_out
    assert c.state.uif is uif


# -- UIRET -----------------------------------------------------------------------------------


def push_frame(c: UintrUnit, rsp: int, rip: int, rflags: int, new_rsp: int) -> None:
    c.mem.write(rsp, struct.pack("<QQQ", rip, rflags, new_rsp), supervisor=False)


def test_uiret_pops_rip_rflags_rsp_and_sets_uif_sdm_uiret() -> None:
    c = make_machine(1).cpus[0]
    push_frame(c, STACK, 0x40_1234, 0x202, 0x7FFF_FFEF_0008)
    seen: list[tuple[str, dict[str, object]]] = []
    c.events = lambda kind, **f: seen.append((kind, f))
    rip, rflags, rsp = c.uiret(STACK, 0x202)
    assert (rip, rflags, rsp) == (0x40_1234, 0x202, 0x7FFF_FFEF_0008)  # RSP loaded, not +24
    assert c.state.uif is True
    assert seen == [("uiret", {"rip": 0x40_1234, "rsp": 0x7FFF_FFEF_0008, "uif": True})]


def test_uiret_rflags_mask_0x254dd5_exactly_sdm_uiret() -> None:
    assert UIRET_RFLAGS_MASK == 0x254DD5
    c = make_machine(1).cpus[0]
    restored = {0, 2, 4, 6, 7, 8, 10, 11, 14, 16, 18, 21}  # CF PF AF ZF SF TF DF OF NT RF AC ID
    for bit in range(64):
        push_frame(c, STACK, 0x40_0000, 1 << bit, STACK)
        _, from_set, _ = c.uiret(STACK, 0x202)
        push_frame(c, STACK, 0x40_0000, ~(1 << bit) & (2**64 - 1), STACK)
        _, from_clear, _ = c.uiret(STACK, 0xFFFF_FFFF_FFFF_FFFF)
        if bit in restored:
            assert from_set & (1 << bit), bit
            assert not from_clear & (1 << bit), bit
        else:
            assert bool(from_set & (1 << bit)) == bool(0x202 & (1 << bit)), bit  # kept
            assert from_clear & (1 << bit), bit  # kept from current RFLAGS
    # IF (9), IOPL (12-13), VM (17), VIF (19), VIP (20) are never restored; bit 1 stays 1.
    push_frame(c, STACK, 0x40_0000, 0, STACK)
    assert c.uiret(STACK, 0x202)[1] == 0x202
    push_frame(c, STACK, 0x40_0000, 0x1A3200, STACK)
    assert c.uiret(STACK, 0x002)[1] == 0x002


@pytest.mark.parametrize(("bit1", "uif"), [(0, False), (1, True)])
def test_flexible_uiret_loads_uif_from_rflags_bit_1_cpuid_7_1_edx17(bit1: int, uif: bool) -> None:
    c = make_machine(1, features=CpuFeatures(flexible_uiret=True)).cpus[0]
    c.state.uif = not uif
    push_frame(c, STACK, 0x40_0000, 0x200 | (bit1 << 1), STACK)
    _, rflags, _ = c.uiret(STACK, 0x202)
    assert c.state.uif is uif
    assert rflags & 2  # bit 1 of RFLAGS itself stays 1


def test_uiret_without_flexible_uiret_always_sets_uif() -> None:
    c = make_machine(1).cpus[0]
    push_frame(c, STACK, 0x40_0000, 0, STACK)  # bit 1 clear in the image
    c.uiret(STACK, 0x202)
    assert c.state.uif is True


@pytest.mark.parametrize(
    "rip", [0x0000_8000_0000_0000, 0x8000_0000_0000_0000, 0xFFFF_0000_0000_0000]
)
def test_uiret_non_canonical_rip_gp_and_state_unchanged_sdm_uiret(rip: int) -> None:
    c = make_machine(1).cpus[0]
    push_frame(c, STACK, rip, 0x202, STACK)
    with pytest.raises(GeneralProtection, match="UIRET: return RIP .* not canonical"):
        c.uiret(STACK, 0x202)
    assert c.state.uif is False


def test_uiret_canonical_upper_half_rip_accepted() -> None:
    c = make_machine(1).cpus[0]
    push_frame(c, STACK, 0xFFFF_8000_0000_0000, 0x202, STACK)
    assert c.uiret(STACK, 0x202)[0] == 0xFFFF_8000_0000_0000


@pytest.mark.parametrize(
    "rsp",
    [
        0x0000_8000_0000_0000,  # first pop non-canonical
        0x0000_7FFF_FFFF_FFF0,  # third pop (RSP+16) crosses into the non-canonical range
        0xFFFF_7FFF_FFFF_FFF0,
    ],
)
def test_uiret_non_canonical_stack_ss_sdm_uiret(rsp: int) -> None:
    c = make_machine(1).cpus[0]
    with pytest.raises(StackFault, match="UIRET: pop from non-canonical"):
        c.uiret(rsp, 0x202)
    assert c.state.uif is False


def test_uiret_page_fault_reports_faulting_pop_and_changes_nothing() -> None:
    c = make_machine(1).cpus[0]
    bottom = USER_STACK_TOP - USER_STACK_SIZE
    with pytest.raises(PageFault) as exc:
        c.uiret(USER_STACK_TOP, 0x202)  # first pop at an unmapped page
    assert (exc.value.address, exc.value.write, exc.value.user) == (USER_STACK_TOP, False, True)
    with pytest.raises(PageFault) as exc:
        c.uiret(USER_STACK_TOP - 16, 0x202)  # RSP+16 is the first unmapped byte
    assert exc.value.address == USER_STACK_TOP
    assert c.state.uif is False
    assert bottom  # the stack below is mapped


def test_uiret_pops_from_supervisor_memory_fault_in_user_mode() -> None:
    m = make_machine(1)
    c = m.cpus[0]
    kernel = 0xFFFF_8880_0000_0100
    c.mem.write(kernel, struct.pack("<QQQ", 0x40_0000, 0x202, STACK), supervisor=True)
    with pytest.raises(PageFault) as exc:
        c.uiret(kernel, 0x202)
    assert exc.value.protection and exc.value.user
    c.user_mode = False  # at CPL0 the pops are supervisor accesses
    assert c.uiret(kernel, 0x202) == (0x40_0000, 0x202, STACK)


def test_cr4_toggle_reenables_instructions() -> None:
    c = make_machine(1, enable=False).cpus[0]
    c.cr4 = CR4_UINTR
    c.stui()
    c.cr4 = 0
    with pytest.raises(InvalidOpcode):
        c.clui()
    assert c.state.uif is True
