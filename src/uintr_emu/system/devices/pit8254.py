"""The 8254 programmable interval timer (ports 0x40-0x43, channel 0 on IRQ 0, channel 2 gated by
port 0x61), from the 8254 datasheet, on the machine's virtual clock: a channel's count is
computed from the time it was loaded, never stepped. Modes 0 and 4 (one shot) and 2 and 3
(periodic) are what Linux uses; the others count like mode 0."""

from __future__ import annotations

from collections.abc import Callable

HZ = 1_193_182  # the PIT's input clock
NS = 1_000_000_000


class Channel:
    def __init__(self) -> None:
        self.mode = 0
        self.access = 3  # 1: LSB, 2: MSB, 3: LSB then MSB
        self.reload = 0x10000
        self.loaded_at: int | None = None  # ns when counting started, None: not counting
        self.write_msb = False
        self.read_msb = False
        self.latched: int | None = None
        self.fired = False  # a one-shot's terminal count passed (OUT high)

    @property
    def periodic(self) -> bool:
        return self.mode in (2, 3)

    def ticks(self, now: int) -> int:
        return 0 if self.loaded_at is None else (now - self.loaded_at) * HZ // NS

    def count(self, now: int) -> int:
        t = self.ticks(now)
        if self.periodic:
            return self.reload - t % self.reload
        return (self.reload - t) & 0xFFFF

    def deadline(self, after: int) -> int | None:
        """The next time (ns) OUT rises after `after`: a periodic channel's next period, a
        one shot's terminal count if still ahead."""
        if self.loaded_at is None:
            return None
        period = self.reload * NS // HZ or 1
        if self.periodic:
            n = (after - self.loaded_at) // period + 1
            return self.loaded_at + n * period
        end = self.loaded_at + period
        return end if not self.fired else None


class Pit8254:
    def __init__(self, now: Callable[[], int], irq0: Callable[[bool], None]) -> None:
        self.now = now
        self.irq0 = irq0
        self.channels = [Channel(), Channel(), Channel()]
        self.port61 = 0
        self.next_tick: int | None = None  # channel 0's next interrupt (ns)

    def port_write(self, port: int, value: int) -> None:
        now = self.now()
        if port == 0x43:
            sel = value >> 6
            if sel == 3:
                return  # read-back command: unused by Linux's PIT code
            ch = self.channels[sel]
            access = (value >> 4) & 3
            if access == 0:  # counter latch
                ch.latched = ch.count(now)
                return
            ch.access, ch.mode = access, (value >> 1) & 7
            if ch.mode > 5:
                ch.mode -= 4  # modes 6 and 7 are 2 and 3
            ch.write_msb = ch.read_msb = False
            ch.loaded_at, ch.fired = None, False  # a control word stops the count
            self._schedule(now)
            return
        if port == 0x61:
            self.port61 = value & 0x0F
            return
        ch = self.channels[port - 0x40]
        if ch.access == 3 and not ch.write_msb:
            ch.reload = (ch.reload & 0xFF00) | value
            ch.write_msb = True
            return
        if ch.access == 1:
            ch.reload = value
        elif ch.access == 2:
            ch.reload = value << 8
        else:
            ch.reload = (ch.reload & 0xFF) | (value << 8)
            ch.write_msb = False
        ch.reload = ch.reload or 0x10000
        ch.loaded_at, ch.fired = now, False
        self._schedule(now)

    def port_read(self, port: int) -> int:
        now = self.now()
        if port == 0x61:
            ch2 = self.channels[2]
            out = ch2.loaded_at is not None and not ch2.periodic and ch2.ticks(now) >= ch2.reload
            return self.port61 | (0x20 if out else 0)
        if port == 0x43:
            return 0xFF
        ch = self.channels[port - 0x40]
        value = ch.latched if ch.latched is not None else ch.count(now)
        if ch.access == 2 or (ch.access == 3 and ch.read_msb):
            ch.latched = None
            ch.read_msb = False
            return (value >> 8) & 0xFF
        if ch.access == 3:
            ch.read_msb = True
        else:
            ch.latched = None
        return value & 0xFF

    def _schedule(self, now: int) -> None:
        self.next_tick = self.channels[0].deadline(now)

    def advance(self, now: int) -> None:
        """Raise IRQ 0 (a pulse: the 8259 latches the edge) for a deadline passed by `now`."""
        if self.next_tick is None or now < self.next_tick:
            return
        ch = self.channels[0]
        if not ch.periodic:
            ch.fired = True
        self.irq0(True)
        self.irq0(False)
        self.next_tick = ch.deadline(now)
