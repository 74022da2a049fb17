"""Linear memory as the UINTR hardware sees it.

The hardware model never touches the engine directly: it reads and writes linear addresses through
the :class:`Memory` protocol. Each access says whether it is a *supervisor* access (SENDUIPI's UITT
and UPID accesses and notification processing, docs/uintr.md §6.5/§7, are supervisor accesses
whatever the CPL) or a *user* access (the delivery pushes and the UIRET pops at CPL3, §6.4/§8).

Paging rules modelled (SDM Vol.3 §4.6 "Access Rights"), with CR0.WP = 1 as Linux sets it:

- a page that is not mapped: #PF with P = 0;
- a user access to a supervisor-only page: #PF with P = 1;
- a write to a read-only page, by user or supervisor: #PF with P = 1.

SMAP/SMEP and protection keys are not modelled. Canonical-address checks are the caller's job
(they raise #GP or #SS, not #PF).

Fault address convention (any implementation must follow it): an access that faults reports the
lowest address of the access that lies in the first faulting page, i.e. ``addr`` itself when the
first page faults, otherwise the first byte of the faulting page. An implementation checks the
whole access before changing anything, so a faulting write stores nothing.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Protocol

from uintr_emu.hw.faults import PageFault

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
PAGE_MASK = PAGE_SIZE - 1
ADDR_MASK = (1 << 64) - 1  # linear addresses wrap at 2**64 in 64-bit mode
_PAGE_COUNT_MASK = ADDR_MASK >> PAGE_SHIFT

_U64 = struct.Struct("<Q")


class Memory(Protocol):
    """Linear-address memory with user/supervisor and read/write permissions."""

    def read(self, addr: int, size: int, *, supervisor: bool) -> bytes:
        """Return ``size`` bytes at ``addr``; raise :class:`PageFault` if not allowed."""
        ...

    def write(self, addr: int, data: bytes, *, supervisor: bool) -> None:
        """Store ``data`` at ``addr``; raise :class:`PageFault` (storing nothing) if not allowed."""
        ...


def read_u64(mem: Memory, addr: int, supervisor: bool) -> int:
    """Read a little-endian qword."""
    value: int = _U64.unpack(mem.read(addr, 8, supervisor=supervisor))[0]
    return value


def write_u64(mem: Memory, addr: int, value: int, supervisor: bool) -> None:
    """Write a little-endian qword (``value`` is taken modulo 2**64)."""
    mem.write(addr, _U64.pack(value & ADDR_MASK), supervisor=supervisor)


@dataclass(slots=True)
class Page:
    """One 4 KiB page of :class:`PagedMemory` and its access rights (U/S and R/W bits)."""

    data: bytearray
    user: bool
    writable: bool


class PagedMemory:
    """A simple sparse, 4 KiB-paged implementation of :class:`Memory` (for tests and tools).

    ``map`` creates zero-filled pages; mapping a page that is already mapped changes only its
    rights (like ``mprotect``). Addresses are taken modulo 2**64.
    """

    __slots__ = ("_pages",)

    def __init__(self) -> None:
        self._pages: dict[int, Page] = {}

    # -- mapping ---------------------------------------------------------------------------------

    def map(self, addr: int, size: int, *, user: bool, writable: bool) -> None:
        """Map (or re-protect) every page overlapping ``[addr, addr + size)``."""
        for pn in self._page_numbers(addr, size):
            page = self._pages.get(pn)
            if page is None:
                self._pages[pn] = Page(bytearray(PAGE_SIZE), user, writable)
            else:
                page.user = user
                page.writable = writable

    def unmap(self, addr: int, size: int) -> None:
        """Unmap every page overlapping ``[addr, addr + size)`` (unmapped pages are ignored)."""
        for pn in self._page_numbers(addr, size):
            self._pages.pop(pn, None)

    def is_mapped(self, addr: int) -> bool:
        return ((addr & ADDR_MASK) >> PAGE_SHIFT) in self._pages

    # -- Memory protocol -------------------------------------------------------------------------

    def read(self, addr: int, size: int, *, supervisor: bool) -> bytes:
        addr &= ADDR_MASK
        off = addr & PAGE_MASK
        if off + size <= PAGE_SIZE:  # fast path: one page
            page = self._pages.get(addr >> PAGE_SHIFT)
            if page is not None and (supervisor or page.user):
                return bytes(page.data[off : off + size])
        chunks = self._check(addr, size, write=False, supervisor=supervisor)
        return b"".join(bytes(page.data[o : o + n]) for page, o, n in chunks)

    def write(self, addr: int, data: bytes, *, supervisor: bool) -> None:
        addr &= ADDR_MASK
        size = len(data)
        off = addr & PAGE_MASK
        if off + size <= PAGE_SIZE:  # fast path: one page
            page = self._pages.get(addr >> PAGE_SHIFT)
            if page is not None and page.writable and (supervisor or page.user):
                page.data[off : off + size] = data
                return
        pos = 0
        for page, o, n in self._check(addr, size, write=True, supervisor=supervisor):
            page.data[o : o + n] = data[pos : pos + n]
            pos += n

    # -- helpers ---------------------------------------------------------------------------------

    @staticmethod
    def _page_numbers(addr: int, size: int) -> list[int]:
        if size <= 0:
            return []
        first = (addr & ADDR_MASK) >> PAGE_SHIFT
        last = ((addr + size - 1) & ADDR_MASK) >> PAGE_SHIFT
        count = ((last - first) & _PAGE_COUNT_MASK) + 1
        return [(first + i) & _PAGE_COUNT_MASK for i in range(count)]

    def _check(
        self, addr: int, size: int, *, write: bool, supervisor: bool
    ) -> list[tuple[Page, int, int]]:
        """Check every page of the access in address order; return (page, offset, length)."""
        chunks: list[tuple[Page, int, int]] = []
        cur = addr
        left = size
        while left > 0:
            off = cur & PAGE_MASK
            n = min(left, PAGE_SIZE - off)
            page = self._pages.get(cur >> PAGE_SHIFT)
            user = not supervisor
            if page is None:
                raise PageFault(cur, write=write, protection=False, user=user)
            if (user and not page.user) or (write and not page.writable):
                raise PageFault(cur, write=write, protection=True, user=user)
            chunks.append((page, off, n))
            cur = (cur + n) & ADDR_MASK
            left -= n
        return chunks
