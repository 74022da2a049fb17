"""The event stream (uintr_emu.trace) and what is built on it: the --trace text log, --stats,
the --timeline JSON (Chrome trace-event format) and the --timeline-png picture.

Guest programs run in-process through the Python API (`Machine` + `Recorder`); the text log is
checked through the command line. The prebuilt UINTR examples come from examples/bin, the C
test programs from tests/programs (built with the `build_program` fixture).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from uintr_emu.api import Machine
from uintr_emu.options import Options
from uintr_emu.trace import Event, Recorder
from uintr_emu.trace.stats import Stats
from uintr_emu.trace.text import CATEGORIES, format_event, parse_categories
from uintr_emu.trace.timeline import CPU_PID, Timeline, TimelineModel

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / "examples" / "bin"

IA32_UINTR_HANDLER = 0x986
UINTR_KERNEL_VECTOR = 0xEB  # the kernel's "wake the waiting receivers" vector
EINTR = 4


def run_events(path, args=(), *, cpus=2, sinks=(), **options) -> tuple[int, list[Event]]:
    """Run a guest program in-process; returns (exit status, every event)."""
    m = Machine(Options(cpus=cpus, **options))
    rec = Recorder()
    m.subscribe(rec)
    for s in sinks:
        m.subscribe(s)
    m.load(str(path), [str(path), *args], ["PATH=/usr/bin:/bin", "LANG=C"], capture_output=True)
    result = m.run()
    return result.status, rec.events


def of(events: list[Event], kind: str, *, tid: int | None = None, **fields) -> list[Event]:
    """The events of one kind (of one thread) whose fields have the given values."""
    return [
        e
        for e in events
        if e.kind == kind
        and (tid is None or e.tid == tid)
        and all(e.fields.get(k) == v for k, v in fields.items())
    ]


def position(events: list[Event], ev: Event) -> int:
    return next(i for i, e in enumerate(events) if e is ev)


@pytest.fixture(scope="module")
def uipi_demo() -> list[Event]:
    status, events = run_events(BIN / "uipi_demo")
    assert status == 0
    return events


@pytest.fixture(scope="module")
def pingpong50() -> tuple[list[Event], Stats, Timeline]:
    stats, tl = Stats(), Timeline()
    status, events = run_events(BIN / "pingpong", ["50"], sinks=(stats, tl))
    assert status == 0
    return events, stats, tl


@pytest.fixture(scope="module")
def many_senders() -> tuple[list[Event], Stats, Timeline]:
    stats, tl = Stats(), Timeline()
    status, events = run_events(BIN / "many_senders", cpus=4, sinks=(stats, tl))
    assert status == 0
    return events, stats, tl


# --------------------------------------------------------------------------- the events


def test_every_event_has_the_common_fields(uipi_demo: list[Event]) -> None:
    known = set().union(*CATEGORIES.values())
    for e in uipi_demo:
        assert e.kind in known, e
        assert isinstance(e.vtime, int) and e.vtime >= 0
        assert isinstance(e.host, float) and e.host >= 0
        assert e.cpu in (0, 1)
        assert isinstance(e.tid, int) and isinstance(e.fields, dict)


def test_uipi_demo_hardware_events(uipi_demo: list[Event]) -> None:
    ev = uipi_demo
    (send,) = of(ev, "senduipi")
    f = send.fields
    assert f["index"] == 0 and f["vector"] == 0 and f["nv"] == 0xEC
    assert f["notify"] or f["sn"]  # the receiver sleeps in usleep: SN is set, no IPI
    assert f["notify"] == (f["target"] is not None)
    assert f["upid"] >= 0xFFFF_8000_0000_0000  # a kernel address
    (note,) = of(ev, "notification", upid=f["upid"])
    assert note.fields["pir"] == 1 and note.fields["uirr"] & 1
    (deliver,) = of(ev, "deliver")
    d = deliver.fields
    assert d["vector"] == 0 and d["upid"] == f["upid"] and d["rsp"] % 16 == 0
    handler_msrs = of(ev, "wrmsr", msr=IA32_UINTR_HANDLER)
    assert handler_msrs[0].fields["value"] == d["handler"] != 0
    assert handler_msrs[-1].fields["value"] == 0  # uintr_unregister_handler
    (uiret,) = of(ev, "uiret")
    assert uiret.tid == deliver.tid and uiret.fields["rip"] == d["rip"]
    assert uiret.fields["uif"] is True
    assert deliver.tid != send.tid
    assert of(ev, "stui", tid=deliver.tid)
    assert of(ev, "xsaves") and of(ev, "xrstors")
    order = [e.kind for e in ev if e.kind in ("senduipi", "notification", "deliver", "uiret")]
    assert order == ["senduipi", "notification", "deliver", "uiret"]
    for e in of(ev, "trap"):
        assert e.fields["vector"] == 6 and e.fields["rip"] > 0


def test_senduipi_outcomes_and_clui() -> None:
    _, ev = run_events(BIN / "pingpong", ["20"])
    sends = of(ev, "senduipi")
    assert len(sends) == 40
    for s in sends:
        f = s.fields
        outcome = "notify" if f["notify"] else "sn" if f["sn"] else "on"
        assert outcome != "notify" or (not f["sn"] and not f["on"] and f["target"] == f["ndst"])
    assert of(ev, "clui") and of(ev, "stui")
    assert all(e.fields["uif"] for e in of(ev, "uiret"))


def test_blocked_wait_events() -> None:
    status, ev = run_events(BIN / "blocked_wait")
    assert status == 0
    (block,) = of(ev, "block", wait="uintr")
    assert block.fields["deadline"] is not None  # uintr_wait(1000000, 0): a 1 s timeout
    kernel_ipis = of(ev, "ipi", vector=UINTR_KERNEL_VECTOR)
    assert kernel_ipis
    (irq,) = of(ev, "interrupt", vector=UINTR_KERNEL_VECTOR)
    assert irq.fields["handler"] == "wake waiters"
    pos = {id(e): i for i, e in enumerate(ev)}
    (wake,) = (e for e in of(ev, "wake", tid=block.tid) if pos[id(e)] > pos[id(block)])
    assert wake.fields["result"] == -EINTR
    (deliver,) = of(ev, "deliver")
    assert deliver.tid == block.tid
    assert pos[id(block)] < pos[id(kernel_ipis[0])] < pos[id(irq)] < pos[id(wake)]
    assert pos[id(wake)] < pos[id(deliver)]


def test_thread_lifecycle_events(build_program) -> None:
    status, ev = run_events(build_program("threads"), cpus=4)
    assert status == 0
    starts = of(ev, "thread_start")
    main = starts[0]
    assert main.tid == main.fields["pid"]
    pid = main.fields["pid"]
    assert len(starts) > 2 and all(e.fields["pid"] == pid for e in starts)
    exits = of(ev, "thread_exit")
    assert {e.tid for e in exits} == {e.tid for e in starts}
    (pexit,) = of(ev, "process_exit")
    assert pexit.fields == {"pid": pid, "status": 0}
    # Every thread is switched in and out on a CPU, alternately, once per CPU slice.
    running: dict[int, int | None] = {}
    for e in ev:
        if e.kind == "switch_in":
            assert running.get(e.cpu) is None, e
            assert e.fields["pid"] == pid
            running[e.cpu] = e.tid
        elif e.kind == "switch_out":
            assert running.get(e.cpu) == e.tid, e
            assert e.fields["state"] in ("runnable", "blocked", "dead")
            running[e.cpu] = None
    assert all(v is None for v in running.values())
    assert {e.tid for e in of(ev, "switch_in")} == {e.tid for e in starts}
    assert {e.cpu for e in of(ev, "switch_in")} == {0, 1, 2, 3}
    assert of(ev, "block", wait="futex") and of(ev, "wake")


def test_signal_and_sigreturn_events(build_program) -> None:
    status, ev = run_events(build_program("signals"), cpus=2)
    assert status == 0
    signals = of(ev, "signal")
    assert {10, 12, 11} <= {e.fields["signo"] for e in signals}  # SIGUSR1, SIGUSR2, SIGSEGV
    assert all(e.fields["action"] == "handler" for e in signals)
    assert all(isinstance(e.fields["code"], int) for e in signals)
    returns = of(ev, "sigreturn")
    assert len(returns) == len(signals)
    for s in signals:  # each handler returns on its own thread
        assert any(r.tid == s.tid and r.vtime >= s.vtime for r in returns)
    assert all(r.fields["rip"] > 0 for r in returns)


def test_signal_round_trips() -> None:
    status, ev = run_events(BIN / "ipc_bench", ["5"])  # signal round trips: SIGUSR1/SIGUSR2
    assert status == 0
    assert len(of(ev, "signal", signo=10)) == 5 and len(of(ev, "signal", signo=12)) == 5
    assert len(of(ev, "sigreturn")) == 10


def test_syscall_and_syscall_return_pair_up(build_program) -> None:
    status, ev = run_events(build_program("threads"), cpus=2)
    assert status == 0
    open_call: dict[int, Event] = {}
    pairs = 0
    for e in ev:
        if e.kind == "syscall":
            assert e.tid not in open_call, (open_call[e.tid], e)
            assert isinstance(e.fields["nr"], int) and e.fields["name"]
            assert isinstance(e.fields["args"], list)
            open_call[e.tid] = e
        elif e.kind == "syscall_return":
            call = open_call.pop(e.tid)
            assert (call.fields["nr"], call.fields["name"]) == (e.fields["nr"], e.fields["name"])
            assert call.cpu == e.cpu and call.vtime <= e.vtime
            pairs += 1
    # Only exit_group (the process ends inside it) has no syscall_return.
    assert [c.fields["name"] for c in open_call.values()] == ["exit_group"]
    writes = [e for e in of(ev, "syscall_return", name="write")]
    assert writes and all(e.fields["result"] > 0 for e in writes)
    assert pairs > 20


def test_apic_events_of_a_notification(pingpong50) -> None:
    ev = pingpong50[0]
    for s in of(ev, "senduipi", notify=True):
        # The notification IPI is sent inside SENDUIPI, before the instruction's event.
        ipi = ev[position(ev, s) - 1]
        assert ipi.kind == "ipi" and ipi.cpu == s.cpu
        assert ipi.fields == {"target": s.fields["target"], "vector": s.fields["nv"]}


# --------------------------------------------------------------------------- text log


LINE = re.compile(r"^\s*(\d+) cpu(\d+) tid (\d+)\s+([a-z_]+)((?:\s+[a-z_]+=\S+)*)$")


def test_text_log_lines_parse(run_cli) -> None:
    rc, out, err = run_cli("run", "--cpus", "2", "--trace", "uintr", str(BIN / "uipi_demo"))
    assert rc == 0, err
    assert out.decode().endswith("Success\n")
    kinds = Counter()
    for line in err.decode().splitlines():
        m = LINE.match(line)
        assert m, line
        kinds[m.group(4)] += 1
        assert m.group(4) in CATEGORIES["uintr"], line
        for kv in m.group(5).split():
            key, value = kv.split("=", 1)
            assert value, line
    assert kinds["senduipi"] == kinds["deliver"] == kinds["uiret"] == 1
    assert kinds["wrmsr"] > 0


def test_text_log_format_of_one_event() -> None:
    ev = Event(
        "senduipi",
        1234,
        0.5,
        1,
        1002,
        {"index": 0, "vector": 3, "upid": 0xFFFF8880, "sn": False, "target": None},
    )
    line = format_event(ev)
    assert line.split() == [
        "1234",
        "cpu1",
        "tid",
        "1002",
        "senduipi",
        "index=0",
        "vector=3",
        "upid=0xffff8880",
        "sn=false",
        "target=none",
    ]


def test_trace_categories() -> None:
    assert parse_categories("uintr,apic") == CATEGORIES["uintr"] | CATEGORIES["apic"]
    assert parse_categories("all") == frozenset().union(*CATEGORIES.values())
    with pytest.raises(ValueError, match="unknown trace category 'nope'"):
        parse_categories("sched,nope")


def test_unknown_trace_category_is_one_error_line(run_cli) -> None:
    rc, out, err = run_cli("run", "--trace", "uintr,bogus", str(BIN / "uipi_demo"))
    assert rc == 2 and out == b""
    lines = err.decode().splitlines()
    assert lines[0].startswith("uintr-emu: error: ") and "bogus" in lines[0], lines
    assert lines[1:] == ["usage: uintr-emu run [options] PROGRAM [ARGS...] (uintr-emu run --help)"]


# --------------------------------------------------------------------------- stats


def test_stats_many_senders(many_senders) -> None:
    _, stats, _ = many_senders
    total: Counter[str] = Counter()
    for c in stats.per_cpu.values():
        total.update(c)
    assert total["deliveries"] == 400
    assert total["uipi sent"] == 400
    assert total["uipi sent"] == (
        total["uipi notified"] + total["uipi suppressed (SN)"] + total["uipi coalesced (ON)"]
    )
    assert len(stats.latencies) == 400 and min(stats.latencies) >= 0
    per_thread = {tid: c["uipi sent"] for tid, c in stats.per_thread.items() if c["uipi sent"]}
    assert sorted(per_thread.values()) == [100, 100, 100, 100]
    receivers = [tid for tid, c in stats.per_thread.items() if c["deliveries"]]
    assert len(receivers) == 1 and stats.per_thread[receivers[0]]["deliveries"] == 400


def test_stats_pingpong(pingpong50) -> None:
    events, stats, _ = pingpong50
    deliveries = sum(c["deliveries"] for c in stats.per_cpu.values())
    sent = sum(c["uipi sent"] for c in stats.per_cpu.values())
    assert deliveries == sent == 100
    assert sum(c["notifications"] for c in stats.per_cpu.values()) == len(
        of(events, "notification")
    )
    assert sum(c["context switches"] for c in stats.per_cpu.values()) == len(
        of(events, "switch_in")
    )
    assert sum(c["syscalls"] for c in stats.per_cpu.values()) == len(of(events, "syscall"))
    assert len(stats.latencies) == deliveries and min(stats.latencies) >= 0
    report = stats.report({}, {})
    assert "delivery latency (SENDUIPI to handler entry): n=100 " in report


def test_run_is_deterministic() -> None:
    def key(events: list[Event]):
        return [(e.kind, e.vtime, e.cpu, e.tid, e.fields) for e in events]

    a = run_events(BIN / "many_senders", cpus=4)
    b = run_events(BIN / "many_senders", cpus=4)
    assert a[0] == b[0] == 0
    assert key(a[1]) == key(b[1])


# --------------------------------------------------------------------------- timeline


def validate_trace_events(doc: dict) -> dict[str, list[dict]]:
    """Check the Chrome trace-event format rules we rely on; returns the events by phase."""
    assert set(doc) >= {"traceEvents"} and doc.get("displayTimeUnit") in ("ns", "ms")
    by_ph: dict[str, list[dict]] = {}
    for e in doc["traceEvents"]:
        ph = e["ph"]
        by_ph.setdefault(ph, []).append(e)
        assert isinstance(e["name"], str) and e["name"]
        assert isinstance(e["pid"], int) and isinstance(e["tid"], int)
        if ph == "M":
            assert e["name"] in (
                "process_name",
                "thread_name",
                "process_sort_index",
                "thread_sort_index",
            )
            assert "name" in e["args"] or "sort_index" in e["args"]
            continue
        assert isinstance(e["ts"], float | int) and e["ts"] >= 0, e
        if ph == "X":
            assert isinstance(e["dur"], float | int) and e["dur"] >= 0, e
        elif ph == "i":
            assert e.get("s", "t") in ("t", "p", "g")
        elif ph in ("s", "f"):
            assert "id" in e and e["cat"] == "uipi"
            if ph == "f":
                assert e["bp"] == "e"
        else:
            raise AssertionError(f"unexpected phase {ph!r}: {e}")
    # Flow starts and finishes pair up by id (and name and cat).
    starts = {e["id"]: e for e in by_ph.get("s", [])}
    finishes = {e["id"]: e for e in by_ph.get("f", [])}
    assert len(starts) == len(by_ph.get("s", [])) and len(finishes) == len(by_ph.get("f", []))
    assert starts.keys() == finishes.keys()
    for i, s in starts.items():
        assert (s["name"], s["cat"]) == (finishes[i]["name"], finishes[i]["cat"])
    # Every track's complete events nest properly (what Perfetto needs to keep them all).
    tracks: dict[tuple[int, int], list[tuple[float, float]]] = {}
    for e in by_ph.get("X", []):
        tracks.setdefault((e["pid"], e["tid"]), []).append((e["ts"], e["ts"] + e["dur"]))
    eps = 1e-9
    for spans in tracks.values():
        stack: list[float] = []
        for start, end in sorted(spans, key=lambda se: (se[0], -(se[1] - se[0]))):
            while stack and stack[-1] <= start + eps:
                stack.pop()
            assert not stack or end <= stack[-1] + eps, (start, end, stack)
            stack.append(end)
    # Every track is named.
    named = {(e["pid"], e["tid"]) for e in by_ph["M"] if e["name"] == "thread_name"}
    procs = {e["pid"] for e in by_ph["M"] if e["name"] == "process_name"}
    for e in doc["traceEvents"]:
        if e["ph"] != "M":
            assert (e["pid"], e["tid"]) in named and e["pid"] in procs, e
    return by_ph


def inside(ts: float, slices: list[dict]) -> dict | None:
    for x in slices:
        if x["ts"] - 1e-9 <= ts <= x["ts"] + x["dur"] + 1e-9:
            return x
    return None


def check_flows(by_ph: dict[str, list[dict]]) -> int:
    """Each flow starts inside a SENDUIPI slice of its sending thread and finishes inside a
    handler slice of its receiving thread; returns the number of flows."""
    xs: dict[tuple[int, int], list[dict]] = {}
    for x in by_ph.get("X", []):
        xs.setdefault((x["pid"], x["tid"]), []).append(x)
    for s in by_ph.get("s", []):
        x = inside(s["ts"], [x for x in xs[(s["pid"], s["tid"])] if x["name"].startswith("SEND")])
        assert x is not None, s
    for f in by_ph.get("f", []):
        handlers = [x for x in xs[(f["pid"], f["tid"])] if x["name"].startswith("handler")]
        # The arrow points at the handler's entry.
        assert any(abs(x["ts"] - f["ts"]) < 1e-9 for x in handlers), f
    return len(by_ph.get("s", []))


def timeline_doc(tl: Timeline, tmp_path: Path) -> dict:
    path = tmp_path / "timeline.json"
    tl.write(path)
    return json.loads(path.read_text())


def test_timeline_pingpong(pingpong50, tmp_path: Path) -> None:
    events, _, tl = pingpong50
    by_ph = validate_trace_events(timeline_doc(tl, tmp_path))
    assert check_flows(by_ph) == len(of(events, "senduipi")) == 100
    xs = by_ph["X"]
    handlers = [x for x in xs if x["name"].startswith("handler vector ")]
    assert len(handlers) == 100
    assert Counter(x["name"] for x in handlers) == {"handler vector 1": 50, "handler vector 2": 50}
    cpu_slices = [x for x in xs if x["pid"] == CPU_PID]
    assert {x["name"] for x in cpu_slices} == {"tid 1001", "tid 1002"}
    assert len(cpu_slices) == len(of(events, "switch_in"))
    blocked = [x for x in xs if x["name"].startswith("blocked: ")]
    assert {x["name"] for x in blocked} == {"blocked: futex"}
    assert all("host_s" in x["args"] and "vtime_ns" in x["args"] for x in xs)
    instants = Counter(i["name"].split()[0] for i in by_ph["i"])
    assert instants["syscall"] == len(of(events, "syscall"))
    assert instants["notification"] == 100 and instants["IPI"] == len(of(events, "ipi"))
    names = {e["args"]["name"] for e in by_ph["M"] if e["name"] == "thread_name"}
    assert names == {"cpu0", "cpu1", "tid 1001", "tid 1002"}
    procs = {e["args"]["name"] for e in by_ph["M"] if e["name"] == "process_name"}
    assert procs == {"CPUs", "pid 1001"}


def test_timeline_many_senders(many_senders, tmp_path: Path) -> None:
    events, _, tl = many_senders
    by_ph = validate_trace_events(timeline_doc(tl, tmp_path))
    assert check_flows(by_ph) == 400
    # Each sender's flows all end on the one receiving thread.
    (receiver,) = {(f["pid"], f["tid"]) for f in by_ph["f"]}
    assert receiver[1] == of(events, "deliver")[0].tid


@pytest.mark.parametrize(
    "name,args,cpus",
    [
        ("uipi_demo", (), 2),
        ("self_ipi", (), 1),
        ("blocked_wait", (), 2),
        ("fork_ipc", (), 2),
        ("ipc_bench", ("20",), 4),
        ("pingpong", ("30",), 1),
        ("threads_demo", (), 3),
    ],
)
def test_timeline_is_valid_for_every_example(name, args, cpus, tmp_path: Path) -> None:
    tl = Timeline()
    status, events = run_events(BIN / name, args, cpus=cpus, sinks=(tl,))
    assert status == 0
    by_ph = validate_trace_events(timeline_doc(tl, tmp_path))
    assert check_flows(by_ph) == len(of(events, "senduipi"))  # every send here is delivered
    assert len(by_ph.get("f", [])) == len(by_ph.get("s", []))
    if name == "fork_ipc":  # two processes: the flow crosses from the child to the parent
        (f,) = by_ph["f"]
        (s,) = by_ph["s"]
        assert f["pid"] != s["pid"]


def test_timeline_coalesced_posts_point_to_one_delivery() -> None:
    def ev(kind, vtime, cpu, tid, **fields):
        return Event(kind, vtime, 0.0, cpu, tid, fields)

    upid = 0xFFFF_8880_0000_0000
    model = TimelineModel()
    stream = [
        ev("thread_start", 0, 0, 1001, pid=1001),
        ev("switch_in", 0, 0, 1001, pid=1001),
        ev("thread_start", 0, 1, 1002, pid=1001),
        ev("switch_in", 0, 1, 1002, pid=1001),
        # two posts of vector 3 while the receiver is switched out (SN): one delivery
        ev(
            "senduipi",
            100,
            1,
            1002,
            index=0,
            vector=3,
            upid=upid,
            sn=True,
            on=False,
            notify=False,
            nv=0xEC,
            ndst=0,
            target=None,
        ),
        ev(
            "senduipi",
            150,
            1,
            1002,
            index=0,
            vector=3,
            upid=upid,
            sn=True,
            on=False,
            notify=False,
            nv=0xEC,
            ndst=0,
            target=None,
        ),
        ev("notification", 200, 0, 1001, upid=upid, pir=8, uirr=8),
        # a third post after the notification belongs to the next delivery
        ev(
            "senduipi",
            210,
            1,
            1002,
            index=0,
            vector=3,
            upid=upid,
            sn=False,
            on=True,
            notify=False,
            nv=0xEC,
            ndst=0,
            target=None,
        ),
        ev(
            "deliver", 220, 0, 1001, vector=3, rip=0x401000, handler=0x402000, rsp=0x7000, upid=upid
        ),
        ev("uiret", 230, 0, 1001, rip=0x401000, rsp=0x7020, uif=True),
        ev("notification", 240, 0, 1001, upid=upid, pir=8, uirr=8),
        ev(
            "deliver", 250, 0, 1001, vector=3, rip=0x401000, handler=0x402000, rsp=0x7000, upid=upid
        ),
        ev("uiret", 260, 0, 1001, rip=0x401000, rsp=0x7020, uif=True),
    ]
    for e in stream:
        model(e)
    assert model.flows == [(0, 0), (1, 0), (2, 1)]
    assert [(h.start, h.end) for h in model.handlers] == [(220, 230), (250, 260)]


def test_timeline_tracks_are_monotonic_despite_per_cpu_clocks() -> None:
    """A wake-up is stamped with the waker's clock, which may be behind the sleeper's."""

    def ev(kind, vtime, cpu, tid, **fields):
        return Event(kind, vtime, 0.0, cpu, tid, fields)

    model = TimelineModel()
    for e in [
        ev("switch_in", 0, 0, 1001, pid=1001),
        ev("block", 500, 0, 1001, wait="futex", deadline=None),
        ev("switch_out", 500, 0, 1001, state="blocked"),
        ev("wake", 300, 0, 1001, result=0),
        ev("switch_in", 300, 0, 1001, pid=1001),
        ev("switch_out", 200, 0, 1001, state="runnable"),
    ]:
        model(e)
    assert [(b.start, b.end) for b in model.blocked] == [(500, 500)]
    assert [(r.start, r.end) for r in model.runs] == [(0, 500), (500, 500)]


def test_timeline_closes_open_slices_at_the_end(tmp_path: Path) -> None:
    def ev(kind, vtime, cpu, tid, **fields):
        return Event(kind, vtime, 0.0, cpu, tid, fields)

    tl = Timeline(host_time=False)
    for e in [
        ev("switch_in", 10, 0, 1001, pid=1001),
        ev("switch_in", 20, 1, 1002, pid=1001),
        ev("deliver", 30, 1, 1002, vector=1, rip=1, handler=2, rsp=3, upid=0x1000),
        ev("syscall", 40, 1, 1002, nr=39, name="getpid", args=[]),
        ev("syscall_return", 40, 1, 1002, nr=39, name="getpid", result=1001),
        ev("syscall", 90, 0, 1001, nr=231, name="exit_group", args=[0]),
    ]:
        tl(e)
    doc = tl.to_json()
    by_ph = validate_trace_events(doc)
    xs = {(x["tid"], x["name"]): (x["ts"], x["dur"]) for x in by_ph["X"]}
    assert xs[(100, "tid 1001")] == (0.01, 0.08)  # cpu0: until the end of the trace
    assert xs[(101, "tid 1002")] == (0.02, 0.07)
    assert xs[(1002, "handler vector 1")] == (0.03, 0.01)  # until its thread's last event
    (getpid,) = (i for i in by_ph["i"] if i["name"] == "syscall getpid")
    assert getpid["args"]["result"] == 1001 and "host_s" not in getpid["args"]
    assert tl.to_json() == doc  # writing does not consume the trace


def test_timeline_is_deterministic(tmp_path: Path) -> None:
    docs = []
    for _ in range(2):
        tl = Timeline(host_time=False)
        run_events(BIN / "pingpong", ["10"], sinks=(tl,))
        path = tmp_path / "t.json"
        tl.write(path)
        docs.append(path.read_bytes())
    assert docs[0] == docs[1]


# --------------------------------------------------------------------------- PNG


def test_png_summary(pingpong50, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from uintr_emu.trace.png import render_png

    events, _, tl = pingpong50
    for name, source in (("events", events), ("timeline", tl)):
        path = tmp_path / f"{name}.png"
        render_png(source, path)
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_png_without_matplotlib_says_how_to_install(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "from uintr_emu.trace.png import render_png\n"
        "try:\n"
        f"    render_png([], {str(tmp_path / 'x.png')!r})\n"
        "except RuntimeError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(ROOT / "src")},
    )
    assert "pip install matplotlib" in out.stdout
    assert not (tmp_path / "x.png").exists()
