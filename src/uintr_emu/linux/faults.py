"""The kernel's exception handlers for user mode: the signal each architectural exception
becomes (arch/x86/kernel/traps.c and arch/x86/mm/fault.c), docs/uintr.md §12.

- #UD: do_error_trap -> SIGILL, ILL_ILLOPN, si_addr = RIP (a UINTR instruction with the feature
  off, SENDUIPI with IA32_UINTR_TT[0] = 0, any opcode the processor lacks).
- #PF: do_user_addr_fault. No VMA: SIGSEGV SEGV_MAPERR; a VMA whose rights forbid the access:
  SEGV_ACCERR; a file page wholly beyond the end of the file: SIGBUS BUS_ADRERR (the fault
  handler finds no page, VM_FAULT_SIGBUS). si_addr is the address (CR2).
- #GP: exc_general_protection -> SIGSEGV, SI_KERNEL, si_addr 0 (non-canonical addresses,
  SENDUIPI's UITT/UPID checks, UIRET to a non-canonical RIP, INT n without a user gate).
- #SS: exc_stack_segment -> SIGBUS, SI_KERNEL, si_addr 0.
- #DE: SIGFPE FPE_INTDIV at RIP. #DB: SIGTRAP TRAP_BRKPT. #BP (INT3): SIGTRAP SI_KERNEL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..hw.faults import (
    ArchFault,
    Breakpoint,
    DebugException,
    DivideError,
    InvalidOpcode,
    PageFault,
    StackFault,
)
from . import signals as S

if TYPE_CHECKING:
    from .mm import AddressSpace


def fault_signal(fault: ArchFault, rip: int, mem: AddressSpace) -> S.SigInfo:
    """The signal Linux forces on a thread whose user code raised `fault` at `rip`."""
    vector = fault.vector
    if isinstance(fault, InvalidOpcode):
        return S.SigInfo(S.SIGILL, S.ILL_ILLOPN, addr=rip, rip=rip, trapno=vector)
    if isinstance(fault, PageFault):
        addr = fault.address
        if mem.sigbus(addr, write=fault.write, fetch=fault.fetch):
            return S.SigInfo(S.SIGBUS, S.BUS_ADRERR, addr=addr, rip=rip, trapno=vector)
        vma = fault.protection or mem.find(addr) is not None
        code = S.SEGV_ACCERR if vma else S.SEGV_MAPERR
        return S.SigInfo(S.SIGSEGV, code, addr=addr, rip=rip, trapno=vector)
    if isinstance(fault, DivideError):
        return S.SigInfo(S.SIGFPE, S.FPE_INTDIV, addr=rip, rip=rip, trapno=vector)
    if isinstance(fault, DebugException):
        return S.SigInfo(S.SIGTRAP, S.TRAP_BRKPT, rip=rip, trapno=vector)
    if isinstance(fault, Breakpoint):
        return S.SigInfo(S.SIGTRAP, S.SI_KERNEL, rip=rip, trapno=vector)
    if isinstance(fault, StackFault):
        return S.SigInfo(S.SIGBUS, S.SI_KERNEL, addr=0, rip=rip, trapno=vector)
    return S.SigInfo(S.SIGSEGV, S.SI_KERNEL, addr=0, rip=rip, trapno=vector)
