"""The engine's ceiling: run a static single-threaded program on plain Unicorn.

No scheduler, no slicing, no signals: one `Uc`, segments and a stack mapped with `mem_map`, and
the dozen syscalls a static glibc program needs to start, compute, print and exit. Whatever
uintr-emu costs on top of this is the emulator's overhead.

    python benchmarks/bare_unicorn.py PROGRAM [ARGS...]
"""

from __future__ import annotations

import os
import struct
import sys

from elftools.elf.elffile import ELFFile
from unicorn import UC_ARCH_X86, UC_HOOK_INSN, UC_MODE_64, UC_PROT_ALL, Uc
from unicorn import x86_const as x

STACK_TOP, STACK_SIZE = 0x7FFF_FFFF_F000, 8 << 20
MMAP_BASE = 0x7000_0000_0000
ENOSYS = 38


def page_up(n: int) -> int:
    return (n + 0xFFF) & ~0xFFF


def run(path: str, argv: list[str]) -> int:
    uc = Uc(UC_ARCH_X86, UC_MODE_64)
    with open(path, "rb") as f:
        elf = ELFFile(f)
        hi = 0
        for seg in elf.iter_segments("PT_LOAD"):
            start = seg["p_vaddr"] & ~0xFFF
            end = page_up(seg["p_vaddr"] + seg["p_memsz"])
            lo = max(start, hi)
            if end > lo:
                uc.mem_map(lo, end - lo, UC_PROT_ALL)
            uc.mem_write(seg["p_vaddr"], seg.data())
            hi = max(hi, end)
        entry, phoff, phnum = elf["e_entry"], elf["e_phoff"], elf["e_phnum"]
    state = {"brk": hi, "mmap": MMAP_BASE, "exit": None}
    uc.mem_map(STACK_TOP - STACK_SIZE, STACK_SIZE, UC_PROT_ALL)
    sp = STACK_TOP - 4096
    strs = []
    for a in argv:
        sp -= len(a) + 1
        uc.mem_write(sp, a.encode() + b"\0")
        strs.append(sp)
    sp -= 16
    rand = sp
    sp &= ~0xF
    auxv = [3, 0x400000 + phoff, 4, 56, 5, phnum, 6, 4096, 9, entry, 25, rand, 0, 0]
    words = [len(argv), *strs, 0, 0, *auxv]
    sp -= 8 * len(words)
    sp &= ~0xF
    uc.mem_write(sp, struct.pack(f"<{len(words)}Q", *words))
    uc.reg_write(x.UC_X86_REG_RSP, sp)

    def syscall(uc: Uc, _ud: object) -> None:
        nr = uc.reg_read(x.UC_X86_REG_RAX)
        a = [uc.reg_read(r) for r in (x.UC_X86_REG_RDI, x.UC_X86_REG_RSI, x.UC_X86_REG_RDX)]
        ret = 0
        if nr == 12:  # brk
            if a[0] > state["brk"]:
                if page_up(a[0]) > page_up(state["brk"]):
                    uc.mem_map(page_up(state["brk"]), page_up(a[0]) - page_up(state["brk"]))
                state["brk"] = a[0]
            ret = state["brk"]
        elif nr == 9:  # mmap (anonymous)
            size = page_up(a[1])
            ret = state["mmap"]
            uc.mem_map(ret, size, UC_PROT_ALL)
            state["mmap"] += size
        elif nr == 1:  # write
            ret = os.write(a[0], bytes(uc.mem_read(a[1], a[2])))
        elif nr == 158:  # arch_prctl
            uc.reg_write(x.UC_X86_REG_FS_BASE, a[1])
        elif nr == 218:  # set_tid_address
            ret = 1
        elif nr in (60, 231):  # exit, exit_group
            state["exit"] = a[0]
            uc.emu_stop()
        elif nr == 262:  # newfstatat: report a FIFO so stdout is fully buffered
            uc.mem_write(a[2], struct.pack("<QQQI", 0, 0, 1, 0o10600).ljust(144, b"\0"))
        elif nr in (10, 11, 13, 14, 28, 273, 302):  # mprotect, munmap, sigaction, ... : succeed
            ret = 0
        else:
            ret = -ENOSYS
        uc.reg_write(x.UC_X86_REG_RAX, ret)

    uc.hook_add(UC_HOOK_INSN, syscall, None, 1, 0, x.UC_X86_INS_SYSCALL)
    uc.emu_start(entry, 0xFFFF_FFFF_FFFF_FFFF)
    return state["exit"] or 0


if __name__ == "__main__":
    sys.exit(run(sys.argv[1], sys.argv[1:]))
