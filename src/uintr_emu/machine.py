"""The machine: N x86-64 processors, each with a local APIC, a UINTR unit and a clock; the APIC
bus between them; and kernel memory, which no guest address space maps (UPIDs and UITTs live
there: SENDUIPI and notification processing reach it with supervisor accesses, docs/uintr.md
§5, §16).

Nothing here knows about threads or Linux. An operating system attaches through the three entry
points a real processor has into its kernel (`OperatingSystem`): SYSCALL (LSTAR), exceptions and
external interrupts (the IDT). The Linux personality implements them in user mode; the CPUs call
them from the engine's hooks, or at instruction boundaries, as hardware would.

Time. Each CPU has its own clock (virtual ns; one counted guest instruction is one ns). Guest code
never runs in parallel on the host, so the CPUs take turns; whoever drives them (the Linux run
loop) starts a CPU's turn at its clock. Effects that cross CPUs carry the time they happened, so
that a CPU never observes something before it was caused: an IPI moves the target's clock up to
the sender's time, and a SENDUIPI's store to a UPID stamps the UPID's line, which moves the clock
of the CPU that next reads it (notification processing, or the kernel on return to user).
"""

from __future__ import annotations

import ctypes
import mmap
from typing import TYPE_CHECKING, Any, Protocol

from . import traps
from .engine import native
from .engine import unicorn as eng
from .hw.apic import ApicBus, LocalApic
from .hw.cpu import CR4_UINTR, CpuFeatures, cpuid_adjust
from .hw.decode import CLUI, STUI, TESTUI, UIRET, decode
from .hw.faults import ArchFault, InvalidOpcode, PageFault
from .hw.uintr import UintrUnit

if TYPE_CHECKING:
    from collections.abc import Callable

RFLAGS_IF = 1 << 9

# Kernel memory sits at a canonical higher-half address, like Linux's direct map.
KERNEL_BASE = 0xFFFF_8880_0000_0000
KERNEL_SIZE = 16 << 20
_LINE = ~0x3F  # a 64-byte line: a UPID is one


class OperatingSystem(Protocol):
    """What the processors call: the kernel's entry points. Each runs on `cpu`, synchronously,
    at the instruction boundary where the processor takes the event."""

    def syscall(self, cpu: Cpu) -> None:
        """SYSCALL executed at CPL3; RIP is the next instruction (docs/engine-notes.md G2 is
        hidden by the engine)."""

    def exception(self, cpu: Cpu, fault: ArchFault) -> None:
        """An exception in user code (#UD, #GP, #PF, #DE, ...). The run stops afterwards."""

    def interrupt(self, cpu: Cpu, vector: int) -> None:
        """An external interrupt that is not a user-interrupt notification, delivered through
        the IDT; the handler writes EOI (`cpu.apic.eoi()`)."""


class KernelMemory:
    """A bump allocator over one buffer at KERNEL_BASE (never mapped for the guest).

    `stamps` holds, per 64-byte line, the virtual time of the last store a SENDUIPI (or the
    kernel's own post) made to it: the only memory whose stores cross CPUs outside the guest's
    own address space, and whose time matters (docs/architecture.md, "Time")."""

    def __init__(self, size: int = KERNEL_SIZE):
        # Anonymous memory: its pages are zero until touched (a bytearray would write all of
        # it, milliseconds and 16 MiB of RSS at every start).
        self.data = mmap.mmap(-1, size)
        self.top = 0
        self.free_lists: dict[int, list[int]] = {}
        self.stamps: dict[int, int] = {}

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
        for line in range(addr & _LINE, addr + size, 64):
            self.stamps.pop(line, None)

    def contains(self, addr: int, size: int = 1) -> bool:
        return KERNEL_BASE <= addr and addr + size <= KERNEL_BASE + len(self.data)

    def stamp(self, addr: int, time: int) -> None:
        self.stamps[addr & _LINE] = time


class CpuMemory:
    """The hardware's view of memory for one CPU: kernel memory for supervisor accesses, and
    the address space the CPU is running for user accesses (what CR3 selects; the OS sets
    `user` when it switches address spaces)."""

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
        return self.user.hw_read(addr, size, user=not supervisor)  # type: ignore[no-any-return]

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


class Cpu:
    """One logical processor: local APIC, UINTR unit, memory view and clock."""

    def __init__(self, machine: Machine, index: int, apic: LocalApic, uintr: UintrUnit,
                 mem: CpuMemory) -> None:  # fmt: skip
        self.machine = machine
        self.index = index
        self.apic = apic
        self.uintr = uintr
        self.mem = mem
        self._native = uintr.native
        # Virtual ns at the start of the current run (or now, between runs); see `now`.
        self.clock = 0
        # HLT: the OS has nothing to run here. An interrupt wakes the processor; the run that
        # sent it ends early if it asked to (`run(..., yield_to_wakeups=True)`), so that the
        # OS takes the interrupt on this CPU soon.
        self.halted = True
        self.running: eng.Engine | None = None  # the engine executing on this CPU
        self._counted = False  # that run counts instructions (its count is part of `now`)
        self._yield_to_wakeups = False
        self._fault_reported = False

    def __repr__(self) -> str:
        return f"Cpu({self.index}, clock={self.clock}, halted={self.halted})"

    @property
    def ipi_arrived(self) -> bool:
        """An interrupt waits in the APIC: accept it at the next boundary. Kept in the UINTR
        unit's native structure: the fast path leaves instructions to Python while it is set."""
        return self._native.ipi_arrived  # type: ignore[no-any-return]

    @ipi_arrived.setter
    def ipi_arrived(self, value: bool) -> None:
        self._native.ipi_arrived = value

    # --- time ---------------------------------------------------------------------------

    def now(self) -> int:
        """This CPU's virtual time: its clock plus what the current run has counted so far."""
        e = self.running
        if e is not None and self._counted:
            return self.clock + e.counter.count  # type: ignore[no-any-return]
        return self.clock

    def sync(self, time: int) -> None:
        """This CPU observes something that happened at `time`: its clock moves up to it."""
        late = time - self.now()
        if late > 0:
            self.clock += late

    def charge(self, ns: int) -> None:
        """Time spent outside guest instructions (the kernel's work) on this CPU."""
        e = self.running
        if e is not None and self._counted:
            e.counter.count += ns
        else:
            self.clock += ns

    @property
    def counting(self) -> bool:
        """The current run counts instructions (charges then eat into its slice)."""
        return self.running is not None and self._counted

    # --- running ------------------------------------------------------------------------

    def run(self, engine: eng.Engine, limit: int | None, start: int = 0, *,
            yield_to_wakeups: bool = False,
            runner: Callable[[int | None, int | None, int], int] | None = None) -> int:  # fmt: skip
        """Execute `engine` (its loaded registers) on this CPU until a hook stops it, or for
        `limit` counted instructions (None: uncounted). `start` is time already charged to the
        run. The clock advances by what was counted; returns that. An exception the engine
        raises is reported to the OS (`OperatingSystem.exception`) before this returns.
        `runner` replaces `engine.run` (the debugger's stepping loop)."""
        m = self.machine
        if m.ended:  # stopped asynchronously (Machine.stop_async): no guest code runs again
            return 0
        if limit is None:
            self.clock += start
            start = 0
        self.running = engine
        self._counted = limit is not None
        self._yield_to_wakeups = yield_to_wakeups
        self._fault_reported = False
        self.halted = False
        m.executing = self
        engine.set_fast_unit(self.uintr if m.fast_path else None)
        try:
            n = (runner or engine.run)(None, limit, start)
        except eng.RunFault as err:
            n = engine.counter.count if limit is not None else 0
            if not self._fault_reported:
                fault = traps.from_engine_error(engine, err)
                self._report(fault, stop=False)
        finally:
            self.running = None
            self._counted = False
            m.executing = None
        if limit is None:
            n = 0
        self.clock += n
        return n

    def _report(self, fault: ArchFault, stop: bool = True) -> None:
        """An exception in the code running on this CPU: to the OS, then the run ends."""
        self._fault_reported = True
        self.machine.os.exception(self, fault)
        if stop and self.running is not None:
            self.running.stop()

    # --- instructions the engine traps --------------------------------------------------

    def trap_invalid(self, e: eng.Engine) -> bool:
        """The engine's #UD: a UINTR instruction the native fast path left to the model, or a
        genuine #UD for the OS. Returns the hook's result (False: the run stops)."""
        ev = self.machine.events
        if ev is not None:
            ev(self.index, "trap", vector=InvalidOpcode.vector, rip=e.reg_read(eng.RIP))
        try:
            if self.execute_trapped(e):
                return True
            fault: ArchFault = InvalidOpcode("not an instruction this processor implements")
        except ArchFault as f:
            fault = f
        self._report(fault, stop=False)  # returning False stops the engine
        return False

    def execute_trapped(self, e: eng.Engine) -> bool:
        """Execute the UINTR instruction at RIP (the engine raised #UD on it,
        docs/engine-notes.md §2).

        Returns False if the bytes are not a UINTR instruction, True when it was executed;
        raises ArchFault for the instruction's own faults, with RIP unchanged. Delivery is
        re-evaluated right after STUI, UIRET and a self-IPI (SDM "User-Interrupt Recognition";
        docs/uintr.md §8).
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
            upid = unit.senduipi(e.reg_read(eng.GPR_IDS[d.register]))
            self.machine.kmem.stamp(upid, self.now())
            e.reg_write(eng.RIP, nxt)
            if self.ipi_arrived:  # a self-IPI: recognized at the next boundary
                self.deliver_pending(e)
            return True
        e.reg_write(eng.RIP, nxt)
        return True

    def senduipi_posted(self, e: eng.Engine, upid: int, notify: int, nv: int, ndst: int) -> bool:
        """The rest of a SENDUIPI the native fast path executed up to the UPID update (RIP is
        past it): the notification IPI, then a self-IPI's delivery, as `execute_trapped`.
        Returns the #UD hook's result."""
        self.machine.kmem.stamp(upid, self.now())
        if notify:
            self.uintr.send_notification(nv, ndst)
        if self.ipi_arrived:
            return self._in_hook(self.deliver_pending, e)
        return True

    def deliver_after(self, e: eng.Engine) -> bool:
        """After a native STUI or UIRET: the delivery the fast path left to the model."""
        return self._in_hook(self.deliver_model, e)

    def _in_hook(self, step: Callable[[eng.Engine], object], e: eng.Engine) -> bool:
        """`step(e)` inside the #UD hook; the hook's result: False (the run stops) when the
        step raised an exception, which goes to the OS."""
        try:
            step(e)
        except ArchFault as f:
            self._report(f, stop=False)
            return False
        return True

    def trap_interrupt(self, intno: int) -> None:
        """The engine's interrupt hook: a CPU exception other than #UD and #PF, or INT n."""
        self._report(traps.from_interrupt(intno))

    def cpuid(self, e: eng.Engine) -> None:
        """CPUID: the model's answer (hw/cpu.py) for EAX/ECX into EAX, EBX, ECX, EDX."""
        leaf = e.reg_read(eng.GPR_IDS[0]) & 0xFFFF_FFFF
        sub = e.reg_read(eng.GPR_IDS[1]) & 0xFFFF_FFFF
        a, b, c, d = self.machine.cpuid(leaf, sub)
        for reg, v in zip((0, 3, 1, 2), (a, b, c, d), strict=True):
            e.reg_write(eng.GPR_IDS[reg], v)

    # --- interrupts and delivery at an instruction boundary -----------------------------

    def accept_interrupts(self, interrupts_enabled: bool = True) -> None:
        """Accept what the APIC has pending (docs/uintr.md §7 identification): notifications go
        to UIRR; any other vector is delivered to the OS, whose handler writes EOI, after which
        vectors it held back are accepted too. With IF = 0 nothing is accepted: interrupts stay
        pending in the APIC."""
        if not interrupts_enabled:
            return
        unit = self.uintr
        upid = unit.state.upid_addr
        seen = self.machine.kmem.stamps.get(upid & _LINE) if upid else None
        if seen is not None:  # notification processing reads the UPID: not before its post
            self.sync(seen)
        while True:
            ordinary = unit.service_interrupts()
            # A vector blocked behind one in service is accepted after the OS's EOI.
            self.ipi_arrived = self.apic.irr != 0
            if not ordinary:
                return
            for vector in ordinary:
                self.machine.os.interrupt(self, vector)

    def deliver_pending(self, e: eng.Engine) -> bool:
        """At an instruction boundary in user mode: accept pending APIC interrupts, then
        deliver the highest pending user interrupt if UIF and IF allow (SDM "User-Interrupt
        Delivery"). Raises ArchFault if a push faults.

        The native fast path delivers when it can (the stack page known); otherwise, and for
        every fault, the model (`deliver_model`)."""
        if self._native.ipi_arrived:
            self.accept_interrupts(bool(e.reg_read(eng.RFLAGS) & RFLAGS_IF))
        if not self.uintr.state.uirr:
            return False
        if self.machine.fast_path:
            done = e.fast_deliver(self.uintr)
            if done >= 0:
                return bool(done)
        return self.deliver_model(e)

    def deliver_model(self, e: eng.Engine) -> bool:
        """`deliver_pending` by the Python model alone."""
        rflags = e.reg_read(eng.RFLAGS)
        if self.ipi_arrived:
            self.accept_interrupts(bool(rflags & RFLAGS_IF))
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

    def boundary_work(self) -> bool:
        """Whether the next instruction boundary has work for the processor: an interrupt to
        accept, or a user interrupt that UIF allows (CPL and IF are the caller's)."""
        st = self.uintr.state
        return bool(self._native.ipi_arrived or (st.uirr and st.uif))


class Machine:
    """N processors on one APIC bus, with kernel memory. `os` must be attached (`attach`)
    before any engine runs."""

    def __init__(self, ncpus: int, features: CpuFeatures, *, fast_path: bool = True):
        self.features = features
        # The native fast path executes the common UINTR cases (engine/native.py) if built.
        self.fast_path = fast_path and native.available()
        self.bus = ApicBus()
        self.kmem = KernelMemory()
        self.cpus: list[Cpu] = []
        for i in range(ncpus):
            apic = LocalApic(apic_id=i, x2apic=True)
            self.bus.attach(apic)
            mem = CpuMemory(self.kmem)
            unit = UintrUnit(features, apic, self.bus, mem)
            if self.fast_path:
                unit.fast_notification = native.notifier(unit, self.kmem.data, KERNEL_BASE)
            self.cpus.append(Cpu(self, i, apic, unit, mem))
        self.by_apic = {c.apic.apic_id: c for c in self.cpus}
        self.bus.on_ipi = self._on_ipi
        self.os: OperatingSystem = _NoOs()
        self.executing: Cpu | None = None  # the CPU whose run is in the engine (Cpu.run)
        self.woken = False  # an interrupt reached a halted CPU since the OS last looked
        self.ended = False  # stopped asynchronously (`stop_async`): it runs no guest code again
        # Set from any host thread (`call_attention`): every engine's run stops at its next
        # block boundary until the OS takes it (`take_attention`).
        self.attention = ctypes.c_uint32(0)
        # Hardware events for tracing: events(cpu_index, kind, **fields), or None.
        self.events: Callable[..., None] | None = None
        self._cpuid: dict[tuple[int, int], tuple[int, int, int, int]] = {}

    def attach(self, os: OperatingSystem) -> None:
        self.os = os

    def new_engine(self, *, python_counters: bool = False) -> eng.Engine:
        """An engine (one address space) whose hooks are this machine's processors
        (`python_counters`: engine/counting.py's fallback counters, for tests)."""
        e = eng.Engine(python_counters=python_counters, attention=self.attention)
        e.on_syscall = self._on_syscall
        e.on_invalid = self._on_invalid
        e.on_interrupt = self._on_interrupt
        e.on_cpuid = self._on_cpuid
        e.on_post = self._on_post
        e.on_deliver = self._on_deliver
        e.set_kernel_memory(self.kmem.data, KERNEL_BASE)
        if self.cpus and self.cpus[0].uintr.cr4 & CR4_UINTR:
            # The engine ignores CR4.UINTR (the model keeps its own copy per CPU); set it so
            # that the registers a debugger shows are those of the machine.
            e.reg_write(eng.CR4, e.reg_read(eng.CR4) | CR4_UINTR)
        return e

    def call_attention(self) -> None:
        """From any host thread: the OS has something to do (a host signal to forward). The
        engine running stops before its next translation block (or instruction, when counting
        precisely), from inside its block or instruction hook: a synchronous stop at a
        boundary, safe for a run that goes on (docs/engine-notes.md G14), unlike `stop_async`.
        Without the native library a run stops so only while it counts (a slice)."""
        self.attention.value = 1

    def take_attention(self) -> bool:
        """The OS, between runs: was attention called? (Cleared before the OS looks at why, so
        a call while it looks is seen at the next boundary.)"""
        if not self.attention.value:
            return False
        self.attention.value = 0
        return True

    def stop_async(self) -> None:
        """From any host thread, when the run is ending anyway (a host signal, --timeout):
        stop the engine a CPU is executing, now, and run no guest instruction on any CPU again
        (`Cpu.run` returns at once). An asynchronous stop may apply the instruction it lands
        in twice (docs/engine-notes.md G14), which only guest code running afterwards could
        observe. The flags are set before the engine is stopped, so the run a stop lands in
        sees them when it returns. A stop that finds no engine running, or one about to start,
        can be lost (G3): the caller repeats it until its run loop has returned."""
        self.ended = True
        for cpu in self.cpus:
            e = cpu.running
            if e is not None:
                e.stop_async()

    def cpuid(self, leaf: int, sub: int) -> tuple[int, int, int, int]:
        """The guest-visible CPUID answer: the engine's own, adjusted by the CPU model."""
        key = (leaf, sub)
        ans = self._cpuid.get(key)
        if ans is None:
            ans = cpuid_adjust(self.features, leaf, sub, *eng.model_cpuid(leaf, sub))
            self._cpuid[key] = ans
        return ans

    # --- engine hooks: the processor executing the engine takes the event ---------------

    def _cpu(self) -> Cpu:
        cpu = self.executing
        assert cpu is not None, "an engine ran outside Cpu.run"
        return cpu

    def _on_syscall(self) -> None:
        self.os.syscall(self._cpu())

    def _on_invalid(self) -> bool:
        cpu = self._cpu()
        assert cpu.running is not None
        return cpu.trap_invalid(cpu.running)

    def _on_interrupt(self, intno: int) -> None:
        self._cpu().trap_interrupt(intno)

    def _on_cpuid(self) -> None:
        cpu = self._cpu()
        assert cpu.running is not None
        cpu.cpuid(cpu.running)

    def _on_post(self, upid: int, notify: int, nv: int, ndst: int) -> bool:
        cpu = self._cpu()
        assert cpu.running is not None
        return cpu.senduipi_posted(cpu.running, upid, notify, nv, ndst)

    def _on_deliver(self) -> bool:
        cpu = self._cpu()
        assert cpu.running is not None
        return cpu.deliver_after(cpu.running)

    # --- the APIC bus --------------------------------------------------------------------

    def _on_ipi(self, source: LocalApic, target: LocalApic, vector: int) -> None:
        """An IPI reached `target`'s IRR. It carries the sender's time; a halted target wakes.
        The sender's run ends early when that lets the target respond sooner: the target is
        another CPU that runs code (or was halted and the run yields to wake-ups), unless the
        IPI is a notification its UINTR unit will only move into UIRR, invisible to software
        until STUI (UIF = 0), so that a SENDUIPI storm into a CLUI section does not cost a turn
        per send."""
        src = self.by_apic[source.apic_id]
        dst = self.by_apic[target.apic_id]
        now = src.now()
        dst.ipi_arrived = True
        dst.sync(now)
        if dst.halted:
            self.woken = True
        if self.events is not None:
            self.events(src.index, "ipi", target=dst.index, vector=vector)
        e = src.running
        if dst is src or e is None:
            return
        if dst.halted:
            if src._yield_to_wakeups:
                e.stop()
            return
        st = dst.uintr.state
        if vector == st.uinv and vector and not st.uif:
            return
        e.stop()


class _NoOs:
    """Before an OS is attached every entry point is a bug."""

    def syscall(self, cpu: Cpu) -> None:
        raise RuntimeError("SYSCALL with no operating system attached to the machine")

    def exception(self, cpu: Cpu, fault: ArchFault) -> None:
        raise RuntimeError(f"{fault} with no operating system attached to the machine")

    def interrupt(self, cpu: Cpu, vector: int) -> None:
        raise RuntimeError(f"interrupt {vector:#x} with no operating system attached")
