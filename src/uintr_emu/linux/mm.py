"""Guest address spaces: VMAs backed by host `mmap` buffers, mirrored into the engine.

Every guest mapping is a slice of a Python-owned anonymous host `mmap`, given to Unicorn with
`mem_map_ptr`. Splitting such regions (partial munmap/mprotect) is cheap, unlike `mem_map`
regions, which Unicorn splits by copying (docs/engine-notes.md G4). Protections are tracked here
too, so accesses made on the guest's behalf (syscall arguments, UINTR frame pushes) fault exactly
like the guest's own accesses.
"""

from __future__ import annotations

import bisect
import ctypes
import mmap
import struct
from dataclasses import dataclass, field

from ..engine.native import buffer_address
from ..engine.unicorn import PAGE, Engine, EngineError
from ..hw.faults import PageFault

PROT_READ, PROT_WRITE, PROT_EXEC = 1, 2, 4
MAP_SHARED, MAP_PRIVATE, MAP_FIXED, MAP_ANONYMOUS = 0x01, 0x02, 0x10, 0x20
MAP_FIXED_NOREPLACE = 0x100000

# Top-down mmap area, below the stack (the kernel's mmap_base with an 8 MiB stack rlimit).
STACK_TOP = 0x7FFF_FFFF_F000
STACK_SIZE = 8 << 20
MMAP_TOP = 0x7FFF_F7FF_F000
MMAP_BOTTOM = 0x1000_0000
TASK_SIZE = 0x7FFF_FFFF_F000


def page_up(n: int) -> int:
    return (n + PAGE - 1) & ~(PAGE - 1)


class OutOfMemory(Exception):
    """The host cannot back a new mapping (the guest's ENOMEM); nothing was changed."""


def anon_buffer(length: int) -> mmap.mmap:
    """Zero-filled host memory for `length` bytes. The host refusing it (overcommit: OSError
    ENOMEM, or MemoryError) is the guest's ENOMEM, as when Linux cannot commit it (mmap(2))."""
    try:
        return mmap.mmap(-1, length)
    except (OSError, MemoryError, OverflowError, ValueError):
        raise OutOfMemory(f"cannot back {length:#x} bytes") from None


def file_buffer(fd: int, covered: int, offset: int) -> mmap.mmap:
    """The host's shared, writable mapping of `covered` bytes of a file from `offset`, as
    page_up(covered) bytes. The host maps the file's whole last page (zeros past EOF, not
    written back), but a Python mmap admits only bytes inside the file: a partial last page
    is reached through a ctypes array over the same memory. OSError as the host's mmap."""
    try:
        m = mmap.mmap(fd, covered, access=mmap.ACCESS_WRITE, offset=offset)
    except (MemoryError, OverflowError, ValueError):
        raise OutOfMemory(f"cannot map {covered:#x} bytes of fd {fd}") from None
    if covered % PAGE == 0:
        return m
    base = buffer_address(m)
    arr = (ctypes.c_char * page_up(covered)).from_address(base)
    arr._host_mapping = m  # type: ignore[attr-defined]  # unmapped with the array
    return arr  # type: ignore[return-value]


def engine_perms(prot: int) -> int:
    # x86 pages: anything mapped writable or executable is also readable.
    if prot & (PROT_WRITE | PROT_EXEC):
        prot |= PROT_READ
    return prot & 7


@dataclass
class Vma:
    start: int
    end: int
    prot: int
    buf: mmap.mmap  # or a ctypes char array over a file mapping (file_buffer)
    offset: int  # where `start` lies in `buf`
    name: str = ""
    shared: bool = False
    max_prot: int = 7  # what mprotect may grant (a read-only file's shared mapping: no write)
    # Pages of a file mapping wholly beyond the end of the file: no memory behind them, not
    # in the engine; an access is SIGBUS/BUS_ADRERR (mmap(2)), a syscall's access EFAULT.
    beyond_eof: bool = False
    file: bool = False  # a file mapping (mremap grows it with file pages, not zero pages)

    def piece(self, start: int, end: int, prot: int | None = None) -> Vma:
        """The part [start, end) of this mapping (same buffer), optionally re-protected."""
        off = self.offset + (start - self.start)
        p = self.prot if prot is None else prot
        return Vma(start, end, p, self.buf, off, self.name, self.shared, self.max_prot,
                   self.beyond_eof, self.file)  # fmt: skip

    def moved(self, start: int) -> Vma:
        """The same pages at `start` (mremap moves page tables, not contents)."""
        v = self.piece(self.start, self.end)
        v.start, v.end = start, start + (self.end - self.start)
        return v

    def view(self) -> memoryview:
        return memoryview(self.buf)[self.offset : self.offset + (self.end - self.start)]


# The buffer of beyond-EOF VMAs: never read or written (they are not in the engine, and
# accesses on the guest's behalf fault before touching it).
_NO_PAGES = mmap.mmap(-1, PAGE)


class GuestFault(Exception):
    """An access made on the guest's behalf hit a bad address (the syscall returns EFAULT)."""

    def __init__(self, address: int):
        super().__init__(f"bad guest address {address:#x}")
        self.address = address


@dataclass
class AddressSpace:
    engine: Engine
    vmas: list[Vma] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)
    brk_start: int = 0
    brk: int = 0
    max_bytes: int | None = None
    # The auxiliary vector the loader put on the initial stack, as the kernel keeps it
    # (mm->saved_auxv, what /proc/PID/auxv shows): a debugger relocates a PIE program by it.
    auxv: bytes = b""

    # --- lookup -------------------------------------------------------------------------

    def find(self, addr: int) -> Vma | None:
        i = bisect.bisect_right(self.starts, addr) - 1
        if i >= 0:
            v = self.vmas[i]
            if addr < v.end:
                return v
        return None

    def mapped_bytes(self) -> int:
        return sum(v.end - v.start for v in self.vmas)

    def _insert(self, v: Vma) -> None:
        i = bisect.bisect_left(self.starts, v.start)
        self.vmas.insert(i, v)
        self.starts.insert(i, v.start)

    def _overlapping(self, start: int, end: int) -> list[Vma]:
        i = max(bisect.bisect_right(self.starts, start) - 1, 0)
        out = []
        while i < len(self.vmas) and self.vmas[i].start < end:
            if self.vmas[i].end > start:
                out.append(self.vmas[i])
            i += 1
        return out

    def is_free(self, start: int, end: int) -> bool:
        return not self._overlapping(start, end)

    def find_free(self, length: int, top: int = MMAP_TOP) -> int | None:
        """Highest free gap of `length` bytes below `top` (the kernel's top-down allocator)."""
        end = top
        for v in reversed(self.vmas):
            if v.start >= end:
                continue
            if v.end <= end - length:
                return end - length
            end = min(end, v.start)
        return end - length if end - length >= MMAP_BOTTOM else None

    # --- mapping ------------------------------------------------------------------------

    def map(
        self,
        start: int,
        length: int,
        prot: int,
        *,
        name: str = "",
        buf: mmap.mmap | None = None,
        offset: int = 0,
        shared: bool = False,
        beyond_eof: bool = False,
    ) -> Vma:
        """Map [start, start+length) (page aligned), replacing whatever was there. Atomic:
        OutOfMemory if the host cannot back it, and then nothing changed."""
        length = page_up(length)
        if beyond_eof:
            buf, offset = _NO_PAGES, 0
        elif buf is None:
            buf, offset = anon_buffer(length), 0
        v = Vma(start, start + length, prot, buf, offset, name, shared, beyond_eof=beyond_eof)
        self.replace(start, start + length, [v])
        return v

    def replace(self, start: int, end: int, new: list[Vma]) -> None:
        """Unmap [start, end) and insert `new` (VMAs inside it); atomic like `map`."""
        old = self._cut(start, end)
        done: list[Vma] = []
        try:
            for v in new:
                self._add(v)
                done.append(v)
        except EngineError as e:
            if not e.out_of_memory:
                raise
            for v in done:
                self._cut(v.start, v.end)
            for v in old:
                self._add(v)
            raise OutOfMemory(str(e)) from None

    def _add(self, v: Vma) -> None:
        if not v.beyond_eof:
            self.engine.map_buffer(v.start, v.end - v.start, engine_perms(v.prot), v.buf,
                                   v.offset)  # fmt: skip
        self._insert(v)

    def _remove(self, v: Vma) -> None:
        i = self.vmas.index(v)
        del self.vmas[i], self.starts[i]

    def _cut(self, start: int, end: int) -> list[Vma]:
        """Take [start, end) out of the address space; returns the pieces taken."""
        taken = []
        for v in self._overlapping(start, end):
            lo, hi = max(v.start, start), min(v.end, end)
            if not v.beyond_eof:
                self.engine.unmap(lo, hi - lo)
                self.engine.invalidate_code(lo, hi - lo)
            self._remove(v)
            if v.start < lo:
                self._insert(v.piece(v.start, lo))
            if hi < v.end:
                self._insert(v.piece(hi, v.end))
            taken.append(v.piece(lo, hi))
        return taken

    def unmap(self, start: int, length: int) -> None:
        self._cut(start, start + page_up(length))

    def protect(self, start: int, length: int, prot: int) -> bool:
        """mprotect: False (ENOMEM) if any page of the range is unmapped."""
        end = start + page_up(length)
        covered = start
        parts = self._overlapping(start, end)
        for v in parts:
            if v.start > covered:
                return False
            covered = v.end
        if covered < end:
            return False
        for v in parts:
            lo, hi = max(v.start, start), min(v.end, end)
            self._remove(v)
            if v.start < lo:
                self._insert(v.piece(v.start, lo))
            self._insert(v.piece(lo, hi, prot))
            if hi < v.end:
                self._insert(v.piece(hi, v.end))
            if not v.beyond_eof:
                self.engine.protect(lo, hi - lo, engine_perms(prot))
        return True

    def sigbus(self, addr: int, *, write: bool, fetch: bool) -> bool:
        """Whether a page fault at `addr` is SIGBUS: an access its VMA's protection allows to
        a file page wholly beyond the end of the file (mmap(2))."""
        v = self.find(addr)
        if v is None or not v.beyond_eof:
            return False
        need = PROT_WRITE if write else (PROT_EXEC if fetch else PROT_READ)
        return bool(engine_perms(v.prot) & need)

    # --- access on the guest's behalf ---------------------------------------------------

    def _span(self, addr: int, size: int, need: int) -> list[tuple[Vma, int, int]]:
        out = []
        end = addr + size
        while addr < end:
            v = self.find(addr)
            if v is None or v.beyond_eof or (need and not (engine_perms(v.prot) & need)):
                raise GuestFault(addr)
            n = min(end, v.end) - addr
            out.append((v, v.offset + addr - v.start, n))
            addr += n
        return out

    def read(self, addr: int, size: int) -> bytes:
        v = self.find(addr)
        if v is not None and addr + size <= v.end and v.prot & (PROT_READ | PROT_WRITE) and (
                not v.beyond_eof):  # fmt: skip
            o = v.offset + addr - v.start
            return v.buf[o : o + size]
        return b"".join(v.buf[o : o + n] for v, o, n in self._span(addr, size, PROT_READ))

    def write(self, addr: int, data: bytes) -> None:
        pos = 0
        for v, o, n in self._span(addr, len(data), PROT_WRITE):
            v.buf[o : o + n] = data[pos : pos + n]
            pos += n

    def poke(self, addr: int, data: bytes) -> None:
        """Write regardless of protections: the kernel filling pages (loader, exec)."""
        pos = 0
        for v, o, n in self._span(addr, len(data), 0):
            v.buf[o : o + n] = data[pos : pos + n]
            pos += n

    def read_u64(self, addr: int) -> int:
        return struct.unpack("<Q", self.read(addr, 8))[0]

    def write_u64(self, addr: int, value: int) -> None:
        self.write(addr, struct.pack("<Q", value & 0xFFFF_FFFF_FFFF_FFFF))

    def read_cstr(self, addr: int, limit: int = 4096) -> bytes:
        out = bytearray()
        while len(out) < limit:
            v = self.find(addr)
            if v is None or v.beyond_eof or not engine_perms(v.prot) & PROT_READ:
                raise GuestFault(addr)
            o = v.offset + addr - v.start
            chunk = v.buf[o : o + min(v.end - addr, limit - len(out))]
            i = chunk.find(b"\0")
            if i >= 0:
                out += chunk[:i]
                return bytes(out)
            out += chunk
            addr += len(chunk)
        raise GuestFault(addr)

    # --- the hardware Memory protocol (user accesses fault like the guest's own) --------

    def hw_read(self, addr: int, size: int, *, user: bool = True) -> bytes:
        try:
            data = self.read(addr, size)
        except GuestFault as f:
            v = self.find(f.address)
            raise PageFault(f.address, write=False, protection=v is not None, user=user) from None
        self._vouch(addr, size)
        return data

    def hw_write(self, addr: int, data: bytes, *, user: bool = True) -> None:
        try:
            self.write(addr, data)
        except GuestFault as f:
            v = self.find(f.address)
            raise PageFault(f.address, write=True, protection=v is not None, user=user) from None
        self._vouch(addr, len(data))

    def _vouch(self, addr: int, size: int) -> None:
        """Tell the engine's native fast path where the pages of a hardware access that just
        succeeded are, and what they allow, so that it makes the next such access itself
        (user stacks of UIRET and delivery). The engine forgets them at any mapping change."""
        if self.engine.fast is None:
            return
        for page in range(addr & ~(PAGE - 1), addr + size, PAGE):
            v = self.find(page)
            if v is None or v.beyond_eof:
                continue
            perms = engine_perms(v.prot)
            host = buffer_address(v.buf) + v.offset + page - v.start
            self.engine.vouch(page, host, perms & (PROT_READ | PROT_WRITE))

    # --- fork ---------------------------------------------------------------------------

    def clone_into(self, engine: Engine, *, share_all: bool = False) -> AddressSpace:
        """A copy for a forked child: private mappings copied, shared ones shared.
        OutOfMemory if the host cannot back the copies. `share_all` (CLONE_VM|CLONE_VFORK):
        every page is the parent's own memory, seen through the child's engine; only the list
        of mappings is copied (a vfork child changes memory, not mappings, before exec)."""
        child = AddressSpace(engine, brk_start=self.brk_start, brk=self.brk)
        child.max_bytes = self.max_bytes
        child.auxv = self.auxv  # dup_mm copies the mm, saved_auxv included
        copies: dict[int, mmap.mmap] = {}
        for v in self.vmas:
            if share_all or v.shared or v.beyond_eof:
                buf = v.buf
            else:
                key = id(v.buf)
                if key not in copies:
                    nb = anon_buffer(len(v.buf))
                    nb[:] = v.buf  # no intermediate bytes copy
                    copies[key] = nb
                buf = copies[key]
            c = v.piece(v.start, v.end)
            c.buf = buf
            child._add(c)
        return child
