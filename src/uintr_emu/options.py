"""Run options shared by the CLI, the Python API and the kernel."""

from __future__ import annotations

from dataclasses import dataclass, field

from .hw.cpu import CpuFeatures

DEFAULT_CPUS = 4
# Instructions per scheduling slice while two or more threads are runnable. Small enough that a
# cross-CPU user interrupt is seen within ~10 µs of virtual time, large enough that the per-slice
# host cost (context switch + engine entry, ~10 µs) stays near 10 % of the slice.
DEFAULT_SLICE = 10_000
# The virtual clock: one counted guest instruction is one virtual nanosecond (a 1 GHz, IPC-1
# machine). While a single thread runs unsliced its instructions are not counted (counting costs
# ~3x speed), and each of its system calls advances the clock by this much instead.
UNCOUNTED_SYSCALL_NS = 1_000
# Kernel work is not made of guest instructions, so the virtual clock charges it explicitly
# (order-of-magnitude costs of a modern x86 Linux kernel): a system call's entry and exit, the
# wake-up of a blocked thread (the waker's IPI, the scheduler, a context switch), and building
# a signal frame. User-interrupt delivery itself costs no kernel work, which is UINTR's point.
SYSCALL_NS = 100
WAKEUP_NS = 2_000
SIGNAL_DELIVERY_NS = 1_000
# Tasks (the threads of every process; a zombie process counts until reaped), and processes
# (zombies included): past either, clone/fork fail with EAGAIN (--max-threads, --max-procs).
# Threads are cheap; each process has its own engine (~13 MiB of host memory for a small one).
DEFAULT_MAX_THREADS = 4096
DEFAULT_MAX_PROCS = 256
# Deterministic mode's wall clock starts at 2026-01-01T00:00:00Z.
DETERMINISTIC_EPOCH_NS = 1_767_225_600 * 1_000_000_000


@dataclass
class Options:
    cpus: int = DEFAULT_CPUS
    slice: int = DEFAULT_SLICE
    realtime: bool = False
    strace: bool = False
    max_insns: int | None = None
    timeout: float | None = None
    seed: int = 0
    features: CpuFeatures = field(default_factory=CpuFeatures)
    uintr_abi: str = "next"  # "next", "rfc" or "rfc:BASE" (uintr_abi_parts)
    root: str = "/"  # guest paths resolve under this host directory (--root)
    max_memory: int | None = None
    max_threads: int = DEFAULT_MAX_THREADS
    max_procs: int = DEFAULT_MAX_PROCS
    warn_stream: int = 2  # host fd for emulator diagnostics
    stdio: tuple[int, int, int] = (0, 1, 2)  # host fds behind the guest's fds 0, 1 and 2
    # The native fast path for the UINTR instructions, if built (engine/native.py); False has
    # the Python model execute every one (tests compare the two). UINTR_EMU_NATIVE=0 also
    # turns it off.
    fast_path: bool = True


#: The RFC v1 calls' numbers in Intel's RFC series; rfc:BASE moves them to BASE..BASE+5.
UINTR_RFC_BASE = 449
#: The lowest and highest BASE of rfc:BASE: above the x86-64 calls the emulator implements
#: (the last is 439) and below the x32 range (512).
UINTR_RFC_BASE_RANGE = (440, 506)


def uintr_abi_parts(abi: str) -> tuple[str, int]:
    """`--uintr-abi` as (generation, base of its numbers): "next" -> ("next", 471); "rfc" ->
    ("rfc", 449); "rfc:BASE" -> ("rfc", BASE), the RFC v1 semantics at BASE..BASE+5 (Intel's
    intermediate series used rfc:471, the man-page draft rfc:450). ValueError otherwise."""
    if abi == "next":
        return "next", 471
    gen, sep, base = abi.partition(":")
    if gen == "rfc" and not sep:
        return "rfc", UINTR_RFC_BASE
    lo, hi = UINTR_RFC_BASE_RANGE
    if gen == "rfc" and base.isdigit() and lo <= int(base) <= hi:
        return "rfc", int(base)
    raise ValueError(
        f"unknown UINTR ABI {abi!r}: expected 'next', 'rfc' or 'rfc:BASE' with {lo} <= BASE <= {hi}"
    )
