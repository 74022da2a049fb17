"""Engine-level UINTR tests: hand-assembled snippets on a bare virtual CPU (no Linux layer).

Each test runs a few instruction bytes through the real path -- Unicorn raises #UD on a UINTR
encoding, the native fast path or the hardware model executes it and writes RIP/RSP/RFLAGS
back -- and checks registers, guest and kernel memory, and faults. The
checks are the kvm-unit-tests UINTR checks (docs/uintr.md §14) plus the
instruction rules of §6 and the delivery rules of §8. Test names end with the rule they cite:
``arch_6_1`` = docs/uintr.md §6.1, ``sdm_senduipi`` = the SDM SENDUIPI page, ``kvm`` =
kvm-unit-tests.

The harness is tests/engine_harness.py (see its docstring for the memory layout).
"""

from __future__ import annotations

import pytest

from engine_harness import (
    ALT_STACK_TOP,
    CLUI_BYTES,
    CODE,
    DATA,
    HANDLER,
    HANDLER_STOP,
    R8,
    R9,
    R13,
    R14,
    R15,
    RAX,
    RBX,
    RSP0,
    RSP_,
    STACK_ADJUST,
    STACK_TOP,
    STUI_BYTES,
    TESTUI_BYTES,
    UINV,
    UIRET_BYTES,
    USER_RFLAGS,
    Asm,
    Bare,
    GuestMemoryFault,
    UnexpectedInterrupt,
    delivery_frame_addr,
    senduipi_bytes,
    setup_uintr,
    uitte,
    upid_low,
)
from uintr_emu.hw.cpu import (
    RFLAGS_AF,
    RFLAGS_CF,
    RFLAGS_IF,
    RFLAGS_OF,
    RFLAGS_PF,
    RFLAGS_SF,
    RFLAGS_TF,
    RFLAGS_ZF,
    CpuFeatures,
)
from uintr_emu.hw.faults import GeneralProtection, InvalidOpcode, PageFault, StackFault
from uintr_emu.hw.uintr import IA32_UINTR_RR, UIRET_RFLAGS_MASK
from uintr_emu.linux.mm import PROT_EXEC, PROT_READ

VECTOR = 3  # the vector of the default self-send entry (UITT index 0)
MARK = 0x5EED_F00D  # written to r14 by the instruction after the one under test
RFLAGS_DF = 1 << 10
RFLAGS_IOPL = 3 << 12
RFLAGS_VM = 1 << 17
RFLAGS_VIF = 1 << 19
RFLAGS_VIP = 1 << 20
STATUS_FLAGS = RFLAGS_CF | RFLAGS_PF | RFLAGS_AF | RFLAGS_ZF | RFLAGS_SF | RFLAGS_OF

INSTRUCTIONS = {
    "clui": CLUI_BYTES,
    "stui": STUI_BYTES,
    "testui": TESTUI_BYTES,
    "uiret": UIRET_BYTES,
    "senduipi": senduipi_bytes(RAX),
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test runs on the Python model and on the native fast path, but for those marked
    ``model_only``: they check the state after each trapped instruction, which only the model
    reports (the fast path executes most instructions without leaving the engine)."""
    if "fast_path" in metafunc.fixturenames:
        paths = ["model"]
        if metafunc.definition.get_closest_marker("model_only") is None:
            paths.append(pytest.param("native", marks=pytest.mark.requires_native))
        metafunc.parametrize("fast_path", paths, indirect=True)


@pytest.fixture(autouse=True)
def fast_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Which path executes the UINTR instructions for every `Bare` machine of the test."""
    on = request.param == "native"
    monkeypatch.setattr(Bare, "default_fast_path", on)
    return on


model_only = pytest.mark.model_only


@pytest.fixture
def bare() -> Bare:
    return Bare()


def snippet(bare: Bare, build) -> int:
    """Assemble ``build(asm)`` at CODE, load it, return CODE."""
    a = Asm()
    build(a)
    return bare.load(a)


def assert_no_notification(bare: Bare, cpu_index: int = 0) -> None:
    cpu = bare.machine.cpus[cpu_index]
    assert cpu.apic.irr == 0 and cpu.apic.isr == 0
    assert not cpu.ipi_arrived


def write_uiret_frame(bare: Bare, rsp: int, rip: int, rflags: int, new_rsp: int) -> None:
    bare.write_qwords(rsp, rip, rflags, new_rsp)


# -- #UD: CR4.UINTR = 0, CPUID.UINTR = 0, TT[0] = 0, LOCK (§6.1) -------------------------------


@pytest.mark.parametrize("name", INSTRUCTIONS)
def test_instruction_with_cr4_uintr_clear_ud_arch_6_1_kvm(name: str) -> None:
    bare = Bare(cr4_uintr=False)
    u = setup_uintr(bare)  # the MSRs do not depend on CR4.UINTR (§3)
    write_uiret_frame(bare, RSP0, CODE + 0x100, USER_RFLAGS, RSP0)
    upid_before = bare.read_upid(u.upid)
    bare.poke(CODE, INSTRUCTIONS[name] + b"\xcc")
    with pytest.raises(InvalidOpcode, match="CR4.UINTR = 0"):
        bare.run(CODE)
    assert bare.rip == CODE  # a fault: nothing executed
    assert bare.rsp == RSP0
    assert not bare.cpu.uintr.state.uif
    assert bare.read_upid(u.upid) == upid_before
    assert_no_notification(bare)
    assert bare.traces == []


@pytest.mark.parametrize("name", INSTRUCTIONS)
def test_instruction_without_cpuid_uintr_ud_arch_6_1(name: str) -> None:
    bare = Bare(features=CpuFeatures(uintr=False), cr4_uintr=False)
    bare.poke(CODE, INSTRUCTIONS[name] + b"\xcc")
    with pytest.raises(InvalidOpcode, match="CPUID"):
        bare.run(CODE)
    assert bare.rip == CODE


def test_senduipi_with_tt_enable_clear_ud_sdm_senduipi_kvm(bare: Bare) -> None:
    u = setup_uintr(bare, tt_enable=False)
    upid_before = bare.read_upid(u.upid)
    snippet(bare, lambda a: a.stui().mov_imm(RAX, 0).senduipi(RAX).int3())
    with pytest.raises(InvalidOpcode, match=r"IA32_UINTR_TT\[0\]"):
        bare.run(CODE)
    assert bare.rip == CODE + 4 + 10  # at the SENDUIPI
    assert bare.read_upid(u.upid) == upid_before
    assert_no_notification(bare)
    assert bare.count == 0


@pytest.mark.parametrize("lock_first", [True, False], ids=["F0-F3", "F3-F0"])
@pytest.mark.parametrize("name", INSTRUCTIONS)
def test_lock_prefix_ud_arch_6_1(name: str, lock_first: bool) -> None:
    bare = Bare()
    u = setup_uintr(bare)
    bare.cpu.uintr.state.uif = name != "stui"  # so that the instruction would change UIF
    write_uiret_frame(bare, RSP0, CODE + 0x100, USER_RFLAGS, RSP0 - 0x40)
    insn = INSTRUCTIONS[name]
    code = (b"\xf0" + insn) if lock_first else (insn[:1] + b"\xf0" + insn[1:])
    bare.poke(CODE, code + b"\xcc")
    uif = bare.cpu.uintr.state.uif
    with pytest.raises(InvalidOpcode, match="LOCK prefix"):
        bare.run(CODE)
    assert bare.rip == CODE
    assert bare.rsp == RSP0
    assert bare.cpu.uintr.state.uif == uif
    assert bare.read_upid(u.upid) == (upid_low(ndst=0), 0)
    assert_no_notification(bare)


def test_genuine_ud_is_not_taken_for_uintr_unicorn_notes_2(bare: Bare) -> None:
    """ud2 and a UINTR-like encoding without the F3 prefix (RDPKRU) stay #UD for the OS: the
    processor reports #UD at the instruction, which is not executed."""
    setup_uintr(bare)
    for code in (b"\x0f\x0b", b"\x0f\x01\xee", b"\xf3\x0f\xc7\x30"):  # ud2, rdpkru, VMXON m64
        bare.poke(CODE, code + b"\xcc")
        with pytest.raises(InvalidOpcode, match="not an instruction this processor implements"):
            bare.run(CODE)
        assert bare.rip == CODE


# -- #GP: UITT index, UITT entry, UPID (§5, §6.5) ---------------------------------------------


def send_snippet(bare: Bare, index: int) -> int:
    """stui; mov rax, index; senduipi rax; mov r14, MARK; int3 -- returns the SENDUIPI address."""
    a = Asm()
    a.stui().mov_imm(RAX, index)
    at = a.here
    a.senduipi(RAX).mov_imm(R14, MARK).int3()
    bare.load(a)
    return at


def assert_send_gp(bare: Bare, upid: int, at: int, match: str) -> None:
    before = bare.read_upid(upid)
    with pytest.raises(GeneralProtection, match=match) as exc:
        bare.run(CODE)
    assert exc.value.error_code == 0
    assert bare.rip == at  # fault: RIP at the SENDUIPI, nothing after it ran
    assert bare.reg(R14) == 0
    assert bare.read_upid(upid) == before  # the UPID is not written
    assert_no_notification(bare)
    assert bare.cpu.uintr.state.uirr == 0
    assert bare.count == 0


@pytest.mark.parametrize(
    ("uitt_size", "index"),
    [(255, 256), (0, 1), (3, 4), (255, 1 << 32), (255, 1 << 63), (255, (1 << 64) - 1)],
    ids=["256-with-uittsz-255", "1-with-0", "4-with-3", "bit32", "bit63", "all-ones"],
)
def test_senduipi_index_above_uittsz_gp_sdm_senduipi_kvm(uitt_size: int, index: int) -> None:
    bare = Bare()
    u = setup_uintr(bare, uitt_size=uitt_size)
    assert_send_gp(bare, u.upid, send_snippet(bare, index), r"> UITTSZ")


def test_senduipi_index_equal_to_uittsz_is_valid_sdm_senduipi() -> None:
    bare = Bare()
    setup_uintr(bare, vectors={255: 9})
    assert bare.cpu.uintr.state.uitt_size == 255
    send_snippet(bare, 255)
    bare.run(CODE)
    assert bare.log == [9]


def test_senduipi_invalid_uitt_entry_gp_sdm_senduipi_kvm(bare: Bare) -> None:
    u = setup_uintr(bare)
    bare.write_uitte(u.uitt, 0, uitte(VECTOR, u.upid, valid=False))
    assert_send_gp(bare, u.upid, send_snippet(bare, 0), r"not valid \(V = 0\)")


@pytest.mark.parametrize("bit", [1, 2, 7, 16, 23, 31, 32, 63])
def test_senduipi_reserved_bit_in_uitt_entry_gp_arch_5_1_kvm(bare: Bare, bit: int) -> None:
    u = setup_uintr(bare)
    bare.write_uitte(u.uitt, 0, uitte(VECTOR, u.upid, reserved=1 << bit))
    assert_send_gp(bare, u.upid, send_snippet(bare, 0), "reserved bits")


@pytest.mark.parametrize("low_bits", [1, 0x20, 0x3F])
def test_senduipi_misaligned_upidaddr_gp_arch_5_1(bare: Bare, low_bits: int) -> None:
    u = setup_uintr(bare)
    bare.write_uitte(u.uitt, 0, uitte(VECTOR, u.upid | low_bits))
    assert_send_gp(bare, u.upid, send_snippet(bare, 0), "not 64-byte aligned")


@pytest.mark.parametrize("vector", [64, 65, 0x80, 0xFF])
def test_senduipi_user_vector_64_or_more_gp_arch_5_1(bare: Bare, vector: int) -> None:
    u = setup_uintr(bare)
    bare.write_uitte(u.uitt, 0, uitte(vector, u.upid))
    assert_send_gp(bare, u.upid, send_snippet(bare, 0), "user vector")


def test_senduipi_user_vector_63_is_valid_arch_5_1(bare: Bare) -> None:
    u = setup_uintr(bare)
    bare.write_uitte(u.uitt, 0, uitte(63, u.upid))
    send_snippet(bare, 0)
    bare.run(CODE)
    assert bare.log == [63]


@pytest.mark.parametrize("bit", [2, 3, 8, 15, 24, 31])
def test_senduipi_reserved_bit_in_upid_gp_arch_5_2_kvm(bare: Bare, bit: int) -> None:
    u = setup_uintr(bare, upid_low_override=upid_low(ndst=0) | 1 << bit)
    assert_send_gp(bare, u.upid, send_snippet(bare, 0), "UPID .* reserved bits")


def test_faulting_senduipi_is_restartable_arch_12(bare: Bare) -> None:
    """After the #GP the OS may fix the cause and resume at the same RIP."""
    u = setup_uintr(bare)
    bare.write_uitte(u.uitt, 0, uitte(VECTOR, u.upid, valid=False))
    at = send_snippet(bare, 0)
    with pytest.raises(GeneralProtection):
        bare.run(CODE)
    assert bare.rip == at
    bare.write_uitte(u.uitt, 0, uitte(VECTOR, u.upid))
    bare.run()
    assert bare.log == [VECTOR]
    assert bare.reg(R14) == MARK


# -- self-send delivered in user mode (kvm-unit-tests) -----------------------------------------


def test_self_send_delivered_and_uiret_returns_after_senduipi_kvm(
    bare: Bare, fast_path: bool
) -> None:
    u = setup_uintr(bare)
    values = {r: 0x1111 * (r + 1) for r in range(16)}
    values[RAX] = 0  # the UITT index
    bare.set_gprs(values)
    at = send_snippet(bare, 0)
    after = at + 4
    stop = bare.run(CODE)
    assert stop == after + 10 + 1  # after the int3
    # The handler ran once, with the vector at [rsp].
    assert bare.log == [VECTOR]
    # UIRET returned to the instruction after SENDUIPI, with RSP restored exactly and UIF = 1.
    assert bare.reg(R14) == MARK
    assert bare.rsp == RSP0
    assert bare.cpu.uintr.state.uif
    assert bare.cpu.uintr.state.uirr == 0
    # Every other GPR is untouched (the handler saves what it uses).
    for r in range(16):
        if r not in (RAX, RSP_, R14):
            assert bare.reg(r) == values[r], f"GPR {r}"
    # The delivery frame is still in memory: vector, RIP, RFLAGS, old RSP (§8).
    frame = delivery_frame_addr(RSP0)
    assert bare.read_qwords(frame, 4) == (VECTOR, after, USER_RFLAGS, RSP0)
    if not fast_path:  # the model's trace: delivered right away (RIP = handler), then UIRET
        assert [t.rip for t in bare.traces] == [CODE + 4, HANDLER, after]
        assert bare.traces[1].rsp == frame
    # Notification processing consumed the UPID and the APIC vector.
    assert bare.read_upid(u.upid) == (upid_low(ndst=0), 0)
    assert_no_notification(bare)


@pytest.mark.parametrize("via", ["senduipi", "stui"])
def test_delivery_preserves_lazy_arithmetic_flags_arch_8(bare: Bare, via: str) -> None:
    """The RFLAGS pushed by a delivery is the exact RFLAGS of the interrupted code, including
    flags Unicorn computes lazily (a cmp right before the trapped instruction), and UIRET
    restores them over the handler's own flag changes (its inc)."""
    setup_uintr(bare)
    a = Asm()
    if via == "senduipi":
        a.stui()
    else:
        a.clui().mov_imm(RAX, 0).senduipi(RAX)  # pending, UIF = 0
    a.mov_imm(RAX, 0).mov_imm(RBX, 1).cmp_rax_rbx()  # 0 - 1: CF, PF, AF, SF set
    a.senduipi(RAX) if via == "senduipi" else a.stui()
    back = a.here
    a.pushfq().pop(R15).int3()
    bare.load(a)
    bare.run(CODE)
    expected = RFLAGS_CF | RFLAGS_PF | RFLAGS_AF | RFLAGS_SF | USER_RFLAGS
    assert bare.log == [VECTOR]
    frame = delivery_frame_addr(RSP0)
    assert bare.read_qwords(frame + 8, 2) == (back, expected)
    assert bare.reg(R15) == expected


def test_delivery_right_after_uiret_pushes_the_loaded_state_arch_6_4_8(bare: Bare) -> None:
    """UIRET with a user interrupt pending: delivered at the very next boundary, so the frame
    holds UIRET's target, the RFLAGS it loaded and the RSP it loaded."""
    setup_uintr(bare)
    frame_in, new_rsp, image = RSP0 - 0x200, RSP0 - 0x88, RFLAGS_ZF | RFLAGS_OF | RFLAGS_DF
    a = Asm()
    a.clui().mov_imm(RAX, 0).senduipi(RAX)  # pending, UIF = 0
    a.mov_imm(RSP_, frame_in).uiret()
    target = a.here
    a.pushfq().pop(R15).int3()
    bare.load(a)
    write_uiret_frame(bare, frame_in, target, image, new_rsp)
    bare.run(CODE)
    loaded = image | USER_RFLAGS
    assert bare.log == [VECTOR]
    assert bare.read_qwords(delivery_frame_addr(new_rsp), 4) == (VECTOR, target, loaded, new_rsp)
    assert bare.reg(R15) == loaded
    assert bare.rsp == new_rsp


# -- CLUI / STUI (kvm-unit-tests) --------------------------------------------------------------


def test_clui_then_send_not_delivered_uirr_set_then_stui_delivers_kvm(
    bare: Bare, fast_path: bool
) -> None:
    u = setup_uintr(bare)
    a = Asm()
    a.clui().mov_imm(RAX, 0).senduipi(RAX).int3()
    stui_at = a.here
    a.stui().mov_imm(R14, MARK).int3()
    bare.load(a)
    bare.run(CODE)
    st = bare.cpu.uintr.state
    assert bare.count == 0
    assert st.uirr == 1 << VECTOR
    assert not st.uif
    # The notification was processed (UIRR set), it is no longer in the APIC or the UPID.
    assert_no_notification(bare)
    assert bare.read_upid(u.upid) == (upid_low(ndst=0), 0)
    bare.run()
    assert bare.log == [VECTOR]
    # Delivered right after STUI: the frame's RIP is the instruction after STUI.
    assert bare.read_qwords(delivery_frame_addr(RSP0) + 8, 1) == (stui_at + 4,)
    if not fast_path:
        assert bare.traces[-2].rip == HANDLER
    assert bare.reg(R14) == MARK
    assert st.uirr == 0 and st.uif


@model_only
def test_clui_stui_change_uif_only_arch_6_3(bare: Bare) -> None:
    a = Asm()
    a.mov_imm(RAX, 0).mov_imm(RBX, 1).cmp_rax_rbx().stui()
    after_stui = a.here
    a.pushfq().pop(R13).clui()
    after_clui = a.here
    a.int3()
    bare.load(a)
    bare.run(CODE)
    assert not bare.cpu.uintr.state.uif
    assert bare.traces[0].rflags == bare.reg(R13) == bare.traces[1].rflags
    assert bare.reg(R13) & STATUS_FLAGS == RFLAGS_CF | RFLAGS_PF | RFLAGS_AF | RFLAGS_SF
    assert [t.rip for t in bare.traces] == [after_stui, after_clui]
    assert [t.rsp for t in bare.traces] == [RSP0, RSP0]


def test_two_pending_vectors_delivered_highest_first_one_per_delivery_arch_8(bare: Bare) -> None:
    setup_uintr(bare, vectors={0: VECTOR, 1: 40})
    a = Asm()
    a.clui().mov_imm(RAX, 0).senduipi(RAX).mov_imm(RAX, 1).senduipi(RAX)
    a.stui().mov_imm(R14, MARK).int3()
    bare.load(a)
    bare.run(CODE)
    # 40 first; its UIRET re-evaluates recognition and delivers 3 before returning.
    assert bare.log == [40, VECTOR]
    assert bare.reg(R14) == MARK
    assert bare.rsp == RSP0
    assert bare.cpu.uintr.state.uirr == 0


def test_send_with_sn_set_posts_pir_without_ipi_or_delivery_arch_6_5_kvm(bare: Bare) -> None:
    u = setup_uintr(bare, sn=True, pir=1 << 50)
    send_snippet(bare, 0)
    bare.run(CODE)
    low, pir = bare.read_upid(u.upid)
    assert pir == 1 << 50 | 1 << VECTOR  # PIR[UV] := 1, other bits kept
    assert low == upid_low(ndst=0, sn=True)  # ON not set
    assert_no_notification(bare)
    assert bare.cpu.uintr.state.uirr == 0
    assert bare.count == 0
    assert bare.reg(R14) == MARK


@pytest.mark.parametrize("sn", [False, True])
def test_send_with_on_set_posts_pir_without_ipi_arch_6_5(bare: Bare, sn: bool) -> None:
    u = setup_uintr(bare, on=True, sn=sn)
    send_snippet(bare, 0)
    bare.run(CODE)
    assert bare.read_upid(u.upid) == (upid_low(ndst=0, on=True, sn=sn), 1 << VECTOR)
    assert_no_notification(bare)
    assert bare.count == 0


def test_wrmsr_uintr_rr_delivers_at_next_boundary_kvm(bare: Bare) -> None:
    setup_uintr(bare)
    snippet(bare, lambda a: a.stui().int3().mov_imm(R14, MARK).int3())
    resume = bare.run(CODE)
    bare.cpu.uintr.wrmsr(IA32_UINTR_RR, 1 << 17)
    assert bare.cpu.deliver_pending(bare.engine)
    assert bare.rip == HANDLER
    assert bare.rsp == delivery_frame_addr(RSP0)
    bare.run()
    assert bare.log == [17]
    assert bare.reg(R14) == MARK
    assert bare.read_qwords(delivery_frame_addr(RSP0) + 8, 1) == (resume,)
    assert bare.rsp == RSP0


def test_wrmsr_uintr_rr_several_bits_delivered_in_priority_order_arch_8(bare: Bare) -> None:
    setup_uintr(bare)
    snippet(bare, lambda a: a.stui().int3().mov_imm(R14, MARK).int3())
    bare.run(CODE)
    bare.cpu.uintr.wrmsr(IA32_UINTR_RR, 1 << 63 | 1 << 5 | 1)
    assert bare.cpu.deliver_pending(bare.engine)
    bare.run()
    assert bare.log == [63, 5, 0]
    assert bare.rsp == RSP0


def test_wrmsr_uintr_rr_with_uif_clear_waits_for_stui_arch_8(bare: Bare) -> None:
    setup_uintr(bare)
    snippet(bare, lambda a: a.clui().int3().stui().mov_imm(R14, MARK).int3())
    bare.run(CODE)
    bare.cpu.uintr.wrmsr(IA32_UINTR_RR, 1 << 9)
    assert not bare.cpu.deliver_pending(bare.engine)
    assert bare.rip == CODE + 5
    bare.run()
    assert bare.log == [9]
    assert bare.reg(R14) == MARK


# -- SENDUIPI operand register (§6.2) ----------------------------------------------------------

RSP_INDEX = RSP0  # with rsp as the operand, the UITT must reach index RSP0
RSP_VECTOR = 42


def register_identifying_setup(bare: Bare) -> Asm:
    """UITT entry i -> vector i for i = 1..16, entry RSP0 -> vector 42 (UITTSZ = RSP0), and a
    snippet start that sets UIF and loads GPR r with r + 1 (rsp keeps RSP0): the delivered
    vector names the register SENDUIPI read."""
    setup_uintr(bare, vectors={**{i: i for i in range(1, 17)}, RSP_INDEX: RSP_VECTOR})
    a = Asm()
    a.stui()
    for r in range(16):
        if r != RSP_:
            a.mov_imm(r, r + 1)
    return a


_REGISTER_CASES = [(r, None) for r in range(16)]
_REGISTER_CASES += [(r, rex) for r in range(8) for rex in (0x40, 0x48, 0x4E)]
_REGISTER_CASES += [(r, rex) for r in range(8, 16) for rex in (0x49, 0x4F)]


@pytest.mark.parametrize(
    ("reg", "rex"),
    _REGISTER_CASES,
    ids=[f"r{r}-{'norex' if x is None else f'rex{x:02x}'}" for r, x in _REGISTER_CASES],
)
def test_senduipi_reads_each_register_operand_arch_6_2(reg: int, rex: int | None) -> None:
    """Every GPR holds a different valid index (r -> index r + 1 -> vector r + 1); rsp holds
    RSP0, so the UITT reaches index RSP0 (vector 42). REX.W/R/X have no effect."""
    bare = Bare()
    a = register_identifying_setup(bare)
    a.emit(senduipi_bytes(reg, rex)).int3()
    bare.load(a)
    bare.run(CODE)
    assert bare.log == [RSP_VECTOR if reg == RSP_ else reg + 1]
    assert bare.rsp == RSP0
    for r in range(16):
        if r != RSP_:
            assert bare.reg(r) == r + 1


def test_senduipi_ignores_operand_size_prefix_arch_6_2(bare: Bare) -> None:
    """66 F3 0F C7 F0: the operand stays 64-bit (rax = 2**32 + 0 is out of range)."""
    u = setup_uintr(bare)
    a = Asm().stui().mov_imm(RAX, 1 << 32)
    at = a.here
    a.emit(b"\x66" + senduipi_bytes(RAX)).int3()
    bare.load(a)
    assert_send_gp(bare, u.upid, at, r"> UITTSZ")
    bare.set_reg(RAX, 0)
    bare.run()
    assert bare.log == [VECTOR]


PREFIXED = {
    # hex bytes: (mnemonic, SENDUIPI register or None)
    "66F30F01EE": ("clui", None),
    "2EF30F01EF": ("stui", None),
    "6667F30F01EE": ("clui", None),
    "F2F30F01EF": ("stui", None),  # the last of F2/F3 is the mandatory prefix
    "F3480F01EE": ("clui", None),  # REX has no effect on 0F 01 EC..EF
    "48F30F01EF": ("stui", None),  # REX before a legacy prefix is ignored
    "6666666666666666666666F30F01EE": ("clui", None),  # 15 bytes: the limit
    "F34F0FC7F0": ("senduipi", R8),  # REX.B selects r8; W, R, X ignored
    "41F30FC7F0": ("senduipi", RAX),  # REX not last: ignored, rax
    "66F3410FC7F1": ("senduipi", R9),
    "2E3E64F3490FC7F7": ("senduipi", R15),
}


@pytest.mark.parametrize("hexcode", PREFIXED)
def test_prefixed_encodings_execute_with_their_full_length_arch_6_2(
    hexcode: str, fast_path: bool
) -> None:
    """Prefixes the decoder accepts: the instruction executes and RIP skips all its bytes."""
    bare = Bare()
    a = register_identifying_setup(bare)
    a.clui() if PREFIXED[hexcode][0] == "stui" else a.stui()
    start = a.here
    a.emit(bytes.fromhex(hexcode))
    after = a.here
    a.mov_imm(R14, MARK).int3()
    bare.load(a)
    bare.run(CODE)
    mnemonic, reg = PREFIXED[hexcode]
    if not fast_path:  # the instruction itself, or the UIRET after a delivery
        assert bare.traces[-1].rip == after
    assert bare.reg(R14) == MARK
    if mnemonic == "senduipi":
        assert bare.log == [reg + 1]
        assert bare.read_qwords(delivery_frame_addr(RSP0) + 8, 1) == (after,)
    else:
        assert bare.cpu.uintr.state.uif is (mnemonic == "stui")
        assert bare.rsp == RSP0
    assert after - start == len(hexcode) // 2


@pytest.mark.parametrize(
    "hexcode",
    ["F3F20F01EE", "F3F20FC7F0", "0F01EC", "0F01ED"],
    ids=["f2-last-clui", "f2-last-senduipi", "uiret-no-f3", "testui-no-f3"],
)
def test_not_uintr_encodings_stay_ud_for_the_os_arch_6_2(hexcode: str) -> None:
    bare = Bare()
    setup_uintr(bare)
    bare.poke(CODE, bytes.fromhex(hexcode) + b"\xcc")
    with pytest.raises(InvalidOpcode, match="not an instruction this processor implements"):
        bare.run(CODE)
    assert bare.rip == CODE and bare.traces == []


def test_sixteen_byte_encoding_is_gp_from_the_engine_arch_6_2(bare: Bare) -> None:
    """Over the 15-byte limit the decoder declines and the engine itself raises #GP (13)."""
    bare.poke(CODE, bytes.fromhex("66" * 12 + "F30F01EE") + b"\xcc")
    with pytest.raises(UnexpectedInterrupt) as exc:
        bare.run(CODE)
    assert exc.value.intno == 13
    assert bare.traces == []


def test_trapped_instruction_ending_at_the_last_mapped_byte_unicorn_notes_2(bare: Bare) -> None:
    """The hook's 16-byte fetch is cut at the end of the mapping (Engine.fetch): a TESTUI in the
    last 4 bytes of the last mapped page still decodes and executes; the next fetch faults at
    the unmapped page with RIP there.

    TESTUI, not CLUI: Unicorn translates ``F3 0F 01 EE/EF`` as RDPKRU/WRPKRU (a #UD raised at run
    time by a helper), so it keeps translating and faults on the next instruction's fetch before
    the block runs; any ordinary last instruction (``inc``) behaves the same. TESTUI and UIRET
    are #UD at translation time and end the block."""
    page = 0x60000
    bare.mem.map(page, 0x1000, PROT_READ | PROT_EXEC)
    bare.cpu.uintr.state.uif = True
    bare.poke(page + 0xFFC, TESTUI_BYTES)
    with pytest.raises(GuestMemoryFault) as exc:
        bare.run(page + 0xFFC)
    assert exc.value.address == page + 0x1000
    assert bare.rflags & RFLAGS_CF
    assert [t.rip for t in bare.traces] == [page + 0x1000]
    assert bare.rip == page + 0x1000


# -- UIRET (§6.4) ------------------------------------------------------------------------------

M64 = (1 << 64) - 1
IMAGES = {
    "all-ones": M64,
    "0x5555": 0x5555_5555_5555_5555,
    "0xaaaa": 0xAAAA_AAAA_AAAA_AAAA,
    "zero": 0,
    "mask": UIRET_RFLAGS_MASK,
    "not-mask": M64 & ~UIRET_RFLAGS_MASK,
}
CURRENT = {
    "user": USER_RFLAGS,
    "if0": 0x2,
    "iopl3-vif-vip": USER_RFLAGS | RFLAGS_IOPL | RFLAGS_VIF | RFLAGS_VIP,
}


@pytest.mark.parametrize("current", CURRENT)
@pytest.mark.parametrize("image", IMAGES)
def test_uiret_restores_exactly_the_masked_flags_arch_6_4(image: str, current: str) -> None:
    bare = Bare()
    img, cur = IMAGES[image], CURRENT[current]
    frame, new_rsp, target = RSP0 - 0x100, RSP0 - 0x48, CODE + 0x80
    write_uiret_frame(bare, frame, target, img, new_rsp)
    snippet(bare, lambda a: a.mov_imm(RSP_, frame).uiret())
    bare.poke(target, b"\xcc")
    bare.set_rflags(cur)
    bare.run(CODE)
    (t,) = bare.traces
    expected = (cur & ~UIRET_RFLAGS_MASK) | (img & UIRET_RFLAGS_MASK) | 0x2
    assert t.rflags == expected
    assert t.rip == target
    assert t.rsp == new_rsp  # RSP := tempRSP, not RSP + 24
    for bit in (RFLAGS_IF, RFLAGS_IOPL, RFLAGS_VM, RFLAGS_VIF, RFLAGS_VIP):
        assert t.rflags & bit == cur & bit  # not restored
    assert t.rflags & 0x2
    assert bare.cpu.uintr.state.uif  # UIF := 1 (no flexible UIRET)


@pytest.mark.parametrize("image", ["zero", "0x5555", "mask"])
def test_uiret_flags_seen_by_guest_code_arch_6_4(bare: Bare, image: str) -> None:
    """The restored arithmetic flags and DF are what the next guest instructions see (pushfq, jcc);
    images without TF, so that the engine does not single-step."""
    img = IMAGES[image] & ~RFLAGS_TF
    frame, target = RSP0 - 0x100, CODE + 0x80
    write_uiret_frame(bare, frame, target, img, RSP0)
    a = Asm()
    a.mov_imm(RAX, 0).mov_imm(RBX, 1).cmp_rax_rbx()  # CF PF AF SF, to be replaced by the image
    a.mov_imm(RSP_, frame).uiret()
    bare.load(a)
    a = Asm(target)
    a.pushfq().pop(R13).jcc("jc", "c").mov_imm(R14, 0).int3()
    a.label("c")
    a.mov_imm(R14, 1).int3()
    bare.load(a)
    bare.run(CODE)
    visible = STATUS_FLAGS | RFLAGS_DF | RFLAGS_IF | 0x2
    assert bare.reg(R13) & visible == ((img & UIRET_RFLAGS_MASK) | USER_RFLAGS) & visible
    assert bare.reg(R14) == img & RFLAGS_CF


def test_uiret_with_flexible_uiret_loads_uif_from_bit_1_arch_6_4() -> None:
    for bit1, uif in ((0, False), (2, True)):
        bare = Bare(features=CpuFeatures(flexible_uiret=True))
        write_uiret_frame(bare, RSP0, CODE + 0x80, bit1, RSP0)
        bare.poke(CODE, UIRET_BYTES)
        bare.poke(CODE + 0x80, b"\xcc")
        bare.run(CODE)
        assert bare.cpu.uintr.state.uif is uif
        assert bare.rflags & 0x2


def test_uiret_non_canonical_rip_gp_leaves_state_arch_6_4(bare: Bare) -> None:
    write_uiret_frame(bare, RSP0, 1 << 47, USER_RFLAGS, RSP0 - 0x40)
    bare.poke(CODE, UIRET_BYTES + b"\xcc")
    with pytest.raises(GeneralProtection, match="not canonical"):
        bare.run(CODE)
    assert (bare.rip, bare.rsp) == (CODE, RSP0)
    assert not bare.cpu.uintr.state.uif


def test_uiret_pop_from_unmapped_page_pf_arch_6_4(bare: Bare) -> None:
    rsp = STACK_TOP - 8  # the second pop reads the unmapped page at STACK_TOP
    bare.poke(CODE, Asm().mov_imm(RSP_, rsp).uiret().bytes())
    with pytest.raises(PageFault) as exc:
        bare.run(CODE)
    assert exc.value.address == STACK_TOP
    assert not exc.value.protection and exc.value.user and not exc.value.write
    assert (bare.rip, bare.rsp) == (CODE + 10, rsp)


def test_uiret_non_canonical_stack_ss_arch_6_4(bare: Bare) -> None:
    bare.poke(CODE, Asm().mov_imm(RSP_, 1 << 47).uiret().bytes())
    with pytest.raises(StackFault):
        bare.run(CODE)
    assert bare.rip == CODE + 10


# -- TESTUI (§6.3) -----------------------------------------------------------------------------

PRE_FLAGS = {
    # name: (rax, rbx) for "cmp rax, rbx" -- lazy flags in the engine
    "cmp-borrow": (0, 1),  # CF PF AF SF
    "cmp-equal": (5, 5),  # ZF PF
    "cmp-overflow": (1 << 63, 1),  # OF AF (0x8000.. - 1)
}


@pytest.mark.parametrize("branch", ["jc", "jnc"])
@pytest.mark.parametrize("pre", PRE_FLAGS)
@pytest.mark.parametrize("uif", [False, True])
def test_testui_sets_cf_to_uif_clears_status_flags_keeps_df_arch_6_3(
    uif: bool, pre: str, branch: str
) -> None:
    bare = Bare()
    rax, rbx = PRE_FLAGS[pre]
    a = Asm()
    a.stui() if uif else a.clui()
    a.mov_imm(RAX, rax).mov_imm(RBX, rbx).emit([0xFD]).cmp_rax_rbx()  # std; cmp
    a.testui().pushfq().pop(R13)
    a.jcc("jz", "bad").jcc("jo", "bad").jcc(branch, "taken").mov_imm(R14, 0xF0).int3()
    a.label("taken")
    a.mov_imm(R14, 0x7A).int3()
    a.label("bad")
    a.mov_imm(R14, 0xBAD).int3()
    bare.load(a)
    bare.run(CODE)
    flags = bare.reg(R13)
    assert flags & RFLAGS_CF == int(uif)
    assert flags & (STATUS_FLAGS & ~RFLAGS_CF) == 0
    assert flags & RFLAGS_DF  # other flags preserved
    assert flags & RFLAGS_IF
    taken = uif if branch == "jc" else not uif
    assert bare.reg(R14) == (0x7A if taken else 0xF0)
    assert bare.cpu.uintr.state.uif is uif  # TESTUI does not change UIF


# -- delivery stack (§8) -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rsp", "adjust"),
    [
        (RSP0, STACK_ADJUST),
        (RSP0 - 8, STACK_ADJUST),
        (RSP0 + 3, STACK_ADJUST),
        (RSP0 - 0x38, 0),
        (RSP0, 0x100),
        (RSP0, ALT_STACK_TOP | 1),
        (RSP0, (ALT_STACK_TOP - 0x17) | 1),
        (RSP0 - 8, (DATA + 0x8000) | 1),
    ],
    ids=[
        "sub128",
        "sub128-rsp-8",
        "sub128-rsp+3",
        "sub0",
        "sub256",
        "load-alt-top",
        "load-alt-misaligned",
        "load-data",
    ],
)
def test_delivery_frame_with_stack_adjust_modes_arch_8(rsp: int, adjust: int) -> None:
    bare = Bare()
    setup_uintr(bare, handler=HANDLER_STOP, stack_adjust=adjust)
    red_zone = bytes(range(128))
    bare.mem.write(rsp - 128, red_zone)
    a = Asm()
    a.mov_imm(RSP_, rsp).stui().mov_imm(RAX, 0).senduipi(RAX)
    after = a.here
    a.int3()
    bare.load(a)
    bare.run(CODE)  # stops at the handler's int3
    frame = delivery_frame_addr(rsp, adjust)
    expected_top = (adjust if adjust & 1 else rsp - adjust) & ~0xF
    assert frame == expected_top - 32
    assert bare.rip == HANDLER_STOP + 1
    assert bare.rsp == frame and frame % 16 == 0
    assert bare.read_qwords(frame, 4) == (VECTOR, after, USER_RFLAGS, rsp)
    assert not bare.cpu.uintr.state.uif
    if adjust >= 128 and not adjust & 1:
        assert bare.mem.read(rsp - 128, 128) == red_zone  # the red zone is skipped


@pytest.mark.parametrize("adjust", [STACK_ADJUST, ALT_STACK_TOP | 1], ids=["sub128", "load"])
def test_delivery_round_trip_restores_rsp_with_both_modes_arch_8(adjust: int) -> None:
    bare = Bare()
    setup_uintr(bare, stack_adjust=adjust)
    rsp = RSP0 - 0x18  # not 16-byte aligned
    snippet(bare, lambda a: a.mov_imm(RSP_, rsp).stui().mov_imm(RAX, 0).senduipi(RAX).int3())
    bare.run(CODE)
    assert bare.log == [VECTOR]
    assert bare.rsp == rsp
    assert bare.read_qwords(delivery_frame_addr(rsp, adjust) + 24, 1) == (rsp,)


def test_delivery_push_to_read_only_page_pf_keeps_state_arch_8_12(bare: Bare) -> None:
    """A faulting delivery: #PF at the push address, RSP, UIRR and UIF unchanged, RIP at the
    next instruction, and the instruction after STUI has not run."""
    setup_uintr(bare, stack_adjust=(CODE + 0x1000) | 1)  # "alternate stack" in the code page
    bare.cpu.uintr.wrmsr(IA32_UINTR_RR, 1 << 4)
    a = Asm()
    a.stui()
    nxt = a.here
    a.mov_imm(R14, MARK).int3()
    bare.load(a)
    with pytest.raises(PageFault) as exc:
        bare.run(CODE)
    assert exc.value.write and exc.value.protection and exc.value.user
    assert CODE + 0x1000 - 32 <= exc.value.address < CODE + 0x1000
    assert (bare.rip, bare.rsp) == (nxt, RSP0)
    assert bare.reg(R14) == 0
    st = bare.cpu.uintr.state
    assert st.uirr == 1 << 4 and st.uif


def test_delivery_with_non_canonical_handler_gp_arch_8(bare: Bare) -> None:
    setup_uintr(bare)
    bare.cpu.uintr.state.handler = 1 << 47  # WRMSR would refuse it; XRSTORS-like corruption
    at = send_snippet(bare, 0)
    with pytest.raises(GeneralProtection, match="UIHANDLER"):
        bare.run(CODE)
    assert bare.rip == at + 4  # the SENDUIPI completed; the delivery after it faulted
    assert bare.reg(R14) == 0
    assert bare.cpu.uintr.state.uirr == 1 << VECTOR


@pytest.mark.parametrize(
    ("nv", "uinv"), [(0xEB, UINV), (UINV, 0), (0x40, UINV)], ids=["nv-eb", "uinv-0", "nv-40"]
)
def test_notification_vector_other_than_uinv_goes_to_the_os_arch_7(nv: int, uinv: int) -> None:
    """Identification: an accepted vector V != UINV is an ordinary interrupt (kept in ISR for the
    OS), no notification processing and no delivery; the UPID keeps ON and PIR."""
    bare = Bare()
    u = setup_uintr(bare, nv=nv, uinv=uinv)
    send_snippet(bare, 0)
    bare.run(CODE)
    assert bare.count == 0
    assert bare.reg(R14) == MARK
    assert bare.os.vectors == [nv]
    assert bare.cpu.apic.isr == 1 << nv and bare.cpu.apic.irr == 0
    assert bare.cpu.uintr.state.uirr == 0
    assert bare.read_upid(u.upid) == (upid_low(nv=nv, ndst=0, on=True), 1 << VECTOR)


def test_notification_to_absent_apic_is_lost_arch_6_5(bare: Bare) -> None:
    u = setup_uintr(bare, ndst=7)  # no APIC 7 on a 1-CPU machine
    send_snippet(bare, 0)
    bare.run(CODE)
    assert bare.read_upid(u.upid) == (upid_low(ndst=7, on=True), 1 << VECTOR)
    assert_no_notification(bare)
    assert bare.count == 0 and bare.reg(R14) == MARK


# -- IF = 0 (§7, kvm-unit-tests) ---------------------------------------------------------------


def test_self_send_with_if_clear_runs_no_handler_kvm(bare: Bare) -> None:
    setup_uintr(bare)
    send_snippet(bare, 0)
    bare.set_rflags(0x2)
    bare.run(CODE)
    assert bare.count == 0
    assert bare.reg(R14) == MARK
    # Once IF = 1 again the interrupt is delivered at the next boundary.
    stop = bare.rip
    bare.poke(stop, b"\xcc")
    bare.set_rflags(USER_RFLAGS)
    assert bare.cpu.deliver_pending(bare.engine)
    bare.run()
    assert bare.log == [VECTOR]
    assert bare.rip == stop + 1


def test_self_send_with_if_clear_leaves_notification_in_apic_arch_7_kvm(bare: Bare) -> None:
    u = setup_uintr(bare)
    send_snippet(bare, 0)
    bare.set_rflags(0x2)
    bare.run(CODE)
    assert bare.count == 0
    # §7: with IF = 0 no identification happens; the notification stays pending in the APIC.
    assert bare.read_upid(u.upid) == (upid_low(ndst=0, on=True), 1 << VECTOR)
    assert bare.cpu.apic.irr == 1 << UINV
    assert bare.cpu.uintr.state.uirr == 0


# -- instruction counting and slices ------------------------------------------------------------


def test_slice_limit_stops_before_trapped_insn_and_counts_it_once_engine(
    bare: Bare, fast_path: bool
) -> None:
    """A slice limit landing just before a trapped instruction does not execute it; resuming
    executes it exactly once (the scheduler slices with the counter, engine docstring)."""
    a = Asm()
    a.nop().clui().nop().stui().nop().testui().int3()
    bare.load(a)
    bare.cpu.uintr.state.uif = True
    counter = bare.engine.counter
    assert bare.run(CODE, 1) == CODE + 1  # nop
    assert counter.count == 1
    assert bare.cpu.uintr.state.uif and bare.traces == []
    assert bare.run(None, 2) == CODE + 6  # clui, nop
    assert counter.count == 2
    assert not bare.cpu.uintr.state.uif
    assert bare.run(None, 1) == CODE + 10  # stui
    assert counter.count == 1
    assert bare.cpu.uintr.state.uif
    assert bare.run(None, 100) == CODE + 16  # nop, testui, int3
    assert counter.count == 3
    if not fast_path:
        assert [t.rip for t in bare.traces] == [CODE + 5, CODE + 10, CODE + 15]


# -- cross-CPU notification (§6.5, §7) ---------------------------------------------------------


def test_cross_cpu_send_posts_notification_to_ndst_cpu_arch_6_5_7() -> None:
    bare = Bare(ncpus=2)
    cpu0, cpu1 = bare.machine.cpus
    rx = setup_uintr(bare, cpu1, handler=HANDLER, vectors={})
    assert bare.read_upid(rx.upid) == (upid_low(ndst=1), 0)
    setup_uintr(bare, cpu0, entries={0: uitte(7, rx.upid)})
    ipis = bare.ipis
    send_snippet(bare, 0)
    bare.run(CODE)
    assert ipis == [(0, 1, UINV)]
    # The sender continued; nothing for CPU 0.
    assert bare.reg(R14) == MARK
    assert bare.count == 0
    assert_no_notification(bare, 0)
    assert cpu0.uintr.state.uirr == 0
    # CPU 1: PIR posted, ON set, the notification vector pending in its APIC.
    assert bare.read_upid(rx.upid) == (upid_low(ndst=1, on=True), 1 << 7)
    assert cpu1.ipi_arrived
    assert cpu1.apic.irr == 1 << UINV
    assert cpu1.uintr.state.uirr == 0
    # A second send coalesces: PIR bit already set, ON = 1, so no new IPI.
    bare.run(CODE)
    assert ipis == [(0, 1, UINV)]
    assert bare.read_upid(rx.upid) == (upid_low(ndst=1, on=True), 1 << 7)
    # CPU 1 at its next boundary: identification and processing.
    cpu1.accept_interrupts()
    assert not cpu1.ipi_arrived
    assert cpu1.uintr.state.uirr == 1 << 7
    assert cpu1.apic.irr == 0 and cpu1.apic.isr == 0  # EOI'd, no IDT delivery
    assert bare.os.vectors == []
    assert bare.read_upid(rx.upid) == (upid_low(ndst=1), 0)


def test_cross_cpu_delivery_on_the_receiving_cpu_arch_8() -> None:
    """Same as above, then CPU 1 runs (the engine switches to its registers, as the scheduler
    does with contexts) and takes the interrupt at its first boundary."""
    bare = Bare(ncpus=2)
    cpu0, cpu1 = bare.machine.cpus
    rx = setup_uintr(bare, cpu1, vectors={})
    setup_uintr(bare, cpu0, entries={0: uitte(7, rx.upid)})
    cpu1.uintr.state.uif = True
    send_snippet(bare, 0)
    bare.run(CODE)
    ctx0 = bare.engine.new_context()
    bare.engine.save(ctx0)
    # Switch the engine to CPU 1's thread.
    bare.cpu = cpu1
    rsp1 = RSP0 - 0x4000
    target = CODE + 0x200
    bare.poke(target, Asm(target).mov_imm(R15, MARK).int3().bytes())
    bare.set_rflags(USER_RFLAGS)
    bare.set_rsp(rsp1)
    bare.set_rip(target)
    assert cpu1.deliver_pending(bare.engine)  # service + delivery
    assert bare.rip == HANDLER
    bare.run()
    assert bare.log == [7]
    assert bare.reg(R15) == MARK
    assert bare.rsp == rsp1
    assert cpu1.uintr.state.uirr == 0 and cpu1.uintr.state.uif
    assert bare.read_upid(rx.upid) == (upid_low(ndst=1), 0)
    # CPU 0's registers come back unchanged.
    bare.engine.restore(ctx0)
    assert bare.reg(R14) == MARK and bare.rsp == RSP0


@pytest.mark.parametrize("case", ["stale-0xec-then-0xeb", "os-0xef-then-notification"])
def test_interrupt_blocked_behind_in_service_vector_is_taken_after_eoi_arch_7(case: str) -> None:
    """Two vectors of one priority class reach CPU 1 before its next boundary. Identification
    accepts the higher one; if it is an ordinary vector it stays in service (ISR) and the other
    one cannot be accepted (APIC priority) until the OS writes EOI. After the EOI, the next
    instruction boundary must accept it, as the APIC re-presents it on hardware.

    - ``stale-0xec-then-0xeb`` (what the Linux layer can meet): CPU 1 runs a thread that is not a
      receiver (UINV = 0), a late notification 0xEC for a switched-out receiver and a 0xEB
      kernel-vector wake-up for a blocked receiver arrive: 0xEC is a spurious interrupt for the
      OS, and 0xEB must reach the OS after its EOI (else the blocked receiver is not woken).
    - ``os-0xef-then-notification``: CPU 1 is a receiver (UINV = 0xEC); an ordinary 0xEF and a
      notification arrive: after the OS's EOI of 0xEF the user interrupt must be delivered.
    """
    bare = Bare(ncpus=2)
    cpu0, cpu1 = bare.machine.cpus
    if case == "stale-0xec-then-0xeb":
        rx = setup_uintr(bare, cpu1, vectors={}, uinv=0)
        blocked = bare.machine.kmem.alloc(64, 64)
        bare.write_upid(blocked, upid_low(nv=0xEB, ndst=1))
        setup_uintr(bare, cpu0, entries={0: uitte(1, rx.upid), 1: uitte(2, blocked)})
        code = Asm().mov_imm(RAX, 0).senduipi(RAX).mov_imm(RAX, 1).senduipi(RAX).int3()
        first, second = UINV, 0xEB
    else:
        rx = setup_uintr(bare, cpu1, vectors={})
        setup_uintr(bare, cpu0, entries={0: uitte(1, rx.upid)})
        bare.machine.bus.send_ipi(0xEF, 1, source=cpu0.apic)  # an OS IPI
        code = Asm().mov_imm(RAX, 0).senduipi(RAX).int3()
        first, second = 0xEF, UINV
    bare.load(code)
    bare.run(CODE)
    assert cpu1.apic.irr == 1 << first | 1 << second
    # CPU 1's boundary: the first vector goes to the OS, the second is blocked behind it.
    cpu1.accept_interrupts()
    assert bare.os.vectors == [first]
    assert cpu1.apic.irr == 1 << second
    # The OS handles it and writes EOI (what the Linux layer's interrupt handler does).
    bare.os.vectors.clear()
    cpu1.apic.eoi()
    assert cpu1.apic.has_pending()
    # CPU 1's next boundary.
    bare.cpu = cpu1
    cpu1.uintr.state.uif = True
    bare.poke(CODE + 0x200, b"\xcc")
    bare.set_rip(CODE + 0x200)
    bare.set_rsp(RSP0 - 0x4000)
    delivered = cpu1.deliver_pending(bare.engine)
    assert cpu1.apic.irr == 0
    if second == UINV:
        assert delivered and cpu1.uintr.state.uirr == 0
        bare.run()
        assert bare.log == [1]
    else:
        assert bare.os.vectors == [second]
