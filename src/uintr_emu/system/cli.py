"""`uintr-emu system --kernel BZIMAGE [--initrd CPIO] [--append CMDLINE] ...`: boot a Linux
kernel on the full-system machine, its serial console on stdout (docs/system.md)."""

from __future__ import annotations

import argparse
import sys

from ..cliopts import positive, size

DEFAULT_APPEND = "console=ttyS0"
DEFAULT_MEMORY = 512 << 20
MAX_MEMORY = 3 << 30  # RAM is one block below the 32-bit device window (docs/system.md)


def add_parser(sub) -> argparse.ArgumentParser:  # type: ignore[no-untyped-def]
    p = sub.add_parser(
        "system",
        help="boot a Linux kernel on the emulated machine (full-system mode)",
        description="Boot an x86-64 Linux kernel (a bzImage, e.g. Debian's vmlinuz) with its "
        "console on the first serial port, connected to stdout. The run ends when the guest "
        "halts or resets the machine (status 0), or at a limit (status 124).",
    )
    p.add_argument("--kernel", required=True, metavar="BZIMAGE", help="the kernel image")
    p.add_argument("--initrd", metavar="CPIO", help="an initramfs (cpio, newc format)")
    p.add_argument(
        "--append",
        default=DEFAULT_APPEND,
        metavar="CMDLINE",
        help=f"the kernel command line (default {DEFAULT_APPEND!r})",
    )
    p.add_argument(
        "--cpus", type=positive(), default=1, metavar="N", help="processors (only 1 so far)"
    )
    p.add_argument(
        "--memory",
        type=size,
        default=DEFAULT_MEMORY,
        metavar="SIZE",
        help="RAM, e.g. 512M (default 512M, at most 3G)",
    )
    p.add_argument(
        "--timeout",
        type=positive(float),
        default=None,
        metavar="SECONDS",
        help="stop after this much host time (exit status 124)",
    )
    p.add_argument(
        "--max-insns",
        type=positive(),
        default=None,
        metavar="N",
        help="stop after about N guest instructions of virtual time (exit status 124)",
    )
    p.add_argument(
        "--stats", action="store_true", help="print the run's counts and times on stderr at the end"
    )
    return p  # type: ignore[no-any-return]


def main(ns: argparse.Namespace) -> int:
    """Boot as `ns` says; one error line for bad input."""
    # lazy: the engine takes ~0.5 s to import, not paid for `uintr-emu --help` (cli.py)
    from ..engine.errors import EngineError
    from .boot import BootError
    from .machine import SystemMachine

    if ns.cpus != 1:
        return _error("only --cpus 1 is supported so far (docs/system.md, 'Missing')")
    if not 16 << 20 <= ns.memory <= MAX_MEMORY:
        return _error("--memory must be between 16M and 3G")
    try:
        with open(ns.kernel, "rb") as f:
            image = f.read()
        initrd = None
        if ns.initrd is not None:
            with open(ns.initrd, "rb") as f:
                initrd = f.read()
    except OSError as e:
        return _error(f"{e.filename}: {e.strerror}")
    out = sys.stdout.buffer

    def console(data: bytes) -> None:
        out.write(data)
        if b"\n" in data:  # line by line, as a terminal on the serial line would show it
            out.flush()

    m = SystemMachine(ns.memory, console)
    try:
        m.load_linux(image, initrd, ns.append)
        result = m.run(timeout=ns.timeout, max_insns=ns.max_insns)
    except (BootError, EngineError) as e:
        out.flush()
        return _error(str(e))
    out.flush()
    messages = {
        "timeout": "the --timeout passed",
        "max-insns": "the --max-insns limit was reached",
        "triple fault": "the processor shut down (triple fault)",
        "idle": "the processor sleeps with no timer armed and nothing to wake it",
    }
    if result.reason in messages:
        sys.stderr.write(f"uintr-emu: {messages[result.reason]}\n")
    if ns.stats:
        c = m.cpu
        sys.stderr.write(
            f"uintr-emu: {result.reason} after {result.host_seconds:.1f} s host time, "
            f"{result.instructions / 1e9:.3f} s virtual; {c.exceptions} exceptions, "
            f"{c.interrupts} interrupts, {c.syscalls} system calls delivered; {m.slices} "
            f"slices, {m.tsc_reads} TSC reads\n"
        )
    return result.status


def _error(msg: str) -> int:
    sys.stderr.write(f"uintr-emu: error: {msg}\n")
    return 2
