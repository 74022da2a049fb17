"""End-to-end hardware scenarios: the kvm-unit-tests UINTR checks of docs/uintr.md §14 ported to the
model, plus cross-CPU flows (send -> IPI -> identification -> processing -> delivery -> UIRET)."""

from __future__ import annotations

import struct

import pytest
from hwmachine import (
    HANDLER,
    UINV,
    USER_RFLAGS,
    USER_STACK_TOP,
    Machine,
    make_machine,
    ndst_for,
    read_upid,
    setup_receiver,
    setup_sender,
    upid_addr,
    write_uitte,
    write_upid,
)

from uintr_emu.hw.decode import decode
from uintr_emu.hw.faults import GeneralProtection, InvalidOpcode
from uintr_emu.hw.uintr import IA32_UINTR_RR, IA32_UINTR_TT

RIP = 0x40_3000
RSP = USER_STACK_TOP - 0x800


def self_ipi_machine(vector: int = 1) -> Machine:
    """One CPU that is both sender and receiver, UITT entry 0 -> its own UPID (kvm-unit-tests)."""
    m = make_machine(1)
    setup_receiver(m, 0)
    setup_sender(m, 0)
    write_uitte(m.mem, 0, vector=vector, upid=upid_addr(0))
    return m


def boundary(m: Machine, i: int, rflags: int = USER_RFLAGS) -> tuple[int, int, int] | None:
    """What the run loop does at an instruction boundary of CPU i: identification/processing,
    then recognition and delivery."""
    cpu = m.cpus[i]
    assert cpu.service_interrupts(bool(rflags & 0x200)) == []
    return cpu.deliver(RIP, RSP, rflags)


# -- kvm-unit-tests UINTR checks (§14) ---------------------------------------------------------


def test_kvm_stui_and_senduipi_with_cr4_uintr_0_ud() -> None:
    m = self_ipi_machine()
    m.cpus[0].cr4 = 0
    with pytest.raises(InvalidOpcode):
        m.cpus[0].stui()
    with pytest.raises(InvalidOpcode):
        m.cpus[0].senduipi(0)


def test_kvm_senduipi_tt_0_ud() -> None:
    m = self_ipi_machine()
    m.cpus[0].wrmsr(IA32_UINTR_TT, 0)
    with pytest.raises(InvalidOpcode, match="SENDUIPI"):
        m.cpus[0].senduipi(0)


def test_kvm_index_256_with_uittsz_255_gp() -> None:
    m = self_ipi_machine()
    with pytest.raises(GeneralProtection, match="256 > UITTSZ 255"):
        m.cpus[0].senduipi(256)


def test_kvm_invalid_uitt_entry_gp() -> None:
    m = self_ipi_machine()
    write_uitte(m.mem, 0, vector=1, upid=upid_addr(0), valid=False)
    with pytest.raises(GeneralProtection):
        m.cpus[0].senduipi(0)


def test_kvm_reserved_uitt_byte_gp() -> None:
    m = self_ipi_machine()
    write_uitte(m.mem, 0, low=1 | (1 << 8) | (0xFF << 16), upid=upid_addr(0))
    with pytest.raises(GeneralProtection):
        m.cpus[0].senduipi(0)


def test_kvm_reserved_upid_bit_gp() -> None:
    m = self_ipi_machine()
    write_upid(m.mem, upid_addr(0), ndst=0, extra_low=1 << 24)
    with pytest.raises(GeneralProtection):
        m.cpus[0].senduipi(0)


def test_kvm_normal_self_send_runs_handler_in_user_mode() -> None:
    m = self_ipi_machine(vector=1)
    m.cpus[0].senduipi(0)
    result = boundary(m, 0)
    assert result is not None and result[0] == HANDLER
    assert struct.unpack("<Q", m.mem.read(result[1], 8, supervisor=False))[0] == 1


def test_kvm_clui_then_send_no_delivery_and_uirr_set() -> None:
    m = self_ipi_machine(vector=1)
    m.cpus[0].clui()
    m.cpus[0].senduipi(0)
    assert boundary(m, 0) is None
    assert m.cpus[0].rdmsr(IA32_UINTR_RR) == 1 << 1


def test_kvm_if_0_no_notification_identification() -> None:
    m = self_ipi_machine(vector=1)
    m.cpus[0].senduipi(0)
    assert boundary(m, 0, rflags=USER_RFLAGS & ~0x200) is None
    assert m.cpus[0].state.uirr == 0
    assert m.cpus[0].apic.irr == 1 << UINV


def test_kvm_sn_1_pir_set_no_delivery() -> None:
    m = self_ipi_machine(vector=1)
    write_upid(m.mem, upid_addr(0), ndst=0, sn=True)
    m.cpus[0].senduipi(0)
    assert boundary(m, 0) is None
    assert read_upid(m.mem, upid_addr(0))[1] == 1 << 1
    assert m.cpus[0].state.uirr == 0


def test_kvm_wrmsr_rr_delivers() -> None:
    m = self_ipi_machine()
    m.cpus[0].wrmsr(IA32_UINTR_RR, 1 << 4)
    result = boundary(m, 0)
    assert result is not None and result[0] == HANDLER


# -- cross-CPU flows ---------------------------------------------------------------------------


def cross_cpu_machine(x2apic: bool = True) -> Machine:
    m = make_machine(2, x2apic=x2apic)
    setup_sender(m, 0)
    setup_receiver(m, 1)
    write_uitte(m.mem, 0, vector=7, upid=upid_addr(1))
    write_uitte(m.mem, 1, vector=2, upid=upid_addr(1))
    return m


@pytest.mark.parametrize("x2apic", [True, False])
def test_cross_cpu_send_identification_processing_delivery_uiret(x2apic: bool) -> None:
    m = cross_cpu_machine(x2apic)
    sender, receiver = m.cpus
    code = bytes.fromhex("F30FC7F7") + bytes(12)  # senduipi %rdi, as GCC emits it
    d = decode(code)
    assert d is not None and d.register == 7  # rdi holds the UITT index
    sender.senduipi(0)
    assert m.ipis == [(0, 1, UINV)]
    assert boundary(m, 0) is None  # nothing for the sender
    result = boundary(m, 1)
    assert result is not None
    handler, rsp, rflags = result
    assert handler == HANDLER and receiver.state.uif is False
    assert read_upid(m.mem, upid_addr(1)) == ((UINV << 16) | (ndst_for(receiver.apic) << 32), 0)
    assert receiver.uiret(rsp + 8, rflags) == (RIP, USER_RFLAGS, RSP)


def test_coalescing_three_posts_one_pir_bit_one_delivery() -> None:
    m = cross_cpu_machine()
    for _ in range(3):
        m.cpus[0].senduipi(0)
    assert len(m.ipis) == 1
    assert read_upid(m.mem, upid_addr(1))[1] == 1 << 7
    assert boundary(m, 1) is not None
    m.cpus[1].stui()
    assert boundary(m, 1) is None


def test_post_after_processing_sends_a_new_notification() -> None:
    m = cross_cpu_machine()
    m.cpus[0].senduipi(0)
    assert boundary(m, 1) is not None  # ON cleared by processing
    m.cpus[0].senduipi(1)
    assert len(m.ipis) == 2
    m.cpus[1].stui()
    result = boundary(m, 1)
    assert result is not None
    assert struct.unpack("<Q", m.mem.read(result[1], 8, supervisor=False))[0] == 2


def test_two_vectors_delivered_highest_first_after_one_notification() -> None:
    m = cross_cpu_machine()
    m.cpus[0].senduipi(1)  # vector 2
    m.cpus[0].senduipi(0)  # vector 7, ON already set: no second IPI
    assert len(m.ipis) == 1
    vectors = []
    for _ in range(2):
        result = boundary(m, 1)
        assert result is not None
        vectors.append(struct.unpack("<Q", m.mem.read(result[1], 8, supervisor=False))[0])
        m.cpus[1].stui()
    assert vectors == [7, 2]


def test_receiver_switched_out_sn_set_then_resent_on_return_to_user() -> None:
    # What the Linux layer does (§11.5): SN := 1 while switched out; on return to user, if PIR is
    # non-empty, re-send a self-IPI by posting UINV to the local APIC.
    m = cross_cpu_machine()
    receiver = m.cpus[1]
    image = receiver.xsaves()
    lo, pir = read_upid(m.mem, upid_addr(1))
    m.mem.write(upid_addr(1), struct.pack("<QQ", lo | 2, pir), supervisor=True)
    m.cpus[0].senduipi(0)
    assert m.ipis == []  # suppressed
    receiver.xrstors(image)
    lo, pir = read_upid(m.mem, upid_addr(1))
    m.mem.write(upid_addr(1), struct.pack("<QQ", lo & ~2, pir), supervisor=True)
    assert pir
    receiver.apic.post(UINV)
    assert boundary(m, 1) is not None
