"""An 8250/16550A UART (the PC's COM1 at ports 0x3F8-0x3FF, IRQ 4): the register set of the
16550A datasheet, enough for Linux's 8250 driver to probe it (scratch register, loopback, FIFO)
and run the console. Output goes to `out` at once; input comes from `feed`. The line has no
speed: a transmitted byte leaves at once, so THR is always empty."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

# Register offsets; with LCR.DLAB set, 0 and 1 are the divisor latch.
RBR_THR, IER, IIR_FCR, LCR, MCR, LSR, MSR, SCR = range(8)
IER_RDA, IER_THRE = 1, 2
IIR_NONE, IIR_THRE, IIR_RDA, IIR_FIFO = 0x01, 0x02, 0x04, 0xC0
LCR_DLAB = 0x80
MCR_LOOP = 0x10
LSR_DR, LSR_THRE, LSR_TEMT = 0x01, 0x20, 0x40


class Uart8250:
    def __init__(self, out: Callable[[bytes], None], irq: Callable[[bool], None]) -> None:
        self.out = out
        self.irq = irq  # drives the interrupt line (level)
        self.rx: deque[int] = deque()
        self.ier = self.lcr = self.mcr = self.scr = self.dll = self.dlm = 0
        self.fifo = False
        self.thre_pending = False  # THR emptied since IIR last reported it (16550A datasheet, IIR)
        self.transmitted = 0

    def feed(self, data: bytes) -> None:
        self.rx.extend(data)
        self._update()

    def _iir(self) -> int:
        fifo = IIR_FIFO if self.fifo else 0
        if self.ier & IER_RDA and self.rx:
            return IIR_RDA | fifo
        if self.ier & IER_THRE and self.thre_pending:
            return IIR_THRE | fifo
        return IIR_NONE | fifo

    def _update(self) -> None:
        # OUT2 gates the interrupt line on PCs; Linux sets it when it wants interrupts.
        self.irq(not self._iir() & IIR_NONE and bool(self.mcr & 0x08))

    def read(self, offset: int) -> int:
        if offset == RBR_THR:
            if self.lcr & LCR_DLAB:
                return self.dll
            value = self.rx.popleft() if self.rx else 0
            self._update()
            return value
        if offset == IER:
            return self.dlm if self.lcr & LCR_DLAB else self.ier
        if offset == IIR_FCR:
            iir = self._iir()
            if iir & 0x0F == IIR_THRE:  # reading IIR clears a THRE interrupt
                self.thre_pending = False
                self._update()
            return iir
        if offset == LCR:
            return self.lcr
        if offset == MCR:
            return self.mcr
        if offset == LSR:
            return LSR_THRE | LSR_TEMT | (LSR_DR if self.rx else 0)
        if offset == MSR:
            if self.mcr & MCR_LOOP:  # loopback: RTS->CTS, DTR->DSR, OUT1->RI, OUT2->DCD
                m = self.mcr
                return ((m & 2) << 3) | ((m & 1) << 5) | ((m & 4) << 4) | ((m & 8) << 4)
            return 0xB0  # CTS, DSR, DCD: a terminal is attached
        return self.scr

    def write(self, offset: int, value: int) -> None:
        value &= 0xFF
        if offset == RBR_THR:
            if self.lcr & LCR_DLAB:
                self.dll = value
                return
            if self.mcr & MCR_LOOP:
                self.rx.append(value)
            else:
                self.out(bytes((value,)))
                self.transmitted += 1
            self.thre_pending = True
        elif offset == IER:
            if self.lcr & LCR_DLAB:
                self.dlm = value
                return
            if value & IER_THRE and not self.ier & IER_THRE:
                self.thre_pending = True  # enabling THRI with THR empty raises it at once
            self.ier = value & 0x0F
        elif offset == IIR_FCR:
            self.fifo = bool(value & 1)
            if value & 2:
                self.rx.clear()
        elif offset == LCR:
            self.lcr = value
        elif offset == MCR:
            self.mcr = value & 0x1F
        elif offset == SCR:
            self.scr = value
        self._update()
