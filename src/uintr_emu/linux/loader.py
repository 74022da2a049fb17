"""Static x86-64 ELF loading (ET_EXEC and static-pie ET_DYN) and the initial process stack.

The stack layout is the one the kernel's `create_elf_tables` builds (System V AMD64 ABI §3.4.1):
argc, argv[], NULL, envp[], NULL, auxv pairs, AT_NULL, then the strings near the top.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import BinaryIO

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from ..engine.unicorn import PAGE
from .mm import PROT_EXEC, PROT_READ, PROT_WRITE, STACK_SIZE, STACK_TOP, AddressSpace, page_up

# Auxiliary vector keys (include/uapi/linux/auxvec.h).
AT_NULL, AT_PHDR, AT_PHENT, AT_PHNUM, AT_PAGESZ, AT_BASE = 0, 3, 4, 5, 6, 7
AT_FLAGS, AT_ENTRY, AT_UID, AT_EUID, AT_GID, AT_EGID = 8, 9, 11, 12, 13, 14
AT_PLATFORM, AT_HWCAP, AT_CLKTCK, AT_SECURE, AT_RANDOM = 15, 16, 17, 23, 25
AT_HWCAP2, AT_EXECFN, AT_MINSIGSTKSZ = 26, 31, 51

PT_LOAD, PT_INTERP, PT_PHDR, PT_TLS = 1, 3, 6, 7
EM_X86_64 = 62
STATIC_PIE_BASE = 0x5555_5555_4000  # where the kernel puts ET_DYN programs (ELF_ET_DYN_BASE)


class LoadError(Exception):
    """The program cannot be loaded; the message is the one line the user sees."""


@dataclass
class LoadedProgram:
    path: str
    entry: int
    phdr: int
    phnum: int
    phent: int
    brk: int
    load_bias: int


def _check_header(path: str, f: BinaryIO) -> None:
    head = f.read(64)
    if len(head) < 4 or head[:4] != b"\x7fELF":
        raise LoadError(f"{path}: not an ELF executable")
    if len(head) < 64:
        raise LoadError(f"{path}: truncated ELF header")
    if head[4] != 2:
        raise LoadError(f"{path}: 32-bit ELF; uintr-emu runs x86-64 (64-bit) programs only")
    if head[5] != 1:
        raise LoadError(f"{path}: big-endian ELF; uintr-emu runs x86-64 programs only")
    machine = struct.unpack_from("<H", head, 18)[0]
    if machine != EM_X86_64:
        raise LoadError(f"{path}: ELF machine {machine} is not x86-64 (62)")
    etype = struct.unpack_from("<H", head, 16)[0]
    if etype not in (2, 3):
        raise LoadError(f"{path}: ELF type {etype} is not an executable")


def load_elf(path: str, mem: AddressSpace) -> LoadedProgram:
    """Map the program's PT_LOAD segments into `mem` and set its brk."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise LoadError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise LoadError(f"{path}: is a directory") from None
    except PermissionError:
        raise LoadError(f"{path}: permission denied") from None
    except OSError as e:
        raise LoadError(f"{path}: {e.strerror}") from None
    with f:
        _check_header(path, f)
        f.seek(0)
        data = f.read()
    import io

    try:
        elf = ELFFile(io.BytesIO(data))
        segments = [elf.get_segment(i) for i in range(elf.num_segments())]
    except (ELFError, struct.error, ValueError, OverflowError) as e:
        raise LoadError(f"{path}: malformed ELF ({e})") from None
    if any(s["p_type"] == "PT_INTERP" for s in segments):
        raise LoadError(
            f"{path}: dynamically linked programs are not supported yet; "
            "rebuild it with -static (gcc -static ...)"
        )
    loads = [s for s in segments if s["p_type"] == "PT_LOAD"]
    if not loads:
        raise LoadError(f"{path}: no loadable segments")
    bias = STATIC_PIE_BASE if elf["e_type"] == "ET_DYN" else 0
    hi = 0
    for s in loads:
        vaddr, memsz, filesz, off = s["p_vaddr"], s["p_memsz"], s["p_filesz"], s["p_offset"]
        if filesz > memsz or off + filesz > len(data):
            raise LoadError(f"{path}: malformed ELF (segment outside the file)")
        if memsz > 1 << 34 or vaddr + bias + memsz > STACK_TOP - STACK_SIZE:
            raise LoadError(f"{path}: malformed ELF (segment too large or too high)")
        start = (vaddr + bias) & ~(PAGE - 1)
        end = page_up(vaddr + bias + memsz)
        if end == start:
            continue
        prot = 0
        flags = s["p_flags"]
        prot |= PROT_READ if flags & 4 else 0
        prot |= PROT_WRITE if flags & 2 else 0
        prot |= PROT_EXEC if flags & 1 else 0
        # Segments may share a page (text end / data start); map the union once.
        existing = mem.find(start)
        if existing is not None and existing.end > start:
            keep = existing.view().tobytes()
            merged_prot = existing.prot | prot
            mstart = existing.start
            v = mem.map(mstart, end - mstart, merged_prot, name=path)
            v.buf[: len(keep)] = keep
        else:
            mem.map(start, end - start, prot, name=path)
        mem.poke(vaddr + bias, data[off : off + filesz])
        hi = max(hi, end)
    phdr = 0
    ehdr_phoff = elf["e_phoff"]
    for s in segments:
        if s["p_type"] == "PT_PHDR":
            phdr = s["p_vaddr"] + bias
    if not phdr:
        for s in loads:
            if s["p_offset"] <= ehdr_phoff < s["p_offset"] + s["p_filesz"]:
                phdr = s["p_vaddr"] + bias + ehdr_phoff - s["p_offset"]
    mem.brk_start = mem.brk = hi
    return LoadedProgram(
        path=os.path.abspath(path),
        entry=elf["e_entry"] + bias,
        phdr=phdr,
        phnum=elf["e_phnum"],
        phent=elf["e_phentsize"],
        brk=hi,
        load_bias=bias,
    )


def build_stack(
    mem: AddressSpace,
    prog: LoadedProgram,
    argv: list[bytes],
    envp: list[bytes],
    random16: bytes,
    hwcap: int,
    execfn: bytes,
) -> int:
    """Map the 8 MiB stack and lay out argc/argv/envp/auxv; returns the initial RSP."""
    mem.map(STACK_TOP - STACK_SIZE, STACK_SIZE, PROT_READ | PROT_WRITE, name="[stack]")
    sp = STACK_TOP

    def push_bytes(b: bytes) -> int:
        nonlocal sp
        sp -= len(b)
        mem.write(sp, b)
        return sp

    execfn_addr = push_bytes(execfn + b"\0")
    env_addrs = [push_bytes(e + b"\0") for e in reversed(envp)][::-1]
    arg_addrs = [push_bytes(a + b"\0") for a in reversed(argv)][::-1]
    platform = push_bytes(b"x86_64\0")
    sp &= ~0xF
    rand = push_bytes(random16)
    auxv = [
        (AT_PHDR, prog.phdr),
        (AT_PHENT, prog.phent),
        (AT_PHNUM, prog.phnum),
        (AT_PAGESZ, PAGE),
        (AT_BASE, 0),
        (AT_FLAGS, 0),
        (AT_ENTRY, prog.entry),
        (AT_UID, 0),
        (AT_EUID, 0),
        (AT_GID, 0),
        (AT_EGID, 0),
        (AT_SECURE, 0),
        (AT_RANDOM, rand),
        (AT_HWCAP, hwcap),
        (AT_HWCAP2, 0),
        (AT_CLKTCK, 100),
        (AT_PLATFORM, platform),
        (AT_EXECFN, execfn_addr),
        (AT_MINSIGSTKSZ, 2048),
        (AT_NULL, 0),
    ]
    words = [len(argv), *arg_addrs, 0, *env_addrs, 0]
    for k, v in auxv:
        words += [k, v]
    sp -= 8 * len(words)
    sp &= ~0xF  # RSP 16-byte aligned at argc (ABI §3.4.1)
    mem.write(sp, struct.pack(f"<{len(words)}Q", *words))
    return sp
