"""`uintr-emu demo`: run the bundled UIPI demo, then explain what the hardware did."""

from __future__ import annotations

from pathlib import Path

from .cliopts import plural
from .trace import Event, Recorder

DEMO = "uipi_demo"


def demo_name(abi: str, name: str = DEMO) -> str:
    """The build of `name` for a --uintr-abi: examples/Makefile makes `NAME` (next, 471-479) and
    `NAME-rfc` (RFC v1 at 449-454); other RFC numberings have no bundled build."""
    if abi == "next":
        return name
    if abi == "rfc":
        return f"{name}-rfc"
    raise ValueError(
        f"the bundled demo is built for --uintr-abi next and rfc, not {abi}; "
        f"build examples/{name}.c with -DUINTR_ABI_RFC -DUINTR_RFC_BASE=N and use 'uintr-emu run'"
    )


def demo_program(name: str = DEMO) -> Path:
    """The installed copy (package data, setup.py), else the source tree's examples/bin."""
    here = Path(__file__).resolve()
    for base in (here.parent / "demos", here.parents[2] / "examples" / "bin"):
        p = base / name
        if p.exists():
            return p
    raise FileNotFoundError(
        f"the bundled demo program {name!r} is missing (run 'make -C examples')"
    )


def explain(events: list[Event], cpus: int, abi: str) -> list[str]:
    """A few lines on each user interrupt: sender, notification, delivery, latency."""
    out = [f"What happened (uintr-emu demo: {plural(cpus, 'virtual CPU')}, '{abi}' UINTR "
           "syscalls):"]  # fmt: skip
    sends = [e for e in events if e.kind == "senduipi"]
    if not sends:
        return [*out, "  no SENDUIPI was executed."]
    for s in sends:
        f = s.fields
        out.append(
            f"  - thread {s.tid} on CPU {s.cpu} executed SENDUIPI with UITT index {f['index']}: "
            f"vector {f['vector']} posted to the receiver's UPID"
        )
        if f["notify"]:
            out.append(f"    and notification IPI {f['nv']:#x} sent to APIC {f['ndst']}")
        elif f["sn"]:
            out.append("    without an IPI: the receiver was not running (UPID.SN = 1);")
            out.append("    its kernel re-notifies it when it next returns to user mode")
        else:
            out.append("    without an IPI: a notification was already outstanding (UPID.ON = 1)")
        dlv = next((e for e in events if e.kind == "deliver" and e.vtime >= s.vtime
                    and e.fields["vector"] == f["vector"]), None)  # fmt: skip
        note = next((e for e in events if e.kind == "notification" and e.vtime >= s.vtime), None)
        if note is not None:
            out.append(f"  - CPU {note.cpu} processed the notification: PIR {note.fields['pir']:#x}"
                       f" moved into UIRR")  # fmt: skip
        if dlv is not None:
            lat = dlv.vtime - s.vtime
            out.append(
                f"  - CPU {dlv.cpu} delivered vector {dlv.fields['vector']} to thread {dlv.tid}: "
                f"handler {dlv.fields['handler']:#x}, frame at {dlv.fields['rsp']:#x}"
            )
            out.append(
                f"  - delivery came {plural(lat, 'guest instruction')} (virtual ns) after the "
                "SENDUIPI"
            )
    rets = [e for e in events if e.kind == "uiret"]
    if rets:
        out.append(f"  - the handler returned with UIRET ({plural(len(rets), 'time')})")
    return out


def run_demo(machine, name: str = DEMO) -> int:  # type: ignore[no-untyped-def]
    rec = Recorder()
    machine.subscribe(rec)
    prog = str(demo_program(demo_name(machine.options.uintr_abi, name)))
    machine.load(prog, [prog], [])
    status = machine.run().status
    import sys

    sys.stdout.flush()
    lines = explain(rec.events, machine.options.cpus, machine.options.uintr_abi)
    print("\n" + "\n".join(lines))
    return status
