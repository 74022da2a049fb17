"""The full-system machine: one processor (system/cpu.py on engine/system.py), RAM, the PC's
legacy devices on port I/O (8250 UART, 8259 PICs, 8254 PIT, CMOS clock), and the run loop that
lets the processor run in slices and does between them what the hardware does asynchronously:
timer ticks, interrupt acknowledge and delivery, HLT (docs/system.md)."""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..engine import cpuid as model
from ..engine.system import COUNT, EXCEPTION, HALT, INVALID, SYSCALL, SystemEngine
from . import boot
from .cpu import IF, SystemCpu, TripleFault
from .devices import lapic
from .devices.lapic import LocalApicPage
from .devices.pic8259 import DualPic
from .devices.pit8254 import Pit8254
from .devices.rtc import Rtc
from .devices.uart8250 import Uart8250

SLICE = 200_000  # instructions between two looks at the devices: 0.2 ms of virtual time
EVENT_COST = 100  # ns charged for a slice that an event ended early (the count is unknown)
RDTSC_COST = 10  # ns each RDTSC advances the clock, so that TSC polling loops progress
TSC_HZ = 1_000_000_000  # 1 instruction = 1 ns = 1 TSC cycle
CRYSTAL_HZ = 25_000_000
UART_IRQ, PIT_IRQ = 4, 0
RDRAND = 1 << 30  # CPUID.1:ECX


@dataclass
class Result:
    status: int
    reason: str  # "halted", "reset", "timeout", "max-insns", "triple fault"
    instructions: int  # virtual ns: about the instructions executed, and time slept in HLT
    host_seconds: float


class SystemMachine:
    def __init__(
        self,
        memory: int,
        console: Callable[[bytes], None],
    ) -> None:
        self.memory = memory
        self.clock = 0  # virtual ns
        self.pic = DualPic()
        self.uart = Uart8250(console, lambda level: self.pic.irq(UART_IRQ, level))
        self.pit = Pit8254(lambda: self.clock, lambda level: self.pic.irq(PIT_IRQ, level))
        self.rtc = Rtc()
        self.ports: dict[int, tuple[Callable[[int], int], Callable[[int, int], None]]] = {}
        for p in range(0x3F8, 0x400):
            self.ports[p] = (lambda p: self.uart.read(p - 0x3F8),
                             lambda p, v: self.uart.write(p - 0x3F8, v))  # fmt: skip
        for p in (0x20, 0x21, 0xA0, 0xA1):
            self.ports[p] = (self.pic.port_read, self.pic.port_write)
        for p in (0x40, 0x41, 0x42, 0x43, 0x61):
            self.ports[p] = (self.pit.port_read, self.pit.port_write)
        for p in (0x70, 0x71):
            self.ports[p] = (self.rtc.port_read, self.rtc.port_write)
        # No keyboard controller: its status port reads all ones (Linux's i8042 driver then
        # finds none at once), but the reset line it drives on a PC is there.
        self.ports[0x64] = (lambda p: 0xFF, self._kbc_write)
        self.ports[0xCF9] = (lambda p: 0, self._reset_control)
        self.engine = SystemEngine(memory, self._port_read, self._port_write, self._cpuid,
                                   self._rdtsc)  # fmt: skip
        self.cpu = SystemCpu(self.engine)
        self.lapic = LocalApicPage()
        self.engine.map_mmio(lapic.BASE, 0x1000, self.lapic.read, self.lapic.write)
        # Physical addresses with nothing behind them, up to 4 GiB, read all ones (a PC's
        # open bus) rather than stopping the engine.
        for start, end in ((memory, lapic.BASE), (lapic.BASE + 0x1000, 1 << 32)):
            if start < end:
                self.engine.map_mmio(start, end - start, self._open_bus, lambda o, s, v: None)
        self.ended: str | None = None
        self.tsc_reads = 0  # RDTSC/RDTSCP executed (each one a hook call: --stats)
        self.slices = 0

    # ---- port I/O: unclaimed ports read all ones and ignore writes, as on a PC bus
    def _port_read(self, port: int, size: int) -> int:
        dev = self.ports.get(port)
        if dev is None:
            return (1 << (8 * size)) - 1
        return dev[0](port)

    def _port_write(self, port: int, size: int, value: int) -> None:
        dev = self.ports.get(port)
        if dev is not None:
            dev[1](port, value & 0xFF)

    def _kbc_write(self, _port: int, value: int) -> None:
        if value == 0xFE:  # the keyboard controller's "pulse reset line"
            self._end("reset")

    def _reset_control(self, _port: int, value: int) -> None:
        if value & 4:  # the PCI reset control register's "reset CPU"
            self._end("reset")

    def _end(self, reason: str) -> None:
        self.ended = reason
        self.engine.stop()

    def _open_bus(self, _offset: int, size: int) -> int:
        return (1 << (8 * size)) - 1

    # ---- the processor's model-specific answers
    def _cpuid(self, leaf: int, _subleaf: int) -> tuple[int, int, int, int] | None:
        """The engine's Haswell without RDRAND, with leaves 0x15/0x16 (SDM Vol. 2A, CPUID)
        giving the TSC frequency, so that Linux need not calibrate it against the PIT."""
        if leaf == 0:
            eax, ebx, ecx, edx = model.BY_LEAF[0]
            return max(eax, 0x16), ebx, ecx, edx
        if leaf == 1:  # no RDRAND: the engine's answers come from the host's random source,
            eax, ebx, ecx, edx = model.BY_LEAF[1]  # and a run must not depend on them
            return eax, ebx, ecx & ~RDRAND, edx
        if leaf == 0x15:
            return 1, TSC_HZ // CRYSTAL_HZ, CRYSTAL_HZ, 0
        if leaf == 0x16:
            mhz = TSC_HZ // 1_000_000
            return mhz, mhz, 100, 0
        if 0xE <= leaf <= 0x14:
            return 0, 0, 0, 0
        return None

    def _rdtsc(self) -> int:
        self.tsc_reads += 1
        self.clock += RDTSC_COST
        if self.pit.next_tick is not None and self.clock >= self.pit.next_tick:
            self.engine.stop()  # a TSC polling loop reached the next tick: deliver it on time
        return self.clock * (TSC_HZ // 1_000_000_000)

    # ---- booting
    def load_linux(
        self,
        image: bytes,
        initrd: bytes | None,
        cmdline: str,
        *,
        decompress_in_guest: bool = False,
    ) -> None:
        """Load a bzImage, its initrd and command line and set the CPU at the kernel's 64-bit
        entry. `decompress_in_guest` (the bzImage's own decompressor) does not work yet
        (docs/system.md, "Missing")."""
        kernel = boot.kernel_from_image(image, decompress_in_guest=decompress_in_guest)
        if kernel.end > self.memory:
            raise boot.BootError(f"the kernel needs {kernel.end >> 20} MiB of memory at least")
        eng = self.engine
        for addr, data, memsz in kernel.segments:
            eng.write(addr, data + bytes(memsz - len(data)))
        rd = None
        if initrd is not None:
            addr = boot.initrd_address(self.memory, len(initrd), kernel.end, kernel.header)
            eng.write(addr, initrd)
            rd = (addr, len(initrd))
        raw = cmdline.encode() + b"\0"
        if len(raw) > boot.CMDLINE_MAX:
            raise boot.BootError("the kernel command line is too long")
        eng.write(boot.CMDLINE, raw)
        eng.write(boot.ZERO_PAGE, boot.zero_page(kernel.header, self.memory, boot.CMDLINE, rd))
        self.enter_long_mode(kernel.entry, rsi=boot.ZERO_PAGE)

    def enter_long_mode(self, entry: int, rsi: int = 0) -> None:
        """The state of the 64-bit boot protocol: paging on the loader's identity map, the
        loader's GDT with CS = 0x10 and the data segments 0x18, interrupts off."""
        eng = self.engine
        eng.write(boot.GDT_ADDR, boot.gdt())
        eng.write(boot.PML4, boot.identity_page_tables())
        eng.set_table("gdtr", boot.GDT_ADDR, len(boot.gdt()) - 1)
        eng.set_reg("cr3", boot.PML4)
        eng.set_reg("cr4", 0x20)  # PAE
        eng.set_msr(0xC0000080, 0x500)  # EFER: LME, LMA
        eng.set_reg("cr0", 0x8000_0031)  # PG, NE, ET, PE
        _, _, cs, ds = struct.unpack("<4Q", boot.gdt())
        eng.load_code_stack((0x10, 0, 0xFFFF_FFFF, cs >> 32), (0x18, 0, 0xFFFF_FFFF, ds >> 32))
        for seg in ("ds", "es"):
            eng.set_reg(seg, 0x18)
        eng.set_reg("rflags", 2)
        eng.set_reg("rsp", boot.STACK_TOP)
        eng.set_reg("rsi", rsi)
        eng.set_reg("rip", entry)

    # ---- running
    def run(self, *, timeout: float | None = None, max_insns: int | None = None) -> Result:
        start = time.monotonic()
        eng, cpu = self.engine, self.cpu
        reason = None
        while reason is None:
            if timeout is not None and time.monotonic() - start > timeout:
                reason = "timeout"
                break
            if max_insns is not None and self.clock >= max_insns:
                reason = "max-insns"
                break
            self.pit.advance(self.clock)
            if eng.reg("rflags") & IF:
                vector = self.pic.acknowledge()
                if vector is not None:
                    cpu.interrupt(vector)
            stop = eng.run(SLICE)
            self.slices += 1
            if self.ended:
                reason = self.ended
                break
            try:
                if stop.kind == COUNT:
                    self.clock += SLICE
                elif stop.kind == HALT:
                    reason = self._idle()
                else:
                    self.clock += EVENT_COST
                if stop.kind == EXCEPTION:
                    cpu.exception(stop.vector, stop.error_code, stop.software)
                elif stop.kind == INVALID:
                    cpu.exception(6, 0, False)
                elif stop.kind == SYSCALL:
                    cpu.syscall()
            except TripleFault:
                reason = "triple fault"
        # 0: the guest halted or reset the machine; 124: a limit ended it (as `run`'s limits).
        status = {"halted": 0, "reset": 0, "timeout": 124, "max-insns": 124}.get(reason, 1)
        return Result(status, reason, self.clock, time.monotonic() - start)

    def _idle(self) -> str | None:
        """HLT: sleep until an interrupt. With RFLAGS.IF clear nothing can wake the processor
        (no NMI source exists), which is how Linux halts the machine."""
        if not self.engine.reg("rflags") & IF:
            return "halted"
        if self.pic.pending():
            return None
        if self.pit.next_tick is None:
            return "idle"  # asleep with no timer armed and no input: nothing will ever wake it
        self.clock = max(self.clock, self.pit.next_tick)
        return None
