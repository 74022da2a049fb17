"""`--timeline`: the run as a Chrome trace-event JSON file (ui.perfetto.dev, chrome://tracing).

Tracks: a process "CPUs" with one thread per virtual CPU, whose slices are the guest threads
that ran there (switch_in to switch_out); then one process per guest process with one thread
track per guest thread: user-interrupt handlers (deliver to UIRET), blocked intervals (block to
wake), a 1-ns "SENDUIPI" slice per send and instants for system calls, signals, notifications,
IPIs and interrupts. A flow arrow (cat "uipi") goes from each SENDUIPI to the handler of the
delivery it caused; posts of one vector that coalesce before a delivery all point to it.

Virtual time is kept per CPU by the emulator and CPUs take turns, so an event about a thread
can carry a time earlier than that thread's previous event (a wake-up stamped with the waker's
clock, a context switch stamped with its turn's start). Each track is therefore made monotonic:
an event's time is the largest of its own and those of the track's earlier events. The raw
time is kept in each event's args as `vtime_ns`, the host time as `host_s`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from . import Event

CPU_PID = 1  # the "CPUs" process; guest pids and tids start above 1000
CPU_TID_BASE = 100  # track of CPU n: tid CPU_TID_BASE + n
SEND_NS = 1  # the SENDUIPI slice: the instruction's nanosecond, ending at the event


def jsonable(v: Any) -> Any:
    """An event field for JSON: integers of 4096 and above as hex strings (as in the text log;
    they are addresses, and 64-bit values do not survive JavaScript's doubles)."""
    if isinstance(v, bool) or v is None or isinstance(v, float | str):
        return v
    if isinstance(v, int):
        return hex(v) if v >= 4096 else v
    if isinstance(v, list | tuple):
        return [jsonable(x) for x in v]
    return str(v)


@dataclass(slots=True)
class Span:
    """An interval on a track; `end` None while open."""

    pid: int
    tid: int
    cpu: int
    name: str
    cat: str
    start: int
    host: float
    vtime: int
    args: dict[str, Any] = field(default_factory=dict)
    end: int | None = None
    host_end: float | None = None


@dataclass(slots=True)
class Mark:
    """An instant on a thread's track (tid != 0) or on a CPU's track (tid == 0)."""

    pid: int
    tid: int
    cpu: int
    name: str
    cat: str
    t: int
    host: float
    vtime: int
    args: dict[str, Any]


class TimelineModel:
    """Intervals, instants and SENDUIPI -> delivery links derived from the event stream
    (shared by the JSON timeline and the PNG summary)."""

    def __init__(self) -> None:
        self.runs: list[Span] = []  # CPU tracks: pid/tid = the guest thread, cpu = the CPU
        self.handlers: list[Span] = []
        self.blocked: list[Span] = []
        self.sends: list[Span] = []  # 1-ns SENDUIPI slices; args hold the event's fields
        self.marks: list[Mark] = []
        self.flows: list[tuple[int, int]] = []  # (index in sends, index in handlers)
        self.pid_of: dict[int, int] = {}
        self.cpus: set[int] = set()
        self.t_end = 0
        self._tid_t: dict[int, int] = {}
        self._cpu_t: dict[int, int] = {}
        self._running: dict[int, Span] = {}  # cpu -> open run
        self._in_handler: dict[int, list[Span]] = {}  # tid -> open handlers (innermost last)
        self._blocked: dict[int, Span] = {}
        self._syscall: dict[int, Mark] = {}  # tid -> its last syscall instant, for the result
        # Posted sends not yet delivered, per UPID and vector: in PIR, then (after a
        # notification moved the bit) in UIRR.
        self._pir: dict[int, dict[int, list[int]]] = {}
        self._uirr: dict[int, dict[int, list[int]]] = {}
        self._dispatch = {
            name[4:]: getattr(self, name) for name in dir(self) if name.startswith("_on_")
        }

    # --- time ----------------------------------------------------------------------------

    def _thread_time(self, ev: Event) -> int:
        t = max(ev.vtime, self._tid_t.get(ev.tid, 0))
        self._tid_t[ev.tid] = t
        return t

    def _cpu_time(self, cpu: int, t: int) -> int:
        t = max(t, self._cpu_t.get(cpu, 0))
        self._cpu_t[cpu] = t
        return t

    def thread_end(self, tid: int) -> int:
        return self._tid_t.get(tid, self.t_end)

    # --- events --------------------------------------------------------------------------

    def __call__(self, ev: Event) -> None:
        k, f, tid, cpu = ev.kind, ev.fields, ev.tid, ev.cpu
        self.cpus.add(cpu)
        if tid:
            t = self._thread_time(ev)
            if tid not in self.pid_of:
                self.pid_of[tid] = f["pid"] if k in ("thread_start", "switch_in") else tid
        else:
            t = self._cpu_time(cpu, ev.vtime)
        self.t_end = max(self.t_end, t)
        handler = self._dispatch.get(k)
        if handler is not None:
            handler(ev, t, self.pid_of.get(tid, tid))

    def _mark(self, ev: Event, t: int, pid: int, name: str, cat: str) -> Mark:
        m = Mark(
            pid,
            ev.tid,
            ev.cpu,
            name,
            cat,
            t,
            ev.host,
            ev.vtime,
            {k: jsonable(v) for k, v in ev.fields.items()},
        )
        self.marks.append(m)
        return m

    def _on_switch_in(self, ev: Event, t: int, pid: int) -> None:
        self.pid_of[ev.tid] = ev.fields["pid"]
        prev = self._running.pop(ev.cpu, None)
        start = self._cpu_time(ev.cpu, t)
        if prev is not None:  # no switch_out seen: close it here
            self._close(prev, start, ev.host)
        self._running[ev.cpu] = Span(
            ev.fields["pid"],
            ev.tid,
            ev.cpu,
            f"tid {ev.tid}",
            "sched",
            start,
            ev.host,
            ev.vtime,
            {"pid": ev.fields["pid"]},
        )

    def _on_switch_out(self, ev: Event, t: int, pid: int) -> None:
        run = self._running.get(ev.cpu)
        if run is None or run.tid != ev.tid:
            return  # subscribed in the middle of a slice
        del self._running[ev.cpu]
        run.args["state"] = ev.fields.get("state")
        self._close(run, self._cpu_time(ev.cpu, t), ev.host)

    def _close(self, span: Span, end: int, host: float) -> None:
        span.end = max(end, span.start)
        span.host_end = host
        if span.cat == "sched":
            self.runs.append(span)

    def _on_deliver(self, ev: Event, t: int, pid: int) -> None:
        f = ev.fields
        vec = f["vector"]
        h = Span(
            pid,
            ev.tid,
            ev.cpu,
            f"handler vector {vec}",
            "uintr",
            t,
            ev.host,
            ev.vtime,
            {k: jsonable(v) for k, v in f.items()},
        )
        index = len(self.handlers)
        self.handlers.append(h)
        self._in_handler.setdefault(ev.tid, []).append(h)
        upid = f.get("upid")
        sends = self._uirr.get(upid, {}).pop(vec, None) or self._pir.get(upid, {}).pop(vec, None)
        for s in sends or ():
            self.flows.append((s, index))

    def _on_uiret(self, ev: Event, t: int, pid: int) -> None:
        stack = self._in_handler.get(ev.tid)
        if stack:
            h = stack.pop()
            h.end, h.host_end = t, ev.host
            h.args["uiret_rip"] = jsonable(ev.fields.get("rip"))

    def _on_senduipi(self, ev: Event, t: int, pid: int) -> None:
        f = ev.fields
        start = max(t - SEND_NS, 0)
        s = Span(
            pid,
            ev.tid,
            ev.cpu,
            f"SENDUIPI vector {f['vector']}",
            "uintr",
            start,
            ev.host,
            ev.vtime,
            {k: jsonable(v) for k, v in f.items()},
            end=t,
            host_end=ev.host,
        )
        self._pir.setdefault(f["upid"], {}).setdefault(f["vector"], []).append(len(self.sends))
        self.sends.append(s)

    def _on_notification(self, ev: Event, t: int, pid: int) -> None:
        f = ev.fields
        upid, pir = f["upid"], f["pir"]
        posted = self._pir.get(upid, {})
        while pir:
            vec = pir.bit_length() - 1
            pir &= ~(1 << vec)
            moved = posted.pop(vec, None)
            if moved:
                self._uirr.setdefault(upid, {}).setdefault(vec, []).extend(moved)
        self._mark(ev, t, pid, "notification", "uintr")

    def _on_block(self, ev: Event, t: int, pid: int) -> None:
        prev = self._blocked.pop(ev.tid, None)
        if prev is not None:
            prev.end, prev.host_end = t, ev.host
        wait = ev.fields.get("wait")
        self._blocked[ev.tid] = b = Span(
            pid,
            ev.tid,
            ev.cpu,
            f"blocked: {wait}",
            "sched",
            t,
            ev.host,
            ev.vtime,
            {k: jsonable(v) for k, v in ev.fields.items()},
        )
        self.blocked.append(b)

    def _on_wake(self, ev: Event, t: int, pid: int) -> None:
        b = self._blocked.pop(ev.tid, None)
        if b is not None:
            b.end, b.host_end = t, ev.host
            b.args["result"] = jsonable(ev.fields.get("result"))

    def _on_thread_exit(self, ev: Event, t: int, pid: int) -> None:
        for h in self._in_handler.pop(ev.tid, []):
            h.end, h.host_end = t, ev.host
        b = self._blocked.pop(ev.tid, None)
        if b is not None:
            b.end, b.host_end = t, ev.host
        self._mark(ev, t, pid, "thread_exit", "sched")

    def _on_process_exit(self, ev: Event, t: int, pid: int) -> None:
        self._mark(ev, t, pid, "process_exit", "sched")

    def _on_syscall(self, ev: Event, t: int, pid: int) -> None:
        self._syscall[ev.tid] = self._mark(ev, t, pid, f"syscall {ev.fields['name']}", "syscall")

    def _on_syscall_return(self, ev: Event, t: int, pid: int) -> None:
        m = self._syscall.pop(ev.tid, None)
        if m is not None and m.args.get("nr") == ev.fields.get("nr"):
            r = ev.fields.get("result")
            m.args["result"] = jsonable(r)  # None: blocked, restarted or exited

    def _on_signal(self, ev: Event, t: int, pid: int) -> None:
        f = ev.fields
        self._mark(ev, t, pid, f"signal {f.get('signo')} ({f.get('action')})", "signal")

    def _on_sigreturn(self, ev: Event, t: int, pid: int) -> None:
        self._mark(ev, t, pid, "sigreturn", "signal")

    def _on_ipi(self, ev: Event, t: int, pid: int) -> None:
        f = ev.fields
        self._mark(ev, t, pid, f"IPI to cpu{f.get('target')} vector {f.get('vector')}", "apic")

    def _on_interrupt(self, ev: Event, t: int, pid: int) -> None:
        f = ev.fields
        self._mark(ev, t, pid, f"interrupt {f.get('vector')} ({f.get('handler')})", "apic")

    def _on_clui(self, ev: Event, t: int, pid: int) -> None:
        self._mark(ev, t, pid, "CLUI", "uintr")

    def _on_stui(self, ev: Event, t: int, pid: int) -> None:
        self._mark(ev, t, pid, "STUI", "uintr")

    # --- results -------------------------------------------------------------------------

    def closed_runs(self) -> list[Span]:
        """Every CPU slice, those still running closed at the end of the trace."""
        out = list(self.runs)
        for cpu in sorted(self._running):
            r = self._running[cpu]
            out.append(
                Span(
                    r.pid,
                    r.tid,
                    r.cpu,
                    r.name,
                    r.cat,
                    r.start,
                    r.host,
                    r.vtime,
                    dict(r.args),
                    end=max(self.t_end, r.start),
                )
            )
        return out

    def end_of(self, span: Span) -> int:
        """A span's end; an open one ends with its thread's last event."""
        return span.end if span.end is not None else max(self.thread_end(span.tid), span.start)


class Timeline:
    """A sink collecting the run; `write(path)` saves it as a Chrome trace-event JSON file.

    >>> tl = Timeline()
    >>> machine.subscribe(tl)
    >>> machine.run()
    >>> tl.write("run.json")   # open in ui.perfetto.dev

    `host_time=False` leaves the host time out of the args, for byte-identical files from
    identical runs.
    """

    def __init__(self, *, host_time: bool = True) -> None:
        self.model = TimelineModel()
        self.host_time = host_time

    def __call__(self, ev: Event) -> None:
        self.model(ev)

    def trace_events(self) -> list[dict[str, Any]]:
        """The traceEvents list: metadata, then the flows, then slices and instants. (The flows
        come before the instants so that a viewer binds an arrow to the slice it starts or ends
        in, not to an instant at the same timestamp.)"""
        m = self.model
        us = _us
        host = self.host_time
        out: list[dict[str, Any]] = []
        # Metadata: name and order every track.
        out.append(
            {
                "name": "process_name",
                "ph": "M",
                "pid": CPU_PID,
                "tid": CPU_TID_BASE,
                "args": {"name": "CPUs"},
            }
        )
        out.append(
            {
                "name": "process_sort_index",
                "ph": "M",
                "pid": CPU_PID,
                "tid": CPU_TID_BASE,
                "args": {"sort_index": -1},
            }
        )
        for cpu in sorted(m.cpus):
            tid = CPU_TID_BASE + cpu
            out.append(
                {
                    "name": "thread_name",
                    "ph": "M",
                    "pid": CPU_PID,
                    "tid": tid,
                    "args": {"name": f"cpu{cpu}"},
                }
            )
            out.append(
                {
                    "name": "thread_sort_index",
                    "ph": "M",
                    "pid": CPU_PID,
                    "tid": tid,
                    "args": {"sort_index": cpu},
                }
            )
        threads: dict[int, list[int]] = {}
        for tid, pid in m.pid_of.items():
            threads.setdefault(pid, []).append(tid)
        for pid in sorted(threads):
            out.append(
                {
                    "name": "process_name",
                    "ph": "M",
                    "pid": pid,
                    "tid": pid,
                    "args": {"name": f"pid {pid}"},
                }
            )
            out.append(
                {
                    "name": "process_sort_index",
                    "ph": "M",
                    "pid": pid,
                    "tid": pid,
                    "args": {"sort_index": pid},
                }
            )
            for tid in sorted(threads[pid]):
                out.append(
                    {
                        "name": "thread_name",
                        "ph": "M",
                        "pid": pid,
                        "tid": tid,
                        "args": {"name": f"tid {tid}"},
                    }
                )
                out.append(
                    {
                        "name": "thread_sort_index",
                        "ph": "M",
                        "pid": pid,
                        "tid": tid,
                        "args": {"sort_index": tid},
                    }
                )

        def args(a: dict[str, Any], vtime: int, h: float | None, h_end: float | None = None):  # type: ignore[no-untyped-def]
            d = dict(a)
            d["vtime_ns"] = vtime
            if host and h is not None:
                d["host_s"] = round(h, 9)
                if h_end is not None:
                    d["host_end_s"] = round(h_end, 9)
            return d

        # Flows: SENDUIPI -> the handler of the delivery it caused.
        for n, (si, hi) in enumerate(m.flows, 1):
            s, h = m.sends[si], m.handlers[hi]
            out.append(
                {
                    "name": "UIPI",
                    "cat": "uipi",
                    "ph": "s",
                    "id": n,
                    "ts": us(s.start),
                    "pid": s.pid,
                    "tid": s.tid,
                }
            )
            out.append(
                {
                    "name": "UIPI",
                    "cat": "uipi",
                    "ph": "f",
                    "bp": "e",
                    "id": n,
                    "ts": us(h.start),
                    "pid": h.pid,
                    "tid": h.tid,
                }
            )

        def slice_(s: Span, pid: int, tid: int, end: int) -> dict[str, Any]:
            return {
                "name": s.name,
                "cat": s.cat,
                "ph": "X",
                "ts": us(s.start),
                "dur": us(end - s.start),
                "pid": pid,
                "tid": tid,
                "args": args(s.args | {"cpu": s.cpu}, s.vtime, s.host, s.host_end),
            }

        for r in m.closed_runs():
            out.append(slice_(r, CPU_PID, CPU_TID_BASE + r.cpu, r.end or r.start))
            out[-1]["args"]["tid"] = r.tid
        for spans in (m.handlers, m.blocked, m.sends):
            for s in spans:
                out.append(slice_(s, s.pid, s.tid, m.end_of(s)))
        for k in m.marks:
            pid, tid = (k.pid, k.tid) if k.tid else (CPU_PID, CPU_TID_BASE + k.cpu)
            out.append(
                {
                    "name": k.name,
                    "cat": k.cat,
                    "ph": "i",
                    "s": "t",
                    "ts": us(k.t),
                    "pid": pid,
                    "tid": tid,
                    "args": args(k.args | {"cpu": k.cpu}, k.vtime, k.host),
                }
            )
        return out

    def to_json(self) -> dict[str, Any]:
        return {"traceEvents": self.trace_events(), "displayTimeUnit": "ns"}

    def write(self, path: str | os.PathLike[str]) -> None:
        """Write the timeline (may be called again later; the trace is not consumed)."""
        events = self.trace_events()
        with open(path, "w", encoding="utf-8") as fh:
            fh.write('{"displayTimeUnit": "ns", "traceEvents": [\n')
            for i, e in enumerate(events):
                fh.write(json.dumps(e, separators=(",", ":")))
                fh.write(",\n" if i + 1 < len(events) else "\n")
            fh.write("]}\n")


def _us(ns: int) -> float:
    """Virtual ns -> trace-event microseconds."""
    return ns / 1000
