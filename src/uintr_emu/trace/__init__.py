"""The event stream: what the hardware and the kernel did, where and when.

Hardware units report through their `events` callback, which is None unless somebody
subscribed, so tracing off costs one attribute test on the paths that would emit.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Event:
    kind: str
    vtime: int  # virtual ns (the machine's clock; 1 counted instruction = 1 ns per CPU)
    host: float  # host seconds since the run started
    cpu: int
    tid: int
    fields: dict[str, Any] = field(default_factory=dict)


Sink = Callable[[Event], None]


class Tracer:
    def __init__(self, clock: Callable[[], int]):
        self.clock = clock
        self.sinks: list[Sink] = []
        self.t0 = time.perf_counter()

    @property
    def enabled(self) -> bool:
        return bool(self.sinks)

    def subscribe(self, sink: Sink) -> None:
        self.sinks.append(sink)

    def emit(self, kind: str, cpu: int, tid: int, /, **fields: Any) -> None:
        ev = Event(kind, self.clock(), time.perf_counter() - self.t0, cpu, tid, fields)
        for s in self.sinks:
            s(ev)


class Recorder:
    """A sink that keeps every event (the demo, tests, the Python API)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, ev: Event) -> None:
        self.events.append(ev)

    def of(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.kind == kind]
