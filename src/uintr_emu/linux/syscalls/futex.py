"""futex(2): WAIT, WAKE, REQUEUE, CMP_REQUEUE, WAKE_OP, WAIT_BITSET, WAKE_BITSET, with
timeouts on the virtual clock (kernel/futex/)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import errno as E
from ..abi import U32
from ..control import BLOCK
from ..process import Wait
from . import syscall
from .time import read_timespec, timer_deadline

if TYPE_CHECKING:
    from ..kernel import Kernel
    from ..process import Thread

FUTEX_WAIT, FUTEX_WAKE, FUTEX_REQUEUE, FUTEX_CMP_REQUEUE, FUTEX_WAKE_OP = 0, 1, 3, 4, 5
FUTEX_WAIT_BITSET, FUTEX_WAKE_BITSET = 9, 10
FUTEX_PRIVATE_FLAG, FUTEX_CLOCK_REALTIME = 128, 256
FUTEX_BITSET_MATCH_ANY = 0xFFFF_FFFF


@syscall(202, op="hex", val="int")
def sys_futex(k: Kernel, t: Thread, uaddr: int, op: int, val: int, timeout: int, uaddr2: int,
              val3: int) -> object:  # fmt: skip
    cmd = op & ~(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME)
    p = t.process
    if uaddr & 3:
        return -E.EINVAL
    val &= 0xFFFF_FFFF
    if cmd in (FUTEX_WAIT, FUTEX_WAIT_BITSET):
        bitset = val3 & 0xFFFF_FFFF if cmd == FUTEX_WAIT_BITSET else FUTEX_BITSET_MATCH_ANY
        if bitset == 0:
            return -E.EINVAL
        cur = U32.unpack(p.mem.read(uaddr, U32.size))[0]
        if cur != val:
            return -E.EAGAIN
        deadline = None
        if timeout:
            ns = read_timespec(t, timeout)
            if ns is None:
                return -E.EINVAL
            # futex_init_timeout: a relative timeout is added to the monotonic clock
            mono = k.clock.monotonic_ns()
            if cmd == FUTEX_WAIT:  # relative
                deadline = timer_deadline(k, mono, mono + ns)
            elif op & FUTEX_CLOCK_REALTIME:  # absolute
                deadline = timer_deadline(k, k.clock.realtime_ns(), ns)
            else:
                deadline = timer_deadline(k, mono, ns)
            if deadline <= k.clock_ns():
                return -E.ETIMEDOUT
        key = k.futexes.key(p, uaddr)
        k.futexes.enqueue(key, t)
        k.sched.block(t, Wait("futex", deadline, key, bitset, on_timeout=-E.ETIMEDOUT))
        return BLOCK
    if cmd in (FUTEX_WAKE, FUTEX_WAKE_BITSET):
        bitset = val3 & 0xFFFF_FFFF if cmd == FUTEX_WAKE_BITSET else FUTEX_BITSET_MATCH_ANY
        if bitset == 0:
            return -E.EINVAL
        return k.futexes.wake(p, uaddr, val, bitset)
    if cmd in (FUTEX_REQUEUE, FUTEX_CMP_REQUEUE):
        if cmd == FUTEX_CMP_REQUEUE:
            cur = U32.unpack(p.mem.read(uaddr, U32.size))[0]
            if cur != val3 & 0xFFFF_FFFF:
                return -E.EAGAIN
        n_requeue = timeout & 0x7FFF_FFFF  # val2 travels in the timeout argument
        woken = k.futexes.wake(p, uaddr, val)
        moved = k.futexes.requeue(k.futexes.key(p, uaddr), k.futexes.key(p, uaddr2), n_requeue)
        return woken + (moved if cmd == FUTEX_CMP_REQUEUE else 0)
    if cmd == FUTEX_WAKE_OP:
        return _wake_op(k, t, uaddr, val, timeout & 0x7FFF_FFFF, uaddr2, val3)
    return -E.ENOSYS


def _wake_op(k: Kernel, t: Thread, uaddr: int, nr_wake: int, nr_wake2: int, uaddr2: int,
             encoded: int) -> int:  # fmt: skip
    p = t.process
    op = (encoded >> 28) & 7
    cmp = (encoded >> 24) & 15
    oparg = (encoded >> 12) & 0xFFF
    cmparg = encoded & 0xFFF
    if encoded >> 31 & 1:  # FUTEX_OP_OPARG_SHIFT
        oparg = 1 << (oparg & 31)
    old = U32.unpack(p.mem.read(uaddr2, U32.size))[0]
    new = [oparg, old + oparg, old | oparg, old & ~oparg, old ^ oparg][op] if op < 5 else old
    p.mem.write(uaddr2, U32.pack(new & 0xFFFF_FFFF))
    woken = k.futexes.wake(p, uaddr, nr_wake)
    s_old = old - (1 << 32) if old >> 31 else old
    ok = [s_old == cmparg, s_old != cmparg, s_old < cmparg, s_old <= cmparg, s_old > cmparg,
          s_old >= cmparg][cmp] if cmp < 6 else False  # fmt: skip
    if ok:
        woken += k.futexes.wake(p, uaddr2, nr_wake2)
    return woken
