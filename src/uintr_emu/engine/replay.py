"""Fault replay: the full linear address of a faulting data access (`Engine.replay_fault`).

Why: with paging off Unicorn 2.1.4 takes the low 52 bits of a linear address as the physical
address (target/i386 excp_helper.c, handle_mmu_fault: ``pte & PG_ADDRESS_MASK``) and every memory
hook, MEM_READ/MEM_WRITE included, gets that physical address (accel/tcg/cputlb.c
load_helper/store_helper): 0x8000000000000000 is reported as 0, and a non-canonical address whose
low 52 bits fall on a mapped page is even accessed. Only the TLB-fill hook of the virtual TLB mode
(softmmu/unicorn_vtlb.c) sees the linear page, all 64 bits. So the replay switches to
UC_TLB_VIRTUAL with a fill hook that maps every page `canonical` accepts to the physical address
it names (the normal mode's mapping for user addresses; kernel-half ones now reach the unmapped
hook whole) and refuses the others, which stops the instruction before that access is made.

The replay is deterministic: the addresses an instruction accesses follow from its registers,
which are the same, so it makes the same accesses in the same order up to the first one that
faults, non-canonical or not. Accesses before that one are made again (reads, and writes of the
bytes the first run already wrote). No hook that instruments code is added, so nothing is
retranslated; at most the block starting at the instruction is translated once. Safety net for an
instruction that would not fault again: the fill hook refuses any access by another instruction
(after the TLB flush, and with each entry granting only the access it was filled for, another
instruction's first store or access to a new page comes back to the hook), and the engine's
syscall/#UD/interrupt/CPUID callbacks stop the engine meanwhile (`FaultReplayer.halt`; only a
loop of register-only instructions would escape both).

`FaultReplayer` does the Unicorn part; `Engine.replay_fault` makes the engine's own state (its
callbacks, registers, counters, breakpoints) harmless for the replay and restores it afterwards.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Any, NamedTuple

from unicorn import Uc
from unicorn import unicorn_const as ucc
from unicorn import x86_const as x86
from unicorn.unicorn_py3.unicorn import uc_hook_h, uclib

RIP = x86.UC_X86_REG_RIP

# Access types of a TLB fill (FaultReplay.kind of a non-canonical access).
MEM_READ, MEM_WRITE, MEM_FETCH = ucc.UC_MEM_READ, ucc.UC_MEM_WRITE, ucc.UC_MEM_FETCH
_ACCESS_PERMS = {
    MEM_READ: ucc.UC_PROT_READ,
    MEM_WRITE: ucc.UC_PROT_WRITE,
    MEM_FETCH: ucc.UC_PROT_EXEC,
}


class FaultReplay(NamedTuple):
    """The first faulting access seen by `Engine.replay_fault`.

    ``noncanonical``: the access's linear page ``address`` was refused as non-canonical, and
    ``kind`` is UC_MEM_READ, UC_MEM_WRITE or UC_MEM_FETCH. Otherwise a canonical access faulted
    as it did in the run: ``kind`` is the UC_MEM_*_UNMAPPED/_PROT kind and ``address`` the full
    64-bit address.
    """

    kind: int
    address: int
    noncanonical: bool


class _TlbEntry(ctypes.Structure):
    _fields_ = [("paddr", ctypes.c_uint64), ("perms", ctypes.c_uint32)]


_TLB_FILL_CB = ctypes.CFUNCTYPE(
    ctypes.c_bool,
    ctypes.c_void_p,
    ctypes.c_uint64,
    ctypes.c_int,
    ctypes.POINTER(_TlbEntry),
    ctypes.c_void_p,
)


class FaultReplayer:
    """Replays one engine's faulting instruction under the virtual TLB (module docstring).

    `reg_read` reads an engine register.
    """

    def __init__(self, uc: Uc, reg_read: Callable[[int], int]) -> None:
        self.uc = uc
        self._handle = uc._uch
        self._reg_read = reg_read
        # Made once: Unicorn keeps a deleted hook in its list until the next emu_start ends.
        self._fill_cb = _TLB_FILL_CB(self._fill)
        # The replay under way: its instruction, the test, what it has seen.
        self._rip = 0
        self._canonical: Callable[[int], bool] | None = None
        self._first: FaultReplay | None = None

    def replay(self, rip: int, canonical: Callable[[int], bool]) -> FaultReplay | None:
        """Run the instruction at `rip` once more under the virtual TLB, up to its first faulting
        access, and return that access (None: nothing faulted). The caller has made every other
        hook harmless (`halt`, `mem_fault`) and restores the registers afterwards."""
        self._rip, self._canonical, self._first = rip, canonical, None
        hook = uc_hook_h()
        status = uclib.uc_hook_add(
            self._handle, ctypes.byref(hook), ucc.UC_HOOK_TLB_FILL,
            ctypes.cast(self._fill_cb, ctypes.c_void_p), None,
            ctypes.c_uint64(1), ctypes.c_uint64(0),
        )  # fmt: skip
        try:
            if status == ucc.UC_ERR_OK:
                self.uc.ctl_set_tlb_mode(ucc.UC_TLB_VIRTUAL)  # type: ignore[attr-defined]  # (not in the hints)
                self._flush_tlb()  # every access of the replay goes through the fill hook
                uclib.uc_emu_start(self._handle, rip, 0xFFFF_FFFF_FFFF_FFFF, 0, 0)
        finally:
            self.uc.ctl_set_tlb_mode(ucc.UC_TLB_CPU)  # type: ignore[attr-defined]  # (not in the hints)
            self._flush_tlb()
            if status == ucc.UC_ERR_OK:
                uclib.uc_hook_del(self._handle, hook.value)
            self._canonical = None
        return self._first

    def halt(self, *_args: Any) -> Any:
        """The engine's callbacks during a replay: whatever else happens ends it."""
        uclib.uc_emu_stop(self._handle)
        return False

    def mem_fault(self, kind: int, address: int, _size: int) -> None:
        """The engine's memory-fault callback during a replay: the first fault is the answer."""
        if self._canonical is not None and self._first is None:
            self._first = FaultReplay(kind, address, False)

    def _flush_tlb(self) -> None:
        self.uc.ctl(ucc.UC_CTL_TLB_FLUSH, ucc.UC_CTL_IO_WRITE)

    def _fill(self, _uc: int, vaddr: int, access: int, entry: Any, _ud: int) -> bool:
        canonical = self._canonical
        if canonical is None:
            return False
        if self._first is not None:  # after the fault (Unicorn invalidating its exit address)
            return False
        if self._reg_read(RIP) != self._rip:  # (the fill syncs RIP to the accessing instruction)
            return False  # another instruction: this one did not fault again, run no further
        if not canonical(vaddr):  # a page is canonical or not as a whole (2^47 is aligned)
            self._first = FaultReplay(access, vaddr, True)
            return False
        entry.contents.paddr = vaddr
        # Only the permission this access needs (the region's own permissions still apply), so
        # that a store by a later instruction to a page read here comes back to this hook.
        entry.contents.perms = _ACCESS_PERMS.get(access, 0)
        return True
