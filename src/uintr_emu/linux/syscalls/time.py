"""Time on the virtual clock (or the host clock with --realtime): clock_gettime,
gettimeofday, time, clock_getres, nanosleep, clock_nanosleep."""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from .. import errno as E
from ..process import Wait
from . import syscall
from .futex import read_timespec

if TYPE_CHECKING:
    from ..kernel import Kernel
    from ..process import Thread

CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID = 0, 1, 2, 3
CLOCK_MONOTONIC_RAW, CLOCK_REALTIME_COARSE, CLOCK_MONOTONIC_COARSE, CLOCK_BOOTTIME = 4, 5, 6, 7
TIMER_ABSTIME = 1
REALTIME_CLOCKS = (CLOCK_REALTIME, CLOCK_REALTIME_COARSE, 8, 11)


def clock_value(k: Kernel, t: Thread, clk: int) -> int | None:
    if clk in REALTIME_CLOCKS:
        return k.realtime_ns()
    if clk in (CLOCK_MONOTONIC, CLOCK_MONOTONIC_RAW, CLOCK_MONOTONIC_COARSE, CLOCK_BOOTTIME, 9):
        return k.monotonic_ns()
    if clk == CLOCK_PROCESS_CPUTIME_ID:
        return sum(x.insns for x in t.process.threads)  # one instruction = one virtual ns
    if clk == CLOCK_THREAD_CPUTIME_ID:
        return t.insns
    return None


def _timespec(ns: int) -> bytes:
    return struct.pack("<qq", ns // 1_000_000_000, ns % 1_000_000_000)


@syscall(228, clk="int")
def sys_clock_gettime(k: Kernel, t: Thread, clk: int, tp: int) -> int:
    ns = clock_value(k, t, clk)
    if ns is None:
        return -E.EINVAL
    t.process.mem.write(tp, _timespec(ns))
    return 0


@syscall(229, clk="int")
def sys_clock_getres(k: Kernel, t: Thread, clk: int, res: int) -> int:
    if clock_value(k, t, clk) is None:
        return -E.EINVAL
    if res:
        t.process.mem.write(res, _timespec(1))
    return 0


@syscall(96)
def sys_gettimeofday(k: Kernel, t: Thread, tv: int, tz: int) -> int:
    ns = k.realtime_ns()
    if tv:
        t.process.mem.write(tv, struct.pack("<qq", ns // 1_000_000_000, ns // 1000 % 1_000_000))
    if tz:
        t.process.mem.write(tz, bytes(8))
    return 0


@syscall(201)
def sys_time(k: Kernel, t: Thread, tloc: int) -> int:
    s = k.realtime_ns() // 1_000_000_000
    if tloc:
        t.process.mem.write_u64(tloc, s)
    return s


def sleep_until(k: Kernel, t: Thread, deadline: int) -> object:
    from ..kernel import BLOCK

    if deadline <= k.clock_ns():
        return 0
    k.block(t, Wait("sleep", deadline, on_timeout=0))
    return BLOCK


@syscall(35)
def sys_nanosleep(k: Kernel, t: Thread, req: int, rem: int) -> object:
    ns = read_timespec(t, req)
    if ns is None:
        return -E.EINVAL
    return sleep_until(k, t, k.clock_ns() + ns)


@syscall(230, clk="int", flags="int")
def sys_clock_nanosleep(k: Kernel, t: Thread, clk: int, flags: int, req: int, rem: int) -> object:
    ns = read_timespec(t, req)
    now = clock_value(k, t, clk)
    if ns is None or now is None or clk in (CLOCK_THREAD_CPUTIME_ID,):
        return -E.EINVAL
    if flags & TIMER_ABSTIME:
        return sleep_until(k, t, k.clock_ns() + (ns - now))
    return sleep_until(k, t, k.clock_ns() + ns)


ITIMER_REAL = 0


def _timeval(ns: int) -> bytes:
    return struct.pack("<qq", ns // 1_000_000_000, ns // 1000 % 1_000_000)


def _itimer_value(k: Kernel, t: Thread) -> bytes:
    cur = t.process.itimer
    if cur is None:
        return bytes(32)
    deadline, interval = cur
    return _timeval(interval) + _timeval(max(0, deadline - k.clock_ns()))


@syscall(36, which="int")
def sys_getitimer(k: Kernel, t: Thread, which: int, value: int) -> int:
    if which != ITIMER_REAL:
        return -E.EINVAL  # virtual/profiling timers are not modelled
    t.process.mem.write(value, _itimer_value(k, t))
    return 0


@syscall(38, which="int")
def sys_setitimer(k: Kernel, t: Thread, which: int, new: int, old: int) -> int:
    """ITIMER_REAL on the virtual clock: SIGALRM to the process when it expires."""
    if which != ITIMER_REAL:
        return -E.EINVAL
    if old:
        t.process.mem.write(old, _itimer_value(k, t))
    if new:
        isec, iusec, vsec, vusec = struct.unpack("<qqqq", t.process.mem.read(new, 32))
        if not (0 <= iusec < 1_000_000 and 0 <= vusec < 1_000_000) or isec < 0 or vsec < 0:
            return -E.EINVAL
        value = vsec * 1_000_000_000 + vusec * 1000
        interval = isec * 1_000_000_000 + iusec * 1000
        t.process.itimer = (k.clock_ns() + value, interval) if value else None
        k.replan()
    return 0


@syscall(37, seconds="int")
def sys_alarm(k: Kernel, t: Thread, seconds: int) -> int:
    cur = t.process.itimer
    left = 0 if cur is None else max(1, (cur[0] - k.clock_ns() + 999_999_999) // 1_000_000_000)
    seconds &= 0xFFFF_FFFF
    t.process.itimer = (k.clock_ns() + seconds * 1_000_000_000, 0) if seconds else None
    k.replan()
    return left
