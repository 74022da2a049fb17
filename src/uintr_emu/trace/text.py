"""`--trace`: a stable one-line-per-event text log.

    <virtual ns> cpu<N> tid <T> <kind> key=value ...

Virtual time only (host time would make logs differ between identical runs); integers of 4096
and above print in hex.
"""

from __future__ import annotations

import os
from typing import Any

from . import Event

CATEGORIES: dict[str, frozenset[str]] = {
    "uintr": frozenset({"trap", "wrmsr", "xsaves", "xrstors", "clui", "stui", "uiret",
                        "senduipi", "notification", "deliver"}),
    "apic": frozenset({"ipi", "interrupt", "notification"}),
    "sched": frozenset({"switch_in", "switch_out", "block", "wake", "thread_start",
                        "thread_exit", "process_exit"}),
    "syscall": frozenset({"syscall", "syscall_return"}),
    "signal": frozenset({"signal", "sigreturn"}),
}  # fmt: skip


def parse_categories(spec: str) -> frozenset[str]:
    """'uintr,apic' -> the event kinds to log; 'all' is every category."""
    kinds: set[str] = set()
    for name in (p.strip() for p in spec.split(",") if p.strip()):
        if name == "all":
            for v in CATEGORIES.values():
                kinds |= v
        elif name in CATEGORIES:
            kinds |= CATEGORIES[name]
        else:
            known = ", ".join([*CATEGORIES, "all"])
            raise ValueError(f"unknown trace category {name!r} (known: {known})")
    if not kinds:
        raise ValueError("--trace needs at least one category")
    return frozenset(kinds)


def _value(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return str(v).lower()
    if isinstance(v, int):
        return hex(v) if v >= 4096 else str(v)
    if isinstance(v, list | tuple):
        return "[" + ",".join(_value(x) for x in v) + "]"
    return str(v).replace(" ", "_")


def format_event(ev: Event) -> str:
    fields = " ".join(f"{k}={_value(v)}" for k, v in ev.fields.items())
    return f"{ev.vtime:>12} cpu{ev.cpu} tid {ev.tid:<5} {ev.kind:<14} {fields}".rstrip()


class TextLog:
    """A sink writing the selected kinds to a host fd (stderr or --trace-file)."""

    def __init__(self, kinds: frozenset[str], fd: int):
        self.kinds = kinds
        self.fd = fd

    def __call__(self, ev: Event) -> None:
        if ev.kind in self.kinds:
            os.write(self.fd, (format_event(ev) + "\n").encode())
