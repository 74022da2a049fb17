"""Command line: `uintr-emu run [options] PROGRAM [ARGS...]`, `uintr-emu demo` and (explore.py)
`uintr-emu explore`. The options they share are defined in cliopts.py."""

from __future__ import annotations

import argparse
import os
import sys

from . import __version__, explore
from .cliopts import (
    add_run_options,
    apply_log_items,
    guest_environment,
    options_from,
    port,
)
from .demo import run_demo
from .hostsignals import FORWARDED, HostSignal, HostSignals
from .system import cli as system_cli
from .trace.text import TextLog, parse_categories

EPILOG = """\
exit status: the guest's exit status; 128+N when a signal N ended it; 124 when --timeout,
--max-insns or a deadlock (every thread blocked, no timeout pending) stopped it; 130 (SIGINT,
Ctrl-C) or 143 (SIGTERM) when the emulator was told to stop; 2 for bad usage or a program that
cannot be loaded.

environment: UINTR_EMU_<OPTION> sets --<option> (UINTR_EMU_CPUS=2, UINTR_EMU_STRACE=1); the
command line wins. `uintr-emu [options] PROGRAM` is `uintr-emu run`; qemu-x86_64's -strace,
-g PORT, -L DIR, -cpu SPEC and -d ITEMS mean what they mean there.
"""
COMMANDS = ("run", "demo", "explore")
# The one line of usage after an error message (never argparse's whole usage).
SHORT_USAGE = {
    None: "usage: uintr-emu {run,demo,explore,system} ... or uintr-emu [options] PROGRAM [ARGS...] "
    "(uintr-emu --help)",
    "run": "usage: uintr-emu run [options] PROGRAM [ARGS...] (uintr-emu run --help)",
    "demo": "usage: uintr-emu demo [options] (uintr-emu demo --help)",
    "explore": "usage: uintr-emu explore [--seeds SPEC] [options] PROGRAM [ARGS...] "
    "(uintr-emu explore --help)",
    "system": "usage: uintr-emu system --kernel BZIMAGE [--initrd CPIO] [options] "
    "(uintr-emu system --help)",
}
ENV_PREFIX = "UINTR_EMU_"  # UINTR_EMU_CPUS=2 is --cpus 2 (README, "Command line")
_TRUE, _FALSE = ("1", "yes", "true", "on"), ("0", "no", "false", "off", "")


class UsageError(Exception):
    """A mistake on the command line: one error line and the command's usage line."""

    def __init__(self, message: str, command: str | None):
        super().__init__(message)
        self.command = command


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # type: ignore[no-untyped-def]  # argparse's: usage, exit
        command = self.prog.split()[1] if " " in self.prog else None
        if "the following arguments are required: PROGRAM" in message:
            message = "no PROGRAM given"
        elif message.startswith("argument COMMAND: invalid choice: "):
            word = message.split(": ")[2].split(" (")[0]
            message = f"unknown command {word}, and no file of that name"
        raise UsageError(message, command)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
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
        help="run an x86-64 Linux program (static or dynamic)",
        description="Run an x86-64 Linux program. The guest's stdout and "
        "stderr pass through; the exit status is the guest's.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_run_options(run)
    run.add_argument(
        "--gdb",
        "-g",
        type=port,
        default=None,
        metavar="PORT",
        help="wait for gdb on 127.0.0.1:PORT before the first instruction (docs/gdb.md; "
        "-g PORT as for qemu-user)",
    )
    run.add_argument("program", metavar="PROGRAM", help="the program to run")
    run.add_argument(
        "args", nargs=argparse.REMAINDER, metavar="ARGS", help="arguments passed to the program"
    )
    demo = sub.add_parser("demo", help="run the bundled UIPI demo and explain what happened")
    add_run_options(demo)
    explore.add_parser(sub)
    system_cli.add_parser(sub)
    parser.set_defaults(subparsers=sub.choices)
    return parser  # fmt: skip


def _value_options(p: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """The option strings of `p` that take a value, with their actions."""
    return {s: a for a in p._actions if a.option_strings and a.nargs != 0
            for s in a.option_strings}  # fmt: skip


def normalize(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """The command line argparse is given: `run` inserted where the first word is a program
    (an existing file) or one of run's options, as qemu-x86_64 is called; the UINTR_EMU_*
    variables as options right after the command (so that the command line overrides them);
    and an option's value that starts with '-' (--cpu-features -uintr) joined to it, which
    argparse would take for an option. Nothing after PROGRAM is touched."""
    subs = parser.get_default("subparsers")
    if argv and argv[0] not in COMMANDS and argv[0] not in ("-h", "--help", "--version"):
        if os.path.isfile(argv[0]) or argv[0].split("=")[0] in subs["run"]._option_string_actions:
            argv = ["run", *argv]
    if not argv or argv[0] not in subs:
        return argv
    sub = subs[argv[0]]
    values = _value_options(sub)
    out = [argv[0], *_env_options(sub)]
    i = 1
    while i < len(argv):
        word = argv[i]
        out.append(word)
        if word == "--" or not word.startswith("-") or word == "-":
            out += argv[i + 1 :]  # PROGRAM and its arguments
            break
        nxt = argv[i + 1] if i + 1 < len(argv) else None
        if word in values and nxt is not None:
            if nxt.startswith("-") and nxt not in sub._option_string_actions:
                out[-1] = f"{word}={nxt}" if len(word) > 2 else word + nxt
            else:
                out.append(nxt)
            i += 1
        i += 1
    return out


def _env_options(sub: argparse.ArgumentParser) -> list[str]:
    """UINTR_EMU_<OPTION> for each --option of `sub` (UINTR_EMU_CPUS, UINTR_EMU_STRACE, ...),
    as options; consumed, so that explore's runs and the guest do not see them."""
    out = []
    for a in sub._actions:
        long = next((o for o in a.option_strings if o.startswith("--")), None)
        if long is None or a.dest == "help":
            continue
        var = ENV_PREFIX + long[2:].upper().replace("-", "_")
        value = os.environ.pop(var, None)
        if value is None:
            continue
        if a.nargs == 0:  # a switch
            if value.lower() not in _TRUE + _FALSE:
                raise UsageError(f"{var}={value}: expected 1 or 0", sub.prog.split()[1])
            out += [long] if value.lower() in _TRUE else []
            continue
        if a.type is not None:
            try:
                a.type(value)  # type: ignore[operator]
            except (argparse.ArgumentTypeError, ValueError) as e:
                raise UsageError(f"{var}: {e}", sub.prog.split()[1]) from None
        out.append(f"{long}={value}")
    return out


def parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """The parsed command line; UsageError for any mistake."""
    argv = normalize(parser, argv)
    ns, extra = parser.parse_known_args(argv)
    command = getattr(ns, "command", None)
    if extra:
        what = "option" if extra[0].startswith("-") else "argument"
        raise UsageError(f"unrecognized {what} {extra[0]}", command)
    if command is None:
        raise UsageError("no command or program given", None)
    return ns


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
    try:
        ns = parse(parser, sys.argv[1:] if argv is None else argv)
        apply_log_items(ns)
        if getattr(ns, "trace", None):
            parse_categories(ns.trace)  # a usage error, before anything is loaded
    except (UsageError, ValueError) as e:
        sys.stderr.write(f"uintr-emu: error: {e}\n")
        sys.stderr.write(SHORT_USAGE[getattr(e, "command", "run")] + "\n")
        return 2
    # `run` forwards host signals to the guest (hostsignals.py FORWARDED); otherwise SIGINT
    # and SIGTERM end the command: a run returns the status itself, anything else ends with
    # HostSignal. Under --gdb too: gdb's own Ctrl-C reaches the stub as a packet, a signal to
    # the emulator process ends the run (docs/gdb.md).
    forward = ns.command == "run" and ns.gdb is None
    try:
        with HostSignals(forward=forward) as signals:
            return _command(ns, signals)
    except BrokenPipeError:
        return _broken_pipe()
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
        if stub is None:
            m.forward_signals(FORWARDED)
        try:
            with signals.running(m.end, None if stub is not None else m):
                status = m.run().status
            return status
        finally:
            if stub is not None:
                stub.close(status)  # an exit packet even when a limit ended the run
            finish()
    except (ProgramError, ValueError, FileNotFoundError) as e:
        return error(str(e))
    except BrokenPipeError:
        return _broken_pipe()
    except Exception as e:  # noqa: BLE001 - never a traceback for the user
        if os.environ.get("UINTR_EMU_DEBUG"):
            import traceback  # lazy: only this report needs it

            traceback.print_exc()
        sys.stderr.write(f"uintr-emu: internal error: {type(e).__name__}: {e} "
                         "(set UINTR_EMU_DEBUG=1 for details)\n")  # fmt: skip
        return 70


def _broken_pipe() -> int:
    """The reader of our stdout or stderr went away (`uintr-emu run --strace p 2>&1 | head`):
    end quietly with the status of a death by SIGPIPE, as a native program would (Python
    ignores SIGPIPE, so the write failed with EPIPE instead). Later writes go nowhere."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            try:
                os.dup2(devnull, stream.fileno())
            except (OSError, ValueError):
                pass
    os.close(devnull)
    return 128 + 13  # SIGPIPE


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
    except BrokenPipeError:
        status = _broken_pipe()
    except OSError:
        return status
    os._exit(status)
