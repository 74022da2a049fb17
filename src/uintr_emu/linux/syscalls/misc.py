"""uname, prlimit64, getrandom, sysinfo and other small calls."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import errno as E
from ..abi import RLIMIT64, SYSINFO, UTSNAME
from . import syscall

if TYPE_CHECKING:
    from ..kernel import Kernel
    from ..process import Thread

RLIMIT_STACK, RLIMIT_NPROC, RLIMIT_NOFILE, RLIM_INFINITY = 3, 6, 7, 2**64 - 1
# Limits the guest sees (getrlimit(2)); the 8 MiB stack is the one the loader maps.
RLIMITS = {RLIMIT_STACK: (8 << 20, RLIM_INFINITY), RLIMIT_NOFILE: (1024, 4096)}


@syscall(63)
def sys_uname(k: Kernel, t: Thread, buf: int) -> int:
    fields = [b"Linux", b"uintr-emu", b"6.0.0-uintr", b"#1 SMP uintr-emu", b"x86_64", b"(none)"]
    t.process.mem.write(buf, UTSNAME.pack(*fields))
    return 0


@syscall(302, pid="int", resource="int")
def sys_prlimit64(k: Kernel, t: Thread, pid: int, resource: int, new: int, old: int) -> int:
    if resource >= 16:
        return -E.EINVAL
    if old:
        cur = RLIMITS.get(resource, (RLIM_INFINITY, RLIM_INFINITY))
        if resource == RLIMIT_NPROC:  # Linux counts threads against it (getrlimit(2))
            cur = (k.opt.max_threads, k.opt.max_threads)
        t.process.mem.write(old, RLIMIT64.pack(*cur))
    return 0


@syscall(97, resource="int")
def sys_getrlimit(k: Kernel, t: Thread, resource: int, rlim: int) -> int:
    return sys_prlimit64(k, t, 0, resource, 0, rlim)


@syscall(318, count="int", flags="hex")
def sys_getrandom(k: Kernel, t: Thread, buf: int, count: int, flags: int) -> int:
    if flags & ~7:
        return -E.EINVAL
    count = min(count, 1 << 20)
    t.process.mem.write(buf, k.entropy.bytes(count))
    return count


@syscall(99)
def sys_sysinfo(k: Kernel, t: Thread, info: int) -> int:
    uptime = k.clock.monotonic_ns() // 1_000_000_000
    data = SYSINFO.pack(uptime, 0, 0, 0, 24 << 30, 20 << 30, 0, 0, 0, 0, len(k.threads), 0, 0, 0, 1)
    t.process.mem.write(info, data)
    return 0


@syscall(157, option="int")
def sys_prctl(k: Kernel, t: Thread, option: int, a2: int, a3: int, a4: int, a5: int) -> int:
    PR_SET_NAME, PR_GET_NAME = 15, 16
    if option == PR_SET_NAME:
        return 0
    if option == PR_GET_NAME:
        t.process.mem.write(a2, b"uintr-guest\0")
        return 0
    return -E.EINVAL
