"""Signals: rt_sigaction, rt_sigprocmask, rt_sigpending, rt_sigsuspend, pause,
rt_sigtimedwait, sigaltstack, rt_sigreturn, kill, tgkill, tkill."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...engine import unicorn as eng
from .. import errno as E
from .. import signals as S
from ..abi import STACK_T, U64
from ..control import BLOCK
from ..process import Wait
from . import syscall
from .time import read_timespec, timer_deadline

if TYPE_CHECKING:
    from ..kernel import Kernel
    from ..process import Thread

SIG_BLOCK, SIG_UNBLOCK, SIG_SETMASK = 0, 1, 2


@syscall(13, sig="int", size="int")
def sys_rt_sigaction(k: Kernel, t: Thread, sig: int, act: int, oldact: int, size: int) -> int:
    if size != 8 or not 1 <= sig <= S.NSIG:
        return -E.EINVAL
    if sig in (S.SIGKILL, S.SIGSTOP) and act:
        return -E.EINVAL
    acts = t.process.sigactions
    if oldact:
        t.process.mem.write(oldact, acts.get(sig, S.SigAction()).pack())
    if act:
        new = S.SigAction.unpack(t.process.mem.read(act, 32))
        new.mask &= ~S.UNBLOCKABLE
        acts[sig] = new
        if new.handler == S.SIG_IGN:
            for th in t.process.threads:  # pending instances are discarded (signal(7))
                for info in [i for i in th.pending if i.signo == sig]:
                    th.pending.remove(info)
    return 0


@syscall(14, how="int", size="int")
def sys_rt_sigprocmask(k: Kernel, t: Thread, how: int, set: int, oldset: int, size: int) -> int:
    if size != 8:
        return -E.EINVAL
    if oldset:
        t.process.mem.write(oldset, U64.pack(t.sigmask))
    if set:
        new = U64.unpack(t.process.mem.read(set, U64.size))[0]
        if how == SIG_BLOCK:
            t.sigmask |= new
        elif how == SIG_UNBLOCK:
            t.sigmask &= ~new
        elif how == SIG_SETMASK:
            t.sigmask = new
        else:
            return -E.EINVAL
        t.sigmask &= ~S.UNBLOCKABLE
    return 0


@syscall(127, size="int")
def sys_rt_sigpending(k: Kernel, t: Thread, set: int, size: int) -> int:
    if size > 8:
        return -E.EINVAL
    pending = 0
    for info in t.pending:
        pending |= S.bit(info.signo)
    t.process.mem.write(set, U64.pack(pending)[:size])
    return 0


@syscall(130, size="int")
def sys_rt_sigsuspend(k: Kernel, t: Thread, mask: int, size: int) -> object:
    if size != 8:
        return -E.EINVAL
    new = U64.unpack(t.process.mem.read(mask, U64.size))[0] & ~S.UNBLOCKABLE
    t.saved_sigmask = t.sigmask
    t.sigmask = new
    if any(not new & S.bit(i.signo) for i in t.pending):
        return -E.EINTR  # a signal is already deliverable: it runs on the way out
    k.sched.block(t, Wait("sigsuspend", interruptible=True))
    return BLOCK


@syscall(34)
def sys_pause(k: Kernel, t: Thread) -> object:
    """Sleeps until a signal is delivered: EINTR once its handler has run (a signal whose
    action ends the process ends it)."""
    if any(not t.sigmask & S.bit(i.signo) for i in t.pending):
        return -E.EINTR
    k.sched.block(t, Wait("sigsuspend", interruptible=True))
    return BLOCK


#: Dequeued before any other (kernel/signal.c SYNCHRONOUS_MASK): SIGSEGV, SIGBUS, SIGILL,
#: SIGTRAP, SIGFPE, SIGSYS.
_SYNCHRONOUS = frozenset((11, 7, 4, 5, 8, 31))


@syscall(128, size="int")
def sys_rt_sigtimedwait(k: Kernel, t: Thread, set: int, info: int, timeout: int, size: int
                        ) -> object:  # fmt: skip
    """sigwait, sigwaitinfo, sigtimedwait: take a pending signal of the set (a synchronous one
    first, then the lowest number; do_sigtimedwait) without running its handler, or wait for
    one: EAGAIN at the timeout, EINTR if another signal's handler runs. While it waits the
    set's signals count as unblocked (real_blocked): sending one wakes it, and it runs the
    call again to take it (Signals.send)."""
    if size != 8:
        return -E.EINVAL
    want = U64.unpack(t.process.mem.read(set, U64.size))[0] & ~S.UNBLOCKABLE
    ns = None
    if timeout:
        ns = read_timespec(t, timeout)
        if ns is None:
            return -E.EINVAL
    found = [i for i in t.pending if want & S.bit(i.signo)]
    if found:
        sig = min(found, key=lambda i: (i.signo not in _SYNCHRONOUS, i.signo))
        t.pending.remove(sig)
        if info:
            t.process.mem.write(info, sig.pack())
        return sig.signo
    if ns == 0:
        return -E.EAGAIN
    now = k.clock_ns()
    deadline = None if ns is None else timer_deadline(k, now, now + ns)
    k.sched.block(t, Wait("sigtimedwait", deadline, key=want, on_timeout=-E.EAGAIN))
    return BLOCK


@syscall(131)
def sys_sigaltstack(k: Kernel, t: Thread, ss: int, old: int) -> int:
    sp, flags, size = t.altstack
    rsp = t.process.engine.reg_read(eng.RSP)
    on = size and sp <= rsp < sp + size and not flags & S.SS_DISABLE
    if old:
        t.process.mem.write(old, STACK_T.pack(sp, S.SS_ONSTACK if on else flags, 0, size))
    if ss:
        nsp, nflags, _, nsize = STACK_T.unpack(t.process.mem.read(ss, STACK_T.size))
        if on:
            return -E.EPERM
        if nflags & ~(S.SS_DISABLE | 0x8000_0000):
            return -E.EINVAL
        if nflags & S.SS_DISABLE:
            t.altstack = (0, S.SS_DISABLE, 0)
        else:
            if nsize < 2048:
                return -E.ENOMEM
            t.altstack = (nsp, 0, nsize)
    return 0


@syscall(15)
def sys_rt_sigreturn(k: Kernel, t: Thread) -> object:
    return k.signals.sigreturn(t)


def _info(t: Thread, sig: int, code: int) -> S.SigInfo:
    return S.SigInfo(sig, code, pid=t.process.pid)


@syscall(62, pid="int", sig="int")
def sys_kill(k: Kernel, t: Thread, pid: int, sig: int) -> int:
    pid = pid - (1 << 64) if pid >> 63 else pid
    if not 0 <= sig <= S.NSIG:
        return -E.EINVAL
    if pid in (0, -1):
        targets = [p for p in k.processes.values() if p.exit_status is None]
    else:
        p = k.processes.get(abs(pid))
        targets = [p] if p is not None and p.exit_status is None else []
    if not targets:
        return -E.ESRCH
    if sig:
        for p in targets:
            k.signals.send_process(p, _info(t, sig, S.SI_USER))
    return 0


@syscall(234, tgid="int", tid="int", sig="int")
def sys_tgkill(k: Kernel, t: Thread, tgid: int, tid: int, sig: int) -> int:
    target = k.threads.get(tid)
    if target is None or (tgid != target.process.pid):
        return -E.ESRCH
    if not 0 <= sig <= S.NSIG:
        return -E.EINVAL
    if sig:
        k.signals.send(target, _info(t, sig, S.SI_TKILL))
    return 0


@syscall(200, tid="int", sig="int")
def sys_tkill(k: Kernel, t: Thread, tid: int, sig: int) -> int:
    target = k.threads.get(tid)
    if target is None:
        return -E.ESRCH
    return sys_tgkill(k, t, target.process.pid, tid, sig)
