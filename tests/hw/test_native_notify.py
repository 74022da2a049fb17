"""Native notification processing (`uf_notify`, native/fastpath.c) against the Python model
(`UintrUnit.process_notification`, docs/uintr.md §7), without the engine.

As for the other native functions (tests/hw/test_native.py): for any UPID contents, UIRR and
UPIDADDR, the native call either leaves exactly the model's UPID bytes and UIRR, or says SLOW
having changed nothing; it says SLOW whenever the model faults and while the model reports
events; and it does the work itself for a UPID wholly inside kernel memory when not traced.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from uintr_emu.engine import native
from uintr_emu.hw import ArchFault, CpuFeatures
from uintr_emu.hw.apic import ApicBus, LocalApic
from uintr_emu.hw.memory import PagedMemory
from uintr_emu.hw.uintr import UintrUnit

pytestmark = pytest.mark.skipif(not native.available(), reason="fast path not built/enabled")

KBASE = 0xFFFF_8880_0000_0000  # kernel memory: UPIDs (supervisor, writable)
KSIZE = 2 * 4096
UBASE = 0x7FFF_F000_0000  # a user page: readable by the model's supervisor accesses, not native
_QQ = struct.Struct("<QQ")
PATTERN = bytes(range(255, -1, -1))

u64 = st.integers(0, 2**64 - 1)
# UPIDADDR: mostly inside kernel memory (any alignment, up to straddling its ends), else in the
# user page, just outside, or anywhere.
upid_addr = st.one_of(
    st.integers(KBASE, KBASE + KSIZE - 16),
    st.integers(KBASE - 16, KBASE + 16),
    st.integers(KBASE + KSIZE - 32, KBASE + KSIZE + 16),
    st.integers(UBASE, UBASE + 4096 - 16),
    u64,
)
# The UPID's first qword: ON, SN, NV, NDST and the reserved bits, as the OS or chance left them.
upid_low = st.one_of(
    st.builds(lambda on_sn, nv, ndst: on_sn | nv << 16 | ndst << 32,
              st.integers(0, 3), st.integers(0, 255), st.integers(0, 2**32 - 1)),
    u64,
)  # fmt: skip


class Side:
    """One UINTR unit and its memory: kernel memory (also as the bytearray the native code
    reads) and one user page."""

    def __init__(self, kdata: bytes, udata: bytes, user_writable: bool) -> None:
        self.kmem = bytearray(kdata)
        self.mem = PagedMemory()
        self.mem.map(KBASE, KSIZE, user=False, writable=True)
        self.mem.write(KBASE, kdata, supervisor=True)
        self.mem.map(UBASE, 4096, user=True, writable=True)
        self.mem.write(UBASE, udata, supervisor=True)
        self.mem.map(UBASE, 4096, user=True, writable=user_writable)
        bus = ApicBus()
        apic = LocalApic(apic_id=0, x2apic=True)
        bus.attach(apic)
        self.unit = UintrUnit(CpuFeatures(), apic, bus, self.mem)

    def kernel_bytes(self) -> bytes:
        return self.mem.read(KBASE, KSIZE, supervisor=True)


@settings(max_examples=1500, deadline=None)
@given(
    addr=upid_addr,
    low=upid_low,
    pir=st.one_of(st.just(0), st.integers(0, 63).map(lambda v: 1 << v), u64),
    uirr=st.one_of(st.just(0), u64),
    user_writable=st.booleans(),
    traced=st.booleans(),
)
def test_notification_matches_model_or_defers_arch_7(
    addr: int, low: int, pir: int, uirr: int, user_writable: bool, traced: bool
) -> None:
    kdata = bytearray(PATTERN * (KSIZE // len(PATTERN)))
    inside = KBASE <= addr and addr + 16 <= KBASE + KSIZE
    if inside:  # the drawn UPID, amid bytes that show any stray write
        _QQ.pack_into(kdata, addr - KBASE, low, pir)
    udata = PATTERN * (4096 // len(PATTERN))
    fast, model = (Side(bytes(kdata), udata, user_writable) for _ in range(2))
    for side in (fast, model):
        side.unit.state.upid_addr = addr
        side.unit.state.uirr = uirr
    events: list[dict[str, object]] = []
    if traced:
        fast.unit.events = model.unit.events = lambda kind, **f: events.append(f)

    notify = native.notifier(fast.unit, fast.kmem, KBASE)
    assert notify is not None
    r = notify()
    event(f"native {'slow' if r == native.SLOW else 'done'}")
    assert r in (0, native.SLOW)
    try:
        model.unit.process_notification()  # fast_notification unset: the model alone
    except ArchFault:
        assert r == native.SLOW
    if r == native.SLOW:
        assert fast.kmem == kdata and fast.unit.state.uirr == uirr
        # It gives up only where it must: outside kernel memory, or while traced.
        assert traced or not inside
        return
    assert not traced and inside
    assert bytes(fast.kmem) == model.kernel_bytes()
    assert fast.unit.state.uirr == model.unit.state.uirr
    assert fast.unit.state == model.unit.state


def test_notification_of_a_kernel_upid_is_native_arch_7() -> None:
    """The common case, spelled out: ON cleared, PIR moved into UIRR, the rest untouched."""
    kdata = bytearray(KSIZE)
    at = 64 * 3
    low = 1 | 0xEC << 16 | 7 << 32  # ON, NV, NDST
    _QQ.pack_into(kdata, at, low | 0xFF00 << 16 | 0x4, 1 << 5 | 1 << 63)  # + reserved bits
    side = Side(bytes(kdata), bytes(4096), True)
    side.unit.state.upid_addr = KBASE + at
    side.unit.state.uirr = 1 << 2
    notify = native.notifier(side.unit, side.kmem, KBASE)
    assert notify is not None and notify() == 0
    assert _QQ.unpack_from(side.kmem, at) == ((low | 0xFF00 << 16 | 0x4) & ~1, 0)
    assert side.unit.state.uirr == 1 << 2 | 1 << 5 | 1 << 63
