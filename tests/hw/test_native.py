"""The native fast path (native/fastpath.c) against the Python model, without the engine.

The model is the specification: for any input, the native function either gives exactly the
model's result (registers, UIF, UIRR, memory, the notification it sends) or says SLOW having
changed nothing, and it says SLOW whenever the model faults. Hypothesis draws the states,
registers, memory and the pages the Linux layer has vouched for.
"""

from __future__ import annotations

import ctypes
import struct

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from uintr_emu.engine import native
from uintr_emu.hw import ArchFault, CpuFeatures, decode
from uintr_emu.hw.apic import ApicBus, LocalApic
from uintr_emu.hw.cpu import CR4_UINTR
from uintr_emu.hw.faults import InvalidOpcode, PageFault
from uintr_emu.hw.uintr import UintrUnit

pytestmark = pytest.mark.requires_native

KBASE = 0xFFFF_8880_0000_0000
KSIZE = 2 * 4096
UBASE = 0x7FFF_F000_0000
UPAGES = 4
_QQ = struct.Struct("<QQ")


class Env:
    """Kernel memory and a few user pages with per-page rights, seen by the model (the Memory
    protocol: supervisor-only kernel pages, user pages as their rights say) and by the native
    code (`kmem`, and `pages` for the vouched-for user pages)."""

    def __init__(self, kdata: bytes, udata: bytes, writable: list[bool], vouched: list[bool]):
        self.kmem = bytearray(kdata)
        self.user = bytearray(udata)
        self.writable = writable
        self.ctx = native.Ctx()
        native.forget_pages(self.ctx)
        native.set_kernel_memory(self.ctx, self.kmem, KBASE)
        host = ctypes.addressof((ctypes.c_char * len(self.user)).from_buffer(self.user))
        for i in range(UPAGES):
            if vouched[i]:
                perms = native.PERM_R | (native.PERM_W if writable[i] else 0)
                native.remember_page(self.ctx, (UBASE >> 12) + i, host + 4096 * i, perms)

    def _where(self, addr: int, size: int, write: bool, supervisor: bool) -> tuple[bytearray, int]:
        # Which fault does not matter here (the native code defers on all of them), only that
        # the model faults where hardware would: outside both areas, a user access to kernel
        # memory, a write to a read-only user page.
        end = addr + size
        if KBASE <= addr and end <= KBASE + KSIZE and supervisor:
            return self.kmem, addr - KBASE
        if UBASE <= addr and end <= UBASE + UPAGES * 4096:
            first, last = (addr - UBASE) >> 12, (end - 1 - UBASE) >> 12
            if not write or all(self.writable[first : last + 1]):
                return self.user, addr - UBASE
        raise PageFault(addr, write=write, protection=False, user=not supervisor)

    def read(self, addr: int, size: int, *, supervisor: bool) -> bytes:
        buf, off = self._where(addr, size, False, supervisor)
        return bytes(buf[off : off + size])

    def write(self, addr: int, data: bytes, *, supervisor: bool) -> None:
        buf, off = self._where(addr, len(data), True, supervisor)
        buf[off : off + len(data)] = data


UDATA = bytes(range(256)) * (UPAGES * 16)  # user pages: a recognisable pattern


def make_unit(env: Env, flexible: bool = False) -> tuple[UintrUnit, list[tuple[int, int]]]:
    bus = ApicBus()
    apic = LocalApic(apic_id=0, x2apic=True)
    bus.attach(apic)
    for i in (1, 2, 0x12):
        bus.attach(LocalApic(apic_id=i, x2apic=True))
    sent: list[tuple[int, int]] = []
    bus.on_ipi = lambda src, dst, vector: sent.append((dst.apic_id, vector))
    unit = UintrUnit(CpuFeatures(flexible_uiret=flexible), apic, bus, env)
    unit.cr4 = CR4_UINTR
    env.ctx.unit = ctypes.addressof(unit.native)
    return unit, sent


def out3() -> ctypes.Array[ctypes.c_uint64]:
    return (ctypes.c_uint64 * 4)()


# -- strategies ------------------------------------------------------------------------------


def mostly(good: st.SearchStrategy, *bad: st.SearchStrategy) -> st.SearchStrategy:
    """`good` or one of `bad` (first: Hypothesis shrinks towards it). Valid input is still
    the exception here; the `..._is_native_...` tests below draw only valid input."""
    return st.one_of(good, *bad)


u64 = st.integers(0, 2**64 - 1)
yes = mostly(st.just(True), st.just(False))
bools4 = st.lists(yes, min_size=UPAGES, max_size=UPAGES)
noncanonical = st.integers(1 << 47, (1 << 64) - (1 << 47) - 1)
canonical_low = st.integers(0, (1 << 47) - 1)
user_addr = st.integers(UBASE - 64, UBASE + UPAGES * 4096 + 64)
stack_addr = mostly(user_addr, st.integers(KBASE - 32, KBASE + 64), noncanonical, u64)


@st.composite
def qwords(draw: st.DrawFn, n: int, interesting: st.SearchStrategy[int]) -> bytes:
    vals = [draw(st.one_of(interesting, u64)) for _ in range(n)]
    return struct.pack(f"<{n}Q", *vals)


# -- decode ----------------------------------------------------------------------------------

PREFIXES = [0xF0, 0xF2, 0xF3, 0x66, 0x67, 0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65, 0x40, 0x41, 0x48,
            0x4F]  # fmt: skip
uintr_like = st.builds(
    lambda pre, op, modrm, tail: bytes(pre) + b"\x0f" + bytes([op, modrm]) + tail,
    st.lists(st.sampled_from(PREFIXES), max_size=14),
    st.sampled_from([0x01, 0xC7, 0x00]),
    st.one_of(st.integers(0xEB, 0xF8), st.integers(0, 255)),
    st.binary(max_size=4),
)


@settings(max_examples=3000, deadline=None)
@given(st.one_of(uintr_like, st.binary(max_size=16)))
def test_decode_matches_model_arch_6_2(code: bytes) -> None:
    mnemonic, reg = ctypes.c_int(-9), ctypes.c_int(-9)
    got = native.LIB.uf_decode(code, len(code), ctypes.byref(mnemonic), ctypes.byref(reg))
    try:
        want = decode(code)
    except InvalidOpcode:
        assert got == -1
        return
    if want is None:
        assert got == 0
        return
    names = ("UIRET", "TESTUI", "CLUI", "STUI", "SENDUIPI")
    assert (names[mnemonic.value], got) == (want.mnemonic, want.length)
    assert (reg.value if want.register is not None else None) == want.register


# -- UIRET -----------------------------------------------------------------------------------


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    frame=qwords(3, mostly(canonical_low, noncanonical)),
    rsp=stack_addr,
    rflags=u64,
    uif=st.booleans(),
    flexible=st.booleans(),
    writable=bools4,
    vouched=bools4,
)
def test_uiret_matches_model_or_defers_arch_6_4(
    frame: bytes, rsp: int, rflags: int, uif: bool, flexible: bool,
    writable: list[bool], vouched: list[bool],
) -> None:  # fmt: skip
    env = Env(bytes(KSIZE), UDATA, writable, vouched)
    if UBASE <= rsp and rsp + 24 <= UBASE + UPAGES * 4096:
        env.user[rsp - UBASE : rsp - UBASE + 24] = frame
    unit, _ = make_unit(env, flexible)
    unit.state.uif = uif
    out = out3()
    r = native.LIB.uf_uiret(ctypes.byref(env.ctx), rsp, rflags, out)
    event(f"native {'slow' if r == native.SLOW else 'done'}")
    native_uif = unit.state.uif
    unit.state.uif = uif
    try:
        want = unit.uiret(rsp, rflags)
    except ArchFault:
        assert r == native.SLOW and native_uif == uif
        return
    if r == native.SLOW:
        assert native_uif == uif
        return
    assert r == 0
    assert (out[0], out[1], out[2]) == want
    assert native_uif == unit.state.uif


# -- SENDUIPI --------------------------------------------------------------------------------


@st.composite
def senduipi_case(draw: st.DrawFn) -> tuple[bytes, int, int, int]:
    """Kernel memory with a UITT at KBASE and UPIDs at KBASE + 4096 (mostly valid entries)."""
    kmem = bytearray(KSIZE)
    nentries = draw(st.integers(1, 8))
    for i in range(nentries):
        upid = draw(mostly(
            st.integers(0, 63).map(lambda k: KBASE + 4096 + 64 * k),
            st.sampled_from([KBASE + 4096 + 8, KBASE + KSIZE - 8, UBASE, KBASE - 64]),
            u64,
        ))  # fmt: skip
        vector = draw(mostly(st.integers(0, 63), st.integers(0, 255)))
        low = draw(mostly(st.just(1 | vector << 8), u64))
        _QQ.pack_into(kmem, 16 * i, low, upid)
    for k in range(64):
        status = draw(st.sampled_from([0, 1, 2, 3]))
        nv = draw(st.sampled_from([0xEC, 0xEB, 0x10]))
        ndst = draw(st.sampled_from([0, 1, 2, 0x12, 0x1200, 7]))
        low = draw(mostly(st.just(status | nv << 16 | ndst << 32), u64))
        _QQ.pack_into(kmem, 4096 + 64 * k, low, draw(u64))
    index = draw(mostly(st.integers(0, nentries - 1), st.integers(0, nentries + 1), u64))
    size = draw(mostly(st.just(255), st.integers(0, 10)))
    tt = draw(mostly(st.just(KBASE), st.sampled_from([KBASE + 4096 - 16, UBASE, 0]), u64))
    return bytes(kmem), index, size, tt & ~0xF


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=senduipi_case(), enabled=yes)
def test_senduipi_matches_model_or_defers_arch_6_5(
    case: tuple[bytes, int, int, int], enabled: bool
) -> None:
    kdata, index, size, tt = case
    env_native = Env(kdata, bytes(UPAGES * 4096), [True] * UPAGES, [True] * UPAGES)
    env_model = Env(kdata, bytes(UPAGES * 4096), [True] * UPAGES, [True] * UPAGES)
    fast, _ = make_unit(env_native)
    model, sent = make_unit(env_model)
    events: list[dict[str, object]] = []
    model.events = lambda kind, **f: events.append(f)
    for u in (fast, model):
        u.state.uitt_addr, u.state.uitt_size, u.state.senduipi_enabled = tt, size, enabled
    out = out3()
    r = native.LIB.uf_senduipi(ctypes.byref(env_native.ctx), index, out)
    event(f"native {'slow' if r == native.SLOW else 'done'}")
    try:
        model.senduipi(index)
    except ArchFault:
        assert r == native.SLOW
        assert env_native.kmem == bytearray(kdata)
        return
    if r == native.SLOW:
        assert env_native.kmem == bytearray(kdata)
        return
    assert r == 0
    assert env_native.kmem == env_model.kmem
    (ev,) = events
    assert (out[0], bool(out[1]), out[2], out[3]) == (ev["upid"], ev["notify"], ev["nv"],
                                                      ev["ndst"])  # fmt: skip
    # The model sent the notification SENDUIPI's caller sends for a native post.
    assert len(sent) == (1 if ev["notify"] and ev["target"] is not None else 0)


# -- delivery --------------------------------------------------------------------------------


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    uirr=mostly(st.integers(0, 63).map(lambda v: 1 << v), st.just(0), u64),
    uif=yes,
    handler=mostly(canonical_low, noncanonical, u64),
    adjust=mostly(st.just(128), st.just(0), user_addr.map(lambda a: a | 1), stack_addr, u64),
    rip=u64,
    rsp=mostly(st.integers(UBASE, UBASE + UPAGES * 4096).map(lambda a: a + 128), stack_addr),
    rflags=mostly(st.sampled_from([0x202, 0x246 | 1 << 8 | 1 << 16]), u64),
    user_mode=yes,
    enabled=yes,
    writable=bools4,
    vouched=bools4,
)
def test_delivery_matches_model_or_defers_arch_8(
    uirr: int, uif: bool, handler: int, adjust: int, rip: int, rsp: int,
    rflags: int, user_mode: bool, enabled: bool, writable: list[bool], vouched: list[bool],
) -> None:  # fmt: skip
    env_native = Env(bytes(KSIZE), UDATA, writable, vouched)
    env_model = Env(bytes(KSIZE), UDATA, writable, vouched)
    fast, _ = make_unit(env_native)
    model, _ = make_unit(env_model)
    for u in (fast, model):
        st_ = u.state
        st_.uirr, st_.uif, st_.handler, st_.stack_adjust = uirr, uif, handler, adjust
        u.user_mode = user_mode
        u.cr4 = CR4_UINTR if enabled else 0
    before = fast.state.copy()
    out = out3()
    r = native.LIB.uf_deliver(ctypes.byref(env_native.ctx), rip, rsp, rflags, out)
    event(f"native {('slow', 'not deliverable', 'delivered')[r + 1]}")
    try:
        want = model.deliver(rip, rsp, rflags)
    except ArchFault:
        assert r == native.SLOW
        assert fast.state == before and env_native.user == bytearray(UDATA)
        return
    if r == native.SLOW:
        assert fast.state == before and env_native.user == bytearray(UDATA)
        return
    if want is None:
        assert r == 0 and fast.state == before
        return
    assert r == 1
    assert (out[0], out[1], out[2]) == want
    assert fast.state == model.state
    assert env_native.user == env_model.user


# -- valid input: the fast path must not defer -------------------------------------------------
# (Deferring is always correct, so the tests above cannot see a fast path that gives up too
# often; these pin the cases the pingpong benchmark depends on.)

ALL = [True] * UPAGES


@settings(max_examples=300, deadline=None)
@given(
    rsp=st.integers(UBASE, UBASE + UPAGES * 4096 - 24),
    frame=st.tuples(canonical_low, u64, u64),
    rflags=u64,
    uif=st.booleans(),
    flexible=st.booleans(),
)
def test_uiret_on_known_stack_is_native_arch_6_4(
    rsp: int, frame: tuple[int, int, int], rflags: int, uif: bool, flexible: bool
) -> None:
    env = Env(bytes(KSIZE), UDATA, ALL, ALL)
    env.user[rsp - UBASE : rsp - UBASE + 24] = struct.pack("<3Q", *frame)
    unit, _ = make_unit(env, flexible)
    unit.state.uif = uif
    out = out3()
    assert native.LIB.uf_uiret(ctypes.byref(env.ctx), rsp, rflags, out) == 0
    native_uif = unit.state.uif
    unit.state.uif = uif
    assert (out[0], out[1], out[2]) == unit.uiret(rsp, rflags)
    assert native_uif == unit.state.uif


@settings(max_examples=300, deadline=None)
@given(
    index=st.integers(0, 255),
    vector=st.integers(0, 63),
    slot=st.integers(0, 63),
    status=st.integers(0, 3),
    nv=st.integers(0, 255),
    ndst=st.integers(0, 2**32 - 1),
    pir=u64,
)
def test_senduipi_to_kernel_upid_is_native_arch_6_5(
    index: int, vector: int, slot: int, status: int, nv: int, ndst: int, pir: int
) -> None:
    kmem = bytearray(KSIZE)
    upid = KBASE + 4096 + 64 * slot
    _QQ.pack_into(kmem, 16 * index, 1 | vector << 8, upid)
    _QQ.pack_into(kmem, upid - KBASE, status | nv << 16 | ndst << 32, pir)
    envs = [Env(bytes(kmem), UDATA, ALL, ALL) for _ in range(2)]
    (fast, _), (model, _) = make_unit(envs[0]), make_unit(envs[1])
    events: list[dict[str, object]] = []
    model.events = lambda kind, **f: events.append(f)
    for u in (fast, model):
        u.state.uitt_addr, u.state.uitt_size, u.state.senduipi_enabled = KBASE, 255, True
    out = out3()
    assert native.LIB.uf_senduipi(ctypes.byref(envs[0].ctx), index, out) == 0
    model.senduipi(index)
    assert envs[0].kmem == envs[1].kmem
    (ev,) = events
    assert (out[0], bool(out[1]), out[2], out[3]) == (upid, ev["notify"], nv, ndst)


@settings(max_examples=300, deadline=None)
@given(
    uirr=st.integers(1, 2**64 - 1),
    handler=canonical_low,
    adjust=st.one_of(
        st.sampled_from([0, 128, 8]), st.integers(UBASE + 64, UBASE + 4 * 4096).map(lambda a: a | 1)
    ),  # fmt: skip
    rip=u64,
    rsp=st.integers(UBASE + 4096, UBASE + UPAGES * 4096),
    rflags=u64.map(lambda f: f | 1 << 9),
)
def test_delivery_on_known_stack_is_native_arch_8(
    uirr: int, handler: int, adjust: int, rip: int, rsp: int, rflags: int
) -> None:
    envs = [Env(bytes(KSIZE), UDATA, ALL, ALL) for _ in range(2)]
    (fast, _), (model, _) = make_unit(envs[0]), make_unit(envs[1])
    for u in (fast, model):
        u.state.uirr, u.state.uif, u.state.handler, u.state.stack_adjust = (
            uirr,
            True,
            handler,
            adjust,
        )
    out = out3()
    assert native.LIB.uf_deliver(ctypes.byref(envs[0].ctx), rip, rsp, rflags, out) == 1
    assert (out[0], out[1], out[2]) == model.deliver(rip, rsp, rflags)
    assert fast.state == model.state
    assert envs[0].user == envs[1].user
