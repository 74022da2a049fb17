"""The PC's two cascaded 8259A interrupt controllers (ports 0x20/0x21 and 0xA0/0xA1; the slave on
the master's IRQ 2), from the 8259A datasheet: ICW1-ICW4 initialisation, the mask (OCW1), EOI
(OCW2), reading IRR/ISR (OCW3), edge-triggered requests, fixed priority (IRQ 0 highest)."""

from __future__ import annotations


class Pic8259:
    """One 8259A."""

    def __init__(self) -> None:
        self.irr = self.isr = 0
        self.imr = 0xFF
        self.base = 0
        self.levels = 0  # input lines as last driven (requests latch on a rising edge)
        self.init_step = 0  # 0: operating; 2..4: the next ICW expected
        self.icw4 = False
        self.single = False  # ICW1.SNGL: no ICW3 follows
        self.read_isr = False
        self.auto_eoi = False

    def line(self, irq: int, level: bool) -> None:
        bit = 1 << irq
        if level and not self.levels & bit:
            self.irr |= bit
        self.levels = (self.levels | bit) if level else (self.levels & ~bit)

    def pending(self) -> int | None:
        """The IRQ the chip would signal now: the highest-priority request not masked and
        above every in-service one."""
        req = self.irr & ~self.imr
        for irq in range(8):
            if self.isr & (1 << irq):
                return None
            if req & (1 << irq):
                return irq
        return None

    def acknowledge(self, irq: int) -> int:
        self.irr &= ~(1 << irq)
        if not self.auto_eoi:
            self.isr |= 1 << irq
        return self.base + irq

    def write(self, port: int, value: int) -> None:
        if port == 0:
            if value & 0x10:  # ICW1
                self.init_step, self.icw4 = 2, bool(value & 1)
                self.imr = self.isr = self.irr = 0
                self.single = bool(value & 2)
            elif value & 0x08:  # OCW3
                if value & 2:
                    self.read_isr = bool(value & 1)
            elif value & 0x20:  # OCW2: EOI (non-specific clears the highest in service)
                if value & 0x40:
                    self.isr &= ~(1 << (value & 7))
                elif self.isr:
                    self.isr &= self.isr - 1
            return
        if self.init_step == 2:
            self.base = value & 0xF8
            self.init_step = 4 if self.single else 3
            if self.single and not self.icw4:
                self.init_step = 0
        elif self.init_step == 3:
            self.init_step = 4 if self.icw4 else 0
        elif self.init_step == 4:
            self.auto_eoi = bool(value & 2)
            self.init_step = 0
        else:
            self.imr = value

    def read(self, port: int) -> int:
        if port == 0:
            return self.isr if self.read_isr else self.irr
        return self.imr


class DualPic:
    """Master and slave as wired in a PC."""

    def __init__(self) -> None:
        self.master, self.slave = Pic8259(), Pic8259()

    def irq(self, n: int, level: bool) -> None:
        if n >= 8:
            self.slave.line(n - 8, level)
            self.master.line(2, self.slave.pending() is not None)
        else:
            self.master.line(n, level)

    def pending(self) -> bool:
        return self.master.pending() is not None

    def acknowledge(self) -> int | None:
        """INTA: the vector of the interrupt delivered now, or None."""
        irq = self.master.pending()
        if irq is None:
            return None
        if irq == 2 and self.slave.pending() is not None:
            self.master.acknowledge(2)
            vector = self.slave.acknowledge(self.slave.pending() or 0)
            self.master.line(2, False)
            return vector
        return self.master.acknowledge(irq)

    def port_read(self, port: int) -> int:
        chip = self.master if port < 0xA0 else self.slave
        return chip.read(port & 1)

    def port_write(self, port: int, value: int) -> None:
        chip = self.master if port < 0xA0 else self.slave
        chip.write(port & 1, value)
        if chip is self.slave:
            self.master.line(2, self.slave.pending() is not None)
