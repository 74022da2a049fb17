"""A bare virtual CPU for engine-level UINTR tests, in the style of kvm-unit-tests.

No Linux layer: a :class:`~uintr_emu.machine.Machine` with a recording operating system
(:class:`BareOs`), one engine from the machine and one :class:`~uintr_emu.linux.mm.AddressSpace`
shared by every CPU, with

- code at 0x10000-0x20000 (R+X; handlers from 0x1F000),
- a stack at 0x20000-0x30000 (RW),
- data at 0x40000-0x50000 (RW; an alternate stack in its upper half).

The engine's hooks are the machine's, exactly as in the emulator: the five UINTR instructions
run on the native fast path or on the model (``Bare(fast_path=...)``; the CPU under test is
:attr:`Bare.cpu`), and every exception goes to the OS, from which :meth:`Bare.run` re-raises it.
Snippets end with ``int3``: its #BP stops the engine there.

Code is assembled by hand with :class:`Asm` (a table of the few encodings the tests need).
UITT and UPIDs live in the machine's kernel memory and are programmed by :func:`setup_uintr`
exactly as the kernel layer would (HANDLER, STACKADJUST, MISC, PD, TT).

Imported as ``engine_harness`` (pytest puts tests/ on sys.path); the benchmark imports it too.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from uintr_emu.engine import unicorn as eng
from uintr_emu.hw.cpu import CR4_UINTR, RFLAGS_FIXED1, RFLAGS_IF, CpuFeatures
from uintr_emu.hw.faults import ArchFault, PageFault
from uintr_emu.hw.uintr import (
    IA32_UINTR_HANDLER,
    IA32_UINTR_MISC,
    IA32_UINTR_PD,
    IA32_UINTR_STACKADJUST,
    IA32_UINTR_TT,
    UPID_ON,
    UPID_SN,
)
from uintr_emu.linux.mm import PROT_EXEC, PROT_READ, PROT_WRITE, AddressSpace
from uintr_emu.machine import KERNEL_BASE, Cpu, Machine

# -- memory layout -------------------------------------------------------------------------------

CODE = 0x10000
CODE_SIZE = 0x10000
HANDLER = 0x1F000  # the default handler (see handler_code)
HANDLER_STOP = 0x1F800  # a handler that is just int3: stops at handler entry
STACK = 0x20000
STACK_SIZE = 0x10000
STACK_TOP = STACK + STACK_SIZE
RSP0 = STACK_TOP - 0x1000  # initial RSP of a snippet (16-byte aligned)
DATA = 0x40000
DATA_SIZE = 0x10000
COUNT = DATA  # qword: deliveries seen by the default handler
LOG = DATA + 8  # qword per delivery: the vector the handler found at [rsp]
ALT_STACK_TOP = DATA + DATA_SIZE  # an alternate stack for the load mode of UISTACKADJUST

UINV = 0xEC  # Linux's UINTR_NOTIFICATION_VECTOR
STACK_ADJUST = 128  # Linux's default: skip the red zone
USER_RFLAGS = RFLAGS_IF | RFLAGS_FIXED1  # 0x202: what user code runs with

RAX, RCX, RDX, RBX, RSP_, RBP, RSI, RDI = range(8)
R8, R9, R10, R11, R12, R13, R14, R15 = range(8, 16)

_Q = struct.Struct("<Q")
_QQ = struct.Struct("<QQ")


# -- a tiny assembler ----------------------------------------------------------------------------

UIRET_BYTES = bytes.fromhex("F30F01EC")
TESTUI_BYTES = bytes.fromhex("F30F01ED")
CLUI_BYTES = bytes.fromhex("F30F01EE")
STUI_BYTES = bytes.fromhex("F30F01EF")
NOP4 = bytes.fromhex("0F1F4000")  # nop dword [rax+0]: same length as CLUI/STUI/TESTUI/UIRET

_JCC = {"jo": 0x70, "jno": 0x71, "jc": 0x72, "jnc": 0x73, "jz": 0x74, "jnz": 0x75}


def senduipi_bytes(reg: int, rex: int | None = None) -> bytes:
    """``senduipi r64``: F3 [REX] 0F C7 /6 with mod = 3. ``rex`` forces a REX byte (its B bit
    must agree with ``reg``); by default REX.B (0x41) is used only for r8-r15."""
    if rex is None:
        rex = 0x41 if reg >= 8 else None
    elif bool(rex & 1) != (reg >= 8):
        raise ValueError(f"REX {rex:#x} does not select register {reg}")
    prefix = bytes([0xF3]) + (bytes([rex]) if rex is not None else b"")
    return prefix + bytes([0x0F, 0xC7, 0xF0 | (reg & 7)])


def _rex_b(reg: int, w: bool = True) -> int:
    return 0x40 | (0x08 if w else 0) | (1 if reg >= 8 else 0)


class Asm:
    """Append-only machine-code builder at a fixed base address, with rel8 jump labels."""

    def __init__(self, base: int = CODE) -> None:
        self.base = base
        self.buf = bytearray()
        self.labels: dict[str, int] = {}
        self._fixups: list[tuple[int, str]] = []

    @property
    def here(self) -> int:
        return self.base + len(self.buf)

    def emit(self, code: bytes | Iterable[int]) -> Asm:
        self.buf += bytes(code)
        return self

    def label(self, name: str) -> int:
        self.labels[name] = self.here
        return self.here

    def bytes(self) -> bytes:
        for pos, name in self._fixups:
            rel = self.labels[name] - (self.base + pos + 1)
            if not -128 <= rel <= 127:
                raise ValueError(f"jump to {name} out of rel8 range")
            self.buf[pos] = rel & 0xFF
        self._fixups.clear()
        return bytes(self.buf)

    # -- instructions ----------------------------------------------------------------------------

    def mov_imm(self, reg: int, imm: int) -> Asm:
        """mov r64, imm64 (REX.W B8+r)."""
        return self.emit([_rex_b(reg), 0xB8 + (reg & 7)]).emit(_Q.pack(imm & 0xFFFF_FFFF_FFFF_FFFF))

    def nop(self) -> Asm:
        return self.emit([0x90])

    def nop4(self) -> Asm:
        return self.emit(NOP4)

    def int3(self) -> Asm:
        return self.emit([0xCC])

    def jmp_self(self) -> Asm:
        return self.emit([0xEB, 0xFE])

    def clui(self, lock: bool = False) -> Asm:
        return self.emit((b"\xf0" if lock else b"") + CLUI_BYTES)

    def stui(self, lock: bool = False) -> Asm:
        return self.emit((b"\xf0" if lock else b"") + STUI_BYTES)

    def testui(self, lock: bool = False) -> Asm:
        return self.emit((b"\xf0" if lock else b"") + TESTUI_BYTES)

    def uiret(self, lock: bool = False) -> Asm:
        return self.emit((b"\xf0" if lock else b"") + UIRET_BYTES)

    def senduipi(self, reg: int = RAX, rex: int | None = None, lock: bool = False) -> Asm:
        return self.emit((b"\xf0" if lock else b"") + senduipi_bytes(reg, rex))

    def inc(self, reg: int) -> Asm:
        """inc r64 (REX.W FF /0)."""
        return self.emit([_rex_b(reg), 0xFF, 0xC0 | (reg & 7)])

    def dec(self, reg: int) -> Asm:
        """dec r64 (REX.W FF /1)."""
        return self.emit([_rex_b(reg), 0xFF, 0xC8 | (reg & 7)])

    def push(self, reg: int) -> Asm:
        return self.emit(([0x41] if reg >= 8 else []) + [0x50 + (reg & 7)])

    def pop(self, reg: int) -> Asm:
        return self.emit(([0x41] if reg >= 8 else []) + [0x58 + (reg & 7)])

    def pushfq(self) -> Asm:
        return self.emit([0x9C])

    def popfq(self) -> Asm:
        return self.emit([0x9D])

    def add_rsp_8(self) -> Asm:
        return self.emit([0x48, 0x83, 0xC4, 0x08])

    def cmp_rax_rbx(self) -> Asm:
        return self.emit([0x48, 0x39, 0xD8])

    def mov_rsp_to(self, reg: int) -> Asm:
        """mov reg, rsp (REX.W 89 /r, rm = reg)."""
        return self.emit([0x48 | (1 if reg >= 8 else 0), 0x89, 0xE0 | (reg & 7)])

    def jcc(self, cc: str, label: str) -> Asm:
        self.emit([_JCC[cc], 0])
        self._fixups.append((len(self.buf) - 1, label))
        return self


def handler_code(base: int = HANDLER) -> bytes:
    """The default user-interrupt handler, transparent for every GPR (flags are restored by
    UIRET): LOG[COUNT] := vector, COUNT += 1, drop the vector, UIRET."""
    a = Asm(base)
    a.push(RAX).push(RBX).push(RCX)
    a.emit([0x48, 0x8B, 0x44, 0x24, 0x18])  # mov rax, [rsp+24]   ; the vector
    a.mov_imm(RBX, DATA)
    a.emit([0x48, 0x8B, 0x0B])  # mov rcx, [rbx]          ; COUNT
    a.emit([0x48, 0x89, 0x44, 0xCB, 0x08])  # mov [rbx+rcx*8+8], rax ; LOG[COUNT]
    a.emit([0x48, 0xFF, 0x03])  # inc qword [rbx]
    a.pop(RCX).pop(RBX).pop(RAX)
    a.add_rsp_8()
    a.uiret()
    return a.bytes()


# -- UITT entries and UPIDs ----------------------------------------------------------------------


def uitte(vector: int, upid: int, *, valid: bool = True, reserved: int = 0) -> tuple[int, int]:
    """A UITT entry as its two qwords: V | UV << 8 | reserved bits, UPIDADDR
    (docs/uintr.md §5.1)."""
    return (int(valid) | (vector << 8) | reserved, upid)


def upid_low(*, nv: int = UINV, ndst: int = 0, on: bool = False, sn: bool = False) -> int:
    """The low qword of a UPID (§5.2): ON, SN, NV in bits 23:16, NDST in 63:32."""
    return (UPID_ON if on else 0) | (UPID_SN if sn else 0) | (nv << 16) | (ndst << 32)


@dataclass
class Uintr:
    """What :func:`setup_uintr` programmed for one CPU."""

    cpu: Cpu
    upid: int  # address of the CPU's own UPID
    uitt: int  # address of the UITT
    uitt_size: int  # UITTSZ (the highest valid index)


# -- the bare machine ----------------------------------------------------------------------------


class UnexpectedInterrupt(Exception):
    """The engine raised an interrupt other than the int3 that ends a snippet."""

    def __init__(self, intno: int, rip: int) -> None:
        super().__init__(f"interrupt {intno} at RIP {rip:#x}")
        self.intno = intno
        self.rip = rip


class GuestMemoryFault(Exception):
    """A guest instruction touched unmapped or protected memory (a #PF the engine raised)."""

    def __init__(self, fault: PageFault) -> None:
        super().__init__(f"guest memory fault: {fault}")
        self.fault = fault
        self.address = fault.address


@dataclass
class Trace:
    """State right after one trapped instruction was executed by the emulator."""

    rip: int
    rsp: int
    rflags: int


class BareOs:
    """The harness's operating system: it records what the processors hand it. Interrupts
    that are not notifications stay in service (ISR) until the test writes EOI."""

    def __init__(self) -> None:
        self.faults: list[ArchFault] = []
        self.vectors: list[int] = []  # IDT deliveries, in order

    def syscall(self, cpu: Cpu) -> None:
        raise AssertionError("SYSCALL in a bare snippet")

    def exception(self, cpu: Cpu, fault: ArchFault) -> None:
        self.faults.append(fault)

    def interrupt(self, cpu: Cpu, vector: int) -> None:
        self.vectors.append(vector)


@dataclass
class Bare:
    """One engine, one address space, an N-CPU machine; ``cpu`` is the CPU under test.

    ``fast_path``: the native fast path executes the UINTR instructions it can (as in the
    emulator), or (False) the Python model executes every one; None takes
    :attr:`default_fast_path`, which a test module may set for all its machines. ``traces``
    records the instructions that reached the model (all of them without the fast path).
    ``python_counters``: the engine counts with its Python callbacks (engine/counting.py), not
    the native library's."""

    ncpus: int = 1
    features: CpuFeatures = field(default_factory=CpuFeatures)
    cr4_uintr: bool = True
    fast_path: bool | None = None
    python_counters: bool = False
    default_fast_path: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if self.fast_path is None:
            self.fast_path = self.default_fast_path
        self.machine = Machine(self.ncpus, self.features, fast_path=self.fast_path)
        self.os = BareOs()
        self.machine.attach(self.os)
        self.engine = e = self.machine.new_engine(python_counters=self.python_counters)
        self.mem = AddressSpace(e)
        self.mem.map(CODE, CODE_SIZE, PROT_READ | PROT_EXEC, name="code")
        self.mem.map(STACK, STACK_SIZE, PROT_READ | PROT_WRITE, name="stack")
        self.mem.map(DATA, DATA_SIZE, PROT_READ | PROT_WRITE, name="data")
        for cpu in self.machine.cpus:
            cpu.mem.user = self.mem
            if self.cr4_uintr:
                cpu.uintr.cr4 = CR4_UINTR
        self.cpu: Cpu = self.machine.cpus[0]
        self.interrupts: list[int] = []
        self.traces: list[Trace] = []
        self.ipis: list[tuple[int, int, int]] = []  # (source CPU, target CPU, vector)
        self.machine.events = self._on_event
        # Observe the engine's callbacks on their way to the machine.
        invalid, interrupt = e.on_invalid, e.on_interrupt

        def on_invalid() -> bool:
            done = invalid()
            if done:
                self.traces.append(Trace(e.reg_read(eng.RIP), e.reg_read(eng.RSP),
                                         e.reg_read(eng.RFLAGS)))  # fmt: skip
            return done

        def on_interrupt(intno: int) -> None:
            self.interrupts.append(intno)
            interrupt(intno)

        e.on_invalid, e.on_interrupt = on_invalid, on_interrupt
        self.poke(HANDLER, handler_code(HANDLER))
        self.poke(HANDLER_STOP, b"\xcc")
        self.set_gprs({})
        e.reg_write(eng.RSP, RSP0)
        e.reg_write(eng.RFLAGS, USER_RFLAGS)

    def _on_event(self, index: int, kind: str, **fields: int) -> None:
        if kind == "ipi":
            self.ipis.append((index, fields["target"], fields["vector"]))

    # -- memory ----------------------------------------------------------------------------------

    def poke(self, addr: int, data: bytes) -> None:
        """Write guest memory regardless of protections (code) and drop stale translations."""
        self.mem.poke(addr, data)
        self.engine.invalidate_code(addr, len(data))

    def load(self, asm: Asm) -> int:
        """Place the code of ``asm`` at its base; return the base."""
        self.poke(asm.base, asm.bytes())
        return asm.base

    def read_u64(self, addr: int) -> int:
        return _Q.unpack(self.mem.read(addr, 8))[0]

    def read_qwords(self, addr: int, n: int) -> tuple[int, ...]:
        return struct.unpack(f"<{n}Q", self.mem.read(addr, 8 * n))

    def write_qwords(self, addr: int, *values: int) -> None:
        self.mem.write(addr, struct.pack(f"<{len(values)}Q", *values))

    def kwrite(self, addr: int, data: bytes) -> None:
        off = addr - KERNEL_BASE
        self.machine.kmem.data[off : off + len(data)] = data

    def kread(self, addr: int, size: int) -> bytes:
        off = addr - KERNEL_BASE
        return bytes(self.machine.kmem.data[off : off + size])

    def read_upid(self, addr: int) -> tuple[int, int]:
        """(low qword, PIR) of the UPID at ``addr``."""
        return _QQ.unpack(self.kread(addr, 16))

    def write_upid(self, addr: int, low: int, pir: int = 0) -> None:
        self.kwrite(addr, _QQ.pack(low, pir))

    def write_uitte(self, uitt: int, index: int, entry: tuple[int, int]) -> None:
        self.kwrite(uitt + 16 * index, _QQ.pack(*entry))

    @property
    def count(self) -> int:
        """Deliveries seen by the default handler."""
        return self.read_u64(COUNT)

    @property
    def log(self) -> list[int]:
        """Vectors seen by the default handler, in delivery order."""
        n = self.count
        return list(self.read_qwords(LOG, n)) if n else []

    # -- registers -------------------------------------------------------------------------------

    def reg(self, r: int) -> int:
        return self.engine.reg_read(eng.GPR_IDS[r])

    def set_reg(self, r: int, value: int) -> None:
        self.engine.reg_write(eng.GPR_IDS[r], value)

    def set_gprs(self, values: Mapping[int, int]) -> None:
        """Every GPR but RSP := values.get(r, 0)."""
        for r in range(16):
            if r != RSP_:
                self.set_reg(r, values.get(r, 0))

    @property
    def rip(self) -> int:
        return self.engine.reg_read(eng.RIP)

    @property
    def rsp(self) -> int:
        return self.engine.reg_read(eng.RSP)

    @property
    def rflags(self) -> int:
        return self.engine.reg_read(eng.RFLAGS)

    def set_rip(self, value: int) -> None:
        self.engine.reg_write(eng.RIP, value)

    def set_rsp(self, value: int) -> None:
        self.engine.reg_write(eng.RSP, value)

    def set_rflags(self, value: int) -> None:
        self.engine.reg_write(eng.RFLAGS, value)

    # -- running ---------------------------------------------------------------------------------

    def run(self, rip: int | None = None, limit: int | None = None, precise: bool = True,
            *, start: int = 0, steps: int = 0) -> int:  # fmt: skip
        """Run from ``rip`` (default: the current RIP) on :attr:`cpu` until int3 or ``limit``
        instructions, counted per instruction (``precise``) or per translation block as the
        scheduler does; ``start`` counts as already run, ``steps`` > 0 stops after that many
        instructions (`Engine.run`).

        Returns the RIP where the engine stopped (after the int3). An exception the processor
        raised is re-raised: an ArchFault of a trapped instruction (RIP left at it),
        :class:`GuestMemoryFault` for a page fault, :class:`UnexpectedInterrupt` for an
        interrupt other than int3.
        """
        e = self.engine
        if limit is not None:
            e.set_counting(True, precise=precise)
        if rip is not None:
            e.reg_write(eng.RIP, rip)
        self.os.faults.clear()
        seen = len(self.interrupts)
        self.cpu.run(e, limit, start,
                     runner=lambda r, lim, st: e.run(r, lim, st, steps=steps))  # fmt: skip
        if self.os.faults:
            fault = self.os.faults[0]
            if len(self.interrupts) > seen:
                intno = self.interrupts[-1]
                if intno != 3:
                    raise UnexpectedInterrupt(intno, self.rip)
            elif isinstance(fault, PageFault) and e.mem_fault is not None:
                raise GuestMemoryFault(fault)  # an access by a guest instruction
            else:
                raise fault
        return self.rip


def setup_uintr(
    bare: Bare,
    cpu: Cpu | None = None,
    *,
    handler: int = HANDLER,
    vectors: Mapping[int, int] | None = None,
    entries: Mapping[int, tuple[int, int]] | None = None,
    uitt_size: int | None = None,
    stack_adjust: int = STACK_ADJUST,
    uinv: int = UINV,
    nv: int = UINV,
    ndst: int | None = None,
    on: bool = False,
    sn: bool = False,
    upid_low_override: int | None = None,
    pir: int = 0,
    tt_enable: bool = True,
) -> Uintr:
    """Program ``cpu``'s UINTR MSRs as a kernel would, with UITT and UPID in kernel memory.

    The CPU gets a 64-byte aligned UPID (NV = ``nv``, NDST = ``ndst``, default its APIC ID) and
    is both receiver (HANDLER, STACKADJUST, MISC.UINV, PD) and sender (MISC.UITTSZ, TT | 1).
    UITT entries: ``vectors`` maps an index to a user vector, targeting the CPU's own UPID (a
    self-IPI, as in kvm-unit-tests); ``entries`` maps an index to a raw entry (see
    :func:`uitte`). Without either, entry 0 sends vector 3 to itself. ``uitt_size`` (UITTSZ,
    the highest valid index) defaults to the highest index given.
    """
    cpu = bare.cpu if cpu is None else cpu
    kmem = bare.machine.kmem
    upid = kmem.alloc(64, 64)
    low = upid_low(nv=nv, ndst=cpu.apic.apic_id if ndst is None else ndst, on=on, sn=sn)
    bare.write_upid(upid, low if upid_low_override is None else upid_low_override, pir)
    if vectors is None:
        vectors = {0: 3} if entries is None else {}
    table = {index: uitte(vector, upid) for index, vector in vectors.items()}
    table.update(entries or {})
    if uitt_size is None:
        uitt_size = max(table, default=0)
    uitt = kmem.alloc(16 * (max(uitt_size, *table, 0) + 1), 4096)
    for index, entry in table.items():
        bare.write_uitte(uitt, index, entry)
    unit = cpu.uintr
    unit.wrmsr(IA32_UINTR_HANDLER, handler)
    unit.wrmsr(IA32_UINTR_STACKADJUST, stack_adjust)
    unit.wrmsr(IA32_UINTR_MISC, uitt_size | uinv << 32)
    unit.wrmsr(IA32_UINTR_PD, upid)
    unit.wrmsr(IA32_UINTR_TT, uitt | (1 if tt_enable else 0))
    return Uintr(cpu, upid, uitt, uitt_size)


def delivery_frame_addr(rsp: int, stack_adjust: int = STACK_ADJUST) -> int:
    """Where a delivery pushes its 32-byte frame (§8): RSP - adjust (or adjust itself in load
    mode), aligned down to 16, minus 32."""
    top = stack_adjust if stack_adjust & 1 else rsp - stack_adjust
    return (top & ~0xF) - 32
