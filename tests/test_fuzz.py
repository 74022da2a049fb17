"""Property-based fuzzing (hypothesis) of the hardware model and of the syscall layer.

Part 1, the hardware model (``uintr_emu.hw``, in process, no engine): random MSR numbers and
values, random XSAVE images, random UITTs/UPIDs in a ``PagedMemory`` with random SENDUIPI
indices, random instruction bytes and random operation sequences.  Only results or
``ArchFault`` subclasses may come out, and the state invariants of docs/hardware.md hold.

Part 2, the syscall layer: a small static program is loaded into ``uintr_emu.api.Machine``
(not run) and syscall handlers are called directly, ``kernel.syscalls[nr].fn(kernel, thread,
*args)``, with random 64-bit arguments, pointers into the program's memory or anywhere.  Every
example runs in a forked child of the test process (~10-15 ms; a fresh Machine and load cost
~55 ms), so it starts from the same machine, its host side effects (cwd, files) die with
it, and a hang or a crash of the child is seen, not suffered: no syscall needs to be
excluded, not even exit, execve or the blocking ones.  The guest's file system root
(``Options(root=...)``) and the child's cwd are a temporary directory, rebuilt whenever an
example changed it.  Allowed outcomes: an int (-4095..-1 or a value), ``BLOCK``,
``RESTART``, ``GuestFault`` (EFAULT), ``GuestExit``; and after each call the kernel's
invariants hold (kernel_invariant).

Example counts: ``UINTR_FUZZ_EXAMPLES=N`` multiplies every ``max_examples`` (default 1);
benchmarks/fuzz_long.py runs a long campaign (docs/robustness.md).

Known bugs are listed in KNOWN_SYSCALL_BUGS: the fuzz tolerates exactly those (syscall,
exception or invariant) pairs, and each has a strict-xfail regression test with a concrete
input (test_known_syscall_bug).
"""

from __future__ import annotations

import dataclasses
import errno
import mmap as mmap_module
import os
import pickle
import select
import shutil
import signal
import struct
import subprocess
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from uintr_emu import Machine, Options
from uintr_emu.engine import unicorn as eng
from uintr_emu.hw.apic import ApicBus, LocalApic
from uintr_emu.hw.cpu import CR4_UINTR, CpuFeatures, is_canonical
from uintr_emu.hw.decode import MAX_INSTRUCTION_LENGTH, Decoded, decode
from uintr_emu.hw.faults import ArchFault, GeneralProtection, PageFault
from uintr_emu.hw.memory import PagedMemory
from uintr_emu.hw.uintr import (
    IA32_UINTR_HANDLER,
    IA32_UINTR_MISC,
    IA32_UINTR_PD,
    IA32_UINTR_RR,
    IA32_UINTR_STACKADJUST,
    IA32_UINTR_TT,
    UINTR_MSRS,
    UintrState,
    UintrUnit,
)
from uintr_emu.linux import mm as mm_module
from uintr_emu.linux.control import BLOCK, RESTART, GuestExit
from uintr_emu.linux.mm import TASK_SIZE, GuestFault, engine_perms
from uintr_emu.linux.process import HostFile
from uintr_emu.linux.syscalls import registry

REPO = Path(__file__).resolve().parent.parent
SCALE = max(1, int(os.environ.get("UINTR_FUZZ_EXAMPLES", "1") or 1))
M64 = 2**64 - 1


def examples(n: int) -> int:
    """``max_examples`` for a test: its CI share times UINTR_FUZZ_EXAMPLES."""
    return n * SCALE


def fuzz_settings(n: int) -> Callable[[Any], Any]:
    return settings(
        max_examples=examples(n),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# =========================================================================== part 1: hardware

u64 = st.integers(0, M64)
edgy_u64 = st.one_of(
    u64,
    st.integers(0, 2**48),
    st.integers(2**64 - 2**48, M64),
    st.sampled_from(
        [
            0,
            1,
            2,
            0xE,
            0xF,
            0x3F,
            0x40,
            2**31,
            2**32 - 1,
            2**32,
            2**40 - 1,
            2**40,
            2**47 - 1,
            2**47,
            2**63,
            2**64 - 2**47,
            M64,
        ]
    ),
)
msr_numbers = st.one_of(
    st.sampled_from(UINTR_MSRS),
    st.integers(0x980, 0x990),
    st.integers(0, 2**32 - 1),
)
KERNEL = 0xFFFF_8880_0000_0000  # supervisor-only pages (UITT, UPIDs), as Linux lays them out
USER = 0x7FFF_FFF0_0000  # a user page (user stack top)
NONCANONICAL = 0x8000_0000_0000_0000


def hw_machine(n_cpus: int = 2, features: CpuFeatures | None = None) -> tuple[Any, ...]:
    """CPUs with CR4.UINTR (when the feature is there), 3 kernel pages, 4 user pages."""
    features = features or CpuFeatures()
    mem = PagedMemory()
    mem.map(KERNEL, 0x3000, user=False, writable=True)
    mem.map(USER - 0x4000, 0x4000, user=True, writable=True)
    bus = ApicBus()
    ipis: list[tuple] = []
    bus.on_ipi = lambda s, t, v: ipis.append((s.apic_id, t.apic_id, v))
    cpus = []
    for i in range(n_cpus):
        apic = LocalApic(i)
        bus.attach(apic)
        unit = UintrUnit(features, apic, bus, mem)
        if features.uintr:
            unit.cr4 = CR4_UINTR
        cpus.append(unit)
    return mem, cpus, ipis


def snapshot_memory(mem: PagedMemory) -> dict[int, bytes]:
    return {pn: bytes(p.data) for pn, p in mem._pages.items()}


def check_state_invariants(st_: UintrState) -> None:
    """What WRMSR/XRSTORS guarantee whatever the sequence: the addresses are canonical, the
    fields fit their widths, the reserved bits are clear."""
    assert is_canonical(st_.handler) and is_canonical(st_.stack_adjust)
    assert is_canonical(st_.upid_addr) and st_.upid_addr & 0x3F == 0
    assert is_canonical(st_.uitt_addr) and st_.uitt_addr & 0xF == 0
    assert 0 <= st_.uirr <= M64 and 0 <= st_.uinv <= 0xFF and 0 <= st_.uitt_size < 2**32


@fuzz_settings(1500)
@given(
    ops=st.lists(st.tuples(st.booleans(), msr_numbers, edgy_u64), min_size=1, max_size=8),
    uintr=st.booleans(),
)
def test_hw_msr_sequences(ops: list[tuple[bool, int, int]], uintr: bool) -> None:
    """RDMSR/WRMSR of any MSR number with any 64-bit value: a result or #GP, nothing else;
    a refused WRMSR changes nothing; an accepted one reads back; invariants always hold."""
    _, (cpu, _), _ = hw_machine(features=CpuFeatures(uintr=uintr))
    for write, msr, value in ops:
        before = cpu.state.copy()
        try:
            if write:
                cpu.wrmsr(msr, value)
            else:
                got = cpu.rdmsr(msr)
                assert 0 <= got <= M64
        except ArchFault as f:
            assert isinstance(f, GeneralProtection), f
            assert cpu.state == before, "a faulting RDMSR/WRMSR changed the state"
            assert not uintr or msr not in UINTR_MSRS or write
            continue
        assert uintr and msr in UINTR_MSRS
        if write:
            assert cpu.rdmsr(msr) == value
        else:
            assert cpu.state == before
        check_state_invariants(cpu.state)


def test_hw_wrmsr_values_beyond_64_bits_are_a_programming_error() -> None:
    """docs/hardware.md: values outside 0..2^64-1 are ValueError (never reach the guest)."""
    _, (cpu, _), _ = hw_machine()
    for value in (-1, 2**64):
        with pytest.raises(ValueError):
            cpu.wrmsr(IA32_UINTR_RR, value)


xsave_images = st.one_of(
    st.binary(min_size=48, max_size=48),
    st.builds(lambda *v: struct.pack("<6Q", *v), *[edgy_u64] * 6),
    st.builds(
        lambda h, sa, size, uinv, uif, pd, rr, tt: struct.pack(
            "<6Q", h, sa, size | uinv << 32 | uif << 63, pd, rr, tt
        ),
        edgy_u64,
        edgy_u64,
        st.integers(0, 2**32 - 1),
        st.integers(0, 255),
        st.integers(0, 1),
        edgy_u64.map(lambda v: v & ~0x3F),
        u64,
        edgy_u64.map(lambda v: v & ~0xE),
    ),
)


@fuzz_settings(1200)
@given(images=st.lists(xsave_images, min_size=1, max_size=4), uintr=st.booleans())
def test_hw_xrstors_random_images(images: list[bytes], uintr: bool) -> None:
    """XRSTORS of any 48-byte image: #GP with nothing loaded, or exactly the image loaded
    (XSAVES gives it back); a second XRSTORS without XSAVES faults when UINV != 0."""
    _, (cpu, _), _ = hw_machine(features=CpuFeatures(uintr=uintr))
    for image in images:
        before = cpu.state.copy()
        try:
            cpu.xrstors(image)
        except ArchFault as f:
            assert isinstance(f, GeneralProtection), f
            assert cpu.state == before
            if uintr and before.uinv:
                cpu.xsaves()  # the OS's XSAVES clears UINV; then it may try again
            continue
        assert uintr
        assert cpu.state == UintrState.from_xsave(image)
        check_state_invariants(cpu.state)
        # XSAVES stores no image for the initial configuration (XSTATE_BV[14] = 0).
        assert (cpu.xsaves() or bytes(48)) == image
        assert cpu.state.uinv == 0


@fuzz_settings(100)
@given(image=st.binary(max_size=100).filter(lambda b: len(b) != 48))
def test_hw_xrstors_wrong_size_is_a_programming_error(image: bytes) -> None:
    _, (cpu, _), _ = hw_machine()
    with pytest.raises(ValueError):
        cpu.xrstors(image)


# UITT entries and UPIDs: fully random 16 bytes, or plausible ones with one thing wrong.
upid_addresses = st.one_of(
    st.sampled_from([KERNEL + 0x2000, KERNEL + 0x2040, KERNEL + 0x2FC0]),  # valid, mapped
    st.sampled_from([KERNEL + 0x2008, KERNEL + 0x3000, USER - 0x1000, NONCANONICAL, 0]),
    u64,
)
uitt_entries = st.one_of(
    st.binary(min_size=16, max_size=16),
    st.builds(
        lambda valid, reserved, vector, upid: struct.pack(
            "<QQ", valid | reserved | vector << 8, upid
        ),
        st.integers(0, 1),
        st.sampled_from([0, 0, 0, 2, 0x80, 1 << 16, 1 << 63]),
        st.one_of(st.integers(0, 63), st.integers(64, 255)),
        upid_addresses,
    ),
)
upids = st.one_of(
    st.binary(min_size=16, max_size=16),
    st.builds(
        lambda on, sn, reserved, nv, ndst, pir: struct.pack(
            "<QQ", on | sn << 1 | reserved | nv << 16 | ndst << 32, pir
        ),
        st.integers(0, 1),
        st.integers(0, 1),
        st.sampled_from([0, 0, 0, 4, 1 << 24]),
        st.one_of(st.sampled_from([0xEC, 0xEB, 0, 15, 16]), st.integers(0, 255)),
        st.one_of(st.integers(0, 3), st.integers(0, 2**32 - 1)),
        u64,
    ),
)


@fuzz_settings(1200)
@given(
    entries=st.lists(uitt_entries, min_size=1, max_size=8),
    upid_images=st.lists(upids, min_size=1, max_size=4),
    uitt_addr=st.one_of(
        st.just(KERNEL),
        st.sampled_from([KERNEL + 0x2FF0, USER - 0x1000, NONCANONICAL, 0x1000]),
        u64.map(lambda v: v & ~0xF),
    ),
    uitt_size=st.one_of(st.integers(0, 10), st.integers(0, 2**32 - 1)),
    enable=st.booleans(),
    index=st.one_of(st.integers(0, 10), edgy_u64),
    interrupts_enabled=st.booleans(),
)
def test_hw_senduipi_random_tables(
    entries, upid_images, uitt_addr, uitt_size, enable, index, interrupts_enabled
) -> None:
    """SENDUIPI over random UITTs and UPIDs: a defined fault (nothing written, no IPI) or
    exactly the UPID update of the SDM; then notification processing moves PIR into UIRR of
    the CPU whose UINV/UPID match, and UIRR only ever gains posted bits."""
    mem, cpus, ipis = hw_machine(n_cpus=2)
    sender, receiver = cpus
    for i, e in enumerate(entries):
        mem.write(KERNEL + 16 * i, e, supervisor=True)
    upid_slots = [KERNEL + 0x2000 + 0x40 * i for i in range(len(upid_images))]
    for addr, image in zip(upid_slots, upid_images, strict=True):
        mem.write(addr, image, supervisor=True)
    # The receiver runs with UPIDADDR = the first UPID and UINV = 0xEC, UIF = 1.
    receiver.wrmsr(IA32_UINTR_PD, upid_slots[0])
    receiver.wrmsr(IA32_UINTR_MISC, 0xEC << 32)
    receiver.wrmsr(IA32_UINTR_HANDLER, 0x40_1000)
    receiver.stui()
    try:
        sender.wrmsr(IA32_UINTR_MISC, uitt_size)
        sender.wrmsr(IA32_UINTR_TT, uitt_addr | int(enable))
    except GeneralProtection:
        assume(False)  # a non-canonical UITT address cannot even be programmed
    before_mem = snapshot_memory(mem)
    before_sender = sender.state.copy()
    uirr_before = receiver.state.uirr
    try:
        sender.senduipi(index)
    except ArchFault:
        assert snapshot_memory(mem) == before_mem, "a faulting SENDUIPI wrote memory"
        assert ipis == []
        assert sender.state == before_sender
        return
    assert sender.state == before_sender
    # Exactly one UPID changed, as the SDM says.
    changed = [pn for pn, data in snapshot_memory(mem).items() if data != before_mem.get(pn)]
    assert len(changed) <= 1
    entry_lo, upid_addr = struct.unpack(
        "<QQ", mem.read(uitt_addr + 16 * index, 16, supervisor=True)
    )
    vector = entry_lo >> 8 & 0xFF
    assert entry_lo & 1 and vector < 64 and upid_addr & 0x3F == 0
    old_lo, old_pir = struct.unpack_from("<QQ", before_mem[upid_addr >> 12], upid_addr & 0xFFF)
    new_lo, new_pir = struct.unpack("<QQ", mem.read(upid_addr, 16, supervisor=True))
    assert new_pir == old_pir | 1 << vector
    notify = old_lo & 3 == 0
    assert new_lo == old_lo | int(notify)
    if not notify:
        assert ipis == []
    # Notification processing on both CPUs.
    for cpu in cpus:
        pd = cpu.state.upid_addr
        pir_before = struct.unpack("<QQ", mem.read(pd, 16, supervisor=True))[1] if pd else 0
        uirr0 = cpu.state.uirr
        try:
            cpu.service_interrupts(interrupts_enabled)
        except PageFault:
            continue  # UPIDADDR left unmapped by the "OS": a defined fault
        if not interrupts_enabled:
            assert cpu.state.uirr == uirr0
        assert cpu.state.uirr & uirr0 == uirr0  # UIRR never loses a bit here
        assert cpu.state.uirr & ~uirr0 & ~pir_before == 0  # ... and gains only posted ones
    uirr = receiver.state.uirr
    if uirr & ~uirr_before:
        result = receiver.deliver(0x40_2000, USER - 0x100, 0x202)
        assert result is not None and result[0] == 0x40_1000
        assert receiver.state.uirr == uirr & ~(1 << (uirr.bit_length() - 1))
        assert not receiver.state.uif


@fuzz_settings(3500)
@given(
    code=st.one_of(
        st.binary(max_size=20),
        st.builds(
            lambda p, t, r: bytes(p) + t + r,
            st.lists(
                st.sampled_from(
                    [
                        0xF0,
                        0xF2,
                        0xF3,
                        0x66,
                        0x67,
                        0x26,
                        0x2E,
                        0x36,
                        0x3E,
                        0x64,
                        0x65,
                        0x40,
                        0x41,
                        0x48,
                        0x4F,
                    ]
                ),
                max_size=16,
            ),
            st.one_of(
                st.sampled_from([bytes([0x0F, 0x01, b]) for b in range(0xE8, 0xF0)]),
                st.builds(lambda m: bytes([0x0F, 0xC7, m]), st.integers(0, 255)),
                st.binary(min_size=1, max_size=3),
            ),
            st.binary(max_size=6),
        ),
    ),
    suffix=st.binary(max_size=8),
)
def test_hw_decode_random_bytes(code: bytes, suffix: bytes) -> None:
    """decode(): None, a Decoded or #UD (LOCK); it reads at most 15 bytes, and a decoded
    instruction only depends on its own bytes (appending bytes changes nothing)."""
    try:
        result = decode(code)
    except ArchFault as f:
        assert f.vector == 6 and 0xF0 in code[:MAX_INSTRUCTION_LENGTH]
        with pytest.raises(ArchFault):
            decode(code + suffix)
        return
    assert decode(code[:MAX_INSTRUCTION_LENGTH]) == result
    if result is None:
        return
    assert isinstance(result, Decoded)
    assert 4 <= result.length <= min(len(code), MAX_INSTRUCTION_LENGTH)
    assert result.register is None or 0 <= result.register < 16
    assert decode(code + suffix) == result
    assert decode(code[: result.length]) == result


HW_OPS = (
    "clui",
    "stui",
    "testui",
    "senduipi",
    "service",
    "deliver",
    "uiret",
    "xsaves",
    "xrstors",
    "wrmsr",
    "cr4",
)


@fuzz_settings(800)
@given(
    ops=st.lists(
        st.tuples(st.sampled_from(HW_OPS), st.integers(0, 1), edgy_u64, edgy_u64),
        min_size=1,
        max_size=25,
    ),
    flexible=st.booleans(),
)
def test_hw_random_operation_sequences(ops, flexible: bool) -> None:
    """Any sequence of instructions, MSR writes, context switches, notification processing
    and delivery on two CPUs: only ArchFaults, invariants hold after every step, and UIRR
    changes only by delivery (one bit, the highest), notification (gains PIR bits), WRMSR and
    XRSTORS."""
    mem, cpus, _ = hw_machine(features=CpuFeatures(uintr=True, flexible_uiret=flexible))
    # A working receiver on CPU 1 and a sender on CPU 0 to start from.
    upid = KERNEL + 0x2000
    mem.write(upid, struct.pack("<QQ", 0xEC << 16 | 1 << 32, 0), supervisor=True)
    mem.write(KERNEL, struct.pack("<QQ", 1 | 3 << 8, upid), supervisor=True)
    cpus[1].wrmsr(IA32_UINTR_HANDLER, 0x40_1000)
    cpus[1].wrmsr(IA32_UINTR_STACKADJUST, 128)
    cpus[1].wrmsr(IA32_UINTR_PD, upid)
    cpus[1].wrmsr(IA32_UINTR_MISC, 0xEC << 32)
    cpus[0].wrmsr(IA32_UINTR_TT, KERNEL | 1)
    images: list[bytes] = []
    for op, which, a, b in ops:
        cpu = cpus[which]
        st0 = cpu.state.copy()
        uirr0 = st0.uirr
        try:
            if op == "clui":
                cpu.clui()
            elif op == "stui":
                cpu.stui()
            elif op == "testui":
                flags = cpu.testui(a)
                assert flags & 1 == int(cpu.state.uif)
            elif op == "senduipi":
                cpu.senduipi(a & 0xFF if b & 1 else a)
            elif op == "service":
                cpu.service_interrupts(bool(b & 1))
            elif op == "deliver":
                rsp = USER - 0x100 - (a & 0xFF0) if b & 2 else a
                res = cpu.deliver(0x40_2000, rsp, b)
                if res is not None:
                    vector = uirr0.bit_length() - 1
                    assert cpu.state.uirr == uirr0 & ~(1 << vector)
                    assert not cpu.state.uif and res[0] == st0.handler
            elif op == "uiret":
                rsp = USER - 0x200 if b & 1 else a
                rip, rflags, _ = cpu.uiret(rsp, b)
                assert rflags & 2 and is_canonical(rip)
            elif op == "xsaves":
                images.append(cpu.xsaves())
                assert cpu.state.uinv == 0
            elif op == "xrstors":
                cpu.xrstors(
                    images.pop()
                    if images and b & 1
                    else struct.pack("<6Q", *([a, b, a & 0xFFFF_FFFF, a & ~0x3F, b, a & ~0xE]))
                )
            elif op == "wrmsr":
                cpu.wrmsr(UINTR_MSRS[b % len(UINTR_MSRS)], a)
            elif op == "cr4":
                cpu.cr4 = CR4_UINTR if b & 1 else 0
        except ArchFault:
            assert cpu.state == st0, f"a faulting {op} changed the state"
        check_state_invariants(cpu.state)
        if op not in ("service", "deliver", "wrmsr", "xrstors"):
            assert cpu.state.uirr == uirr0, f"{op} changed UIRR"
        if op == "service":
            assert cpu.state.uirr & uirr0 == uirr0


# =========================================================================== part 2: syscalls

SCRATCH_SIZE = 0x2000  # two pages the example fills; the page after them is unmapped
KERNEL_AREA = 0xFFFF_8880_0000_0000
AT_FDCWD = 2**32 - 100
#: Path strings the scratch pages may start with (besides random bytes).
PATHS = [
    b"f",
    b"d",
    b"d/g",
    b"l",
    b"prog",
    b"new",
    b"d/new",
    b"..",
    b".",
    b"/",
    b"../../..",
    b"/f",
    b"/d/../f",
    b"loop",
    b"/proc/self/exe",
    b"",
    b"x" * 300,
    b"\xff\xfe",
]


def build_root(root: Path, program: bytes) -> None:
    """The guest's file system: a file, a directory, symlinks and the program itself."""
    for child in root.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
    (root / "f").write_bytes(b"hello, fuzz\n" * 100)
    (root / "d").mkdir()
    (root / "d" / "g").write_bytes(b"g")
    (root / "l").symlink_to("f")
    (root / "loop").symlink_to("loop")
    prog = root / "prog"
    prog.write_bytes(program)
    prog.chmod(0o755)


def fs_state(root: Path) -> dict[str, tuple[int, ...]]:
    """What a guest can change under `root` (not atime), to rebuild it only when it changed."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            s = os.lstat(path)
            out[path] = (s.st_ino, s.st_mode, s.st_size, s.st_mtime_ns, s.st_ctime_ns)
    return out


@dataclasses.dataclass
class Outcome:
    kind: str  # int, BLOCK, RESTART, GuestFault, GuestExit | error, bad-result, invariant
    value: Any = None  # the int, the exception type, the invariant's tag
    detail: str = ""


ALLOWED = ("int", "BLOCK", "RESTART", "GuestFault", "GuestExit")


def classify(r: Any) -> Outcome:
    if r is BLOCK:
        return Outcome("BLOCK")
    if r is RESTART:
        return Outcome("RESTART")
    if isinstance(r, int) and not isinstance(r, bool):
        if -4095 <= r <= M64:
            return Outcome("int", r)
        return Outcome("bad-result", "out-of-range", f"result {r}: not -errno nor a 64-bit value")
    return Outcome("bad-result", type(r).__name__, f"result {r!r:.200}")


def kernel_invariant(k: Any) -> tuple[str, str] | None:
    """(tag, message) of the first broken invariant after a syscall, or None: fd numbers;
    VMAs sorted, page aligned, in user space and identical to the engine's mappings (but for
    pages beyond the end of a mapped file); every runnable thread on a CPU; the UINTR state
    of every thread valid (docs/hardware.md)."""
    for p in k.processes.values():
        if p.exit_status is not None:
            continue
        bad = [fd for fd in p.fds.fds if not 0 <= fd < 2**31]
        if bad:
            return "fd-number", f"pid {p.pid}: the fd table holds {bad}"
        mem = p.mem
        if mem.starts != [v.start for v in mem.vmas]:
            return "vma-index", "AddressSpace.starts is out of sync with vmas"
        prev = 0
        for v in mem.vmas:
            if v.start < prev or v.start >= v.end or (v.start | v.end) & 0xFFF:
                return "vma-layout", f"bad or overlapping VMA {v.start:#x}-{v.end:#x}"
            if v.end > TASK_SIZE:
                return "vma-beyond-user", f"VMA {v.start:#x}-{v.end:#x} beyond user space"
            prev = v.end
        # Pages of a file mapping beyond EOF are not in the engine (an access is SIGBUS). The
        # permissions are the engine's region table (what its TLB fill grants); Unicorn's own
        # regions cover the same ranges.
        ours = _merge((v.start, v.end, engine_perms(v.prot)) for v in mem.vmas if not v.beyond_eof)
        engine = _merge(p.engine.regions())
        if ours != engine:
            return "vma-engine", f"VMAs {_fmt(ours)} != engine mappings {_fmt(engine)}"
        unicorn = _merge((a, b + 1, 0) for a, b, _perms in p.engine.uc.mem_regions())
        if unicorn != _merge((a, b, 0) for a, b, _perms in ours):
            return "vma-unicorn", f"VMAs {_fmt(ours)} != Unicorn's regions {_fmt(unicorn)}"
    loaded = {id(rq.current) for rq in k.sched.rqs if rq.current is not None}
    queued = {id(q) for rq in k.sched.rqs for q in rq.queue}
    for t in k.threads.values():
        if t.runnable and id(t) not in loaded | queued:
            return "thread-not-placed", f"thread {t.tid} is runnable but on no CPU: never runs"
        if not t.runnable and id(t) in queued:
            # (A thread that blocked or died stays loaded until its CPU's run ends.)
            return "thread-placed", f"thread {t.tid} is {t.state.value} but queued on a CPU"
        state = k.uintr.state_of(t)
        try:
            check_state_invariants(state)
        except AssertionError:
            return "uintr-state", f"thread {t.tid}: invalid UINTR state {state}"
    return None


def _merge(regions: Any) -> list[tuple[int, int, int]]:
    out: list[tuple[int, int, int]] = []
    for a, b, perms in sorted(regions):
        if out and out[-1][1] == a and out[-1][2] == perms:
            out[-1] = (out[-1][0], b, perms)
        else:
            out.append((a, b, perms))
    return out


def _fmt(regions: list[tuple[int, int, int]]) -> str:
    return ", ".join(f"{a:#x}-{b:#x}:{p}" for a, b, p in regions)


def uintr_nr(k: Any, name: str) -> int:
    """The number of a UINTR syscall in the machine's ABI ('vector_fd' is 'create_fd' in RFC)."""
    names = {name, "create_fd" if name == "vector_fd" else name}
    return next(nr for nr, sc in k.syscalls.items() if sc.name.removeprefix("uintr_") in names)


#: A symbolic argument: ("int", value) or (region, offset), resolved against a harness.
Arg = tuple[str, int]


class SyscallHarness:
    """One loaded machine, built once; `run` forks a child per example."""

    def __init__(
        self,
        program: bytes,
        root: Path,
        *,
        abi: str = "next",
        rich: bool = False,
        uintr: bool = True,
        exe: Path | None = None,
    ):
        self.program = program
        self.root = root
        build_root(root, program)
        self.pristine = fs_state(root)
        self.machine = Machine(
            Options(cpus=2, root=str(root), uintr_abi=abi, features=CpuFeatures(uintr=uintr))
        )
        self.machine.load(
            str(exe or root / "prog"), ["prog", "arg"], ["HOME=/"], capture_output=True
        )
        k = self.kernel = self.machine.kernel
        (self.thread,) = k.threads.values()
        for rq in k.sched.rqs:  # what the first round does: the thread is loaded on its CPU
            k.sched.settle(rq)
        p = self.thread.process
        # fd 0 is the host's stdin: a guest read must not wait for a terminal.
        p.fds.install_at(0, HostFile(os.open(os.devnull, os.O_RDWR), os.devnull))
        self.scratch = self.call(9, 0, SCRATCH_SIZE + 0x1000, 3, 0x22, M64, 0)
        assert 0 < self.scratch < TASK_SIZE
        p.mem.unmap(self.scratch + SCRATCH_SIZE, 0x1000)  # a hole right after the scratch
        self.text = 0x40_1000
        self.rsp = p.engine.reg_read(eng.RSP)
        if rich:
            self._enrich()

    def call(self, nr: int, *args: int) -> Any:
        sc = self.kernel.syscalls[nr]
        return sc.fn(self.kernel, self.thread, *args[: len(sc.argnames)])

    def resolve(self, arg: Arg) -> int:
        region, v = arg
        base = {
            "int": 0,
            "scratch": self.scratch,
            "stack": self.rsp - 0x1000,
            "text": self.text,
            "scratch-end": self.scratch + SCRATCH_SIZE,
        }[region]
        return (base + v) & M64

    def _cstr(self, s: bytes) -> int:
        self.thread.process.mem.write(self.scratch, s + b"\0")
        return self.scratch

    def _enrich(self) -> None:
        """Open a file and a directory, a pipe, a socket pair, an eventfd, a UINTR receiver
        with a vector fd and a sender, a signal handler and a timer, so that random arguments
        (small fds in particular) hit live kernel objects."""
        k = self.kernel
        assert self.call(257, AT_FDCWD, self._cstr(b"f"), os.O_RDWR, 0) == 3
        assert self.call(257, AT_FDCWD, self._cstr(b"d"), os.O_RDONLY, 0) == 4
        assert self.call(293, self.scratch, 0) == 0  # pipe: 5, 6
        assert self.call(53, 1, 1, 0, self.scratch) == 0  # socketpair: 7, 8
        assert self.call(290, 1, 0) == 9  # eventfd
        assert self.call(1, 6, self._cstr(b"pipe data"), 9) == 9
        assert self.call(1, 7, self._cstr(b"socket data"), 11) == 11
        if k.opt.features.uintr:
            assert self.call(uintr_nr(k, "register_handler"), self.text, 0) == 0
            assert self.call(uintr_nr(k, "vector_fd"), 3, 0) == 10
            assert self.call(uintr_nr(k, "register_sender"), 10, 0) == 0
        act = struct.pack("<QQQQ", self.text, 0x0400_0004, self.text, 0)  # SA_SIGINFO|RESTORER
        self.thread.process.mem.write(self.scratch, act)
        assert self.call(13, 10, self.scratch, 0, 8) == 0  # a SIGUSR1 handler
        assert self.call(37, 100) == 0  # alarm(100)
        self.thread.process.mem.write(self.scratch, bytes(SCRATCH_SIZE))

    def run(
        self,
        calls: list[tuple[int, tuple[Arg, ...]]],
        scratch: bytes = b"",
        timeout: float = 30.0,
        probe: Callable[..., Any] | None = None,
    ) -> list[Outcome]:
        """Run `calls` in a forked child; the outcome of each (it stops at the first bug).
        `probe(kernel, thread)`, if given, runs after them: its result is a last "probe"
        outcome."""
        if fs_state(self.root) != self.pristine:  # the previous example changed files
            build_root(self.root, self.program)
            self.pristine = fs_state(self.root)
        rfd, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns into pytest
            status = 0
            try:
                os.close(rfd)
                out = self._child(calls, scratch)
                if probe is not None:
                    out.append(Outcome("probe", probe(self.kernel, self.thread)))
                os.write(wfd, pickle.dumps(out))
            except BaseException:  # noqa: BLE001
                status = 3
            finally:
                os._exit(status)
        os.close(wfd)
        data = b""
        deadline = time.monotonic() + timeout
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([rfd], [], [], left)[0]:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    return [Outcome("error", "hang", f"no result within {timeout:g} s")]
                chunk = os.read(rfd, 1 << 16)
                if not chunk:
                    break
                data += chunk
        finally:
            os.close(rfd)
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status):
            sig = signal.Signals(os.WTERMSIG(status)).name
            return [Outcome("error", "crash", f"the host process died of {sig}")]
        if not data:
            return [Outcome("error", "child", f"the child exited with status {status}")]
        return pickle.loads(data)

    def _child(self, calls: list[tuple[int, tuple[Arg, ...]]], scratch: bytes) -> list[Outcome]:
        os.chdir(self.root)
        k, t = self.kernel, self.thread
        t.process.mem.write(self.scratch, scratch.ljust(SCRATCH_SIZE, b"\0")[:SCRATCH_SIZE])
        out = []
        for nr, args in calls:
            try:
                o = classify(self.call(nr, *(self.resolve(a) for a in args)))
            except GuestFault as e:
                o = Outcome("GuestFault", e.address)
            except GuestExit as e:
                o = Outcome("GuestExit", e.status)
            except Exception as e:  # noqa: BLE001 - what the fuzz is looking for
                tb = traceback.extract_tb(e.__traceback__)
                where = next(
                    (
                        f"{Path(f.filename).name}:{f.lineno} {f.name}"
                        for f in reversed(tb)
                        if "uintr_emu" in f.filename
                    ),
                    "?",
                )
                o = Outcome("error", type(e).__name__, f"{e} [{where}]")
            out.append(o)
            if o.kind not in ALLOWED:
                break
            broken = kernel_invariant(k)
            if broken is not None:
                out.append(Outcome("invariant", *broken))
                break
            if o.kind == "GuestExit" or not t.runnable:
                break  # the caller has exited or sleeps: nothing more to call on its behalf
        return out


# --- argument strategies (symbolic: the same example means the same call in any harness) ----

integer_args = st.one_of(
    st.integers(0, 40),
    st.sampled_from(
        [
            M64,
            M64 - 99,
            2**32 - 1,
            AT_FDCWD,
            2**31 - 1,
            2**31,
            2**32,
            2**63 - 1,
            2**63,
            4096,
            4095,
            2**47,
            1 << 20,
            1 << 30,
            1 << 40,
            KERNEL_AREA,
            NONCANONICAL,
            TASK_SIZE - 8,
            TASK_SIZE,
        ]
    ),
    st.integers(0, 2**32 - 1),
    u64,
)
args = st.one_of(
    st.integers(0, 12).map(lambda v: ("int", v)),  # fds (the rich program's 0..10), counts
    integer_args.map(lambda v: ("int", v)),
    st.integers(0, SCRATCH_SIZE - 1).map(lambda o: ("scratch", o)),
    st.integers(-64, -1).map(lambda o: ("scratch-end", o)),  # an access runs into the hole
    st.integers(0, 0x2000).map(lambda o: ("stack", o)),  # argv, envp, auxv and above
    st.integers(0, 0xFFF).map(lambda o: ("text", o)),  # read-only code
)
six_args = st.tuples(*[args] * 6)  # every handler takes at most six
scratch_contents = st.one_of(
    st.binary(max_size=256),
    st.builds(lambda p, rest: p + b"\0" + rest, st.sampled_from(PATHS), st.binary(max_size=64)),
    st.builds(
        lambda vals: struct.pack(f"<{len(vals)}Q", *vals),
        st.lists(st.one_of(st.integers(0, 64), integer_args), max_size=16),
    ),
)


def show(h: SyscallHarness, nr: int, call_args: tuple[Arg, ...]) -> str:
    sc = h.kernel.syscalls[nr]
    shown = ", ".join(hex(h.resolve(a)) for a in call_args[: len(sc.argnames)])
    return f"{sc.name}({shown})"


# --- known bugs ------------------------------------------------------------------------------

#: (syscall, outcome tag) -> the bug. The fuzz tolerates exactly these; each has a strict-xfail
#: regression test with a concrete input (test_known_syscall_bug) and is in docs/robustness.md.
KNOWN_SYSCALL_BUGS: dict[tuple[str, str], str] = {}
BUG_INPUTS: list[tuple[str, str, tuple[int, ...], bytes, bool, str]] = []


def bug(
    syscalls: str,
    tag: str,
    reason: str,
    example: tuple[str, tuple[int, ...], bytes, bool],
    abi: str = "next",
) -> None:
    """Register a known bug: the syscalls it affects, its outcome tag, and one input
    (name, args, scratch, rich harness?) that shows it."""
    for name in syscalls.split():
        KNOWN_SYSCALL_BUGS[(name, tag)] = reason
    name, call_args, scratch, rich = example
    BUG_INPUTS.append((name, tag, call_args, scratch, rich, abi))


S = -1  # in a bug example: the scratch address

# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def program_bytes(build_program) -> bytes:
    return build_program("args_env").read_bytes()


@pytest.fixture(scope="module")
def fuzz_dir() -> Iterator[Path]:
    """A tmp dir holding the guest roots (and the test process's cwd meanwhile)."""
    cwd = os.getcwd()
    top = Path(tempfile.mkdtemp(prefix="uintr-fuzz-"))
    os.chdir(top)
    try:
        yield top
    finally:
        os.chdir(cwd)
        shutil.rmtree(top, ignore_errors=True)


@pytest.fixture(scope="module")
def harness(program_bytes, fuzz_dir) -> Iterator[Callable[..., SyscallHarness]]:
    """harness(abi, rich): the machine for that configuration, built once per module.  Only
    the configurations of one ABI are kept, so that fork() stays cheap."""
    made: dict[tuple[str, bool], SyscallHarness] = {}

    def get(abi: str = "next", rich: bool = False) -> SyscallHarness:
        key = (abi, rich)
        if key not in made:
            for other in [k for k in made if k[0] != abi]:
                del made[other]
            root = fuzz_dir / f"root-{abi}-{'rich' if rich else 'plain'}"
            root.mkdir(exist_ok=True)
            made[key] = SyscallHarness(program_bytes, root, abi=abi, rich=rich)
        return made[key]

    yield get
    made.clear()


NEXT_SYSCALLS = {nr: sc.name for nr, sc in registry("next").items()}
RFC_SYSCALLS = {nr: sc.name for nr, sc in registry("rfc").items() if sc.name.startswith("uintr_")}
SYSCALL_CASES = [
    pytest.param("next", nr, name, id=f"{name}-{nr}") for nr, name in sorted(NEXT_SYSCALLS.items())
] + [pytest.param("rfc", nr, name, id=f"{name}-{nr}-rfc") for nr, name in RFC_SYSCALLS.items()]


def check_outcomes(h: SyscallHarness, calls, outcomes: list[Outcome]) -> None:
    """Every outcome allowed, every invariant kept -- or a known bug (then the child stopped)."""
    for i, o in enumerate(outcomes):
        if o.kind in ALLOWED:
            continue
        nr, call_args = calls[i - 1 if o.kind == "invariant" else i]
        if (h.kernel.syscalls[nr].name, o.value) in KNOWN_SYSCALL_BUGS:
            return
        what = "after" if o.kind == "invariant" else "in"
        raise AssertionError(f"{o.kind} {what} {show(h, nr, call_args)}: {o.value}: {o.detail}")


#: Examples per syscall (and ABI) in CI: 126 cases x 12.
PER_SYSCALL = 12


@pytest.mark.parametrize(("abi", "nr", "name"), SYSCALL_CASES)
@fuzz_settings(PER_SYSCALL)
@given(call_args=six_args, scratch=scratch_contents, rich=st.booleans())
def test_syscall_random_arguments(abi, nr, name, call_args, scratch, rich, harness) -> None:
    """One syscall, random arguments, from a fresh program or from a 'rich' one (open files,
    pipe, sockets, eventfd, a UINTR receiver with a vector fd and a sender, a signal handler,
    a timer)."""
    h = harness(abi, rich)
    calls = [(nr, call_args)]
    check_outcomes(h, calls, h.run(calls, scratch))


@fuzz_settings(250)
@given(
    calls=st.lists(
        st.tuples(st.sampled_from(sorted(NEXT_SYSCALLS)), six_args), min_size=2, max_size=5
    ),
    scratch=scratch_contents,
)
def test_syscall_random_sequences(calls, scratch, harness) -> None:
    """Short random sequences on the rich program: state left by one call (a mapping, an fd,
    a receiver, a blocked signal) meets the next; the invariants are checked after each."""
    h = harness("next", rich=True)
    check_outcomes(h, calls, h.run(calls, scratch))


@pytest.mark.parametrize(
    ("name", "tag", "call_args", "scratch", "rich", "abi"),
    [
        pytest.param(
            *b,
            id=f"{b[0]}-{b[1]}-{b[5]}",
            marks=pytest.mark.xfail(strict=True, reason=KNOWN_SYSCALL_BUGS[(b[0], b[1])]),
        )
        for b in BUG_INPUTS
    ],
)
def test_known_syscall_bug(name, tag, call_args, scratch, rich, abi, harness) -> None:
    """The input that shows each known bug: it must give an allowed outcome and keep every
    invariant (strict xfail until the bug is fixed)."""
    h = harness(abi, rich)
    nr = next(n for n, sc in h.kernel.syscalls.items() if sc.name == name)
    symbolic = tuple(("scratch", 0) if a == S else ("int", a) for a in call_args)
    outcomes = h.run([(nr, symbolic)], scratch)
    bad = [o for o in outcomes if o.kind not in ALLOWED]
    assert not bad, f"{show(h, nr, symbolic)}: {bad}"


# --- fixed bugs: the Linux result -----------------------------------------------------------

CLONE_THREAD_FLAGS = 0x100 | 0x800 | 0x10000  # CLONE_VM | CLONE_SIGHAND | CLONE_THREAD
CLONE_PARENT_SETTID, CLONE_CHILD_SETTID, SIGCHLD = 0x100000, 0x1000000, 17
TID_POINTERS = {"bad": ("int", 8), "read-only": ("text", 0), "good": ("scratch", 0)}


def _child_state(k: Any, t: Any) -> Any:
    """(id, state, on a CPU, in a process of its own) of every thread but the caller."""
    placed = {id(rq.current) for rq in k.sched.rqs}
    placed |= {id(q) for rq in k.sched.rqs for q in rq.queue}
    return [(x.tid, x.state.value, id(x) in placed, x.process is not t.process)
            for x in k.threads.values() if x is not t]  # fmt: skip


@pytest.mark.parametrize("where", list(TID_POINTERS))
@pytest.mark.parametrize(
    ("call", "flags"),
    [
        ("clone", CLONE_THREAD_FLAGS | CLONE_PARENT_SETTID),
        ("clone", CLONE_THREAD_FLAGS | CLONE_CHILD_SETTID),
        ("clone", SIGCHLD | CLONE_PARENT_SETTID),
        ("clone", SIGCHLD | CLONE_CHILD_SETTID),
        ("clone3", CLONE_THREAD_FLAGS | CLONE_PARENT_SETTID),
        ("clone3", CLONE_CHILD_SETTID),
    ],
)
def test_clone_settid_pointer(call, flags, where, harness) -> None:
    """A bad CLONE_PARENT_SETTID/CLONE_CHILD_SETTID pointer does not fail clone: the kernel
    ignores put_user() there (kernel_clone; schedule_tail for the child's id), so clone
    returns the new id and the child is on a CPU, runnable. A good pointer gets the id (for
    CLONE_CHILD_SETTID of a new process: in the child's memory only)."""
    h = harness()
    new_id = h.kernel.next_id + 1
    tidptr = TID_POINTERS[where]
    if call == "clone":
        ptid = tidptr if flags & CLONE_PARENT_SETTID else ("int", 0)
        ctid = tidptr if flags & CLONE_CHILD_SETTID else ("int", 0)
        args = (("int", flags), ("int", 0), ptid, ctid, ("int", 0))
        scratch = b""
        nr = 56
    else:  # struct clone_args at scratch + 64: flags, pidfd, child_tid, parent_tid, exit_signal
        ptr = h.resolve(tidptr)
        scratch = bytes(64) + struct.pack(
            "<8Q", flags, 0, ptr if flags & CLONE_CHILD_SETTID else 0,
            ptr if flags & CLONE_PARENT_SETTID else 0, 0 if flags & 0x10000 else SIGCHLD, 0, 0, 0
        )  # fmt: skip
        args = (("scratch", 64), ("int", 64))
        nr = 435

    def probe(k: Any, t: Any) -> Any:
        return _child_state(k, t), struct.unpack("<I", t.process.mem.read(h.scratch, 4))[0]

    outcomes = h.run([(nr, args)], scratch, probe=probe)
    assert outcomes[0] == Outcome("int", new_id), outcomes
    kids, at_scratch = outcomes[-1].value
    new_process = not flags & 0x10000
    assert kids == [(new_id, "runnable", True, new_process)], outcomes
    written = where == "good" and (flags & CLONE_PARENT_SETTID or not new_process)
    assert at_scratch == (new_id if written else 0), outcomes


KTIME_MAX = 2**63 - 1
KTIME_MAX_TIMESPEC = (KTIME_MAX // 10**9, KTIME_MAX % 10**9)
FOREVER = struct.pack("<qq", 2**63 - 1, 0)  # {LONG_MAX, 0}
CLOCK_REALTIME, CLOCK_MONOTONIC, TIMER_ABSTIME = 0, 1, 1
FUTEX_WAIT, FUTEX_WAIT_BITSET, FUTEX_CLOCK_REALTIME = 0, 9, 256
#: name -> (syscall, arguments with the timespec at scratch + 16, the clock the sleep is on)
FOREVER_SLEEPS = {
    "nanosleep": (35, (("scratch", 16), ("int", 0)), CLOCK_MONOTONIC),
    "clock_nanosleep-realtime": (
        230, (("int", CLOCK_REALTIME), ("int", 0), ("scratch", 16), ("int", 0)), CLOCK_REALTIME
    ),
    "clock_nanosleep-abstime": (
        230,
        (("int", CLOCK_MONOTONIC), ("int", TIMER_ABSTIME), ("scratch", 16), ("int", 0)),
        CLOCK_MONOTONIC,
    ),
    "futex-wait": (
        202,
        (("scratch", 0), ("int", FUTEX_WAIT), ("int", 0), ("scratch", 16), ("int", 0),
         ("int", 0)),
        CLOCK_MONOTONIC,
    ),
    "futex-wait-bitset-realtime": (
        202,
        (("scratch", 0), ("int", FUTEX_WAIT_BITSET | FUTEX_CLOCK_REALTIME), ("int", 0),
         ("scratch", 16), ("int", 0), ("int", M64)),
        CLOCK_REALTIME,
    ),
}  # fmt: skip


@pytest.mark.parametrize("sleep", list(FOREVER_SLEEPS))
def test_sleep_forever_saturates_at_ktime_max(sleep, harness) -> None:
    """A timeout of LONG_MAX seconds saturates at KTIME_MAX (timespec64_to_ktime, then
    ktime_add_safe for a relative one): the sleeper wakes when its clock reads KTIME_MAX, and
    every clock read then fits in a timespec (none goes past KTIME_MAX)."""
    h = harness()
    nr, args, clock = FOREVER_SLEEPS[sleep]

    def wake_and_read(k: Any, t: Any) -> Any:
        k.clock.round_start = t.wait.deadline  # the run loop's jump when nothing else runs
        k._expire_timers()
        out = {}
        for clk in (CLOCK_REALTIME, CLOCK_MONOTONIC):
            assert k.syscalls[228].fn(k, t, clk, h.scratch + 64) == 0
            out[clk] = struct.unpack("<qq", t.process.mem.read(h.scratch + 64, 16))
        return t.state.value, t.result, out

    outcomes = h.run([(nr, args)], bytes(16) + FOREVER, probe=wake_and_read)
    assert outcomes[0].kind == "BLOCK", outcomes
    state, result, clocks = outcomes[-1].value
    assert state == "runnable" and result == (-110 if nr == 202 else 0), outcomes  # ETIMEDOUT
    assert clocks[clock] == KTIME_MAX_TIMESPEC, clocks
    assert all(0 < sec <= KTIME_MAX_TIMESPEC[0] for sec, _ in clocks.values()), clocks


def test_itimer_values_saturate_at_ktime_max(harness) -> None:
    """setitimer(ITIMER_REAL) with LONG_MAX seconds: the kernel stores both times as ktime
    (ktime_set saturates), so getitimer reports an interval of KTIME_MAX and a value of
    KTIME_MAX minus the monotonic clock."""
    h = harness()
    huge = struct.pack("<qqqq", 2**63 - 1, 999_999, 2**63 - 1, 0)  # it_interval, it_value

    def mono(k: Any, t: Any) -> int:
        return k.clock.monotonic_ns()

    calls = [(38, (("int", 0), ("scratch", 0), ("int", 0))), (36, (("int", 0), ("scratch", 64)))]
    outcomes = h.run(calls, huge, probe=mono)
    assert [o.value for o in outcomes[:2]] == [0, 0], outcomes
    now = outcomes[-1].value

    def itimerval(k: Any, t: Any) -> Any:
        return struct.unpack("<qqqq", t.process.mem.read(h.scratch + 64, 32))

    got = h.run(calls, huge, probe=itimerval)[-1].value
    left = KTIME_MAX - now
    assert got == (KTIME_MAX // 10**9, KTIME_MAX // 1000 % 10**6, left // 10**9,
                   left // 1000 % 10**6), got  # fmt: skip


@pytest.mark.parametrize(
    "handler",
    [NONCANONICAL, 2**47, 2**64 - 2**47 - 1, M64 - 0xFFF, 0xFFFF_8000_0000_0000, 0x40_1000],
    ids=hex,
)
@pytest.mark.parametrize("abi", ["next", "rfc"])
def test_uintr_register_handler_address(abi, handler, harness) -> None:
    """uintr_register_handler(2): "EFAULT handler address is not valid" -- a non-canonical
    handler is rejected before anything is allocated (no UPID, no receiver); the thread can
    still register afterwards. Canonical addresses are accepted (the kernel checks no more)."""
    h = harness(abi)
    nr = uintr_nr(h.kernel, "register_handler")

    def state(k: Any, t: Any) -> Any:
        return k.uintr.kmem.top, len(k.uintr.receivers), t.uintr.receiver is not None

    before = h.run([], probe=state)[-1].value
    outcomes = h.run([(nr, (("int", handler), ("int", 0)))], probe=state)
    if is_canonical(handler):
        assert outcomes[0] == Outcome("int", 0), outcomes
        return
    assert outcomes[0] == Outcome("int", -EFAULT), outcomes
    assert outcomes[-1].value == before, outcomes
    again = h.run([(nr, (("int", handler), ("int", 0))), (nr, (("int", h.text), ("int", 0)))])
    assert [o.value for o in again] == [-EFAULT, 0], again


@pytest.mark.parametrize("on_cpu", [True, False], ids=["on-its-cpu", "off-its-cpu"])
@pytest.mark.parametrize(
    ("sp", "size", "adjust"),
    [
        (0x1000, 0x1000, 0x2001),  # the top of the stack, load mode
        (M64 - 15, 64, 0x31),  # sp + size wraps around 2^64 (u64 arithmetic)
        (0, 4096, 128),  # NULL: back to the red-zone skip
        (TASK_SIZE - 0x1000, 0x10_0000_0000, 128),  # non-canonical: the write is skipped
        (NONCANONICAL, 0, 128),
    ],
)
def test_uintr_alt_stack_value(sp, size, adjust, on_cpu, harness) -> None:
    """uintr_alt_stack programs UISTACKADJUST := (sp + size) | 1 in 64 bits (docs/uintr.md §17 #8).
    The kernel validates nothing and writes the MSR with wrmsrl_safe: a non-canonical value's #GP is
    swallowed, the MSR keeps its value (here 128) and the call returns 0. The same whether the
    thread's state is on its CPU or saved."""
    h = harness("next", rich=True)
    nr = uintr_nr(h.kernel, "alt_stack")

    def call(k: Any, t: Any) -> Any:
        if not on_cpu:  # as if it were switched out: its state is in the saved image
            rq = k.sched.rq(t)
            k.sched._switch_out(rq, t)
            rq.current = None
        result = k.syscalls[nr].fn(k, t, sp, size, 0)
        return result, k.uintr.state_of(t).stack_adjust

    assert h.run([], probe=call)[-1].value == (0, adjust)


# --- fixed bugs: the input that showed each, and what Linux returns for it -----------------


def call_named(
    h: SyscallHarness,
    name: str,
    call_args: tuple[int, ...],
    scratch: bytes = b"",
    probe: Callable[..., Any] | None = None,
) -> list[Outcome]:
    """Call syscall `name` with concrete arguments (S: the scratch address) in a child."""
    nr = next(n for n, sc in h.kernel.syscalls.items() if sc.name == name)
    symbolic = tuple(("scratch", 0) if a == S else ("int", a) for a in call_args)
    return h.run([(nr, symbolic)], scratch, probe=probe)


def data_area(h: SyscallHarness) -> int:
    """The program's own writable data: low enough that 2 GiB past it is still user space."""
    return next(v.start for v in h.thread.process.mem.vmas if v.prot & 2 and v.start < 1 << 32)


def iov_at(*lens: int, at: int = 0, low: bool = False) -> Callable[[SyscallHarness], bytes]:
    """Scratch contents: an iovec array at offset `at` of segments of `lens` bytes, all at
    scratch + 0x1000 (`low`: in the program's data)."""

    def make(h: SyscallHarness) -> bytes:
        base = data_area(h) if low else h.scratch + 0x1000
        return bytes(at) + b"".join(struct.pack("<QQ", base, n) for n in lens)

    return make


def msg_with(iovlen: int, *lens: int, name: int = 0, namelen: int = 0) -> Callable[..., bytes]:
    """A msghdr at the scratch address: msg_iovlen `iovlen`, the iovec array at scratch + 64."""
    return lambda h: (
        struct.pack("<QI4xQQQQi4x", name, namelen, h.scratch + 64, iovlen, 0, 0, 0)
        + iov_at(*lens, at=8)(h)
    )


#: (syscall, arguments, scratch, rich?, result): the result is the one Linux gives (checked
#: natively with the same arguments; tests/programs/fault_syscalls.c replays most of them).
#: In the rich program fd 3 is a 1200-byte file, 5/6 a pipe, 7/8 a socket pair (11 bytes
#: queued for 8), 9 an eventfd, 10 a UINTR vector fd.
LINUX_RESULTS = [
    pytest.param("fstat", (5, S), b"", True, 0, id="fstat-pipe"),
    pytest.param("newfstatat", (9, S, S, 0x1000), b"", True, 0, id="newfstatat-eventfd"),
    # ksys_lseek: whence is an unsigned int, > SEEK_HOLE is EINVAL before vfs_llseek's ESPIPE
    pytest.param("lseek", (3, 0, 2**31), b"", True, -errno.EINVAL, id="lseek-whence-2^31"),
    pytest.param("lseek", (3, 0, 2**32 + 2), b"", True, 1200, id="lseek-whence-2^32+SEEK_END"),
    pytest.param("lseek", (5, 0, 5), b"", True, -errno.EINVAL, id="lseek-pipe-whence-5"),
    pytest.param("lseek", (5, 0, 0), b"", True, -errno.ESPIPE, id="lseek-pipe"),
    pytest.param("lseek", (9, 5, 0), b"", True, 0, id="lseek-eventfd-noop"),
    # do_sys_ftruncate, do_sys_truncate: a negative length is EINVAL before anything else
    pytest.param("ftruncate", (3, 2**63), b"", True, -errno.EINVAL, id="ftruncate-2^63"),
    pytest.param("ftruncate", (99, M64), b"", True, -errno.EINVAL, id="ftruncate-badfd-neg"),
    pytest.param("ftruncate", (5, 0), b"", True, -errno.EINVAL, id="ftruncate-pipe"),
    pytest.param("truncate", (0, M64), b"", False, -errno.EINVAL, id="truncate-NULL-neg"),
    pytest.param("truncate", (S, 2**63), b"f\0", False, -errno.EINVAL, id="truncate-2^63"),
    # ksys_pread64/ksys_pwrite64: a negative pos is EINVAL before the fd lookup, then ESPIPE
    # for what has no position; vfs_read/vfs_write: EBADF for the wrong direction, access_ok
    # (EFAULT), rw_verify_area (pos + count beyond loff_t: EINVAL), then MAX_RW_COUNT
    pytest.param("pread64", (3, S, 2**62, 0), b"", True, -errno.EFAULT, id="pread-2^62"),
    pytest.param("pread64", (3, S, 2**63, 0), b"", True, -errno.EFAULT, id="pread-2^63"),
    pytest.param("pread64", (3, S, 64, 1190), b"", True, 10, id="pread-tail"),
    pytest.param("pread64", (3, S, 100, 2**63 - 10), b"", True, -errno.EINVAL, id="pread-end"),
    pytest.param("pread64", (99, S, 1, M64), b"", True, -errno.EINVAL, id="pread-badfd-neg"),
    pytest.param("pread64", (5, S, 1, M64), b"", True, -errno.EINVAL, id="pread-pipe-neg"),
    pytest.param("pread64", (5, S, 1, 0), b"", True, -errno.ESPIPE, id="pread-pipe"),
    pytest.param("pwrite64", (3, S, 1, 2**63), b"", True, -errno.EINVAL, id="pwrite-2^63"),
    pytest.param("pwrite64", (3, S, 1, 2**63 - 1), b"", True, -errno.EINVAL, id="pwrite-end"),
    pytest.param("read", (3, S, 2**62), b"", True, -errno.EFAULT, id="read-2^62"),
    pytest.param("read", (6, S, 2**62), b"", True, -errno.EBADF, id="read-pipe-write-end"),
    pytest.param("write", (3, S, 2**62), b"", True, -errno.EFAULT, id="write-2^62"),
    # import_iovec: at most UIO_MAXIOV segments (nr_segs is an unsigned int), no negative
    # iov_len, segments in user space, the total cut to MAX_RW_COUNT (one segment before its
    # access_ok, several after); vfs_readv/vfs_writev: EBADF first, nothing to move is 0
    pytest.param("readv", (3, S, 1), iov_at(2**62, low=True), True, 1200, id="readv-2^62"),
    pytest.param("readv", (3, S, 1), iov_at(2**62), True, -errno.EFAULT, id="readv-high-2^62"),
    pytest.param("readv", (3, S, 2), iov_at(2**62, 2**62), True, -errno.EFAULT, id="readv-2x2^62"),
    pytest.param("readv", (3, S, 1), iov_at(2**63), True, -errno.EINVAL, id="readv-2^63"),
    pytest.param("readv", (3, S, 2), iov_at(4, 2**63), True, -errno.EINVAL, id="readv-4+2^63"),
    pytest.param("readv", (3, S, 1025), b"", True, -errno.EINVAL, id="readv-1025"),
    pytest.param("readv", (6, S, 1025), b"", True, -errno.EBADF, id="readv-write-end-1025"),
    pytest.param("readv", (3, S, 2**32 + 1), iov_at(4), True, 4, id="readv-iovcnt-2^32+1"),
    pytest.param("readv", (5, S, 0), b"", True, 0, id="readv-pipe-0"),
    pytest.param("writev", (6, S, 2), iov_at(4, 2**63), True, -errno.EINVAL, id="writev-2^63"),
    pytest.param("writev", (6, S, 1), iov_at(4), True, 4, id="writev-pipe"),
    # __copy_msghdr: a negative msg_namelen is EINVAL, msg_iovlen > UIO_MAXIOV EMSGSIZE
    pytest.param("sendmsg", (7, S, 0), msg_with(1025), True, -errno.EMSGSIZE, id="sendmsg-1025"),
    pytest.param("sendmsg", (7, S, 0), msg_with(2**40), True, -errno.EMSGSIZE, id="sendmsg-2^40"),
    pytest.param(
        "sendmsg",
        (7, S, 0),
        msg_with(1025, name=8, namelen=M64 >> 32),
        True,
        -errno.EINVAL,
        id="sendmsg-namelen-neg",
    ),
    pytest.param("sendmsg", (7, S, 0), msg_with(1, 2**63), True, -errno.EINVAL, id="sendmsg-2^63"),
    pytest.param(
        "sendmsg", (7, S, 0), msg_with(2, 2**62, 2**62), True, -errno.EFAULT, id="sendmsg-2x2^62"
    ),
    pytest.param("recvmsg", (8, S, 0x40), msg_with(1025), True, -errno.EMSGSIZE, id="recvmsg-1025"),
    pytest.param(
        "recvmsg", (8, S, 0x40), msg_with(1, 2**63), True, -errno.EINVAL, id="recvmsg-2^63"
    ),
    pytest.param("recvmsg", (8, S, 0x40), msg_with(1, 64), True, 11, id="recvmsg"),
    pytest.param("recvmsg", (3, S, 0), msg_with(1025), True, -errno.ENOTSOCK, id="recvmsg-file"),
    # build_open_how: flags is an int, and bits outside VALID_OPEN_FLAGS are ignored
    pytest.param("openat", (AT_FDCWD, S, 2**31, 0), b"f\0", False, 3, id="openat-bit31"),
    pytest.param("open", (S, 0o74 | 2**40, 0), b"f\0", False, 3, id="open-unknown-bits"),
    pytest.param("open", (S, 2**32 | 1, 0), b"d\0", False, -errno.EISDIR, id="open-dir-2^32|1"),
    # do_faccessat: mode and flags are ints; a mode beyond R_OK|W_OK|X_OK or an unknown flag is
    # EINVAL before the path is read; faccessat has no flags argument
    pytest.param("access", (S, 2**31), b"f\0", False, -errno.EINVAL, id="access-bit31"),
    pytest.param("access", (0, 8), b"", False, -errno.EINVAL, id="access-mode-8-NULL"),
    pytest.param("access", (S, 2**32 | 4), b"f\0", False, 0, id="access-2^32|R_OK"),
    pytest.param("access", (S, 0), b"loop\0", False, -errno.ELOOP, id="access-loop"),
    pytest.param("faccessat", (AT_FDCWD, S, 4, 0xDEAD), b"f\0", False, 0, id="faccessat-r10"),
    pytest.param("faccessat2", (AT_FDCWD, S, 4, 1), b"f\0", False, -errno.EINVAL, id="fa2-flag-1"),
    pytest.param("faccessat2", (AT_FDCWD, S, 4, 2**32), b"f\0", False, 0, id="fa2-flags-2^32"),
    pytest.param("faccessat2", (AT_FDCWD, S, 0, 0), b"", False, -errno.ENOENT, id="fa2-empty"),
    pytest.param("faccessat2", (AT_FDCWD, S, 0, 0x1000), b"", False, 0, id="fa2-empty-cwd"),
    pytest.param("faccessat2", (AT_FDCWD, S, 0, 0x100), b"loop\0", False, 0, id="fa2-nofollow"),
    pytest.param("faccessat2", (3, S, 1, 0x1000), b"", True, -errno.EACCES, id="fa2-fd-file-X"),
    pytest.param("faccessat2", (3, S, 2, 0x1000), b"", True, 0, id="fa2-fd-file-W"),
    pytest.param("faccessat2", (5, S, 1, 0x1000), b"", True, -errno.EACCES, id="fa2-fd-pipe-X"),
    pytest.param("faccessat2", (5, S, 6, 0x1000), b"", True, 0, id="fa2-fd-pipe-RW"),
    pytest.param("faccessat2", (7, S, 7, 0x1200), b"", True, 0, id="fa2-fd-socket-RWX"),
    pytest.param("faccessat2", (99, S, 0, 0x1000), b"", True, -errno.EBADF, id="fa2-fd-bad"),
    # f_dupfd((int)arg as an unsigned int): at or above RLIMIT_NOFILE (1024) is EINVAL
    pytest.param("fcntl", (1, 0, 2**32 - 5), b"", False, -errno.EINVAL, id="dupfd--5"),
    pytest.param("fcntl", (1, 0, 1024), b"", False, -errno.EINVAL, id="dupfd-1024"),
    pytest.param("fcntl", (1, 0, 1023), b"", False, 1023, id="dupfd-1023"),
    pytest.param("fcntl", (1, 0, 2**32 + 5), b"", False, 5, id="dupfd-2^32+5"),
    pytest.param("fcntl", (1, 2**32 + 1030, 7), b"", False, 7, id="dupfd-cloexec-cmd-2^32"),
    # ksys_dup3: bad flags, old == new EINVAL; new >= RLIMIT_NOFILE EBADF; then the old fd
    pytest.param("dup3", (99, 99, 0), b"", False, -errno.EINVAL, id="dup3-same-closed"),
    pytest.param("dup3", (1, 5000, 0), b"", False, -errno.EBADF, id="dup3-5000"),
    pytest.param("dup3", (1, M64, 0), b"", False, -errno.EBADF, id="dup3--1"),
    pytest.param("dup3", (1, 9, 2**32 | 0o2000000), b"", False, 9, id="dup3-flags-2^32"),
    pytest.param("dup3", (1, 9, 1), b"", False, -errno.EINVAL, id="dup3-flag-1"),
    pytest.param("dup2", (1, 2**32 + 40), b"", False, 40, id="dup2-2^32+40"),
    pytest.param("dup2", (2**32 + 1, 1), b"", False, 1, id="dup2-same-2^32"),
]


@pytest.mark.parametrize(("name", "call_args", "scratch", "rich", "expected"), LINUX_RESULTS)
def test_linux_result(name, call_args, scratch, rich, expected, harness) -> None:
    """Inputs that once escaped as Python exceptions or wrong results: Linux's result."""
    h = harness("next", rich)
    if callable(scratch):
        scratch = scratch(h)
    if rich:  # the children share the host file's offset: start each from 0
        os.lseek(h.thread.process.fds.get(3).fd, 0, os.SEEK_SET)
    assert call_named(h, name, call_args, scratch) == [Outcome("int", expected)]


def test_fstat_of_kernel_objects(harness) -> None:
    """fstat of the rich program's pipe ends (5, 6), socket pair (7, 8), eventfd (9) and
    UINTR vector fd (10): pipefs (get_pipe_inode), sockfs (sock_alloc) and the one shared
    anonymous inode (alloc_anon_inode) as Linux reports them."""
    h = harness("next", rich=True)

    def stats(k: Any, t: Any) -> list[tuple[int, ...]]:
        out = []
        for fd in (5, 6, 7, 8, 9, 10):
            assert k.syscalls[5].fn(k, t, fd, h.scratch) == 0
            raw = t.process.mem.read(h.scratch, 144)
            out.append(struct.unpack_from("<QQQIII4xQqqq6q", raw))
        return out + [(k.clock.realtime_ns() - k.clock.monotonic_ns(),)]

    (probe,) = h.run([], probe=stats)
    *st_, (boot,) = probe.value
    uid, gid = os.getuid(), os.getgid()
    for s in st_:
        assert s[2] == 1 and s[7:10] == (0, 4096, 0)  # nlink, size, blksize, blocks
    pipe_r, pipe_w, sock_a, sock_b, efd, uvec = st_
    assert pipe_r[3] == pipe_w[3] == 0o10600 and pipe_r[4:6] == (uid, gid)
    assert pipe_r[:2] == pipe_w[:2] and pipe_r[10] > 0 and pipe_r[10:] == pipe_r[10:12] * 3
    assert sock_a[3] == sock_b[3] == 0o140777 and sock_a[4:6] == (uid, gid)
    assert sock_a[1] != sock_b[1] and sock_a[10:] == (0,) * 6
    assert efd[3] == uvec[3] == 0o600 and efd[4:6] == (0, 0)
    assert efd[:2] == uvec[:2] and efd[10:] == divmod(boot, 10**9) * 3
    assert len({pipe_r[:2], sock_a[:2], sock_b[:2], efd[:2]}) == 4


def test_dupfd_runs_out_below_the_limit(harness) -> None:
    """F_DUPFD from 1023 twice: the second finds no free fd below RLIMIT_NOFILE (EMFILE)."""
    h = harness("next", rich=False)
    dupfd = (72, (("int", 1), ("int", 0), ("int", 1023)))
    assert h.run([dupfd, dupfd]) == [Outcome("int", 1023), Outcome("int", -errno.EMFILE)]


def test_reading_nothing_from_an_empty_pipe(harness) -> None:
    """read(pipe, buf, 0) with a writer and nothing queued: 0 at once (pipe_read), not a wait."""
    h = harness("next", rich=False)
    pipe2 = (293, (("scratch", 0), ("int", 0)))  # fds 3 and 4
    read0 = (0, (("int", 3), ("scratch", 64), ("int", 0)))
    assert h.run([pipe2, read0]) == [Outcome("int", 0), Outcome("int", 0)]


# --- fixed bugs: their inputs give what Linux gives ------------------------------------------

ENOMEM, EFAULT, EINVAL, EOVERFLOW = 12, 14, 22, 75
ERRNO_NAMES = {ENOMEM: "ENOMEM", EFAULT: "EFAULT", EINVAL: "EINVAL", EOVERFLOW: "EOVERFLOW"}
MAYMOVE_FIXED = 3  # MREMAP_MAYMOVE | MREMAP_FIXED
ANON_PRIVATE, ANON_FIXED = 0x22, 0x32  # MAP_PRIVATE | MAP_ANONYMOUS (| MAP_FIXED)


def run_one(h: SyscallHarness, name: str, *args: int | Arg, scratch: bytes = b"", probe=None):
    """One call in a child (S: the scratch address); its result, and the probe's. Fails on
    anything but a result (an exception, a broken invariant: VMAs == engine mappings...)."""
    nr = next(n for n, sc in h.kernel.syscalls.items() if sc.name == name)
    symbolic = tuple(
        a if isinstance(a, tuple) else ("scratch", 0) if a == S else ("int", a) for a in args
    )
    outcomes = h.run([(nr, symbolic)], scratch, probe=probe)
    assert [o.kind for o in outcomes] == ["int"] + ["probe"] * (probe is not None), outcomes
    return outcomes[0].value, outcomes[-1].value


def call_id(v: Any) -> str:
    if isinstance(v, tuple):
        return ",".join("S" if a == S else f"{a[0]}+{a[1]:#x}" if isinstance(a, tuple) else
                        f"{a:#x}" for a in v)  # fmt: skip
    return ERRNO_NAMES[v]


class RefusingHost:
    """The mmap module of a host that does not overcommit: anonymous memory from 64 MiB on
    is refused with ENOMEM, as mmap.mmap(-1, 1 << 40) is on a machine with less RAM."""

    def __getattr__(self, name: str) -> Any:
        return getattr(mmap_module, name)

    @staticmethod
    def mmap(fileno: int, length: int, *args: Any, **kwargs: Any) -> Any:
        if fileno == -1 and length >= 1 << 26:
            raise OSError(12, "Cannot allocate memory")
        return mmap_module.mmap(fileno, length, *args, **kwargs)


HUGE, BIG = 1 << 40, 1 << 26
HUGE_CALLS = {
    "mmap": ("mmap", 0, HUGE, 3, ANON_PRIVATE, M64, 0),
    # 64 MiB below the scratch area and its first page (the scratch is near the top)
    "mmap-fixed-over-scratch": ("mmap", ("scratch", -BIG), BIG + 4096, 3, ANON_FIXED, M64, 0),
    "mremap-maymove": ("mremap", S, 4096, HUGE, 1, 0),
    "mremap-fixed": ("mremap", S, 4096, HUGE, MAYMOVE_FIXED, 0x1000_0000),
}


@pytest.mark.parametrize("case", list(HUGE_CALLS))
def test_huge_mapping_is_enomem(case, harness, monkeypatch) -> None:
    """Formerly 'internal error' (the host's OSError escaped AddressSpace.map): a mapping the
    host cannot back is ENOMEM (mmap(2)), and nothing changed -- the scratch mapping that a
    MAP_FIXED one would have replaced is still there, with its bytes."""
    monkeypatch.setattr(mm_module, "mmap", RefusingHost())
    h = harness()
    name, *args = HUGE_CALLS[case]
    result, kept = run_one(h, name, *args, scratch=b"precious",
                           probe=lambda k, t: t.process.mem.read(h.scratch, 8))  # fmt: skip
    assert (result, kept) == (-ENOMEM, b"precious")


def test_huge_brk_keeps_the_break(harness, monkeypatch) -> None:
    """brk(2): a heap the host cannot back leaves the break where it was."""
    monkeypatch.setattr(mm_module, "mmap", RefusingHost())
    h = harness()
    brk = h.thread.process.mem.brk
    assert run_one(h, "brk", brk + HUGE, probe=lambda k, t: t.process.mem.brk) == (brk, brk)
    # ... and so does one past the user address space, on any host
    monkeypatch.undo()
    for top in (TASK_SIZE, 1 << 47, M64):
        assert run_one(h, "brk", top, probe=lambda k, t: t.process.mem.brk) == (brk, brk)


def test_huge_mapping_on_this_host(harness) -> None:
    """The former bug input, with the real host: ENOMEM or a mapping, never an exception."""
    result, _ = run_one(harness(), "mmap", 0, HUGE, 3, ANON_PRIVATE, M64, 0)
    assert result == -ENOMEM or 0 < result <= TASK_SIZE - HUGE


def test_engine_out_of_memory_is_enomem(harness, monkeypatch) -> None:
    """Unicorn's UC_ERR_NOMEM is ENOMEM too, and the pages a MAP_FIXED mapping was to
    replace are mapped again (the invariant VMAs == engine mappings is checked)."""
    real = eng.Engine.map_buffer
    calls = []

    def refuse_first(self, *args: Any) -> None:
        calls.append(args)
        if len(calls) == 1:
            raise eng.EngineError("map: out of memory", eng.ucc.UC_ERR_NOMEM)
        real(self, *args)

    monkeypatch.setattr(eng.Engine, "map_buffer", refuse_first)
    h = harness()
    result, kept = run_one(h, "mmap", S, 8192, 3, ANON_FIXED, M64, 0, scratch=b"precious",
                           probe=lambda k, t: t.process.mem.read(h.scratch, 8))  # fmt: skip
    assert (result, kept) == (-ENOMEM, b"precious")


@pytest.mark.parametrize(
    ("args", "errno"),
    [
        # file_mmap_ok: offset + length beyond MAX_LFS_FILESIZE (formerly OverflowError)
        ((0, 4096, 1, 2, 3, 1 << 63), EOVERFLOW),
        ((0, 4096, 1, 2, 3, 2**63 - 4096), EOVERFLOW),
        ((0, 4096, 1, 1, 3, 2**64 - 4096), EOVERFLOW),
        ((0, 4096, 1, 2, 3, 4095), EINVAL),  # sys_mmap: offset not page aligned
        ((0, 4096, 1, 2, 99, 1), EINVAL),  # ... checked before the fd
        ((0, 0, 1, 2, 3, 0), EINVAL),
        ((0, 2**64 - 1, 1, ANON_PRIVATE, M64, 0), ENOMEM),  # PAGE_ALIGN wraps to 0
        ((0, 1 << 47, 1, ANON_PRIVATE, M64, 0), ENOMEM),  # longer than TASK_SIZE
        ((TASK_SIZE - 4096, 8192, 1, ANON_FIXED, M64, 0), ENOMEM),
        ((NONCANONICAL, 4096, 1, ANON_FIXED, M64, 0), ENOMEM),
        ((0x1000_0001, 4096, 1, ANON_FIXED, M64, 0), EINVAL),
        ((0, 4096, 1, 0x23, M64, 0), EINVAL),  # anonymous MAP_SHARED_VALIDATE
    ],
    ids=call_id,
)
def test_mmap_errors(args, errno, harness) -> None:
    assert run_one(harness(rich=True), "mmap", *args)[0] == -errno


def test_mmap_anonymous_ignores_the_offset(harness) -> None:
    result, _ = run_one(harness(), "mmap", 0, 4096, 3, ANON_PRIVATE, M64, 1 << 63)
    assert 0 < result < TASK_SIZE


@pytest.mark.parametrize(
    ("args", "errno"),
    [
        # mremap_to: a destination outside the user address space or unaligned (formerly
        # mapped at 0x8000000000000000, or EngineError from Unicorn)
        ((S, 4096, 8192, MAYMOVE_FIXED, NONCANONICAL), EINVAL),
        ((S, 4096, 8192, MAYMOVE_FIXED, 0x1000_0001), EINVAL),
        ((S, 4096, 8192, MAYMOVE_FIXED, 1 << 47), EINVAL),
        ((S, 4096, 8192, MAYMOVE_FIXED, TASK_SIZE - 4096), EINVAL),
        ((S, 8192, 8192, MAYMOVE_FIXED, ("scratch", 4096)), EINVAL),  # overlapping
        # check_mremap_params
        ((S, 4096, 4096, 8, 0), EINVAL),
        ((("scratch", 1), 4096, 4096, 1, 0), EINVAL),
        ((S, 4096, 0, 1, 0), EINVAL),
        ((S, 4096, 8192, 2, 0x1000_0000), EINVAL),  # MREMAP_FIXED without MAYMOVE
        # remap_is_valid
        ((S, 0, 4096, 1, 0), EINVAL),  # only a shared mapping can be duplicated
        ((S, SCRATCH_SIZE + 4096, SCRATCH_SIZE + 8192, 1, 0), EFAULT),
        ((("scratch-end", 0), 4096, 8192, 1, 0), EFAULT),  # nothing mapped there
    ],
    ids=call_id,
)
def test_mremap_errors(args, errno, harness) -> None:
    assert run_one(harness(), "mremap", *args)[0] == -errno


def test_mremap_fixed_moves_the_pages(harness) -> None:
    """MREMAP_FIXED: the bytes move to new_addr (grown with zeros); the old range is gone."""
    h = harness()
    dest = 0x2000_0000

    def where(k: Any, t: Any) -> tuple[bytes, bytes, bool]:
        mem = t.process.mem
        return mem.read(dest, 8), mem.read(dest + SCRATCH_SIZE, 8), mem.find(h.scratch) is None

    result = run_one(h, "mremap", S, SCRATCH_SIZE, SCRATCH_SIZE + 4096, MAYMOVE_FIXED, dest,
                     scratch=b"moved!!!", probe=where)  # fmt: skip
    assert result == (dest, (b"moved!!!", bytes(8), True))


# --- the host file system is left alone ------------------------------------------------------

FS_SYSCALLS = [257, 2, 263, 87, 84, 258, 83, 264, 82, 266, 88, 268, 90, 76, 77, 80, 59, 1, 18]


def git_status() -> str:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    proc = subprocess.run(
        ["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        pytest.skip("not a git checkout")
    return proc.stdout


@fuzz_settings(150)
@given(
    calls=st.lists(st.tuples(st.sampled_from(FS_SYSCALLS), six_args), min_size=1, max_size=4),
    scratch=st.builds(
        lambda a, b, rest: a + b"\0" + b + b"\0" + rest,
        st.sampled_from(PATHS),
        st.sampled_from(PATHS),
        st.binary(max_size=32),
    ),
    rich=st.booleans(),
)
def _fs_fuzz(calls, scratch, rich, h_get) -> None:
    h = h_get("next", rich)
    check_outcomes(h, calls, h.run(calls, scratch))


def test_fuzz_leaves_the_host_alone(harness, fuzz_dir) -> None:
    """File-system syscalls with random paths (../.., absolute, symlinks, /proc/self/exe) and
    flags, under Options(root=<tmp>) with the cwd in a tmp dir: afterwards the repository's
    git status and a canary directory next to the guest roots are unchanged."""
    canary = fuzz_dir / "canary"
    canary.mkdir(exist_ok=True)
    (canary / "file").write_bytes(b"canary\n")
    before = (git_status(), fs_state(canary))
    _fs_fuzz(h_get=harness)
    after = (git_status(), fs_state(canary))
    assert after[1] == before[1], "the fuzz changed the canary directory outside the roots"
    assert after[0] == before[0], f"the fuzz changed the repository:\n{before[0]}\n->\n{after[0]}"


EXE_CALLS = {
    "unlink": (87, ("scratch", 0)),
    "truncate": (76, ("scratch", 0), ("int", 0)),
    "chmod": (90, ("scratch", 0), ("int", 0)),
    "rename": (82, ("scratch", 0), ("scratch", 16)),
    "open-trunc": (2, ("scratch", 0), ("int", os.O_WRONLY | os.O_TRUNC), ("int", 0)),
}


@pytest.mark.parametrize("what", list(EXE_CALLS))
def test_proc_self_exe_stays_inside_the_root(what, program_bytes, tmp_path) -> None:
    """The program lives outside the guest's root; '/proc/self/exe' must not reach it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    exe = outside / "prog"
    exe.write_bytes(program_bytes)
    exe.chmod(0o755)
    root = tmp_path / "root"
    root.mkdir()
    h = SyscallHarness(program_bytes, root, exe=exe)
    before = fs_state(outside)
    nr, *call_args = EXE_CALLS[what]
    scratch = b"/proc/self/exe".ljust(16, b"\0") + b"/stolen\0"
    outcomes = h.run([(nr, tuple(call_args))], scratch)
    assert all(o.kind in ALLOWED for o in outcomes), outcomes
    assert fs_state(outside) == before, f"{what}('/proc/self/exe') changed {exe}: {outcomes}"
    assert exe.read_bytes() == program_bytes


E2BIG, EFAULT, ENOENT, EACCES = 7, 14, 2, 13
EXEC_ROOM = 2 << 20  # bprm_stack_limits: RLIMIT_STACK (8 MiB) / 4 for the strings and pointers
ARG_STRLEN = 32 * 4096  # MAX_ARG_STRLEN, the NUL included
# The exec region: a string of ARG_STRLEN - 1 "A"s at LONG (its suffixes are shorter strings),
# ARG_STRLEN "B"s at TOO_LONG, pointer arrays from ARGV and ENVP; its last page is a hole.
LONG, TOO_LONG, EMPTY, ENVP, ARGV, EXEC_REGION = 0, 0x20000, 0x48000, 0x49000, 0x50000, 0x300000
UNTERMINATED = EXEC_REGION - 0x2000  # a page of pointers right before the hole
BAD = -1  # a pointer to address 8
MOST_EMPTY = (EXEC_ROOM - 6) // 9  # empty strings that fit with "/prog": 8 + 1 bytes each

#: name -> (path, argv strings (None: a NULL argv, BAD: argv = 8), envp strings, the result)
EXEC_CASES = {
    "too-big": (b"/prog", [LONG + 0x8000] * 100, [], -E2BIG),  # 100 x 96 KiB
    "string-too-long": (b"/prog", [TOO_LONG], [], -E2BIG),
    "string-longest": (b"/prog", [LONG], [], "exec"),
    # 16 pointers (128 bytes) + "/prog" + 15 x 131072 + 130938 bytes = exactly 2 MiB
    "room-full": (b"/prog", [LONG] * 15 + [LONG + 134], [], "exec"),
    "room-exceeded": (b"/prog", [LONG] * 15 + [LONG + 133], [], -E2BIG),
    "most-strings": (b"/prog", [EMPTY] * MOST_EMPTY, [], "exec"),
    "one-string-more": (b"/prog", [EMPTY] * (MOST_EMPTY + 1), [], -E2BIG),
    "pointers-fill-the-room": (b"/prog", [EMPTY] * (EXEC_ROOM // 8), [], -E2BIG),
    "environment-too-big": (b"/prog", [EMPTY], [LONG] * 16, -E2BIG),
    "bad-argv": (b"/prog", BAD, [], -EFAULT),
    "bad-envp": (b"/prog", [EMPTY], BAD, -EFAULT),
    "bad-string": (b"/prog", [LONG, BAD], [], -EFAULT),
    "bad-env-string": (b"/prog", [EMPTY], [BAD], -EFAULT),
    "last-string-read-first": (b"/prog", [BAD, TOO_LONG], [], -E2BIG),
    "first-string-read-last": (b"/prog", [TOO_LONG, BAD], [], -EFAULT),
    "unterminated-argv": (b"/prog", "unterminated", [], -EFAULT),
    "no-file": (b"/nope", BAD, [], -ENOENT),
    "directory": (b"/d", BAD, [], -EACCES),
    "empty-argv": (b"/prog", None, [], "exec"),
}


@pytest.mark.parametrize("case", list(EXEC_CASES))
def test_execve_arguments(case, harness) -> None:
    """execve checks its arguments as do_execveat_common does -- the file first, then count()
    of argv and envp (EFAULT, E2BIG past MAX_ARG_STRINGS), bprm_stack_limits (the pointers and
    strings get RLIMIT_STACK / 4), copy_strings from the last string back (EFAULT, E2BIG for a
    string longer than MAX_ARG_STRLEN or one the room cannot hold) -- all before the point of
    no return: a failed execve leaves the caller its fds, signal handlers and UINTR receiver.
    An empty argv becomes {""}."""
    path, argv, envp, expected = EXEC_CASES[case]
    h = harness("next", rich=True)
    mem = h.thread.process.mem
    region = h.call(9, 0, EXEC_REGION, 3, 0x22, M64, 0)
    mem.unmap(region + EXEC_REGION - 0x1000, 0x1000)

    def pointers(at: int, strings: list[int]) -> int:
        addrs = [8 if o == BAD else region + o for o in strings]
        mem.write(region + at, struct.pack(f"<{len(addrs) + 1}Q", *addrs, 0))
        return region + at

    def state(k: Any, t: Any) -> Any:
        handlers = {sig: a.handler for sig, a in t.process.sigactions.items()}
        e, m = t.process.engine, t.process.mem
        rsp = e.reg_read(eng.RSP)
        argc = m.read_u64(rsp)
        args = [m.read_cstr(m.read_u64(rsp + 8 + 8 * i), ARG_STRLEN) for i in range(min(argc, 3))]
        return (sorted(t.process.fds.fds), handlers, t.uintr.receiver is not None), argc, args

    try:
        mem.write(region + LONG, b"A" * (ARG_STRLEN - 1))
        mem.write(region + TOO_LONG, b"B" * ARG_STRLEN)
        mem.write(region + UNTERMINATED, struct.pack("<512Q", *[region + EMPTY] * 512))
        if argv is None or argv == BAD:
            argv_addr = 0 if argv is None else 8
        elif argv == "unterminated":
            argv_addr = region + UNTERMINATED
        else:
            argv_addr = pointers(ARGV, argv)
        envp_addr = 8 if envp == BAD else pointers(ENVP, envp)
        before = h.run([], probe=state)[-1].value
        call = (59, (("scratch", 0), ("int", argv_addr), ("int", envp_addr)))
        outcomes = h.run([call], path + b"\0", probe=state)
    finally:
        mem.unmap(region, EXEC_REGION)
    after = outcomes[-1].value
    if expected != "exec":
        assert outcomes[0] == Outcome("int", expected), outcomes[0]
        assert after[0] == before[0], f"before {before[0]}, after the failed execve {after[0]}"
        return
    assert outcomes[0].kind == "RESTART", outcomes[0]
    fds, handlers, receiver = after[0]  # the new program: no vector fd (CLOEXEC), receiver,
    assert 10 not in fds and 9 in fds and not receiver, after[0]  # handler
    assert set(handlers.values()) == {0}, after[0]
    if argv is None:
        assert after[1:] == (1, [b""]), after[1:]
    else:
        lengths = [ARG_STRLEN - 1 - o if o < TOO_LONG else 0 for o in argv]
        assert after[1] == len(argv) and [len(a) for a in after[2]] == lengths[:3], after[1:]
