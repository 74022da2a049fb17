"""Guest memory permissions for Unicorn's virtual TLB: the fill hook and its region table.

Why (docs/performance.md, "Memory-heavy code"): with the engine's default TLB and paging off,
every TLB entry is executable, and Unicorn 2.1.4 then sends every store through its slow path;
memory-fault hooks (`UC_HOOK_MEM_*_UNMAPPED/PROT`) keep it there too. So the engine runs with
UC_TLB_VIRTUAL and a UC_HOOK_TLB_FILL callback, `uf_tlb_fill` (native/mmu.c), instead of any
memory hook: on a TLB miss it finds the linear page in a table of regions with their
permissions (`MmuState`, kept by `Mmu.assign` on every map, unmap and protect) and grants the
mapping's own permissions, so data pages are not executable and stores take the fast path. An
access the mapping does not allow -- or to a page with no mapping, a kernel-half or a
non-canonical page: the fill sees all 64 bits of the page -- is refused: the fill records it
(`Refusal`) and Unicorn ends the run with UC_ERR_EXCEPTION, RIP at the instruction and nothing
of it done after the refused access (docs/engine-notes.md §15). That is where memory faults come
from.

Each executable range of the table also carries a memory hook that is never called
(`Mmu._mark_code`): it only spares Unicorn a walk of its whole TLB per translated block
(docs/engine-notes.md §15).

The fill only ever sees the page of an access, not the byte: `Engine.fault_address` learns the
byte from engine/probe.py.

Without the native library the same two functions (`_python_fill`, `_python_assign`) run in
Python: the same table, the same answers, slower (a fill costs ~2 us instead of ~0.1; fills are
rare, a few thousand for compute_bench). `Mmu(python=True)` picks them for tests.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

from . import native
from .binding import Uc, UcError, uc_hook_h, ucc, uclib, x86
from .errors import EngineError

PAGE = 0x1000
RIP = x86.UC_X86_REG_RIP

#: The kinds of access a fill is for (Unicorn's uc_mem_type; ACCESS_* of native/shared.h).
MEM_READ, MEM_WRITE, MEM_FETCH = ucc.UC_MEM_READ, ucc.UC_MEM_WRITE, ucc.UC_MEM_FETCH
PROT_R, PROT_W, PROT_X = ucc.UC_PROT_READ, ucc.UC_PROT_WRITE, ucc.UC_PROT_EXEC
NEED = {MEM_READ: PROT_R, MEM_WRITE: PROT_W, MEM_FETCH: PROT_X}

_INITIAL_CAPACITY = 64


class TlbEntry(ctypes.Structure):
    """`struct tlb_entry` of native/shared.h: Unicorn's uc_tlb_entry."""

    _fields_ = [("paddr", ctypes.c_uint64), ("perms", ctypes.c_uint32)]


class Region(ctypes.Structure):
    """`struct region` of native/shared.h: pages [start, end) with the same permissions."""

    _fields_ = [
        ("start", ctypes.c_uint64),
        ("end", ctypes.c_uint64),
        ("perms", ctypes.c_uint32),
        ("_pad", ctypes.c_uint32),
    ]


class MmuState(ctypes.Structure):
    """`struct mmu` of native/shared.h: the fill hook's data, one per engine."""

    _fields_ = [
        ("regions", ctypes.c_void_p),
        ("count", ctypes.c_uint32),
        ("capacity", ctypes.c_uint32),
        ("reg_read", ctypes.c_void_p),
        ("rip_id", ctypes.c_int),
        ("maintenance", ctypes.c_uint32),
        ("stale", ctypes.c_uint32),
        ("_pad", ctypes.c_uint32),
        ("fault_kind", ctypes.c_uint32),
        ("fault_mapped", ctypes.c_uint32),
        ("fault_page", ctypes.c_uint64),
        ("fault_rip", ctypes.c_uint64),
        ("fills", ctypes.c_uint64),
        ("refusals", ctypes.c_uint64),
    ]


class Refusal(NamedTuple):
    """An access the fill refused: where a memory fault comes from.

    ``kind``: MEM_READ, MEM_WRITE or MEM_FETCH. ``page``: the linear page, all 64 bits.
    ``rip``: RIP when it was refused -- the faulting instruction for a data access; for a
    fetch, the branch's target or the start of the block whose bytes run into ``page``.
    ``mapped``: the page has a mapping whose permissions forbid the access.
    """

    kind: int
    page: int
    rip: int
    mapped: bool

    @property
    def write(self) -> bool:
        return self.kind == MEM_WRITE

    @property
    def fetch(self) -> bool:
        return self.kind == MEM_FETCH


FILL_CB = ctypes.CFUNCTYPE(
    ctypes.c_bool, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_int, ctypes.POINTER(TlbEntry),
    ctypes.c_void_p,
)  # fmt: skip


def _find(m: MmuState, page: int) -> Region | None:
    """`find` of native/mmu.c."""
    table = (Region * m.count).from_address(m.regions) if m.count else ()
    lo, hi = 0, m.count
    while lo < hi:
        mid = (lo + hi) // 2
        if table[mid].end <= page:
            lo = mid + 1
        else:
            hi = mid
    return table[lo] if lo < m.count and table[lo].start <= page else None


def _python_fill(m: MmuState) -> Any:
    """`uf_tlb_fill` of native/mmu.c as a Python callback on `m`: the same steps."""
    rip = ctypes.c_uint64()
    rip_ref = ctypes.byref(rip)

    def fill(uc: int, page: int, kind: int, entry: Any, _data: int) -> bool:
        need = NEED.get(kind, PROT_R)
        r = _find(m, page)
        m.fills += 1
        e = entry.contents
        if r is not None and r.perms & need:
            e.paddr, e.perms = page, r.perms
            return True
        uclib.uc_reg_read(uc, RIP, rip_ref)
        here = rip.value & ~(PAGE - 1)
        if m.maintenance or (kind == MEM_FETCH and page not in (here, here + PAGE)):
            e.paddr, e.perms = page, need
            if r is not None:
                m.stale = 1
            return True
        m.refusals += 1
        if not m.fault_kind:
            m.fault_kind, m.fault_mapped = kind, r is not None
            m.fault_page, m.fault_rip = page, rip.value
        return False

    return FILL_CB(fill)


def _python_assign(m: MmuState, start: int, end: int, perms: int, mapped: bool) -> int:
    """`uf_mmu_assign` of native/mmu.c on `m`'s table: the same result and table."""
    n = m.count
    table = (Region * m.capacity).from_address(m.regions)
    old = [(table[k].start, table[k].end, table[k].perms) for k in range(n)]
    i = 0
    while i < n and old[i][1] <= start:
        i += 1
    j = i
    before = 0
    while j < n and old[j][0] < end:
        before |= old[j][2]
        j += 1
    repl = []
    if i < j and old[i][0] < start:
        repl.append((old[i][0], start, old[i][2]))
    if mapped:
        repl.append((start, end, perms))
    if i < j and old[j - 1][1] > end:
        repl.append((end, old[j - 1][1], old[j - 1][2]))
    if repl and i > 0 and old[i - 1][1] == repl[0][0] and old[i - 1][2] == repl[0][2]:
        i -= 1
        repl[0] = (old[i][0], repl[0][1], repl[0][2])
    if repl and j < n and old[j][0] == repl[-1][1] and old[j][2] == repl[-1][2]:
        repl[-1] = (repl[-1][0], old[j][1], repl[-1][2])
        j += 1
    merged: list[tuple[int, int, int]] = []
    for r in repl:
        if merged and merged[-1][1] == r[0] and merged[-1][2] == r[2]:
            merged[-1] = (merged[-1][0], r[1], r[2])
        else:
            merged.append(r)
    new = old[:i] + merged + old[j:]
    if len(new) > m.capacity:
        return -1
    for k, (s, e, p) in enumerate(new):
        table[k].start, table[k].end, table[k].perms = s, e, p
    m.count = len(new)
    return before


class Mmu:
    """The fill hook of one engine and its region table (module docstring).

    `python`: use the Python fill and table functions even if the native library is there.
    """

    def __init__(self, uc: Uc, *, python: bool = False) -> None:
        self._uc = uc
        self._handle = uc._uch
        self.state = MmuState()
        self._table: ctypes.Array[Region] = (Region * _INITIAL_CAPACITY)()
        self.state.regions = ctypes.addressof(self._table)
        self.state.capacity = _INITIAL_CAPACITY
        self.state.reg_read = ctypes.cast(uclib.uc_reg_read, ctypes.c_void_p).value
        self.state.rip_id = RIP
        lib = native.LIB
        self.python = python or lib is None
        self._callback: Any = None
        if self.python:
            self._callback = _python_fill(self.state)
            fill = ctypes.cast(self._callback, ctypes.c_void_p).value
            self._assign: Any = lambda *a: _python_assign(self.state, *a)
        else:
            assert lib is not None
            fill = native.address("uf_tlb_fill")
            assign = lib.uf_mmu_assign
            assign.argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint64,
                               ctypes.c_uint32, ctypes.c_bool]  # fmt: skip
            assign.restype = ctypes.c_int
            state = ctypes.byref(self.state)
            self._assign = lambda *a: assign(state, *a)
        try:
            # docs/engine-notes.md §15: the TLB mode is per engine, and must be set before the
            # first instruction runs.
            uc.ctl_set_tlb_mode(ucc.UC_TLB_VIRTUAL)
        except UcError as err:
            raise EngineError(f"cannot use the virtual TLB: {err}", err.errno) from None
        # The executable ranges' marks (`_mark_code`): (start, end) -> hook handle.
        self._marks: dict[tuple[int, int], int] = {}
        self._mark_cb = None if self.python else native.address("uf_code_mark")
        h = uc_hook_h()
        status = uclib.uc_hook_add(
            self._handle, ctypes.byref(h), ucc.UC_HOOK_TLB_FILL, ctypes.c_void_p(fill),
            ctypes.byref(self.state), ctypes.c_uint64(1), ctypes.c_uint64(0),
        )  # fmt: skip
        if status != ucc.UC_ERR_OK:
            raise EngineError(f"cannot install the TLB-fill hook: {UcError(status)}")

    # --- the region table -------------------------------------------------------------

    def assign(self, start: int, end: int, perms: int | None) -> int:
        """Pages [start, end) get `perms` (UC_PROT_* bits), or no mapping (None). Returns the
        permissions the range had before, ORed. The TLB is the caller's (`flush_tlb`)."""
        while True:
            before = self._assign(start, end, perms or 0, perms is not None)
            if before >= 0:
                break
            self._grow()
        if (before | (perms or 0)) & PROT_X and self._mark_cb is not None:
            self._mark_code()
        return int(before)

    def _mark_code(self) -> None:
        """Cover each executable range of the table, and nothing else, with a memory hook that
        is never called (`uf_code_mark`, native/mmu.c): Unicorn then skips a walk of its whole
        TLB after each block it translates there, which changes nothing in this engine.
        Called when a change touches executable pages."""
        ranges: list[tuple[int, int]] = []
        for r in self._table[: self.state.count]:
            if r.perms & PROT_X:
                if ranges and ranges[-1][1] == r.start:
                    ranges[-1] = (ranges[-1][0], r.end)
                else:
                    ranges.append((r.start, r.end))
        marks = self._marks
        wanted = set(ranges)
        for key in [k for k in marks if k not in wanted]:
            uclib.uc_hook_del(self._handle, marks.pop(key))
        for lo, hi in wanted.difference(marks):
            h = uc_hook_h()
            status = uclib.uc_hook_add(
                self._handle, ctypes.byref(h), ucc.UC_HOOK_MEM_FETCH_UNMAPPED,
                ctypes.c_void_p(self._mark_cb), None, ctypes.c_uint64(lo), ctypes.c_uint64(hi - 1),
            )  # fmt: skip
            if status != ucc.UC_ERR_OK:
                raise EngineError(f"cannot mark code at {lo:#x}: {UcError(status)}")
            marks[(lo, hi)] = h.value

    def _grow(self) -> None:
        m = self.state
        bigger = (Region * (2 * m.capacity))()
        ctypes.memmove(bigger, self._table, ctypes.sizeof(Region) * m.count)
        self._table = bigger
        m.regions = ctypes.addressof(bigger)
        m.capacity = len(bigger)

    def regions(self, start: int = 0, end: int = 1 << 64) -> list[tuple[int, int, int]]:
        """The table: (start, end, perms) in address order; only the regions overlapping
        [start, end) if given."""
        t, n = self._table, self.state.count
        lo, hi = 0, n
        while lo < hi:  # the first region ending after start
            mid = (lo + hi) // 2
            if t[mid].end <= start:
                lo = mid + 1
            else:
                hi = mid
        out = []
        while lo < n and t[lo].start < end:
            r = t[lo]
            out.append((r.start, r.end, r.perms))
            lo += 1
        return out

    def perms(self, address: int) -> int | None:
        """The permissions of the page holding `address`, None if it has no mapping."""
        r = _find(self.state, address & ~(PAGE - 1))
        return None if r is None else int(r.perms)

    # --- refusals and the TLB ----------------------------------------------------------

    def take_refusal(self) -> Refusal | None:
        """The first access refused since the last call, if any (and forget it)."""
        m = self.state
        if not m.fault_kind:
            return None
        r = Refusal(m.fault_kind, m.fault_page, m.fault_rip, bool(m.fault_mapped))
        m.fault_kind = 0
        return r

    def flush_tlb(self) -> None:
        """Drop every TLB entry: the next access to each page asks the fill again. (Unicorn
        2.1.4 has no public flush of one page; a full flush also empties the jump cache, so
        code that lost its execute permission is looked up, and refused, again.)"""
        self._uc.ctl(ucc.UC_CTL_TLB_FLUSH, ucc.UC_CTL_IO_WRITE)
        self.state.stale = 0

    def flush_if_stale(self) -> None:
        """Flush the TLB if a fill granted more than a page allows (see `maintenance`)."""
        if self.state.stale:
            self.flush_tlb()

    @contextmanager
    def maintenance(self) -> Iterator[None]:
        """Around the engine's own calls that make Unicorn look up code pages outside guest
        execution (removing translations, learning a block's size, unmapping): the fill grants
        everything then, since a refusal there would only fail the call (and its
        translations stay); whatever it granted beyond a page's permissions is flushed
        afterwards, before guest code runs."""
        outer = self.state.maintenance
        self.state.maintenance = 1
        try:
            yield
        finally:
            self.state.maintenance = outer
            if not outer:
                self.flush_if_stale()
