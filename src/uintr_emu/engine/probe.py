"""What the fill hook cannot see, learnt by running copies of guest code on a scratch engine.

The TLB-fill hook refuses an access with the page only (Unicorn passes it the linear page,
never the byte; docs/engine-notes.md §15), and a branch to a non-canonical address only shows
as the refused fetch at its target, after the branch. Two questions remain, and this module
answers both without touching the guest's engine, memory or counters:

- *Which byte* of the refused page did the instruction at RIP access first (`exact_offset`)?
  The instruction runs once more, alone (count 1), on a scratch engine with the guest's
  registers and a copy of its code bytes; every other page is one junk page, and the refused
  page of the refused kind is a window of no memory, so the access to it reaches a memory hook
  bounded to the window, with the byte. The addresses an instruction accesses follow from its
  registers, not from memory contents, so the copy makes the same accesses in the same order
  up to that one (an XRSTOR whose header lies on a page before the refused one is the
  exception: then the answer is the page's first byte).
- *Where does the last instruction of a block start* (`last_instruction`)? A block's code runs
  on the scratch engine with a code hook, which sees each instruction's address and size before
  it runs; it stops before the one that ends the block. The instructions before it run on junk
  memory (and an exception one raises is skipped), which changes nothing that matters: inside
  a translation block only its last instruction can branch.

The scratch engine is made on first use (about a millisecond and a few MB; most runs never
fault) and shared by every engine of the process.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Sequence
from typing import Any

from .binding import Uc, UcError, uc_hook_h, ucc, uclib, x86
from .mmu import FILL_CB, MEM_FETCH, NEED, PAGE, PROT_R, PROT_X

RIP = x86.UC_X86_REG_RIP
#: What the copy runs with: the general registers, RIP, RFLAGS (DF steers string instructions)
#: and the FS/GS bases (64-bit segment overrides); no other state decides an address.
REGISTERS: tuple[int, ...] = (
    x86.UC_X86_REG_RAX, x86.UC_X86_REG_RCX, x86.UC_X86_REG_RDX, x86.UC_X86_REG_RBX,
    x86.UC_X86_REG_RSP, x86.UC_X86_REG_RBP, x86.UC_X86_REG_RSI, x86.UC_X86_REG_RDI,
    x86.UC_X86_REG_R8, x86.UC_X86_REG_R9, x86.UC_X86_REG_R10, x86.UC_X86_REG_R11,
    x86.UC_X86_REG_R12, x86.UC_X86_REG_R13, x86.UC_X86_REG_R14, x86.UC_X86_REG_R15,
    RIP, x86.UC_X86_REG_RFLAGS, x86.UC_X86_REG_FS_BASE, x86.UC_X86_REG_GS_BASE,
)  # fmt: skip

# The scratch engine's physical memory: two pages of copied code, one junk page, and the window
# (no memory behind it).
_CODE, _JUNK, _WINDOW = 0x1000, 0x3000, 0x10000
# More than the instructions of any translation block (TCG_MAX_INSNS is 512).
_MAX_STEPS = 600
_UNTIL = 0xFFFF_FFFF_FFFF_FFFF

_MEM_CB = ctypes.CFUNCTYPE(
    ctypes.c_bool, ctypes.c_void_p, ctypes.c_int, ctypes.c_uint64, ctypes.c_int, ctypes.c_int64,
    ctypes.c_void_p,
)  # fmt: skip
_CODE_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint32,
                            ctypes.c_void_p)  # fmt: skip
_INTR_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_void_p)
_BOOL_CB = ctypes.CFUNCTYPE(ctypes.c_bool, ctypes.c_void_p, ctypes.c_void_p)
_VOID_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)


class _Scratch:
    """The scratch engine and the state of the probe under way."""

    def __init__(self) -> None:
        uc = self.uc = Uc(ucc.UC_ARCH_X86, ucc.UC_MODE_64)
        uc.ctl_set_cpu_model(x86.UC_CPU_X86_HASWELL)  # the guest's model (engine/unicorn.py)
        uc.ctl_set_tlb_mode(ucc.UC_TLB_VIRTUAL)
        uc.mem_map(_CODE, 2 * PAGE)
        uc.mem_map(_JUNK, PAGE)
        self.code_page = 0  # the linear page copied to _CODE (and the next one)
        self.page: int | None = None  # the refused page, and the kind of access refused
        self.kind = 0
        self.hit: int | None = None  # the offset of the first access to the window
        self.walk_end: int | None = None  # walking a block that ends here
        self.last: tuple[int, int] | None = None  # the instruction the walk saw last
        self._callbacks = [
            (ucc.UC_HOOK_TLB_FILL, FILL_CB(self._fill), 1, 0),
            (ucc.UC_HOOK_MEM_READ_UNMAPPED | ucc.UC_HOOK_MEM_WRITE_UNMAPPED,
             _MEM_CB(self._window), _WINDOW, _WINDOW + PAGE - 1),
            (ucc.UC_HOOK_CODE, _CODE_CB(self._code), 1, 0),
            (ucc.UC_HOOK_INTR, _INTR_CB(self._interrupt), 1, 0),
            (ucc.UC_HOOK_INSN_INVALID, _BOOL_CB(self._invalid), 1, 0),
        ]  # fmt: skip
        for htype, cb, begin, end in self._callbacks:
            self._add(htype, cb, begin, end)
        self._syscall = _VOID_CB(self._stop)
        self._add(ucc.UC_HOOK_INSN, self._syscall, 1, 0, ctypes.c_int(x86.UC_X86_INS_SYSCALL))

    def _add(self, htype: int, cb: Any, begin: int, end: int, *extra: Any) -> None:
        h = uc_hook_h()
        status = uclib.uc_hook_add(self.uc._uch, ctypes.byref(h), htype,
                                   ctypes.cast(cb, ctypes.c_void_p), None, ctypes.c_uint64(begin),
                                   ctypes.c_uint64(end), *extra)  # fmt: skip
        if status != ucc.UC_ERR_OK:
            raise UcError(status)

    # --- hooks ------------------------------------------------------------------------

    def _fill(self, _uc: int, page: int, kind: int, entry: Any, _ud: int) -> bool:
        e = entry.contents
        if kind == MEM_FETCH and page in (self.code_page, self.code_page + PAGE):
            e.paddr, e.perms = _CODE + page - self.code_page, PROT_X | PROT_R
        elif page == self.page and kind == self.kind:
            e.paddr, e.perms = _WINDOW, NEED[kind]
        else:
            e.paddr, e.perms = _JUNK, NEED.get(kind, PROT_R)
        return True

    def _window(self, uc: int, _access: int, address: int, *_rest: Any) -> bool:
        if self.hit is None:
            self.hit = address - _WINDOW
        uclib.uc_emu_stop(uc)
        return False

    def _code(self, uc: int, address: int, size: int, _ud: int) -> None:
        if self.walk_end is None:
            return
        self.last = (address, size)
        if address + size >= self.walk_end:
            uclib.uc_emu_stop(uc)  # before the block's last instruction runs

    def _interrupt(self, uc: int, _intno: int, _ud: int) -> None:
        if self.walk_end is not None and self.last is not None:
            rip = ctypes.c_uint64(self.last[0] + self.last[1])  # skip the faulting instruction
            uclib.uc_reg_write(uc, RIP, ctypes.byref(rip))
        else:
            uclib.uc_emu_stop(uc)

    def _invalid(self, uc: int, _ud: int) -> bool:
        uclib.uc_emu_stop(uc)
        return False

    def _stop(self, uc: int, _ud: int) -> None:
        uclib.uc_emu_stop(uc)

    # --- running a copy ---------------------------------------------------------------

    def load(self, code_page: int, code: bytes, registers: Sequence[int]) -> None:
        """Copy two pages of code (linear page `code_page` on) and the registers in."""
        uc = self.uc
        uc.mem_write(_CODE, code.ljust(2 * PAGE, b"\0")[: 2 * PAGE])
        self.code_page = code_page
        uc.ctl_flush_tb()  # new code at the same addresses
        uc.ctl(ucc.UC_CTL_TLB_FLUSH, ucc.UC_CTL_IO_WRITE)
        for reg, value in zip(REGISTERS, registers, strict=True):
            uc.reg_write(reg, value)

    def run(self, start: int, count: int) -> None:
        try:
            self.uc.emu_start(start, _UNTIL, count=count)
        except UcError:
            pass  # the window's access, or an exception nobody skipped: the hooks recorded it


@functools.cache
def _scratch() -> _Scratch:
    return _Scratch()


def exact_offset(code_page: int, code: bytes, registers: Sequence[int], page: int,
                 kind: int) -> int | None:  # fmt: skip
    """The offset in `page` of the first `kind` access (MEM_READ or MEM_WRITE) the instruction
    at RIP makes to it, RIP and the other `registers` (REGISTERS, in that order) being the
    guest's and `code` its code bytes from linear page `code_page` (two pages). None if the copy
    did not access the page that way."""
    s = _scratch()
    s.load(code_page, code, registers)
    s.page, s.kind, s.hit, s.walk_end = page, kind, None, None
    try:
        s.run(registers[REGISTERS.index(RIP)], 1)
        return s.hit
    finally:
        s.page = None


def last_instruction(code_page: int, code: bytes, registers: Sequence[int], start: int,
                     end: int) -> int | None:  # fmt: skip
    """Where the last instruction of the straight-line code [start, end) begins, `code` being
    the code bytes from linear page `code_page` (two pages, holding the range). None if no
    instruction ends exactly at `end` (the range is not whole instructions)."""
    s = _scratch()
    s.load(code_page, code, registers)
    s.page, s.hit, s.walk_end, s.last = None, None, end, None
    try:
        s.run(start, _MAX_STEPS)
        if s.last is not None and s.last[0] + s.last[1] == end:
            return s.last[0]
        return None
    finally:
        s.walk_end = None
