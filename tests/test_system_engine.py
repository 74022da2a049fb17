"""The engine's private CPU state that full-system mode relies on (engine/system.py): if the
pinned engine moves a field of its saved context, these fail here, naming it, instead of a
boot going wrong somewhere (docs/system.md, "Engine facts")."""

from __future__ import annotations

import struct

from unicorn import UC_ARCH_X86, UC_MODE_64, Uc
from unicorn import x86_const as x86

from uintr_emu.engine import system as es
from uintr_emu.engine.system import COUNT, EXCEPTION, HALT, SYSCALL, SystemEngine

CODE = 0x100000


def _engine(tsc: int = 0) -> SystemEngine:
    eng = SystemEngine(16 << 20, lambda p, s: 0xFF, lambda p, s, v: None, lambda leaf, sub: None,
                       lambda: tsc)  # fmt: skip
    # Long mode on an identity map of the first 2 MiB only.
    eng.write(0x1000, struct.pack("<Q", 0x2007))  # user-accessible above the leaf
    eng.write(0x2000, struct.pack("<Q", 0x3007))
    eng.write(0x3000, struct.pack("<Q", 0x83))
    eng.set_reg("cr3", 0x1000)
    eng.set_reg("cr4", 0x20)
    eng.set_msr(0xC0000080, 0x501)
    eng.set_reg("cr0", 0x8000_0031)
    eng.set_reg("rsp", 0x8000)
    return eng


def _run(eng: SystemEngine, code: bytes, at: int = CODE) -> es.Stop:
    """Run `code` at `at` (a fresh address for new code: a host write does not invalidate
    code the engine already translated)."""
    eng.write(at, code)
    eng.set_reg("rip", at)
    return eng.run(10)


def test_the_context_blob_has_the_pinned_size_and_segment_layout() -> None:
    uc = Uc(UC_ARCH_X86, UC_MODE_64)
    assert uc.context_save().size == es.CTX_SIZE
    uc.reg_write(x86.UC_X86_REG_CS, 0x33)
    uc.reg_write(x86.UC_X86_REG_FS_BASE, 0x1234_5678_9ABC)
    blob = bytes(uc.context_save())
    assert struct.unpack_from("<I", blob, es.CTX_SEGS + es.CS * es.SEG_SIZE)[0] == 0x33
    assert (
        struct.unpack_from("<Q", blob, es.CTX_SEGS + es.FS * es.SEG_SIZE + 8)[0] == 0x1234_5678_9ABC
    )
    # hflags of a fresh 64-bit engine: CPL 0, CS64, CS32, SS32 (QEMU's HF_* bits)
    hflags = struct.unpack_from("<I", blob, es.CTX_HFLAGS)[0]
    assert hflags & (es.HF_CS64 | es.HF_CS32 | es.HF_SS32) == es.HF_CS64 | es.HF_CS32 | es.HF_SS32
    assert hflags & es.HF_CPL_MASK == 0


def test_a_page_fault_reports_its_error_code_and_cr2() -> None:
    eng = _engine()
    stop = _run(eng, b"\x48\xc7\x04\x25\x00\x00\x40\x00\x01\x00\x00\x00")  # mov qword [0x400000], 1
    assert (stop.kind, stop.vector, stop.error_code, stop.software) == (EXCEPTION, 14, 2, False)
    assert eng.reg("cr2") == 0x400000 and eng.reg("rip") == CODE


def test_a_general_protection_fault_reports_the_selector() -> None:
    stop = _run(_engine(), b"\x66\xb8\x23\x00\x8e\xd8")  # mov ax, 0x23; mov ds, ax (no GDT)
    assert (stop.vector, stop.error_code) == (13, 0x20)


def test_int_n_is_reported_as_software_with_rip_after_it() -> None:
    eng = _engine()
    stop = _run(eng, b"\xcd\x80")
    assert (stop.kind, stop.vector, stop.software) == (EXCEPTION, 0x80, True)
    assert eng.reg("rip") == CODE + 2


def test_old_exception_is_reset_so_a_second_fault_is_not_a_double_fault() -> None:
    """Without the reset the engine promotes the second #PF to #DF (docs/system.md)."""
    eng = _engine()
    code = b"\x48\x8b\x04\x25\x00\x00\x40\x00"  # mov rax, [0x400000]
    assert _run(eng, code).vector == 14
    eng.uc.context_save()  # the blob now holds old_exception = 14
    assert struct.unpack_from("<i", bytes(eng.uc.context_save()), es.CTX_OLD_EXCEPTION)[0] == 14
    assert _run(eng, code).vector == 14  # run() reset it


def test_load_code_stack_changes_the_privilege_level() -> None:
    """CPL 3 through the private state: CLI then faults with #GP(0), as it must at CPL 3."""
    eng = _engine()
    eng.write(0x3000, struct.pack("<Q", 0x87))  # a user page
    eng.load_code_stack((0x23, 0, 0xFFFF_FFFF, 0x00AF_FB00), (0x1B, 0, 0xFFFF_FFFF, 0x00CF_F300))
    assert eng.cpl() == 3 and eng.segment(es.CS)[0] == 0x23
    stop = _run(eng, b"\xfa")  # cli
    assert (stop.vector, stop.error_code) == (13, 0)


def test_syscall_only_advances_rip_and_hlt_returns_quietly() -> None:
    eng = _engine()
    assert _run(eng, b"\x0f\x05").kind == SYSCALL
    assert eng.reg("rip") == CODE + 2 and eng.cpl() == 0
    assert _run(eng, b"\xf4\x90", CODE + 0x100).kind == HALT
    assert eng.reg("rip") == CODE + 0x101


def test_a_count_stop_after_an_f4_byte_is_not_taken_for_hlt() -> None:
    """`mov eax, [rbp - 12]` ends in 0xF4 like HLT; the block tracker tells them apart."""
    eng = _engine()
    eng.set_reg("rbp", 0x8000)
    eng.write(CODE + 0x300, b"\x8b\x45\xf4\xeb\xfb")  # 1: mov eax, [rbp-12]; jmp 1b
    eng.set_reg("rip", CODE + 0x300)
    for count in (1, 2, 3):
        assert eng.run(count).kind == COUNT


def test_rdtsc_and_rdtscp_read_the_machines_clock() -> None:
    """Both are hooked: Linux reads the TSC with RDTSCP on a CPU that has it (Haswell)."""
    eng = _engine(tsc=0x1_2345_6789)
    eng.set_msr(es.MSR_TSC_AUX, 7)
    eng.write(
        CODE, b"\x0f\x31\x48\x89\xc3\x48\x89\xd6\x0f\x01\xf9"
    )  # rdtsc; mov rbx, rax; mov rsi, rdx; rdtscp
    eng.set_reg("rip", CODE)
    eng.run(4)
    assert (eng.reg("rsi") << 32 | eng.reg("rbx")) == 0x1_2345_6789
    assert (eng.reg("rdx") << 32 | eng.reg("rax")) == 0x1_2345_6789 and eng.reg("rcx") == 7
