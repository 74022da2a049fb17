"""`--stats`: per-CPU and per-thread counters and user-interrupt delivery latency."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from . import Event


@dataclass
class Stats:
    per_cpu: dict[int, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    per_thread: dict[int, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    latencies: list[int] = field(default_factory=list)  # SENDUIPI -> handler entry, virtual ns
    _inflight: dict[tuple[int, int], list[int]] = field(default_factory=dict)

    def __call__(self, ev: Event) -> None:
        k = ev.kind
        c, t = self.per_cpu[ev.cpu], self.per_thread[ev.tid]
        if k == "syscall":
            c["syscalls"] += 1
            t["syscalls"] += 1
        elif k == "senduipi":
            f = ev.fields
            for ctr in (c, t):
                ctr["uipi sent"] += 1
                ctr["uipi notified" if f["notify"] else "uipi suppressed (SN)" if f["sn"]
                    else "uipi coalesced (ON)"] += 1  # fmt: skip
            key = (f["upid"], f["vector"])
            pending = self._inflight.setdefault(key, [])
            if not pending:  # a later post of the same vector coalesces with this one
                pending.append(ev.vtime)
        elif k == "notification":
            c["notifications"] += 1
        elif k == "deliver":
            c["deliveries"] += 1
            t["deliveries"] += 1
            self._match_delivery(ev)
        elif k == "switch_in":
            c["context switches"] += 1

    def _match_delivery(self, ev: Event) -> None:
        vec = ev.fields["vector"]
        for (upid, v), pending in self._inflight.items():
            if v == vec and pending and upid == ev.fields.get("upid", upid):
                self.latencies.append(ev.vtime - pending.pop(0))
                return

    def report(self, insns_by_thread: dict[int, int], insns_by_cpu: dict[int, int]) -> str:
        lines = ["uintr-emu statistics (virtual ns = guest instructions at 1 per ns)"]
        for title, table, insns in (("CPU", self.per_cpu, insns_by_cpu),
                                    ("thread", self.per_thread, insns_by_thread)):  # fmt: skip
            keys = sorted(set(table) | set(insns))
            for key in keys:
                if title == "thread" and key == 0:
                    continue
                ctr: Any = table.get(key, Counter())
                parts = [f"instructions {insns.get(key, 0)}"]
                parts += [f"{name} {n}" for name, n in sorted(ctr.items())]
                lines.append(f"  {title} {key}: " + ", ".join(parts))
        if self.latencies:
            lat = sorted(self.latencies)
            lines.append(
                f"  delivery latency (SENDUIPI to handler entry): n={len(lat)} min {lat[0]} "
                f"median {int(statistics.median(lat))} max {lat[-1]} (virtual ns = instructions)"
            )
        else:
            lines.append("  delivery latency: no user interrupt was delivered")
        return "\n".join(lines)
