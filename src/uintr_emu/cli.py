"""Command line: `uintr-emu run [options] PROGRAM [ARGS...]` and `uintr-emu demo`."""

from __future__ import annotations

import argparse
import os
import sys
import traceback

from . import __version__
from .hw.cpu import CpuFeatures
from .options import (
    DEFAULT_CPUS,
    DEFAULT_MAX_PROCS,
    DEFAULT_MAX_THREADS,
    DEFAULT_SLICE,
    Options,
)

EPILOG = """\
exit status: the guest's exit status; 128+N when a signal N ended it; 124 when --timeout,
--max-insns or a deadlock (every thread blocked, no timeout pending) stopped it; 2 for bad usage
or a program that cannot be loaded.
"""


def _positive(kind: type = int):  # type: ignore[no-untyped-def]
    def parse(s: str):  # type: ignore[no-untyped-def]
        try:
            v = kind(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {s!r}") from None
        if v <= 0:
            raise argparse.ArgumentTypeError(f"must be positive: {s!r}")
        return v

    return parse


def _size(s: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    try:
        if s[-1:].lower() in units:
            return int(float(s[:-1]) * units[s[-1].lower()])
        return int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {s!r} (e.g. 512M)") from None


def _features(s: str) -> CpuFeatures:
    try:
        return CpuFeatures.parse(s)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _add_run_options(p: argparse.ArgumentParser) -> None:
    m = p.add_argument_group("machine")
    m.add_argument(
        "--cpus",
        type=_positive(),
        default=DEFAULT_CPUS,
        metavar="N",
        help=f"number of virtual CPUs (default {DEFAULT_CPUS})",
    )
    m.add_argument(
        "--cpu-features",
        type=_features,
        default=CpuFeatures(),
        metavar="SPEC",
        help="CPU features, e.g. +uintr,-uintr,+flexible-uiret (default: uintr on)",
    )
    m.add_argument(
        "--slice",
        type=_positive(),
        default=DEFAULT_SLICE,
        metavar="N",
        help="guest instructions per scheduling slice while two or more threads are "
        f"runnable (default {DEFAULT_SLICE})",
    )
    m.add_argument(
        "--realtime",
        action="store_true",
        help="time syscalls read the host clock (default: a deterministic virtual "
        "clock, 1 guest instruction = 1 ns)",
    )
    m.add_argument(
        "--seed",
        type=int,
        default=0,
        metavar="N",
        help="seed of the schedule and of the guest's random bytes: N != 0 varies slice lengths "
        "(0.5x-1.5x --slice) and thread placement reproducibly, and ends slices at any "
        "instruction; 0 is the plain schedule, sliced at block boundaries (default 0)",
    )
    m.add_argument(
        "--uintr-abi",
        choices=("next", "rfc"),
        default="next",
        help="Linux UINTR syscall ABI: 'next' (471-479) or 'rfc' (449-454)",
    )
    g = p.add_argument_group("guest")
    g.add_argument(
        "-E",
        dest="setenv",
        action="append",
        default=[],
        metavar="VAR=VALUE",
        help="set a variable in the guest's environment (repeatable)",
    )
    g.add_argument(
        "-U",
        dest="unsetenv",
        action="append",
        default=[],
        metavar="VAR",
        help="remove a variable from the guest's environment (repeatable)",
    )
    g.add_argument(
        "--root",
        metavar="DIR",
        default="/",
        help="the guest's file system root: every guest path (and a dynamic program's "
        "interpreter and libraries) resolves inside DIR and cannot leave it (default /)",
    )
    g.add_argument(
        "--max-memory",
        type=_size,
        default=None,
        metavar="SIZE",
        help="cap on the guest's mapped memory; mappings beyond it fail with ENOMEM",
    )
    g.add_argument(
        "--max-threads",
        type=_positive(),
        default=DEFAULT_MAX_THREADS,
        metavar="N",
        help="at most N threads in all processes together (a zombie process counts until "
        "reaped); beyond, clone/fork fail with EAGAIN and one note is printed "
        f"(default {DEFAULT_MAX_THREADS}; getrlimit(RLIMIT_NPROC) reports it)",
    )
    g.add_argument(
        "--max-procs",
        type=_positive(),
        default=DEFAULT_MAX_PROCS,
        metavar="N",
        help="at most N processes (zombies included); beyond, fork fails with EAGAIN and one "
        f"note is printed (default {DEFAULT_MAX_PROCS})",
    )
    lim = p.add_argument_group("limits and tracing")
    lim.add_argument(
        "--max-insns",
        type=_positive(),
        default=None,
        metavar="N",
        help="stop after N guest instructions (exit status 124; turns on counting, "
        "which is slower)",
    )
    lim.add_argument(
        "--timeout",
        type=_positive(float),
        default=None,
        metavar="SECONDS",
        help="stop after this much host time (exit status 124)",
    )
    lim.add_argument(
        "--strace",
        action="store_true",
        help="print each syscall as '[tid] name(args) = result' on stderr",
    )
    lim.add_argument(
        "--trace",
        metavar="CATEGORIES",
        default=None,
        help="log events, one line each, on stderr: a comma-separated list of "
        "uintr, apic, sched, syscall, signal, or all",
    )
    lim.add_argument(
        "--trace-file",
        metavar="PATH",
        default=None,
        help="write the --trace log to PATH instead of stderr (all categories if --trace is "
        "not given)",
    )
    lim.add_argument(
        "--timeline",
        metavar="PATH",
        default=None,
        help="write the run as a Chrome trace-event JSON file (open it in ui.perfetto.dev)",
    )
    lim.add_argument(
        "--timeline-png",
        metavar="PATH",
        default=None,
        help="draw a PNG summary of the run (needs matplotlib)",
    )
    lim.add_argument(
        "--stats",
        action="store_true",
        help="at exit, print per-CPU and per-thread counts and user-interrupt delivery "
        "latency on stderr",
    )


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
    _add_run_options(run)
    run.add_argument(
        "--gdb",
        type=_positive(),
        default=None,
        metavar="PORT",
        help="wait for gdb on 127.0.0.1:PORT before the first instruction (docs/gdb.md)",
    )
    run.add_argument("program", metavar="PROGRAM", help="the program to run")
    run.add_argument(
        "args", nargs=argparse.REMAINDER, metavar="ARGS", help="arguments passed to the program"
    )
    demo = sub.add_parser("demo", help="run the bundled UIPI demo and explain what happened")
    _add_run_options(demo)
    from .explore import add_parser as add_explore_parser

    add_explore_parser(sub)
    return parser  # fmt: skip


def guest_environment(setenv: list[str], unsetenv: list[str]) -> list[str]:
    env = dict(os.environ)
    for item in setenv:
        if "=" not in item:
            raise ValueError(f"-E expects VAR=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        env[k] = v
    for k in unsetenv:
        env.pop(k, None)
    return [f"{k}={v}" for k, v in env.items()]


def options_from(ns: argparse.Namespace) -> Options:
    return Options(
        cpus=ns.cpus, slice=ns.slice, realtime=ns.realtime, strace=ns.strace,
        max_insns=ns.max_insns, timeout=ns.timeout, seed=ns.seed, features=ns.cpu_features,
        uintr_abi=ns.uintr_abi, max_memory=ns.max_memory, root=_root(ns.root),
        max_threads=ns.max_threads, max_procs=ns.max_procs,
    )  # fmt: skip


def _root(path: str) -> str:
    if not os.path.isdir(path):
        raise ValueError(f"--root {path}: not a directory")
    return os.path.realpath(path)


def attach_observers(m, ns: argparse.Namespace):  # type: ignore[no-untyped-def]
    """Subscribe the --trace log and --stats; returns what to call when the run ends."""
    from .trace.stats import Stats
    from .trace.text import TextLog, parse_categories

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
        from .trace.timeline import Timeline

        for path in (ns.timeline, ns.timeline_png):
            if path:
                _check_writable(path)
        tl = Timeline()
        m.subscribe(tl)
        if ns.timeline_png:
            from .trace.png import render_png, require_matplotlib

            try:
                require_matplotlib()  # before the run: a missing library is a usage error
            except RuntimeError as e:
                raise ValueError(str(e)) from None
            closers.append(lambda: render_png(tl, ns.timeline_png, cpus=ns.cpus))
        if ns.timeline:
            closers.append(lambda: tl.write(ns.timeline))
    if ns.stats:
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
    from .api import Machine, ProgramError

    parser = build_parser()
    ns = parser.parse_args(argv)
    if ns.command is None:
        parser.print_help()
        return 2
    if ns.command == "explore":
        from .explore import main as explore_main

        return explore_main(ns)
    try:
        env = guest_environment(ns.setenv, ns.unsetenv)
        m = Machine(options_from(ns))
        finish = attach_observers(m, ns)
        if ns.command == "demo":
            from .demo import run_demo

            return run_demo(m)
        m.load(ns.program, [ns.program, *ns.args], env)
        stub = None
        if ns.gdb is not None:
            from .gdbstub import GdbStub

            stub = GdbStub(m.kernel, ns.gdb)
            stub.attach()  # "uintr-emu: waiting for gdb on 127.0.0.1:PORT"
        status = None
        try:
            status = m.run().status
            return status
        finally:
            if stub is not None:
                stub.close(status)  # an exit packet even when a limit ended the run
            finish()
    except (ProgramError, ValueError, FileNotFoundError) as e:
        return error(str(e))
    except KeyboardInterrupt:
        sys.stderr.write("uintr-emu: interrupted\n")
        return 130
    except Exception as e:  # noqa: BLE001 - never a traceback for the user
        if os.environ.get("UINTR_EMU_DEBUG"):
            traceback.print_exc()
        sys.stderr.write(f"uintr-emu: internal error: {type(e).__name__}: {e} "
                         "(set UINTR_EMU_DEBUG=1 for details)\n")  # fmt: skip
        return 70
