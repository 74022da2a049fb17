"""The machine: virtual CPUs (each with a local APIC and a UINTR unit), the APIC bus, and
kernel memory, which no guest address space maps (UPIDs and UITTs live there; SENDUIPI and
notification processing reach it with supervisor accesses, arch doc §5, §16).

The run loop that gives the CPUs their turns is the kernel's scheduler (linux/kernel.py): the
hardware has no notion of threads.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .engine import native
from .engine import unicorn as eng
from .hw.apic import ApicBus, LocalApic
from .hw.cpu import CpuFeatures
from .hw.decode import CLUI, STUI, TESTUI, UIRET, decode
from .hw.faults import PageFault
from .hw.uintr import UintrUnit

RFLAGS_IF = 1 << 9

# Kernel memory sits at a canonical higher-half address, like Linux's direct map.
KERNEL_BASE = 0xFFFF_8880_0000_0000
KERNEL_SIZE = 16 << 20


class KernelMemory:
    """A bump allocator over one bytearray at KERNEL_BASE (never mapped for the guest)."""

    def __init__(self, size: int = KERNEL_SIZE):
        self.data = bytearray(size)
        self.top = 0
        self.free_lists: dict[int, list[int]] = {}

    def alloc(self, size: int, align: int) -> int:
        fl = self.free_lists.get(size)
        if fl:
            addr = fl.pop()
            off = addr - KERNEL_BASE
            self.data[off : off + size] = bytes(size)
            return addr
        off = (self.top + align - 1) & ~(align - 1)
        if off + size > len(self.data):
            raise MemoryError("kernel memory exhausted")
        self.top = off + size
        return KERNEL_BASE + off

    def free(self, addr: int, size: int) -> None:
        self.free_lists.setdefault(size, []).append(addr)

    def contains(self, addr: int, size: int = 1) -> bool:
        return KERNEL_BASE <= addr and addr + size <= KERNEL_BASE + len(self.data)


class CpuMemory:
    """The hardware's view of memory for one CPU: kernel memory for supervisor accesses,
    and the address space of the process the CPU is running for user accesses."""

    def __init__(self, kmem: KernelMemory):
        self.kmem = kmem
        self.user: Any = None  # linux.mm.AddressSpace of the running process

    def read(self, addr: int, size: int, *, supervisor: bool) -> bytes:
        if self.kmem.contains(addr, size):
            if not supervisor:  # a user access to a supervisor page
                raise PageFault(addr, write=False, protection=True, user=True)
            off = addr - KERNEL_BASE
            return bytes(self.kmem.data[off : off + size])
        if self.user is None:
            raise PageFault(addr, write=False, protection=False, user=not supervisor)
        return self.user.hw_read(addr, size, user=not supervisor)

    def write(self, addr: int, data: bytes, *, supervisor: bool) -> None:
        if self.kmem.contains(addr, len(data)):
            if not supervisor:
                raise PageFault(addr, write=True, protection=True, user=True)
            off = addr - KERNEL_BASE
            self.kmem.data[off : off + len(data)] = data
            return
        if self.user is None:
            raise PageFault(addr, write=True, protection=False, user=not supervisor)
        self.user.hw_write(addr, data, user=not supervisor)


@dataclass(eq=False)
class Cpu:
    index: int
    apic: LocalApic
    uintr: UintrUnit
    mem: CpuMemory
    current: Any = None  # the thread on this CPU
    queue: deque[Any] = field(default_factory=deque)  # other runnable threads placed here

    base: int = 0  # virtual time at which this CPU's current turn started
    not_before: int = 0  # the latest time something was sent to this CPU (causality)
    other_vectors: list[int] = field(default_factory=list)  # non-UINV vectors for the OS
    last_post: int = 0  # the UPID the last SENDUIPI on this CPU posted to

    def __post_init__(self) -> None:
        self._native = self.uintr.native

    @property
    def ipi_arrived(self) -> bool:
        """An IPI is waiting in the APIC: service it at the next boundary. Kept in the UINTR
        unit's native structure: the fast path leaves instructions to Python while it is set."""
        return self._native.ipi_arrived  # type: ignore[no-any-return]

    @ipi_arrived.setter
    def ipi_arrived(self, value: bool) -> None:
        self._native.ipi_arrived = value

    def execute_trapped(self, e: eng.Engine) -> bool:
        """Execute the UINTR instruction at RIP (the engine raised #UD on it, unicorn-notes §2).

        Returns False if the bytes are not a UINTR instruction (a genuine #UD for the OS), True
        when it was executed; raises ArchFault for the instruction's own faults, with RIP
        unchanged. Delivery is re-evaluated right after STUI, UIRET and a self-IPI (SDM
        "User-Interrupt Recognition"; arch doc §8).
        """
        rip = e.reg_read(eng.RIP)
        d = decode(e.fetch(rip))  # raises InvalidOpcode for a LOCK prefix
        if d is None:
            return False
        unit = self.uintr
        m = d.mnemonic
        nxt = rip + d.length
        if m == CLUI:
            unit.clui()
        elif m == STUI:
            unit.stui()
            e.reg_write(eng.RIP, nxt)
            self.deliver_pending(e)
            return True
        elif m == TESTUI:
            e.reg_write(eng.RFLAGS, unit.testui(e.reg_read(eng.RFLAGS)))
        elif m == UIRET:
            new_rip, rflags, rsp = unit.uiret(e.reg_read(eng.RSP), e.reg_read(eng.RFLAGS))
            e.reg_write(eng.RSP, rsp)
            e.reg_write(eng.RFLAGS, rflags)
            e.reg_write(eng.RIP, new_rip)
            self.deliver_pending(e)
            return True
        else:  # SENDUIPI
            assert d.register is not None
            index = e.reg_read(eng.GPR_IDS[d.register])
            unit.senduipi(index)
            # Which UPID was posted to (the OS keeps its clock causal for IPI-less posts).
            entry = (unit.state.uitt_addr & ~0xF) + 16 * index
            self.last_post = int.from_bytes(self.mem.read(entry + 8, 8, supervisor=True), "little")
            e.reg_write(eng.RIP, nxt)
            if self.ipi_arrived:  # a self-IPI: recognized at the next boundary
                self.deliver_pending(e)
            return True
        e.reg_write(eng.RIP, nxt)
        return True

    def service(self, interrupts_enabled: bool = True) -> None:
        """Accept pending APIC interrupts: notifications go to UIRR (SDM "User-Interrupt
        Notification Processing"), other vectors are kept for the OS. With IF = 0 nothing is
        accepted: the interrupt stays pending in the APIC (arch doc §7)."""
        if not interrupts_enabled:
            return
        if self.apic.has_pending():
            self.other_vectors += self.uintr.service_interrupts()
        # A vector blocked behind one in service is accepted after the OS's EOI: keep looking.
        self.ipi_arrived = self.apic.irr != 0

    def senduipi_posted(self, e: eng.Engine, upid: int, notify: int, nv: int, ndst: int) -> None:
        """The rest of a SENDUIPI the native fast path executed up to the UPID update (RIP is
        past it): the notification IPI, then a self-IPI's delivery, as `execute_trapped`."""
        if notify:
            self.uintr.send_notification(nv, ndst)
        self.last_post = upid
        if self.ipi_arrived:
            self.deliver_pending(e)

    def deliver_pending(self, e: eng.Engine) -> bool:
        """At an instruction boundary in user mode: service the APIC, then deliver the highest
        pending user interrupt if UIF and IF allow (SDM "User-Interrupt Delivery").

        The native fast path does it when it can (no IPI to service, the stack page known);
        otherwise, and for every fault, the model (`deliver_model`)."""
        if not self._native.ipi_arrived:
            done = e.fast_deliver(self.uintr)
            if done >= 0:
                return bool(done)
        return self.deliver_model(e)

    def deliver_model(self, e: eng.Engine) -> bool:
        """`deliver_pending` by the Python model alone."""
        rflags = e.reg_read(eng.RFLAGS)
        if self.ipi_arrived:
            self.service(bool(rflags & RFLAGS_IF))
        unit = self.uintr
        if not unit.state.uirr:
            return False
        if not unit.deliverable(rflags):
            return False
        new = unit.deliver(e.reg_read(eng.RIP), e.reg_read(eng.RSP), rflags)
        if new is None:
            return False
        rip, rsp, rflags = new
        e.reg_write(eng.RSP, rsp)
        e.reg_write(eng.RFLAGS, rflags)
        e.reg_write(eng.RIP, rip)
        return True

    @property
    def busy(self) -> bool:
        return self.current is not None

    @property
    def load(self) -> int:
        return (self.current is not None) + len(self.queue)


class Machine:
    def __init__(self, ncpus: int, features: CpuFeatures):
        self.features = features
        self.bus = ApicBus()
        self.kmem = KernelMemory()
        self.cpus: list[Cpu] = []
        for i in range(ncpus):
            apic = LocalApic(apic_id=i, x2apic=True)
            self.bus.attach(apic)
            mem = CpuMemory(self.kmem)
            unit = UintrUnit(features, apic, self.bus, mem)
            unit.fast_notification = native.notifier(unit, self.kmem.data, KERNEL_BASE)
            self.cpus.append(Cpu(i, apic, unit, mem))
        self.by_apic = {c.apic.apic_id: c for c in self.cpus}
        self.bus.on_ipi = self._on_ipi
        self.on_ipi: Any = None  # the OS's hook: an IPI reached a CPU (wake it, trace it)

    def _on_ipi(self, source: LocalApic, target: LocalApic, vector: int) -> None:
        cpu = self.by_apic[target.apic_id]
        cpu.ipi_arrived = True
        if self.on_ipi is not None:
            self.on_ipi(self.by_apic[source.apic_id], cpu, vector)
