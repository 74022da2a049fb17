"""How the engine's stops become the architecture's exceptions (hw/faults.py values).

The engine reports a CPU exception in one of three ways: the interrupt hook (#DE, #DB, #BP,
INT n, ...), the #UD hook (handled by `machine.Cpu.trap_invalid`), or a failed run after the
TLB fill refused a memory access (`Engine.mem_fault`, engine/mmu.py). This module turns the
first and the last into `ArchFault` values for the machine to hand to the operating system.

A refused access names its linear page with all 64 bits, so the classification is direct. A
non-canonical page is #GP(0), or #SS(0) for a stack reference (SDM Vol.1 §3.3.7.1, Vol.3
§6.15; hw/canonical.py): on x86-64 such an access never reaches paging. Any other page is a
page fault (#PF) at the access's address (`Engine.fault_address`); a user access to the kernel
half, e.g. 0xffff888000000000 or 0xffffffffff600000, is a not-present page. Only the fault path
runs this code.

Instruction fetches. A jump, call or ret to a non-canonical address shows as a fetch refused at
the target, RIP already there and the branch retired (a call has pushed its return address).
Hardware reports #GP(0) at the branch itself with RSP unchanged (JMP/CALL/RET "64-Bit Mode
Exceptions": #GP(0) if the target offset is non-canonical; measured natively), so the branch --
the last instruction of the last block the engine entered (`Engine.branch_before`) -- becomes
RIP again and its stack effect is undone. Without a block to look at (a run that started at the
target, no native library) the fault is reported at the target.
"""

from __future__ import annotations

from .engine import unicorn as eng
from .engine.mmu import Refusal
from .hw.canonical import branch_stack_delta, noncanonical_fault
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
        return memory_fault(e, e.mem_fault)
    if err.invalid_instruction:
        return InvalidOpcode("the engine cannot execute this instruction")
    return GeneralProtection(f"the engine stopped: {err}")


def memory_fault(e: eng.Engine, refusal: Refusal) -> ArchFault:
    """The exception of the access the fill refused; RIP (and, after a branch, RSP) become
    what the exception reports."""
    # A page is canonical or not as a whole (2^47 is page aligned).
    if not is_canonical(refusal.page):
        if refusal.fetch:
            _back_to_branch(e, refusal)
            return noncanonical_fault(b"", write=False, fetch=True)
        return noncanonical_fault(e.fetch(e.reg_read(eng.RIP)), write=refusal.write)
    return PageFault(
        e.fault_address(refusal),
        write=refusal.write,
        fetch=refusal.fetch,
        protection=refusal.mapped,
        user=True,
    )


def _back_to_branch(e: eng.Engine, refusal: Refusal) -> None:
    """A fetch refused at a non-canonical branch target: put RIP back on the branch and undo
    its push or pop (module docstring). Nothing changes if the target is not where the run
    went by a branch: RIP is not on the refused page (a block running into it), or the last
    instruction is no near branch (a SYSCALL whose handler set RIP: sigreturn)."""
    rip = e.reg_read(eng.RIP)
    if rip & ~(eng.PAGE - 1) != refusal.page:
        return
    branch = e.branch_before()
    if branch is None:
        return
    delta = branch_stack_delta(e.fetch(branch))
    if delta is None:
        return
    e.reg_write(eng.RIP, branch)
    e.reg_write(eng.RSP, e.reg_read(eng.RSP) - delta)
