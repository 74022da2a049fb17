"""Command line: `uintr-emu run [options] PROGRAM [ARGS...]`, `uintr-emu demo` and (explore.py)
`uintr-emu explore`. The options they share are defined in cliopts.py."""

from __future__ import annotations

import argparse
import os
import sys

from . import __version__, explore
from .cliopts import add_run_options, guest_environment, options_from, positive
from .demo import run_demo
from .hostsignals import HostSignal, HostSignals
from .system import cli as system_cli
from .trace.text import TextLog, parse_categories

EPILOG = """\
exit status: the guest's exit status; 128+N when a signal N ended it; 124 when --timeout,
--max-insns or a deadlock (every thread blocked, no timeout pending) stopped it; 130 (SIGINT,
Ctrl-C) or 143 (SIGTERM) when the emulator was told to stop; 2 for bad usage or a program that
cannot be loaded.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="uintr-emu",
        description="Run x86-64 Linux programs that use Intel User Interrupts (UINTR) on an "
                    "emulated multi-core machine.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("--version", action="version", version=f"uintr-emu {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = sub.add_parser(
        "run",
        help="run a static x86-64 Linux program",
        description="Run a static x86-64 Linux program. The guest's stdout and "
        "stderr pass through; the exit status is the guest's.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_run_options(run)
    run.add_argument(
        "--gdb",
        type=positive(),
        default=None,
        metavar="PORT",
        help="wait for gdb on 127.0.0.1:PORT before the first instruction (docs/gdb.md)",
    )
    run.add_argument("program", metavar="PROGRAM", help="the program to run")
    run.add_argument(
        "args", nargs=argparse.REMAINDER, metavar="ARGS", help="arguments passed to the program"
    )
    demo = sub.add_parser("demo", help="run the bundled UIPI demo and explain what happened")
    add_run_options(demo)
    explore.add_parser(sub)
    system_cli.add_parser(sub)
    return parser  # fmt: skip


def attach_observers(m, ns: argparse.Namespace):  # type: ignore[no-untyped-def]
    """Subscribe the --trace log and --stats; returns what to call when the run ends."""
    closers = []
    if ns.trace or ns.trace_file:
        kinds = parse_categories(ns.trace or "all")
        fd = 2
        if ns.trace_file:
            try:
                fd = os.open(ns.trace_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            except OSError as e:
                msg = f"cannot write the trace file {ns.trace_file}: {e.strerror}"
                raise ValueError(msg) from None
            closers.append(lambda: os.close(fd))
        m.subscribe(TextLog(kinds, fd))
    if ns.timeline or ns.timeline_png:
        for path in (ns.timeline, ns.timeline_png):
            if path:
                _check_writable(path)
        # lazy: the timeline (json) and --stats (statistics) are imports a plain run skips
        from .trace.png import render_png, require_matplotlib
        from .trace.timeline import Timeline

        tl = Timeline()
        m.subscribe(tl)
        if ns.timeline_png:
            try:
                require_matplotlib()  # before the run: a missing library is a usage error
            except RuntimeError as e:
                raise ValueError(str(e)) from None
            closers.append(lambda: render_png(tl, ns.timeline_png, cpus=ns.cpus))
        if ns.timeline:
            closers.append(lambda: tl.write(ns.timeline))
    if ns.stats:
        from .trace.stats import Stats  # lazy: see above

        stats = Stats()
        m.subscribe(stats)
        closers.insert(0, lambda: sys.stderr.write(
            stats.report(m.kernel.thread_insns, m.kernel.cpu_insns) + "\n"))  # fmt: skip

    def finish() -> None:
        for c in closers:
            c()

    return finish


def _check_writable(path: str) -> None:
    try:
        with open(path, "ab"):
            pass
    except OSError as e:
        raise ValueError(f"cannot write {path}: {e.strerror}") from None


def error(msg: str) -> int:
    sys.stderr.write(f"uintr-emu: error: {msg}\n")
    return 2


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    ns = parser.parse_args(argv)
    if ns.command is None:
        parser.print_help()
        return 2
    # SIGINT and SIGTERM end the command (hostsignals.py): a run returns the status itself,
    # anything else ends with HostSignal. With --gdb too: gdb's own Ctrl-C reaches the stub as
    # a packet, a signal to the emulator process ends the run (docs/gdb.md).
    try:
        with HostSignals() as signals:
            return _command(ns, signals)
    except HostSignal as e:
        sys.stderr.write(f"uintr-emu: {e.message}\n")
        return e.status


def _command(ns: argparse.Namespace, signals: HostSignals) -> int:
    # lazy: the engine (api, gdbstub: unicorn) takes ~0.5 s to import, not paid for --help
    # or a usage error
    from .api import Machine, ProgramError

    try:
        if ns.command == "explore":
            return explore.main(ns)
        if ns.command == "system":
            return system_cli.main(ns)  # SIGINT / SIGTERM end it as HostSignal (main)
        env = guest_environment(ns.setenv, ns.unsetenv)
        m = Machine(options_from(ns))
        finish = attach_observers(m, ns)
        if ns.command == "demo":
            with signals.running(m.end):
                return run_demo(m)
        m.load(ns.program, [ns.program, *ns.args], env)
        stub = None
        if ns.gdb is not None:
            from .gdbstub import GdbStub  # lazy: see above

            stub = GdbStub(m.kernel, ns.gdb)
            stub.attach()  # "uintr-emu: waiting for gdb on 127.0.0.1:PORT"
        status = None
        try:
            with signals.running(m.end):
                status = m.run().status
            return status
        finally:
            if stub is not None:
                stub.close(status)  # an exit packet even when a limit ended the run
            finish()
    except (ProgramError, ValueError, FileNotFoundError) as e:
        return error(str(e))
    except Exception as e:  # noqa: BLE001 - never a traceback for the user
        if os.environ.get("UINTR_EMU_DEBUG"):
            import traceback  # lazy: only this report needs it

            traceback.print_exc()
        sys.stderr.write(f"uintr-emu: internal error: {type(e).__name__}: {e} "
                         "(set UINTR_EMU_DEBUG=1 for details)\n")  # fmt: skip
        return 70


def entry() -> int:
    """The `uintr-emu` command and `python -m uintr_emu`: `main`, then the process exits at
    once. The interpreter's own exit would tear down every module and object, the engines
    among them (~10-15 ms, a tenth of a hello world), for nothing: by now every file is closed
    and the guest's output written. The normal exit stays for explore (its worker pools are
    the multiprocessing module's to clean up) and for a failing flush of Python's stdout (a
    closed pipe), which it reports as it always has."""
    status = main()
    if "multiprocessing" in sys.modules:
        return status
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except OSError:
        return status
    os._exit(status)
