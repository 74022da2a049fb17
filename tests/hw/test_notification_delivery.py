"""Notification identification and processing (docs/uintr.md §7), recognition and delivery (§8)."""

from __future__ import annotations

import struct

import pytest
from hwmachine import (
    HANDLER,
    UINV,
    USER_RFLAGS,
    USER_STACK_SIZE,
    USER_STACK_TOP,
    Machine,
    make_machine,
    read_upid,
    setup_receiver,
    upid_addr,
    write_upid,
)

from uintr_emu.hw.cpu import RFLAGS_IF, RFLAGS_RF, RFLAGS_TF
from uintr_emu.hw.faults import GeneralProtection, PageFault, StackFault
from uintr_emu.hw.uintr import IA32_UINTR_HANDLER, IA32_UINTR_RR, IA32_UINTR_STACKADJUST

RIP = 0x40_2345
RSP = USER_STACK_TOP - 0x1008  # deliberately not 16-byte aligned


@pytest.fixture
def m() -> Machine:
    m = make_machine(2)
    setup_receiver(m, 0)
    return m


# -- notification identification and processing (§7) ----------------------------------------


def test_notification_processing_moves_pir_to_uirr_clears_on_and_eois_section_7(
    m: Machine,
) -> None:
    cpu = m.cpus[0]
    write_upid(m.mem, upid_addr(0), ndst=0, on=True, pir=(1 << 3) | (1 << 63))
    cpu.state.uirr = 1 << 1
    cpu.apic.post(UINV)
    seen: list[tuple[str, dict[str, int]]] = []
    cpu.events = lambda kind, **f: seen.append((kind, f))
    assert cpu.service_interrupts() == []
    assert cpu.state.uirr == (1 << 1) | (1 << 3) | (1 << 63)
    lo, pir = read_upid(m.mem, upid_addr(0))
    assert pir == 0 and lo == UINV << 16  # ON cleared, the rest untouched
    assert (cpu.apic.irr, cpu.apic.isr) == (0, 0)  # acknowledged and EOI'd
    assert seen == [
        (
            "notification",
            {"upid": upid_addr(0), "pir": (1 << 3) | (1 << 63), "uirr": cpu.state.uirr},
        )
    ]


def test_notification_with_empty_pir_changes_no_uirr(m: Machine) -> None:
    cpu = m.cpus[0]
    cpu.apic.post(UINV)
    assert cpu.service_interrupts() == []
    assert cpu.state.uirr == 0 and not cpu.pending()


def test_non_uinv_vector_returned_to_os_and_left_in_service_section_7(m: Machine) -> None:
    cpu = m.cpus[0]
    write_upid(m.mem, upid_addr(0), pir=1 << 3)
    cpu.apic.post(0xEB)  # e.g. the kernel's blocked-receiver vector: an ordinary interrupt
    assert cpu.service_interrupts() == [0xEB]
    assert cpu.apic.isr == 1 << 0xEB  # the OS must EOI it
    assert cpu.state.uirr == 0 and read_upid(m.mem, upid_addr(0))[1] == 1 << 3
    cpu.apic.eoi()
    assert cpu.apic.isr == 0


def test_uinv_then_lower_ordinary_vector_in_one_call(m: Machine) -> None:
    cpu = m.cpus[0]
    write_upid(m.mem, upid_addr(0), pir=1 << 4)
    cpu.apic.post(UINV)
    cpu.apic.post(0x31)
    assert cpu.service_interrupts() == [0x31]
    assert cpu.state.uirr == 1 << 4


def test_ordinary_vector_in_service_blocks_notification_of_same_class(m: Machine) -> None:
    cpu = m.cpus[0]
    write_upid(m.mem, upid_addr(0), pir=1 << 4)
    cpu.apic.post(0xED)  # higher vector, same class 0xE as UINV 0xEC
    cpu.apic.post(UINV)
    assert cpu.service_interrupts() == [0xED]
    assert cpu.state.uirr == 0  # 0xEC waits for the OS's EOI
    cpu.apic.eoi()
    assert cpu.service_interrupts() == []
    assert cpu.state.uirr == 1 << 4


def test_if_0_no_notification_identification_section_7(m: Machine) -> None:
    cpu = m.cpus[0]
    write_upid(m.mem, upid_addr(0), on=True, pir=1 << 3)
    cpu.apic.post(UINV)
    assert cpu.service_interrupts(interrupts_enabled=False) == []
    assert cpu.apic.irr == 1 << UINV  # stays pending like any masked interrupt
    assert cpu.state.uirr == 0 and read_upid(m.mem, upid_addr(0))[1] == 1 << 3
    assert cpu.service_interrupts() == []
    assert cpu.state.uirr == 1 << 3


def test_cr4_uintr_0_uinv_is_an_ordinary_interrupt_section_7(m: Machine) -> None:
    cpu = m.cpus[0]
    write_upid(m.mem, upid_addr(0), pir=1 << 3)
    cpu.cr4 = 0
    cpu.apic.post(UINV)
    assert cpu.service_interrupts() == [UINV]
    assert cpu.state.uirr == 0


def test_after_xsaves_uinv_0_notification_reaches_the_os_section_4_and_7(m: Machine) -> None:
    # The receiver was switched out (XSAVES cleared UINV): Linux sees 0xEC as spurious.
    cpu = m.cpus[0]
    image = cpu.xsaves()
    write_upid(m.mem, upid_addr(0), on=True, pir=1 << 3)
    cpu.apic.post(UINV)
    assert cpu.service_interrupts() == [UINV]
    assert read_upid(m.mem, upid_addr(0))[1] == 1 << 3  # the post is not lost
    cpu.apic.eoi()
    cpu.xrstors(image)
    assert cpu.state.uinv == UINV


def test_processing_uses_current_upidaddr_and_ignores_reserved_bits_section_7(
    m: Machine,
) -> None:
    cpu = m.cpus[0]
    other = upid_addr(5)
    write_upid(m.mem, upid_addr(0), pir=1 << 1)
    write_upid(m.mem, other, pir=1 << 2, on=True, extra_low=0xFF00_FFFC)
    cpu.state.upid_addr = other
    cpu.apic.post(UINV)
    assert cpu.service_interrupts() == []
    assert cpu.state.uirr == 1 << 2
    lo, pir = read_upid(m.mem, other)
    assert pir == 0 and lo & 1 == 0 and lo & 0xFF00_FFFC == 0xFF00_FFFC
    assert read_upid(m.mem, upid_addr(0))[1] == 1 << 1


# -- recognition and delivery (§8) ------------------------------------------------------------


def frame_at(m: Machine, rsp: int) -> tuple[int, int, int, int]:
    return struct.unpack("<QQQQ", m.mem.read(rsp, 32, supervisor=False))


def test_delivery_subtract_mode_frame_bytes_section_8(m: Machine) -> None:
    cpu = m.cpus[0]
    cpu.wrmsr(IA32_UINTR_RR, 1 << 5)
    rflags = USER_RFLAGS | RFLAGS_TF | RFLAGS_RF | 0x1  # CF, TF, RF set
    result = cpu.deliver(RIP, RSP, rflags)
    expected_rsp = ((RSP - 128) & ~0xF) - 32
    assert result == (HANDLER, expected_rsp, USER_RFLAGS | 0x1)  # TF and RF cleared
    raw = m.mem.read(expected_rsp, 32, supervisor=False)
    assert raw == struct.pack("<QQQQ", 5, RIP, rflags, RSP)
    assert raw[:8] == bytes.fromhex("0500000000000000")  # [RSP] = vector, zero-extended
    assert cpu.state.uirr == 0 and cpu.state.uif is False
    assert expected_rsp % 16 == 0  # handler entry RSP is 16-byte aligned


def test_delivery_load_mode_alternate_stack_section_8_and_17_8(m: Machine) -> None:
    cpu = m.cpus[0]
    alt = USER_STACK_TOP - 0x3000
    size = 0x800
    cpu.wrmsr(IA32_UINTR_STACKADJUST, (alt + size - 4) | 1)  # bit 0 = 1: load, then align down
    cpu.wrmsr(IA32_UINTR_RR, 1 << 0)
    _, new_rsp, _ = cpu.deliver(RIP, RSP, USER_RFLAGS) or (0, 0, 0)
    assert new_rsp == ((alt + size - 4) & ~0xF) - 32
    assert alt <= new_rsp and new_rsp + 32 <= alt + size
    assert frame_at(m, new_rsp) == (0, RIP, USER_RFLAGS, RSP)


def test_delivery_pushes_rflags_with_bit_1_and_if_as_is(m: Machine) -> None:
    cpu = m.cpus[0]
    cpu.wrmsr(IA32_UINTR_RR, 1)
    _, new_rsp, new_rflags = cpu.deliver(RIP, RSP, RFLAGS_IF | 0x400) or (0, 0, 0)  # DF set
    assert frame_at(m, new_rsp)[2] == 0x602
    assert new_rflags == 0x602  # IF, DF unchanged


def test_delivery_highest_vector_first_one_bit_each_section_8(m: Machine) -> None:
    cpu = m.cpus[0]
    cpu.wrmsr(IA32_UINTR_RR, (1 << 63) | (1 << 17) | (1 << 3))
    delivered = []
    for _ in range(3):
        result = cpu.deliver(RIP, RSP, USER_RFLAGS)
        assert result is not None
        delivered.append(frame_at(m, result[1])[0])
        assert cpu.deliver(RIP, RSP, USER_RFLAGS) is None  # UIF = 0 now: no nesting
        cpu.stui()
    assert delivered == [63, 17, 3]
    assert not cpu.pending()


def test_delivery_uirrv() -> None:
    m = make_machine(1)
    assert m.cpus[0].state.uirrv == 0
    m.cpus[0].state.uirr = (1 << 40) | 1
    assert m.cpus[0].state.uirrv == 40


@pytest.mark.parametrize(
    ("change", "rflags"),
    [
        ("uif", USER_RFLAGS),
        ("user_mode", USER_RFLAGS),
        ("cr4", USER_RFLAGS),
        ("none", USER_RFLAGS & ~RFLAGS_IF),  # IF = 0 blocks delivery (Bochs, §17 #2)
        ("uirr", USER_RFLAGS),
    ],
)
def test_delivery_conditions_section_8(m: Machine, change: str, rflags: int) -> None:
    cpu = m.cpus[0]
    cpu.wrmsr(IA32_UINTR_RR, 1 << 2)
    if change == "uif":
        cpu.clui()
    elif change == "user_mode":
        cpu.user_mode = False
    elif change == "cr4":
        cpu.cr4 = 0
    elif change == "uirr":
        cpu.wrmsr(IA32_UINTR_RR, 0)
    assert not cpu.deliverable(rflags)
    assert cpu.deliver(RIP, RSP, rflags) is None
    assert cpu.state.uirr == (0 if change == "uirr" else 1 << 2)


def test_deliverable_when_all_conditions_hold(m: Machine) -> None:
    cpu = m.cpus[0]
    assert not cpu.deliverable(USER_RFLAGS)
    cpu.wrmsr(IA32_UINTR_RR, 1)
    assert cpu.pending() and cpu.deliverable(USER_RFLAGS)


@pytest.mark.parametrize("handler", [0x0000_8000_0000_0000, 0x8000_0000_0040_1000])
def test_delivery_non_canonical_handler_gp_first_state_unchanged_bochs_order(
    m: Machine, handler: int
) -> None:
    cpu = m.cpus[0]
    cpu.state.handler = handler  # WRMSR refuses it; an XRSTORS bug or a test can still set it
    cpu.wrmsr(IA32_UINTR_RR, 1 << 2)
    cpu.wrmsr(IA32_UINTR_STACKADJUST, 1)  # RSP := 0: pushes would fault, but #GP comes first
    with pytest.raises(GeneralProtection, match="UIHANDLER .* not canonical"):
        cpu.deliver(RIP, RSP, USER_RFLAGS)
    assert cpu.state.uirr == 1 << 2 and cpu.state.uif is True


def test_delivery_page_fault_on_push_leaves_state_unchanged_section_8(m: Machine) -> None:
    cpu = m.cpus[0]
    cpu.wrmsr(IA32_UINTR_RR, 1 << 2)
    unmapped = USER_STACK_TOP + 0x1000  # above the mapped stack
    with pytest.raises(PageFault) as exc:
        cpu.deliver(RIP, unmapped + 128, USER_RFLAGS)
    f = exc.value
    # The first push (old RSP) faults at new RSP - 8.
    assert (f.address, f.write, f.user, f.protection) == (unmapped - 8, True, True, False)
    assert cpu.state.uirr == 1 << 2 and cpu.state.uif is True
    # After the fault is handled the interrupt is delivered again.
    assert cpu.deliver(RIP, RSP, USER_RFLAGS) is not None


def test_delivery_fault_in_lower_page_reports_first_faulting_push(m: Machine) -> None:
    cpu = m.cpus[0]
    bottom = USER_STACK_TOP - USER_STACK_SIZE  # the page below is unmapped
    cpu.wrmsr(IA32_UINTR_RR, 1 << 2)
    cpu.wrmsr(IA32_UINTR_STACKADJUST, (bottom + 16) | 1)  # frame = [bottom-16, bottom+16)
    with pytest.raises(PageFault) as exc:
        cpu.deliver(RIP, RSP, USER_RFLAGS)
    assert exc.value.address == bottom - 8  # third push (RIP)
    # The two pushes above it were stored, as on hardware; state is unchanged.
    assert m.mem.read(bottom, 16, supervisor=False) == struct.pack("<QQ", USER_RFLAGS, RSP)
    assert cpu.state.uirr == 1 << 2 and cpu.state.uif is True


def test_delivery_to_read_only_or_kernel_stack_protection_fault(m: Machine) -> None:
    cpu = m.cpus[0]
    cpu.wrmsr(IA32_UINTR_RR, 1)
    m.mem.map(USER_STACK_TOP - USER_STACK_SIZE, USER_STACK_SIZE, user=True, writable=False)
    with pytest.raises(PageFault) as exc:
        cpu.deliver(RIP, RSP, USER_RFLAGS)
    assert exc.value.protection and exc.value.write
    cpu.wrmsr(IA32_UINTR_STACKADJUST, upid_addr(0) + 0x100 | 1)  # kernel page
    with pytest.raises(PageFault) as exc:
        cpu.deliver(RIP, RSP, USER_RFLAGS)
    assert exc.value.protection and exc.value.user
    assert cpu.state.uirr == 1


@pytest.mark.parametrize(
    ("rsp", "adjust"),
    [
        (0x0000_8000_0000_0100, 0),  # RSP itself in the non-canonical range
        (0x0000_7FFF_FFFF_F000, 0xFFFF_8000_0000_0000),  # subtract lands in the hole
    ],
)
def test_delivery_non_canonical_stack_ss(m: Machine, rsp: int, adjust: int) -> None:
    cpu = m.cpus[0]
    cpu.wrmsr(IA32_UINTR_RR, 1)
    cpu.wrmsr(IA32_UINTR_STACKADJUST, adjust)
    with pytest.raises(StackFault, match="non-canonical stack"):
        cpu.deliver(RIP, rsp, USER_RFLAGS)
    assert cpu.state.uirr == 1 and cpu.state.uif is True


def test_delivery_then_uiret_returns_to_interrupted_code_section_13(m: Machine) -> None:
    cpu = m.cpus[0]
    cpu.wrmsr(IA32_UINTR_RR, 1 << 9)
    rflags = USER_RFLAGS | 0x81  # SF, CF
    handler, rsp, hflags = cpu.deliver(RIP, RSP, rflags) or (0, 0, 0)
    assert handler == HANDLER
    # The GCC handler drops the vector (add $8, %rsp) and executes UIRET.
    assert cpu.uiret(rsp + 8, hflags) == (RIP, rflags, RSP)
    assert cpu.state.uif is True and not cpu.pending()


def test_delivery_event(m: Machine) -> None:
    cpu = m.cpus[0]
    seen: list[tuple[str, dict[str, int]]] = []
    cpu.events = lambda kind, **f: seen.append((kind, f))
    cpu.state.uirr = 1 << 6
    result = cpu.deliver(RIP, RSP, USER_RFLAGS)
    assert result is not None
    expected = {"vector": 6, "rip": RIP, "handler": HANDLER, "rsp": result[1],
                "upid": cpu.state.upid_addr}  # fmt: skip
    assert seen == [("deliver", expected)]


def test_handler_wrmsr_changes_apply_to_next_delivery(m: Machine) -> None:
    cpu = m.cpus[0]
    cpu.wrmsr(IA32_UINTR_HANDLER, 0x40_5000)
    cpu.wrmsr(IA32_UINTR_RR, 1)
    assert (cpu.deliver(RIP, RSP, USER_RFLAGS) or (0,))[0] == 0x40_5000
