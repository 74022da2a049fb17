"""Time on the virtual clock (or the host clock with --realtime): clock_gettime,
gettimeofday, time, clock_getres, nanosleep, clock_nanosleep."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import errno as E
from ..abi import ITIMERVAL, RUSAGE, TIMESPEC, TIMEVAL, TMS
from ..control import BLOCK
from ..process import Wait
from . import syscall
from .paths import s32

if TYPE_CHECKING:
    from ..kernel import Kernel
    from ..process import Process, Thread

CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID = 0, 1, 2, 3
CLOCK_MONOTONIC_RAW, CLOCK_REALTIME_COARSE, CLOCK_MONOTONIC_COARSE, CLOCK_BOOTTIME = 4, 5, 6, 7
TIMER_ABSTIME = 1
REALTIME_CLOCKS = (CLOCK_REALTIME, CLOCK_REALTIME_COARSE, 8, 11)
NSEC = 1_000_000_000
# include/linux/ktime.h: kernel times are signed 64-bit nanoseconds; conversions from a
# timespec/timeval (ktime_set, timespec64_to_ktime) and timer expiries (ktime_add_safe)
# saturate at KTIME_MAX instead of overflowing.
KTIME_MAX = 2**63 - 1
KTIME_SEC_MAX = KTIME_MAX // NSEC


def ktime_set(sec: int, nsec: int) -> int:
    return KTIME_MAX if sec >= KTIME_SEC_MAX else sec * NSEC + nsec


def read_timespec(t: Thread, addr: int) -> int | None:
    """A struct timespec timeout: None if invalid (EINVAL), else nanoseconds, saturated at
    KTIME_MAX like timespec64_to_ktime."""
    sec, nsec = TIMESPEC.unpack(t.process.mem.read(addr, TIMESPEC.size))
    if sec < 0 or not 0 <= nsec < NSEC:
        return None
    return ktime_set(sec, nsec)


def timer_deadline(k: Kernel, now: int, expiry: int) -> int:
    """The virtual-clock time at which a timer fires that is set to `expiry` on a clock that
    reads `now`. The expiry saturates at KTIME_MAX (ktime_add_safe for relative timeouts), so a
    'forever' timeout ends when that clock reads KTIME_MAX, and no clock can be read past it
    (hrtimer_nanosleep, do_setitimer, futex_init_timeout)."""
    return k.clock_ns() + min(expiry, KTIME_MAX) - now


def clock_value(k: Kernel, t: Thread, clk: int) -> int | None:
    if clk in REALTIME_CLOCKS:
        return k.clock.realtime_ns()
    if clk in (CLOCK_MONOTONIC, CLOCK_MONOTONIC_RAW, CLOCK_MONOTONIC_COARSE, CLOCK_BOOTTIME, 9):
        return k.clock.monotonic_ns()
    if clk == CLOCK_PROCESS_CPUTIME_ID:
        return sum(thread_ns(k, x) for x in t.process.threads)
    if clk == CLOCK_THREAD_CPUTIME_ID:
        return thread_ns(k, t)
    return None


def thread_ns(k: Kernel, t: Thread) -> int:
    """The CPU time `t` has used: its counted instructions (one = one virtual ns) and kernel
    work, with what its current turn has counted so far if it is the running thread."""
    if t is k.sched.running:
        return t.insns + k.cpu.now() - k.cpu.clock
    return t.insns


def _timespec(ns: int) -> bytes:
    ns = min(max(ns, 0), KTIME_MAX)  # a ktime_t never exceeds KTIME_MAX (ktime_to_timespec64)
    return TIMESPEC.pack(ns // NSEC, ns % NSEC)


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
    ns = k.clock.realtime_ns()
    if tv:
        t.process.mem.write(tv, _timeval(ns))
    if tz:
        t.process.mem.write(tz, bytes(8))
    return 0


@syscall(201)
def sys_time(k: Kernel, t: Thread, tloc: int) -> int:
    s = min(k.clock.realtime_ns(), KTIME_MAX) // NSEC
    if tloc:
        t.process.mem.write_u64(tloc, s)
    return s


def sleep_until(k: Kernel, t: Thread, deadline: int) -> object:
    if deadline <= k.clock_ns():
        return 0
    k.sched.block(t, Wait("sleep", deadline, on_timeout=0))
    return BLOCK


@syscall(35)
def sys_nanosleep(k: Kernel, t: Thread, req: int, rem: int) -> object:
    ns = read_timespec(t, req)
    if ns is None:
        return -E.EINVAL
    now = k.clock.monotonic_ns()  # hrtimer_nanosleep(..., CLOCK_MONOTONIC)
    return sleep_until(k, t, timer_deadline(k, now, now + ns))


@syscall(230, clk="int", flags="int")
def sys_clock_nanosleep(k: Kernel, t: Thread, clk: int, flags: int, req: int, rem: int) -> object:
    ns = read_timespec(t, req)
    now = clock_value(k, t, clk)
    if ns is None or now is None or clk in (CLOCK_THREAD_CPUTIME_ID,):
        return -E.EINVAL
    return sleep_until(k, t, timer_deadline(k, now, ns if flags & TIMER_ABSTIME else now + ns))


ITIMER_REAL = 0


def _timeval(ns: int) -> bytes:
    ns = min(max(ns, 0), KTIME_MAX)
    return TIMEVAL.pack(ns // NSEC, ns // 1000 % 1_000_000)


def _itimer_value(k: Kernel, t: Thread) -> bytes:
    cur = t.process.itimer
    if cur is None:
        return bytes(ITIMERVAL.size)
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
        isec, iusec, vsec, vusec = ITIMERVAL.unpack(t.process.mem.read(new, ITIMERVAL.size))
        if not (0 <= iusec < 1_000_000 and 0 <= vusec < 1_000_000) or isec < 0 or vsec < 0:
            return -E.EINVAL
        value, interval = ktime_set(vsec, vusec * 1000), ktime_set(isec, iusec * 1000)
        now = k.clock.monotonic_ns()  # an hrtimer on CLOCK_MONOTONIC, relative (do_setitimer)
        t.process.itimer = (timer_deadline(k, now, now + value), interval) if value else None
        k.sched.replan()
    return 0


@syscall(37, seconds="int")
def sys_alarm(k: Kernel, t: Thread, seconds: int) -> int:
    cur = t.process.itimer
    left = 0 if cur is None else max(1, (cur[0] - k.clock_ns() + 999_999_999) // 1_000_000_000)
    seconds &= 0xFFFF_FFFF
    now = k.clock.monotonic_ns()
    t.process.itimer = (timer_deadline(k, now, now + seconds * NSEC), 0) if seconds else None
    k.sched.replan()
    return left


# --- CPU time used (kernel/sys.c: getrusage, times) -----------------------------------------

RUSAGE_SELF, RUSAGE_CHILDREN, RUSAGE_THREAD = 0, -1, 1
USER_HZ = 100  # clock_t ticks per second (times(2), /proc/stat)


def rusage(ns: int) -> bytes:
    """A struct rusage with `ns` of user time; system time and the other fields are 0 (the
    emulator does not account them)."""
    us = ns // 1000
    return RUSAGE.pack(us // 1_000_000, us % 1_000_000, 0, 0, *[0] * 14)


def process_ns(k: Kernel, p: Process) -> int:
    """The CPU time of all of a process's threads, the ended ones included."""
    return sum(thread_ns(k, x) for x in p.threads)


@syscall(98, who="int")
def sys_getrusage(k: Kernel, t: Thread, who: int, usage: int) -> int:
    """User time is the counted instructions (one = one virtual ns); RUSAGE_CHILDREN is that
    of the children reaped by wait, and of the children they reaped (kernel/exit.c
    wait_task_zombie adds both to signal->cutime)."""
    who = s32(who)
    if who == RUSAGE_SELF:
        ns = process_ns(k, t.process)
    elif who == RUSAGE_THREAD:
        ns = thread_ns(k, t)
    elif who == RUSAGE_CHILDREN:
        ns = t.process.children_ns
    else:
        return -E.EINVAL
    t.process.mem.write(usage, rusage(ns))
    return 0


@syscall(100)
def sys_times(k: Kernel, t: Thread, buf: int) -> int:
    """struct tms in USER_HZ ticks (user times as getrusage's, the process's and its reaped
    children's); returns the ticks since boot."""
    if buf:
        ns, cns = process_ns(k, t.process), t.process.children_ns
        t.process.mem.write(buf, TMS.pack(ns * USER_HZ // NSEC, 0, cns * USER_HZ // NSEC, 0))
    return k.clock.monotonic_ns() * USER_HZ // NSEC
