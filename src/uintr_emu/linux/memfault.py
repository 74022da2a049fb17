"""Memory faults whose address is not canonical: #GP(0) / #SS(0) instead of a page fault.

Unicorn 2.1.4 reports a guest memory fault with the linear address cut to its low 52 bits
(engine/unicorn.py, `Engine.replay_fault`), so the fault hook alone cannot tell an access to
0x10 from one to 0x8000000000000010, nor 0xffff888000000000 (canonical, kernel half) from
0x000f888000000000 (not canonical). On x86-64 an access to a non-canonical address never
reaches paging: it is #GP(0), or #SS(0) for a stack reference (SDM Vol.1 §3.3.7.1, Vol.3 §6.15;
hw/canonical.py), and Linux turns those into signals without an address
(arch/x86/kernel/traps.c):

- #GP from user mode: exc_general_protection -> gp_user_force_sig_segv -> force_sig(SIGSEGV):
  SIGSEGV, si_code SI_KERNEL, si_addr 0;
- #SS: exc_stack_segment -> do_error_trap(..., SIGBUS, 0, NULL) -> force_sig(SIGBUS): SIGBUS,
  si_code SI_KERNEL, si_addr 0.

A canonical address is a page fault as before (SIGSEGV, SEGV_MAPERR or SEGV_ACCERR, si_addr the
address; a user access to the kernel half, e.g. 0xffff888000000000 or 0xffffffffff600000, is
SEGV_MAPERR on Linux). Only the fault path runs this code.

Instruction fetches. After a jump, call or ret to a non-canonical address Unicorn fails to fetch
at the target, with RIP already there and the branch retired (a call has pushed its return
address). The engine keeps no trace of the branch, so the signal reports RIP = the target,
where hardware reports the branch itself with RSP unchanged (JMP/CALL/RET "64-Bit Mode
Exceptions": #GP(0) if the target offset is non-canonical; measured natively). docs/robustness.md
lists this difference.
"""

from __future__ import annotations

from ..engine import unicorn as eng
from ..engine.unicorn import UcError
from ..hw.canonical import MAX_INSTRUCTION_LENGTH, noncanonical_fault
from ..hw.cpu import is_canonical
from ..hw.faults import ArchFault, StackFault
from . import signals as S

_LOW52 = (1 << 52) - 1


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
        except UcError:  # Unicorn refused a control: decide from the report
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


def fault_signal(f: ArchFault, rip: int) -> S.SigInfo:
    """Linux's signal for a #GP(0) or #SS(0) from user mode (see the module docstring)."""
    if isinstance(f, StackFault):
        return S.SigInfo(S.SIGBUS, S.SI_KERNEL, addr=0, rip=rip, trapno=f.vector)
    return S.SigInfo(S.SIGSEGV, S.SI_KERNEL, addr=0, rip=rip, trapno=f.vector)
