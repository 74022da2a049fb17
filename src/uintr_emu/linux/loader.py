"""x86-64 ELF loading (static, static-pie, and dynamic through PT_INTERP) and the initial stack.

The stack layout is the one the kernel's `create_elf_tables` builds (System V AMD64 ABI §3.4.1):
argc, argv[], NULL, envp[], NULL, auxv pairs, AT_NULL, then the strings near the top.
"""

from __future__ import annotations

import os
import stat
import struct
from dataclasses import dataclass
from typing import Any, BinaryIO

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from ..engine.unicorn import PAGE
from .mm import (
    PROT_EXEC,
    PROT_READ,
    PROT_WRITE,
    STACK_SIZE,
    STACK_TOP,
    AddressSpace,
    OutOfMemory,
    page_up,
)
from .vfs import resolve

# Auxiliary vector keys (include/uapi/linux/auxvec.h).
AT_NULL, AT_PHDR, AT_PHENT, AT_PHNUM, AT_PAGESZ, AT_BASE = 0, 3, 4, 5, 6, 7
AT_FLAGS, AT_ENTRY, AT_UID, AT_EUID, AT_GID, AT_EGID = 8, 9, 11, 12, 13, 14
AT_PLATFORM, AT_HWCAP, AT_CLKTCK, AT_SECURE, AT_RANDOM = 15, 16, 17, 23, 25
AT_HWCAP2, AT_EXECFN, AT_MINSIGSTKSZ = 26, 31, 51

PT_LOAD, PT_INTERP, PT_PHDR, PT_TLS = 1, 3, 6, 7
EM_X86_64 = 62
STATIC_PIE_BASE = 0x5555_5555_4000  # where the kernel puts ET_DYN programs (ELF_ET_DYN_BASE)
PATH_MAX = 4096
READ_CHUNK = 16 << 20  # segment bytes are read and copied this much at a time


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
    start: int = 0  # the first instruction: the interpreter's entry for dynamic programs
    interp_base: int = 0  # AT_BASE


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


@dataclass
class ElfImage:
    """An open ELF file: its headers parsed, its bytes read only where needed (pread)."""

    path: str
    file: BinaryIO
    size: int
    elf: ELFFile
    segments: list[Any]

    def read(self, offset: int, n: int) -> bytes:
        data = os.pread(self.file.fileno(), n, offset)
        if len(data) != n:  # binfmt_elf elf_read: a short read is an error
            raise LoadError(f"{self.path}: malformed ELF (segment outside the file)")
        return data

    def close(self) -> None:
        self.file.close()


def _open_elf(path: str) -> ElfImage:
    """Open and check an ELF program; the caller closes it. Only the ELF header and the
    program headers are read here: a program's size costs no memory (a sparse 8 GiB file
    with a small program at its start loads at once, as on Linux)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise LoadError(f"{path}: no such file") from None
    except OSError as e:
        raise LoadError(f"{path}: {e.strerror}") from None
    if stat.S_ISDIR(mode):
        raise LoadError(f"{path}: is a directory")
    if not stat.S_ISREG(mode):  # execve(2): EACCES; opening a FIFO would block
        raise LoadError(f"{path}: not a regular file")
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed by the caller, or below
    except FileNotFoundError:
        raise LoadError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise LoadError(f"{path}: is a directory") from None
    except PermissionError:
        raise LoadError(f"{path}: permission denied") from None
    except OSError as e:
        raise LoadError(f"{path}: {e.strerror}") from None
    try:
        _check_header(path, f)
        f.seek(0)
        try:
            elf = ELFFile(f)
            if elf["e_phentsize"] != 56:  # binfmt_elf: ENOEXEC unless sizeof(Elf64_Phdr)
                raise LoadError(f"{path}: malformed ELF (e_phentsize {elf['e_phentsize']}, not 56)")
            segments = [elf.get_segment(i) for i in range(elf.num_segments())]
        except (ELFError, struct.error, ValueError, OverflowError) as e:
            raise LoadError(f"{path}: malformed ELF ({e})") from None
        _check_loads(path, segments)
        return ElfImage(path, f, os.fstat(f.fileno()).st_size, elf, segments)
    except BaseException:
        f.close()
        raise


def _check_loads(path: str, segments: list[Any]) -> None:
    hi = -1  # the last page of the PT_LOADs so far
    prev = 0
    for s in segments:
        if s["p_type"] != "PT_LOAD":
            continue
        vaddr, memsz = s["p_vaddr"], s["p_memsz"]
        if (vaddr - s["p_offset"]) % PAGE:
            # mmap of the segment needs offset and address congruent modulo the page size
            raise LoadError(f"{path}: malformed ELF (PT_LOAD offset and address misaligned)")
        # gABI: "Loadable segment entries in the program header table appear in ascending
        # order, sorted on the p_vaddr member". Linux maps them as they come, a later one over
        # an earlier one; we refuse to run such a corrupted image. Segments may share a page.
        if vaddr < prev:
            raise LoadError(f"{path}: malformed ELF (PT_LOAD segments not in p_vaddr order)")
        if memsz and vaddr & ~(PAGE - 1) < hi:
            raise LoadError(f"{path}: malformed ELF (overlapping PT_LOAD segments)")
        prev = vaddr
        if memsz:
            hi = max(hi, (vaddr + memsz - 1) & ~(PAGE - 1))


def _map_image(img: ElfImage, mem: AddressSpace, bias: int) -> int:
    """Map the PT_LOAD segments at `bias`; returns the page-aligned end of the image."""
    path = img.path
    hi = 0
    for s in img.segments:
        if s["p_type"] != "PT_LOAD":
            continue
        vaddr, memsz, filesz, off = s["p_vaddr"], s["p_memsz"], s["p_filesz"], s["p_offset"]
        if filesz > memsz or off + filesz > img.size:
            raise LoadError(f"{path}: malformed ELF (segment outside the file)")
        if memsz > 1 << 34 or vaddr + bias + memsz > STACK_TOP - STACK_SIZE:
            raise LoadError(f"{path}: malformed ELF (segment too large or too high)")
        start = (vaddr + bias) & ~(PAGE - 1)
        end = page_up(vaddr + bias + memsz)
        if end == start:
            continue
        flags = s["p_flags"]
        prot = (PROT_READ if flags & 4 else 0) | (PROT_WRITE if flags & 2 else 0)
        prot |= PROT_EXEC if flags & 1 else 0
        try:
            # Segments may share a page (text end / data start); map the union once.
            existing = mem.find(start)
            if existing is not None and existing.end > start:
                keep = existing.view().tobytes()
                mstart = existing.start
                v = mem.map(mstart, max(end, existing.end) - mstart, existing.prot | prot,
                            name=path)  # fmt: skip
                v.buf[: len(keep)] = keep
            else:
                mem.map(start, end - start, prot, name=path)
        except OutOfMemory:
            raise LoadError(f"{path}: not enough memory for a segment of {memsz} bytes") from None
        for pos in range(0, filesz, READ_CHUNK):
            n = min(READ_CHUNK, filesz - pos)
            mem.poke(vaddr + bias + pos, img.read(off + pos, n))
        hi = max(hi, end)
    return hi


def _interp_name(img: ElfImage, s: Any) -> bytes:
    # binfmt_elf load_elf_binary: ENOEXEC unless 2 <= p_filesz <= PATH_MAX and NUL-terminated
    filesz = s["p_filesz"]
    if not 2 <= filesz <= PATH_MAX or s["p_offset"] + filesz > img.size:
        raise LoadError(f"{img.path}: malformed ELF (program interpreter name of {filesz} bytes)")
    name = img.read(s["p_offset"], filesz)
    if name[-1] != 0:
        raise LoadError(f"{img.path}: malformed ELF (program interpreter name not terminated)")
    return name.split(b"\0")[0]


def _image_span(segments: list[Any]) -> tuple[int, int]:
    loads = [s for s in segments if s["p_type"] == "PT_LOAD"]
    lo = min(s["p_vaddr"] for s in loads) & ~(PAGE - 1)
    hi = page_up(max(s["p_vaddr"] + s["p_memsz"] for s in loads))
    return lo, hi


def load_elf(path: str, mem: AddressSpace, root: str = "/") -> LoadedProgram:
    """Map the program (and its program interpreter, found under `root`) into `mem`."""
    img = _open_elf(path)
    try:
        return _load(img, mem, root)
    finally:
        img.close()


def _load(img: ElfImage, mem: AddressSpace, root: str) -> LoadedProgram:
    path, elf, segments = img.path, img.elf, img.segments
    if not any(s["p_type"] == "PT_LOAD" for s in segments):
        raise LoadError(f"{path}: no loadable segments")
    interp = None
    for s in segments:
        if s["p_type"] == "PT_INTERP":
            interp = _interp_name(img, s)
    bias = STATIC_PIE_BASE if elf["e_type"] == "ET_DYN" else 0
    hi = _map_image(img, mem, bias)
    phdr = 0
    ehdr_phoff = elf["e_phoff"]
    for s in segments:
        if s["p_type"] == "PT_PHDR":
            phdr = s["p_vaddr"] + bias
    if not phdr:
        for s in segments:
            if s["p_type"] == "PT_LOAD" and s["p_offset"] <= ehdr_phoff < s["p_offset"] + s[
                    "p_filesz"]:  # fmt: skip
                phdr = s["p_vaddr"] + bias + ehdr_phoff - s["p_offset"]
    mem.brk_start = mem.brk = hi
    entry = elf["e_entry"] + bias
    start, interp_base = entry, 0
    if interp is not None:
        start, interp_base = _load_interpreter(path, os.fsdecode(interp), mem, root)
    return LoadedProgram(
        path=os.path.abspath(path),
        entry=entry,
        phdr=phdr,
        phnum=elf["e_phnum"],
        phent=elf["e_phentsize"],
        brk=hi,
        load_bias=bias,
        start=start,
        interp_base=interp_base,
    )


def _load_interpreter(prog: str, interp: str, mem: AddressSpace, root: str) -> tuple[int, int]:
    """Map the dynamic loader (ld.so) top-down in the mmap area, like the kernel's
    load_elf_interp; returns its entry point and base (AT_BASE)."""
    host = resolve(root, interp)
    where = "" if root == "/" else f" under --root {root}"
    if not os.path.exists(host):
        raise LoadError(f"{prog}: its program interpreter {interp} is missing{where}")
    try:
        img = _open_elf(host)
    except LoadError as e:
        raise LoadError(f"{prog}: bad program interpreter {interp}{where}: {e}") from None
    with img.file:
        elf, segments = img.elf, img.segments
        if elf["e_type"] != "ET_DYN" or any(s["p_type"] == "PT_INTERP" for s in segments):
            raise LoadError(f"{prog}: program interpreter {interp} is not a shared object")
        if not any(s["p_type"] == "PT_LOAD" for s in segments):
            raise LoadError(f"{prog}: program interpreter {interp} has no loadable segments")
        lo, hi = _image_span(segments)
        base = mem.find_free(hi - lo)
        if base is None:
            raise LoadError(f"{prog}: no room for the program interpreter")
        bias = base - lo
        img.path = interp
        _map_image(img, mem, bias)
        return elf["e_entry"] + bias, bias


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
        (AT_BASE, prog.interp_base),
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
