"""The MC146818 real-time clock's CMOS registers (ports 0x70/0x71): a clock standing at the
machine's start date, never updating (status A's UIP bit stays clear), in BCD 24-hour mode,
so that a kernel reading the time at boot gets a fixed, deterministic date."""

from __future__ import annotations

# Seconds, minutes, hours, weekday, day, month, year (BCD), then status A-D, century at 0x32.
_START = {0x00: 0x00, 0x02: 0x00, 0x04: 0x00, 0x06: 0x05, 0x07: 0x01, 0x08: 0x01, 0x09: 0x26,
          0x0A: 0x26, 0x0B: 0x02, 0x0C: 0x00, 0x0D: 0x80, 0x32: 0x20}  # fmt: skip


class Rtc:
    def __init__(self) -> None:
        self.index = 0
        self.ram = bytearray(128)
        for reg, value in _START.items():
            self.ram[reg] = value

    def port_read(self, port: int) -> int:
        return self.index if port == 0x70 else self.ram[self.index]

    def port_write(self, port: int, value: int) -> None:
        if port == 0x70:
            self.index = value & 0x7F  # bit 7 masks NMIs
        elif self.index not in (0x0C, 0x0D):
            self.ram[self.index] = value & 0xFF
