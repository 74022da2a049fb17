"""How the engine's stops become the architecture's exceptions (hw/faults.py values).

The engine reports a CPU exception in one of three ways: the interrupt hook (#DE, #DB, #BP,
INT n, ...), the #UD hook (handled by `machine.Cpu.trap_invalid`), or a failed run after a memory
fault hook. This module turns the first and the last into `ArchFault` values for the machine to
hand to the operating system.

Memory faults whose address is not canonical are #GP(0) / #SS(0), not page faults. Unicorn 2.1.4
reports a guest memory fault with the linear address cut to its low 52 bits
(`Engine.replay_fault`), so the fault hook alone cannot tell an access to 0x10 from one to
0x8000000000000010, nor 0xffff888000000000 (canonical, kernel half) from 0x000f888000000000 (not
canonical). On x86-64 an access to a non-canonical address never reaches paging: it is #GP(0),
or #SS(0) for a stack reference (SDM Vol.1 §3.3.7.1, Vol.3 §6.15; hw/canonical.py). A canonical
address is a page fault (#PF with the full address; a user access to the kernel half, e.g.
0xffff888000000000 or 0xffffffffff600000, is a not-present page). Only the fault path runs this
code.

Instruction fetches. After a jump, call or ret to a non-canonical address Unicorn fails to fetch
at the target, with RIP already there and the branch retired (a call has pushed its return
address). The engine keeps no trace of the branch, so the fault reports RIP = the target, where
hardware reports the branch itself with RSP unchanged (JMP/CALL/RET "64-Bit Mode Exceptions":
#GP(0) if the target offset is non-canonical; measured natively). docs/robustness.md lists this
difference.
"""

from __future__ import annotations

from .engine import unicorn as eng
from .hw.canonical import MAX_INSTRUCTION_LENGTH, noncanonical_fault
from .hw.cpu import is_canonical
from .hw.faults import (
    ArchFault,
    Breakpoint,
    CpuException,
    DebugException,
    DivideError,
    GeneralProtection,
    InvalidOpcode,
    PageFault,
    StackFault,
)

_LOW52 = (1 << 52) - 1


def from_interrupt(intno: int) -> ArchFault:
    """The exception behind the engine's interrupt hook with number `intno` (Unicorn calls it
    for CPU exceptions other than #UD and memory faults, and for INT n / INT3 / INTO)."""
    if intno == 0:
        return DivideError("integer divide by zero or quotient too large")
    if intno == 1:
        return DebugException("single step or INT1")
    if intno == 3:
        return Breakpoint("INT3")
    if intno == 12:
        return StackFault("stack fault")
    if intno == 13:
        return GeneralProtection("general protection")
    return CpuException(intno, f"exception or INT {intno:#x}")


def from_engine_error(e: eng.Engine, err: eng.RunFault) -> ArchFault:
    """The exception that ended a run with `err` (no hook reported one)."""
    if e.mem_fault is not None:
        kind, address, _size, fault_rip = e.mem_fault
        arch = classify(e, kind, address, fault_rip)
        if arch is not None:
            return arch
        if address >> 47:
            # The engine reports addresses cut to 52 bits: restore the sign extension of a
            # canonical upper-half address (classify found it canonical).
            address |= 0xFFF0_0000_0000_0000
        return PageFault(
            address,
            write=kind in eng.ACCESS_WRITE_KINDS,
            fetch=kind in eng.ACCESS_FETCH_KINDS,
            protection=kind in eng.ACCESS_PROT_KINDS,
            user=True,
        )
    if err.invalid_instruction:
        return InvalidOpcode("the engine cannot execute this instruction")
    return GeneralProtection(f"the engine stopped: {err}")


def _maybe_canonical(reported: int) -> bool:
    """Whether some canonical address has these low 52 bits (bits 51:47 all equal)."""
    top = reported >> 47
    return top == 0 or top == 0x1F


def classify(e: eng.Engine, kind: int, reported: int, fault_rip: int) -> ArchFault | None:
    """The #GP/#SS the faulting instruction raises instead of the page fault the engine
    reported (``kind``, ``reported``, ``fault_rip``: the engine's fault kind, 52-bit address
    and the instruction's RIP; `Engine.mem_fault`), or None when the faulting access is
    canonical and the report stands."""
    rip = e.reg_read(eng.RIP)
    if kind in eng.ACCESS_FETCH_KINDS:
        if not is_canonical(rip):
            return noncanonical_fault(b"", write=False, fetch=True)
        # An instruction that starts on a canonical page and runs into the next one.
        full = rip + ((reported - rip) & _LOW52)
        if full - rip < MAX_INSTRUCTION_LENGTH and not is_canonical(full):
            return noncanonical_fault(b"", write=False, fetch=True)
        return None
    # A replay needs the registers of the faulting instruction: not there when the engine ran
    # on after a faulting store (see `Engine.mem_fault`).
    replay = None
    if rip == fault_rip:
        try:
            replay = e.replay_fault(is_canonical)
        except eng.EngineError:  # Unicorn refused a control: decide from the report
            replay = None
    if replay is None:
        # No replay, or it saw no fault (it always should): judge by the report alone, which
        # proves non-canonical only when no canonical address has its low 52 bits.
        if _maybe_canonical(reported):
            return None
        return noncanonical_fault(e.fetch(fault_rip), write=kind in eng.ACCESS_WRITE_KINDS)
    if not replay.noncanonical:
        return None
    return noncanonical_fault(
        e.fetch(rip),
        write=replay.kind == eng.MEM_WRITE,
        fetch=replay.kind == eng.MEM_FETCH,
    )
