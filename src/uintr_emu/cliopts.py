"""The options of `uintr-emu run`, `demo` and `explore`, each defined once.

A `RunOption` is one option: its spelling, default, validation (the argparse type) and help
text, its help section, the `Options` field it sets, and how its value is written back on a
command line. `add_run_options` adds them (or a selection) to a parser, `options_from` turns
the parsed namespace into `Options`, `run_args` back into `uintr-emu run` arguments (explore's
replay hints). This module imports neither cli nor explore: both import it.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from .hw.cpu import CpuFeatures
from .options import (
    DEFAULT_CPUS,
    DEFAULT_MAX_PROCS,
    DEFAULT_MAX_THREADS,
    DEFAULT_SLICE,
    Options,
    uintr_abi_parts,
)

# --------------------------------------------------------------------------- value types


def plural(n: int, noun: str, many: str | None = None) -> str:
    """`1 CPU`, `2 CPUs` (`many`: the plural when it is not noun + 's')."""
    return f"{n} {noun if n == 1 else many or noun + 's'}"


def positive(kind: type = int, maximum: int | None = None) -> Callable[[str], Any]:
    """An argparse type: a number of `kind` greater than 0 (and at most `maximum`)."""

    def parse(s: str):  # type: ignore[no-untyped-def]
        try:
            v = kind(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {s!r}") from None
        if v != v:  # NaN: no comparison holds
            raise argparse.ArgumentTypeError(f"not a number: {s!r}")
        if v <= 0:
            raise argparse.ArgumentTypeError(f"must be positive: {s!r}")
        if maximum is not None and v > maximum:
            raise argparse.ArgumentTypeError(f"at most {maximum}: {s!r}")
        return v

    return parse


def port(s: str) -> int:
    """An argparse type: a TCP port, 1-65535."""
    return positive(maximum=65535)(s)  # type: ignore[no-any-return]


def size(s: str) -> int:
    """An argparse type: a byte count, with an optional k, M or G suffix."""
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    try:
        if s[-1:].lower() in units:
            n = int(float(s[:-1]) * units[s[-1].lower()])
        else:
            n = int(s)
    except (ValueError, OverflowError):  # OverflowError: inf
        raise argparse.ArgumentTypeError(f"not a size: {s!r} (e.g. 512M)") from None
    if n <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {s!r}")
    return n


# A cpu_set_t holds 1024 CPUs (glibc's CPU_SETSIZE): what sched_getaffinity and get_nprocs
# handle without growing their buffer, and what sched_setaffinity reads (syscalls/thread.py).
MAX_CPUS = 1024


def cpu_features(s: str) -> CpuFeatures:
    """An argparse type: a CPU feature spec such as +uintr,-flexible-uiret."""
    try:
        return CpuFeatures.parse(s)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def uintr_abi(s: str) -> str:
    """--uintr-abi's value, checked (options.uintr_abi_parts)."""
    try:
        uintr_abi_parts(s)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return s


def cpu_features_spec(features: CpuFeatures) -> str:
    """The shortest spec that gives `features`: the changes from the defaults ('' if none)."""
    default = CpuFeatures()
    return ",".join(
        ("+" if getattr(features, f.name) else "-") + f.name.replace("_", "-")
        for f in dataclasses.fields(features)
        if getattr(features, f.name) != getattr(default, f.name)
    )


def root_dir(path: str) -> str:
    """--root's value as Options wants it (ValueError if it is not a directory)."""
    if not os.path.isdir(path):
        raise ValueError(f"--root {path}: not a directory")
    return os.path.realpath(path)


def guest_environment(setenv: list[str], unsetenv: list[str]) -> list[str]:
    """The host's environment with -E VAR=VALUE set and -U VAR removed."""
    env = dict(os.environ)
    for item in setenv:
        if "=" not in item:
            raise ValueError(f"-E expects VAR=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        env[k] = v
    for k in unsetenv:
        env.pop(k, None)
    return [f"{k}={v}" for k, v in env.items()]


# --------------------------------------------------------------------------- the options


@dataclass(frozen=True)
class RunOption:
    group: str  # the help section: one of GROUPS
    flags: tuple[str, ...]
    dest: str
    argparse: dict[str, Any]  # add_argument's keyword arguments (but dest)
    field: str | None = None  # the Options field it sets (None: not an Options field)
    to_options: Callable[[Any], Any] | None = None  # parsed value -> field value (default: as is)
    to_text: Callable[[Any], str] = str  # parsed value -> its spelling on a command line

    @property
    def default(self) -> Any:
        return self.argparse.get("default")


GROUPS = ("machine", "guest", "limits", "tracing")


def _option(
    group: str,
    *flags: str,
    dest: str | None = None,
    field: str | None = None,
    to_options: Callable[[Any], Any] | None = None,
    to_text: Callable[[Any], str] = str,
    **argparse_kwargs: Any,
) -> RunOption:
    """A RunOption written as add_argument would take it (dest: argparse's default)."""
    dest = dest or flags[0].lstrip("-").replace("-", "_")
    return RunOption(group, flags, dest, argparse_kwargs, field, to_options, to_text)


def _count(group: str, flag: str, default: int | None, help: str) -> RunOption:
    """An option N > 0 that sets the Options field of its name."""
    field = flag.lstrip("-").replace("-", "_")
    return _option(
        group, flag, field=field, type=positive(), default=default, metavar="N", help=help
    )


RUN_OPTIONS: tuple[RunOption, ...] = (
    _option(
        "machine",
        "--cpus",
        field="cpus",
        type=positive(maximum=MAX_CPUS),
        default=DEFAULT_CPUS,
        metavar="N",
        help=f"number of virtual CPUs, 1-{MAX_CPUS} (default {DEFAULT_CPUS})",
    ),
    _option(
        "machine",
        "--cpu-features",
        "-cpu",
        field="features",
        to_text=cpu_features_spec,
        type=cpu_features,
        default=CpuFeatures(),
        metavar="SPEC",
        help="CPU features, e.g. +uintr,-uintr,+flexible-uiret (default: uintr on); "
        "qemu's -cpu takes the same list",
    ),
    _count(
        "machine",
        "--slice",
        DEFAULT_SLICE,
        "guest instructions per scheduling slice while two or more threads are "
        f"runnable (default {DEFAULT_SLICE})",
    ),
    _option(
        "machine",
        "--realtime",
        field="realtime",
        action="store_true",
        help="time syscalls read the host clock (default: a deterministic virtual "
        "clock, 1 guest instruction = 1 ns)",
    ),
    _option(
        "machine",
        "--seed",
        field="seed",
        type=int,
        default=0,
        metavar="N",
        help="seed of the schedule and of the guest's random bytes: N != 0 varies slice lengths "
        "(0.5x-1.5x --slice) and thread placement reproducibly, and ends slices at any "
        "instruction; 0 is the plain schedule, sliced at block boundaries (default 0)",
    ),
    _option(
        "machine",
        "--uintr-abi",
        field="uintr_abi",
        type=uintr_abi,
        default="next",
        metavar="ABI",
        help="Linux UINTR syscall ABI: 'next' (471-479), 'rfc' (449-454), or 'rfc:BASE': RFC v1 "
        "semantics at BASE..BASE+5 (e.g. rfc:471 for Intel's intermediate series) "
        "(default next)",
    ),
    _option(
        "guest",
        "-E",
        dest="setenv",
        action="append",
        default=[],
        metavar="VAR=VALUE",
        help="set a variable in the guest's environment (repeatable)",
    ),
    _option(
        "guest",
        "-U",
        dest="unsetenv",
        action="append",
        default=[],
        metavar="VAR",
        help="remove a variable from the guest's environment (repeatable)",
    ),
    _option(
        "guest",
        "--root",
        "-L",
        field="root",
        to_options=root_dir,
        metavar="DIR",
        default="/",
        help="the guest's file system root: every guest path (and a dynamic program's "
        "interpreter and libraries) resolves inside DIR and cannot leave it (default /; "
        "-L DIR as for qemu-user)",
    ),
    _option(
        "guest",
        "--max-memory",
        field="max_memory",
        type=size,
        default=None,
        metavar="SIZE",
        help="cap on the guest's mapped memory; mappings beyond it fail with ENOMEM",
    ),
    _count(
        "guest",
        "--max-threads",
        DEFAULT_MAX_THREADS,
        "at most N threads in all processes together (a zombie process counts until "
        "reaped); beyond, clone/fork fail with EAGAIN and one note is printed "
        f"(default {DEFAULT_MAX_THREADS}; getrlimit(RLIMIT_NPROC) reports it)",
    ),
    _count(
        "guest",
        "--max-procs",
        DEFAULT_MAX_PROCS,
        "at most N processes (zombies included); beyond, fork fails with EAGAIN and one "
        f"note is printed (default {DEFAULT_MAX_PROCS})",
    ),
    _count(
        "limits",
        "--max-insns",
        None,
        "stop after N guest instructions (exit status 124; turns on counting, " "which is slower)",
    ),
    _option(
        "limits",
        "--timeout",
        field="timeout",
        type=positive(float),
        default=None,
        metavar="SECONDS",
        help="stop after this much host time (exit status 124)",
    ),
    _option(
        "tracing",
        "--strace",
        "-strace",
        field="strace",
        action="store_true",
        help="print each syscall as '[tid] name(args) = result' on stderr",
    ),
    _option(
        "tracing",
        "-d",
        dest="log",
        metavar="ITEMS",
        default=None,
        help="qemu-user's log option: a comma-separated list of 'strace' (--strace) and "
        "--trace categories",
    ),
    _option(
        "tracing",
        "--trace",
        metavar="CATEGORIES",
        default=None,
        help="log events, one line each, on stderr: a comma-separated list of "
        "uintr, apic, sched, syscall, signal, or all",
    ),
    _option(
        "tracing",
        "--trace-file",
        metavar="PATH",
        default=None,
        help="write the --trace log to PATH instead of stderr (all categories if --trace is "
        "not given)",
    ),
    _option(
        "tracing",
        "--timeline",
        metavar="PATH",
        default=None,
        help="write the run as a Chrome trace-event JSON file (open it in ui.perfetto.dev)",
    ),
    _option(
        "tracing",
        "--timeline-png",
        metavar="PATH",
        default=None,
        help="draw a PNG summary of the run (needs matplotlib)",
    ),
    _option(
        "tracing",
        "--stats",
        action="store_true",
        help="at exit, print per-CPU and per-thread counts and user-interrupt delivery "
        "latency on stderr",
    ),
)


def apply_log_items(ns: argparse.Namespace) -> None:
    """qemu's `-d ITEMS` as the options it stands for: `strace` turns on --strace, any other
    item is a --trace category (checked with --trace's). ValueError for a bad list."""
    items = [i for i in (getattr(ns, "log", None) or "").split(",") if i]
    if getattr(ns, "log", None) is not None and not items:
        raise ValueError("-d: expected a list such as strace,uintr")
    if "strace" in items:
        ns.strace = True
    rest = [i for i in items if i != "strace"]
    if rest:
        ns.trace = ",".join(filter(None, [ns.trace, *rest]))


def add_run_options(
    parser: argparse.ArgumentParser,
    groups: Collection[str] = GROUPS,
    exclude: Collection[str] = (),
) -> None:
    """Add the run options of `groups`, but those named in `exclude`, each group a section of
    the help (titled as in GROUPS)."""
    sections: dict[str, Any] = {}  # group -> its argparse argument group
    for o in RUN_OPTIONS:
        if o.group not in groups or o.flags[0] in exclude:
            continue
        if o.group not in sections:
            sections[o.group] = parser.add_argument_group(o.group)
        sections[o.group].add_argument(*o.flags, dest=o.dest, **o.argparse)


def _present(ns: argparse.Namespace) -> list[tuple[RunOption, Any]]:
    """The run options that the parser of `ns` has, with their parsed values."""
    return [(o, getattr(ns, o.dest)) for o in RUN_OPTIONS if hasattr(ns, o.dest)]


def options_from(ns: argparse.Namespace) -> Options:
    """The Options of a parsed command line (an option its parser lacks keeps the default).
    ValueError if --root is not a directory."""
    values = {o.field: o.to_options(v) if o.to_options else v for o, v in _present(ns) if o.field}
    return Options(**values)


def run_args(ns: argparse.Namespace) -> list[str]:
    """The `uintr-emu run` options that give what `ns` holds: every run option its parser has,
    unless it has its default."""
    out: list[str] = []
    for o, value in _present(ns):
        flag = o.flags[0]
        action = o.argparse.get("action")
        if action == "store_true":
            out += [flag] if value else []
        elif action == "append":
            for item in value:
                out += _option(flag, o.to_text(item))
        elif value != o.default:
            out += _option(flag, o.to_text(value))
    return out


def _option(flag: str, text: str) -> list[str]:
    """`flag text`, or one word where text would read as an option (--cpu-features=-uintr)."""
    if not text.startswith("-"):
        return [flag, text]
    return [f"{flag}={text}" if flag.startswith("--") else flag + text]
