"""Helpers for the hardware-model tests (imported as ``hwmachine``; pytest puts tests/hw on
sys.path). A tiny machine: N CPUs, an APIC bus and paged memory with a
supervisor-only "kernel" region (UITT, UPIDs) and a user stack, as the Linux layer will set it up
(docs/uintr.md §5.2 emulator choice)."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from uintr_emu.hw.apic import ApicBus, LocalApic
from uintr_emu.hw.cpu import CR4_UINTR, RFLAGS_FIXED1, RFLAGS_IF, CpuFeatures
from uintr_emu.hw.memory import PagedMemory
from uintr_emu.hw.uintr import (
    IA32_UINTR_HANDLER,
    IA32_UINTR_MISC,
    IA32_UINTR_PD,
    IA32_UINTR_STACKADJUST,
    IA32_UINTR_TT,
    UintrUnit,
)

KERNEL_BASE = 0xFFFF_8880_0000_0000  # canonical upper half, supervisor-only
UITT_ADDR = KERNEL_BASE  # 256 entries x 16 bytes = one page
UPID_BASE = KERNEL_BASE + 0x1000  # UPID of CPU i's receiver at UPID_BASE + 64 * i
USER_STACK_TOP = 0x7FFF_FFF0_0000
USER_STACK_SIZE = 0x4000
HANDLER = 0x40_1000
UINV = 0xEC  # Linux UINTR_NOTIFICATION_VECTOR
USER_RFLAGS = RFLAGS_IF | RFLAGS_FIXED1  # 0x202, what user code runs with


def upid_addr(cpu_index: int) -> int:
    return UPID_BASE + 64 * cpu_index


@dataclass
class Machine:
    mem: PagedMemory
    bus: ApicBus
    cpus: list[UintrUnit]
    ipis: list[tuple[int, int, int]]  # (source id, target id, vector) seen by the bus listener


def make_machine(
    n_cpus: int = 2,
    *,
    features: CpuFeatures | None = None,
    x2apic: bool = True,
    enable: bool = True,
    apic_ids: list[int] | None = None,
) -> Machine:
    features = features if features is not None else CpuFeatures()
    mem = PagedMemory()
    mem.map(KERNEL_BASE, 0x2000, user=False, writable=True)
    mem.map(USER_STACK_TOP - USER_STACK_SIZE, USER_STACK_SIZE, user=True, writable=True)
    bus = ApicBus()
    ipis: list[tuple[int, int, int]] = []
    bus.on_ipi = lambda s, t, v: ipis.append((s.apic_id, t.apic_id, v))
    cpus = []
    for i in range(n_cpus):
        apic = LocalApic(apic_ids[i] if apic_ids else i, x2apic=x2apic)
        bus.attach(apic)
        cpu = UintrUnit(features, apic, bus, mem)
        if enable:
            cpu.cr4 = CR4_UINTR
        cpus.append(cpu)
    return Machine(mem, bus, cpus, ipis)


def ndst_for(apic: LocalApic) -> int:
    """NDST as Linux encodes it (§5.2): the APIC ID in x2APIC mode, ID << 8 in xAPIC mode."""
    return apic.apic_id if apic.x2apic else (apic.apic_id << 8) & 0xFF00


def write_uitte(
    mem: PagedMemory,
    index: int,
    *,
    vector: int = 0,
    upid: int = UPID_BASE,
    valid: bool = True,
    low: int | None = None,
) -> None:
    """Write UITT entry ``index`` (§5.1); ``low`` overrides the whole low qword."""
    lo = low if low is not None else (vector << 8) | (1 if valid else 0)
    mem.write(UITT_ADDR + 16 * index, struct.pack("<QQ", lo, upid), supervisor=True)


def write_upid(
    mem: PagedMemory,
    addr: int,
    *,
    nv: int = UINV,
    ndst: int = 0,
    on: bool = False,
    sn: bool = False,
    pir: int = 0,
    extra_low: int = 0,
) -> None:
    """Write a UPID (§5.2); ``extra_low`` is OR-ed into the low qword (for reserved bits)."""
    lo = (1 if on else 0) | (2 if sn else 0) | (nv << 16) | (ndst << 32) | extra_low
    mem.write(addr, struct.pack("<QQ", lo, pir), supervisor=True)


def read_upid(mem: PagedMemory, addr: int) -> tuple[int, int]:
    """Return the UPID's (low qword, PIR)."""
    lo, pir = struct.unpack("<QQ", mem.read(addr, 16, supervisor=True))
    return lo, pir


def setup_receiver(m: Machine, cpu_index: int, *, stack_adjust: int = 128) -> int:
    """Program CPU ``cpu_index`` as a running receiver the way Linux does (§10, §11); STUI.
    Returns its UPID address."""
    cpu = m.cpus[cpu_index]
    addr = upid_addr(cpu_index)
    write_upid(m.mem, addr, nv=UINV, ndst=ndst_for(cpu.apic))
    cpu.wrmsr(IA32_UINTR_HANDLER, HANDLER)
    cpu.wrmsr(IA32_UINTR_STACKADJUST, stack_adjust)
    misc = cpu.rdmsr(IA32_UINTR_MISC)
    cpu.wrmsr(IA32_UINTR_MISC, (misc & 0xFFFF_FFFF) | (UINV << 32))
    cpu.wrmsr(IA32_UINTR_PD, addr)
    cpu.stui()
    return addr


def setup_sender(m: Machine, cpu_index: int, *, uitt_size: int = 255) -> None:
    """Program CPU ``cpu_index`` as a sender: TT = UITT | 1, UITTSZ (keeps UINV)."""
    cpu = m.cpus[cpu_index]
    misc = cpu.rdmsr(IA32_UINTR_MISC)
    cpu.wrmsr(IA32_UINTR_MISC, (misc & ~0xFFFF_FFFF) | uitt_size)
    cpu.wrmsr(IA32_UINTR_TT, UITT_ADDR | 1)
