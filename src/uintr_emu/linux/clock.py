"""Time as the kernel tells it: the virtual clock (default) or the host's (--realtime).

Virtual time is the machine's: each CPU has a clock (machine.Cpu.now; one counted guest
instruction is one ns, kernel work is charged by the cost model in options.py). The run loop
gives the CPUs turns in rounds; `round_start` is the start of the current round, and a CPU's
turn starts at its own clock, never before the round. The kernel reads the clock of the CPU it
runs on. Deterministic mode starts the wall clock at DETERMINISTIC_EPOCH_NS and the monotonic
clock at one second (boot was one second ago, like a fresh VM).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ..options import DETERMINISTIC_EPOCH_NS

if TYPE_CHECKING:
    from .kernel import Kernel


class Clock:
    def __init__(self, k: Kernel, realtime: bool) -> None:
        self.k = k
        self.realtime = realtime
        self.round_start = 0  # virtual ns at which the current round of turns began

    def ns(self) -> int:
        """Virtual ns on the CPU the kernel runs on (between turns: the last one that ran)."""
        now = self.k.cpu.now()
        return now if now > self.round_start else self.round_start

    def monotonic_ns(self) -> int:
        if self.realtime:
            return time.monotonic_ns()
        return self.ns() + 1_000_000_000

    def realtime_ns(self) -> int:
        if self.realtime:
            return time.time_ns()
        return DETERMINISTIC_EPOCH_NS + self.ns()
