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
from .paths import s32
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


def set_user_sigmask(t: Thread, addr: int, size: int) -> int:
    """set_user_sigmask (ppoll, pselect6, epoll_pwait): the mask at `addr` is in force for
    the wait. The thread's own mask is kept in saved_sigmask, which the way back to user mode
    puts back -- after the handler, through its frame, when a signal ended the wait
    (restore_saved_sigmask_unless(-EINTR)). A restarted call keeps the first saved mask."""
    if not addr:
        return 0
    if size != U64.size:
        return -E.EINVAL
    new = U64.unpack(t.process.mem.read(addr, U64.size))[0] & ~S.UNBLOCKABLE
    if t.saved_sigmask is None:
        t.saved_sigmask = t.sigmask
    t.sigmask = new
    return 0


def masked_wait(k: Kernel, t: Thread, result: object) -> object:
    """The end of a wait under set_user_sigmask's mask: a result other than EINTR puts the
    thread's mask back at once (restore_saved_sigmask_unless), as does a timeout; a wait
    that would sleep while the mask lets a pending signal through ends at once with EINTR
    (signal_pending in the wait loop), and the signal is delivered."""
    if t.saved_sigmask is None:
        return result
    if result is BLOCK:
        if any(not t.sigmask & S.bit(i.signo) for i in t.pending):
            k.sched.wake(t, -E.EINTR)
        elif t.wait is not None:
            wait, expired = t.wait, t.wait.expired

            def timed_out() -> None:
                if expired is not None:
                    expired()
                restore_sigmask(t)

            wait.expired = timed_out
    elif result != -E.EINTR:
        restore_sigmask(t)
    return result


def restore_sigmask(t: Thread) -> None:
    if t.saved_sigmask is not None:
        t.sigmask, t.saved_sigmask = t.saved_sigmask, None


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
    """kill_something_info (kernel/signal.c): pid > 0 is that process, 0 the caller's process
    group, -1 every process but init and the caller, < -1 the group -pid; ESRCH when nothing
    matches (INT_MIN, which has no negation, never does). A zombie still counts (the call
    succeeds) but has no one left to take the signal."""
    pid = s32(pid)
    if not 0 <= sig <= S.NSIG:
        return -E.EINVAL
    procs = list(k.processes.values())
    if pid > 0:
        targets = [p for p in procs if p.pid == pid]
    elif pid == 0:
        targets = [p for p in procs if p.pgid == t.process.pgid]
    elif pid == -1:
        targets = [p for p in procs if p.pid > 1 and p is not t.process]
    else:
        targets = [p for p in procs if p.pgid == -pid and pid != -(1 << 31)]
    if not targets:
        return -E.ESRCH
    if sig:
        for p in targets:
            if p.exit_status is None:
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
