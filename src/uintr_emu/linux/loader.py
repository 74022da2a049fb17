"""x86-64 ELF loading (static, static-pie, and dynamic through PT_INTERP) and the initial stack.

The stack layout is the one the kernel's `create_elf_tables` builds (System V AMD64 ABI §3.4.1):
argc, argv[], NULL, envp[], NULL, auxv pairs, AT_NULL, then the strings near the top.
"""

from __future__ import annotations

import os
import stat
import struct
from dataclasses import dataclass
from typing import BinaryIO, NamedTuple

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
ET_EXEC, ET_DYN = 2, 3
EM_X86_64 = 62
STATIC_PIE_BASE = 0x5555_5555_4000  # where the kernel puts ET_DYN programs (ELF_ET_DYN_BASE)
PATH_MAX = 4096
READ_CHUNK = 16 << 20  # segment bytes are read and copied this much at a time
# Elf64_Ehdr from e_type (after e_ident) to e_phnum, and Elf64_Phdr (System V gABI).
EHDR = struct.Struct("<HHIQQQIHHH")
PHDR = struct.Struct("<IIQQQQQQ")
PHDRS_MAX = 65536  # binfmt_elf load_elf_phdrs: ENOEXEC above this many bytes of headers


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


class ElfHeader(NamedTuple):
    """What the loader uses of the ELF header."""

    type: int  # e_type: ET_EXEC or ET_DYN
    entry: int
    phoff: int
    phentsize: int
    phnum: int


class Segment(NamedTuple):
    """One program header (Elf64_Phdr but p_paddr and p_align, which loading ignores)."""

    type: int
    flags: int  # PF_X 1, PF_W 2, PF_R 4
    offset: int
    vaddr: int
    filesz: int
    memsz: int


def _check_header(path: str, f: BinaryIO) -> ElfHeader:
    head = f.read(64)
    if len(head) < 4 or head[:4] != b"\x7fELF":
        raise LoadError(f"{path}: not an ELF executable")
    if len(head) < 64:
        raise LoadError(f"{path}: truncated ELF header")
    if head[4] != 2:
        raise LoadError(f"{path}: 32-bit ELF; uintr-emu runs x86-64 (64-bit) programs only")
    if head[5] != 1:
        raise LoadError(f"{path}: big-endian ELF; uintr-emu runs x86-64 programs only")
    etype, machine, _version, entry, phoff, _shoff, _flags, _ehsize, phentsize, phnum = (
        EHDR.unpack_from(head, 16)
    )
    if machine != EM_X86_64:
        raise LoadError(f"{path}: ELF machine {machine} is not x86-64 (62)")
    if etype not in (ET_EXEC, ET_DYN):
        raise LoadError(f"{path}: ELF type {etype} is not an executable")
    return ElfHeader(etype, entry, phoff, phentsize, phnum)


def _read_segments(path: str, f: BinaryIO, size: int, hdr: ElfHeader) -> list[Segment]:
    """The program headers, read as binfmt_elf's load_elf_phdrs does (ENOEXEC: malformed)."""
    if hdr.phentsize != PHDR.size:  # binfmt_elf: ENOEXEC unless sizeof(Elf64_Phdr)
        raise LoadError(f"{path}: malformed ELF (e_phentsize {hdr.phentsize}, not {PHDR.size})")
    n = hdr.phnum * PHDR.size
    if n > PHDRS_MAX:
        raise LoadError(f"{path}: malformed ELF ({hdr.phnum} program headers)")
    if hdr.phoff + n > size:
        raise LoadError(f"{path}: malformed ELF (program headers outside the file)")
    data = os.pread(f.fileno(), n, hdr.phoff)
    if len(data) != n:
        raise LoadError(f"{path}: malformed ELF (program headers outside the file)")
    segments = []
    for ptype, flags, offset, vaddr, _paddr, filesz, memsz, _align in PHDR.iter_unpack(data):
        segments.append(Segment(ptype, flags, offset, vaddr, filesz, memsz))
    return segments


@dataclass
class ElfImage:
    """An open ELF file: its headers parsed, its bytes read only where needed (pread)."""

    path: str
    file: BinaryIO
    size: int
    header: ElfHeader
    segments: list[Segment]

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
    if not os.access(path, os.X_OK):  # execve(2): EACCES without execute permission
        raise LoadError(f"{path}: permission denied (not executable)")
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
        header = _check_header(path, f)
        size = os.fstat(f.fileno()).st_size
        segments = _read_segments(path, f, size, header)
        _check_loads(path, segments)
        return ElfImage(path, f, size, header, segments)
    except BaseException:
        f.close()
        raise


def _check_loads(path: str, segments: list[Segment]) -> None:
    hi = -1  # the last page of the PT_LOADs so far
    prev = 0
    for s in segments:
        if s.type != PT_LOAD:
            continue
        vaddr, memsz = s.vaddr, s.memsz
        if (vaddr - s.offset) % PAGE:
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
        if s.type != PT_LOAD:
            continue
        vaddr, memsz, filesz, off = s.vaddr, s.memsz, s.filesz, s.offset
        if filesz > memsz or off + filesz > img.size:
            raise LoadError(f"{path}: malformed ELF (segment outside the file)")
        if memsz > 1 << 34 or vaddr + bias + memsz > STACK_TOP - STACK_SIZE:
            raise LoadError(f"{path}: malformed ELF (segment too large or too high)")
        start = (vaddr + bias) & ~(PAGE - 1)
        end = page_up(vaddr + bias + memsz)
        if end == start:
            continue
        flags = s.flags
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


def _interp_name(img: ElfImage, s: Segment) -> bytes:
    # binfmt_elf load_elf_binary: ENOEXEC unless 2 <= p_filesz <= PATH_MAX and NUL-terminated
    filesz = s.filesz
    if not 2 <= filesz <= PATH_MAX or s.offset + filesz > img.size:
        raise LoadError(f"{img.path}: malformed ELF (program interpreter name of {filesz} bytes)")
    name = img.read(s.offset, filesz)
    if name[-1] != 0:
        raise LoadError(f"{img.path}: malformed ELF (program interpreter name not terminated)")
    return name.split(b"\0")[0]


def _image_span(segments: list[Segment]) -> tuple[int, int]:
    loads = [s for s in segments if s.type == PT_LOAD]
    lo = min(s.vaddr for s in loads) & ~(PAGE - 1)
    hi = page_up(max(s.vaddr + s.memsz for s in loads))
    return lo, hi


def load_elf(path: str, mem: AddressSpace, root: str = "/") -> LoadedProgram:
    """Map the program (and its program interpreter, found under `root`) into `mem`."""
    img = _open_elf(path)
    try:
        return _load(img, mem, root)
    finally:
        img.close()


def _load(img: ElfImage, mem: AddressSpace, root: str) -> LoadedProgram:
    path, elf, segments = img.path, img.header, img.segments
    if not any(s.type == PT_LOAD for s in segments):
        raise LoadError(f"{path}: no loadable segments")
    interp = None
    for s in segments:
        if s.type == PT_INTERP:
            interp = _interp_name(img, s)
    bias = STATIC_PIE_BASE if elf.type == ET_DYN else 0
    hi = _map_image(img, mem, bias)
    phdr = 0
    ehdr_phoff = elf.phoff
    for s in segments:
        if s.type == PT_PHDR:
            phdr = s.vaddr + bias
    if not phdr:
        for s in segments:
            if s.type == PT_LOAD and s.offset <= ehdr_phoff < s.offset + s.filesz:
                phdr = s.vaddr + bias + ehdr_phoff - s.offset
    mem.brk_start = mem.brk = hi
    entry = elf.entry + bias
    start, interp_base = entry, 0
    if interp is not None:
        start, interp_base = _load_interpreter(path, os.fsdecode(interp), mem, root)
    return LoadedProgram(
        path=os.path.abspath(path),
        entry=entry,
        phdr=phdr,
        phnum=elf.phnum,
        phent=elf.phentsize,
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
        elf, segments = img.header, img.segments
        if elf.type != ET_DYN or any(s.type == PT_INTERP for s in segments):
            raise LoadError(f"{prog}: program interpreter {interp} is not a shared object")
        if not any(s.type == PT_LOAD for s in segments):
            raise LoadError(f"{prog}: program interpreter {interp} has no loadable segments")
        lo, hi = _image_span(segments)
        base = mem.find_free(hi - lo)
        if base is None:
            raise LoadError(f"{prog}: no room for the program interpreter")
        bias = base - lo
        img.path = interp
        _map_image(img, mem, bias)
        return elf.entry + bias, bias


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
    mem.auxv = struct.pack(f"<{2 * len(auxv)}Q", *(w for kv in auxv for w in kv))
    sp -= 8 * len(words)
    sp &= ~0xF  # RSP 16-byte aligned at argc (ABI §3.4.1)
    mem.write(sp, struct.pack(f"<{len(words)}Q", *words))
    return sp
