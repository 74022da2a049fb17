"""Signal delivery: queueing, forcing (faults), the rt_sigframe on the user stack, sigreturn,
and death by signal.

The frame is laid out as the kernel's (signals.py: siginfo, ucontext with sigcontext and the
signal mask, the restorer as return address). FPU/SSE state is not written to the frame; the
full register context is kept on the host, keyed by the frame, and rt_sigreturn restores it,
taking the general registers from the (possibly edited) frame.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from ..engine import unicorn as eng
from ..options import SIGNAL_DELIVERY_NS
from . import errno as E
from . import signals as S
from .control import RESTART
from .mm import GuestFault
from .process import ThreadState, Wait

if TYPE_CHECKING:
    from .kernel import Kernel
    from .process import Process, Thread

# struct sigcontext's general registers, in its order, with the engine's register ids.
_SIGCTX_REGS: tuple[tuple[str, int], ...] = tuple(
    (n, eng.RFLAGS if n == "eflags" else (eng.RIP if n == "rip" else eng.GPR_IDS[_i]))
    for n, _i in (
        ("r8", 8), ("r9", 9), ("r10", 10), ("r11", 11), ("r12", 12), ("r13", 13), ("r14", 14),
        ("r15", 15), ("rdi", 7), ("rsi", 6), ("rbp", 5), ("rbx", 3), ("rdx", 2), ("rax", 0),
        ("rcx", 1), ("rsp", 4), ("rip", -1), ("eflags", -1),
    )
)  # fmt: skip
_FIX_EFLAGS = 0x254DD5  # FIX_EFLAGS: the flags sigreturn takes from the frame

#: What a system call blocked in a wait of this kind ends with when a signal interrupts it:
#: the code its Linux implementation returns (signal(7), "Interruption of system calls and
#: library functions by signal handlers"). Pipes, sockets, eventfd and wait4 return
#: ERESTARTSYS; poll and select ERESTARTNOHAND (epoll_wait's EINTR differs only when no
#: handler runs); pause and sigsuspend ERESTARTNOHAND; nanosleep ERESTART_RESTARTBLOCK. Kinds
#: not listed (uintr_wait, ...) give EINTR.
_INTERRUPTED = {
    "pipe-read": E.ERESTARTSYS, "pipe-write": E.ERESTARTSYS, "eventfd-read": E.ERESTARTSYS,
    "eventfd-write": E.ERESTARTSYS, "socket-read": E.ERESTARTSYS,
    "socket-write": E.ERESTARTSYS, "wait4": E.ERESTARTSYS, "poll": E.ERESTARTNOHAND,
    "sigsuspend": E.ERESTARTNOHAND, "sleep": E.ERESTART_RESTARTBLOCK,
}  # fmt: skip


def interruption(w: Wait) -> int:
    """The code a signal ends a wait of `w`'s kind with (`_INTERRUPTED`); a futex wait
    (futex_wait) ERESTARTSYS, or ERESTART_RESTARTBLOCK with a timeout."""
    if w.kind == "futex":
        return E.ERESTARTSYS if w.deadline is None else E.ERESTART_RESTARTBLOCK
    return _INTERRUPTED.get(w.kind, E.EINTR)


class Signals:
    def __init__(self, k: Kernel) -> None:
        self.k = k

    def send(self, t: Thread, info: S.SigInfo) -> None:
        """Queue a signal for a thread; wake it if it sleeps interruptibly, or waits for this
        signal in rt_sigtimedwait."""
        k = self.k
        act = t.process.sigactions.get(info.signo, S.SigAction())
        blocked = t.sigmask & S.bit(info.signo)
        # An ignored signal is discarded at once unless blocked: the handler may change
        # before it is unblocked (kernel/signal.c sig_ignored()).
        if not blocked and (act.handler == S.SIG_IGN or (
                act.handler == S.SIG_DFL and not S.default_is_fatal(info.signo))):  # fmt: skip
            return
        if any(p.signo == info.signo for p in t.pending) and info.signo < 32:
            return  # standard signals do not queue
        t.pending.append(info)
        w = t.wait
        if t.state is ThreadState.BLOCKED and w is not None:
            if w.kind == "sigtimedwait" and w.key & S.bit(info.signo):
                # It waits for this very signal (blocked, as sigwait wants): the call runs
                # again and takes it (do_sigtimedwait is woken, then dequeues).
                k.sched.wake(t, None)
                t.restart = True
            elif not blocked and w.interruptible:
                code = interruption(w)
                if code == E.EINTR:
                    k.sched.wake(t, -E.EINTR)
                else:  # RAX keeps the call's number: delivery decides (`restart`)
                    k.sched.wake(t, None)
                    t.interrupted = code
        running = k.sched.running
        if t is running:
            t.process.engine.stop()
        elif running is not None and k.sched.loaded_on(t) is not None:
            # The target runs on another CPU: the kernel kicks it with an IPI (kick_process);
            # end the sender's slice so the target's turn, and the delivery, come now.
            k.kick(k.machine.cpus[t.cpu])
            running.process.engine.stop()

    def send_process(self, p: Process, info: S.SigInfo) -> None:
        """A process-directed signal: the first thread that does not block it takes it (the
        main thread first, as complete_signal prefers the thread group leader); a thread in
        rt_sigtimedwait for it counts as not blocking it (its mask is lifted while it waits).
        If every thread blocks it, the main thread keeps it pending."""
        live = [t for t in p.threads if t.state is not ThreadState.DEAD]
        if not live:
            return
        bit = S.bit(info.signo)

        def wants(t: Thread) -> bool:
            w = t.wait
            waiting = w is not None and w.kind == "sigtimedwait" and w.key & bit
            return not t.sigmask & bit or bool(waiting)

        target = next((t for t in live if wants(t)), live[0])
        self.send(target, info)

    def deliverable(self, t: Thread) -> bool:
        """Is a signal pending for `t` that its mask does not block?"""
        return any(not t.sigmask & S.bit(i.signo) or i.signo in (S.SIGKILL, S.SIGSTOP)
                   for i in t.pending)  # fmt: skip

    def force(self, t: Thread, info: S.SigInfo) -> None:
        """A synchronous fault: blocked or ignored means death (kernel force_sig_fault)."""
        act = t.process.sigactions.get(info.signo, S.SigAction())
        if t.sigmask & S.bit(info.signo) or act.handler == S.SIG_IGN:
            t.process.sigactions[info.signo] = S.SigAction()
            t.sigmask &= ~S.bit(info.signo)
        t.pending.appendleft(info)
        self.deliver(t)

    def deliver(self, t: Thread) -> None:
        """On the way back to user mode: the first deliverable signal (one frame at a time; the
        rest are delivered on the next return to user); then a system call the signal
        interrupted is restarted or fails with EINTR (`restart`)."""
        k = self.k
        for info in list(t.pending):
            if t.sigmask & S.bit(info.signo) and info.signo not in (S.SIGKILL, S.SIGSTOP):
                continue
            t.pending.remove(info)
            act = t.process.sigactions.get(info.signo, S.SigAction())
            if act.handler == S.SIG_IGN:
                continue
            if k.debugger is not None and not k.debugger.signal(t, info):
                continue  # gdb stopped for it and went on without it
            if act.handler == S.SIG_DFL:
                if S.default_is_fatal(info.signo):
                    if k.strace is not None:
                        k.strace.report_signal(t, info)
                    self.terminate(t, info)
                    return
                continue
            if k.strace is not None:
                k.strace.report_signal(t, info)
            if k.tracer.sinks:
                k.emit("signal", t, signo=info.signo, code=info.code, action="handler",
                       handler=act.handler)  # fmt: skip
            self.restart(t, act)  # before the frame, which saves RIP and RAX
            self._setup_frame(t, info, act)
            if act.flags & S.SA_RESETHAND:
                t.process.sigactions[info.signo] = S.SigAction()
            return
        self.restart(t, None)

    def restart(self, t: Thread, act: S.SigAction | None) -> None:
        """A system call of `t` ended with an -ERESTART* code (`Thread.interrupted`), and
        `act`'s handler is about to run (None: no handler runs). As handle_signal and
        arch_do_signal_or_restart (arch/x86/kernel/signal.c): with a handler, ERESTARTSYS
        restarts only under SA_RESTART, ERESTARTNOINTR always, the others give EINTR; without
        one every code restarts (ERESTART_RESTARTBLOCK: EINTR here, there is no
        restart_syscall) and a mask sigsuspend replaced is restored. A restart runs the
        SYSCALL again: RIP back by its 2 bytes, RAX still the call's number."""
        code, t.interrupted = t.interrupted, 0
        if not code:
            return
        e = self.k.load_thread(t)
        if act is None:
            again = code != E.ERESTART_RESTARTBLOCK
            if t.saved_sigmask is not None:
                t.sigmask, t.saved_sigmask = t.saved_sigmask, None
        else:
            again = code == E.ERESTARTNOINTR or (
                code == E.ERESTARTSYS and bool(act.flags & S.SA_RESTART)
            )
        if again:
            e.reg_write(eng.RIP, e.reg_read(eng.RIP) - 2)
        else:
            e.reg_write(eng.RAX, -E.EINTR & 0xFFFF_FFFF_FFFF_FFFF)

    def _setup_frame(self, t: Thread, info: S.SigInfo, act: S.SigAction) -> None:
        e = self.k.load_thread(t)
        mem = t.process.mem
        regs = {n: e.reg_read(r) for n, r in _SIGCTX_REGS}
        rsp = regs["rsp"]
        ss_sp, ss_flags, ss_size = t.altstack
        on_alt = ss_size and ss_sp <= rsp < ss_sp + ss_size
        if act.flags & S.SA_ONSTACK and not ss_flags & S.SS_DISABLE and not on_alt:
            sp = ss_sp + ss_size
        else:
            sp = rsp - 128  # skip the red zone
        frame = ((sp - S.FRAME_SIZE) & ~0xF) - 8  # (frame + 8) % 16 == 0 at handler entry
        uc_stack = struct.pack("<QiiQ", ss_sp, S.SS_ONSTACK if on_alt else ss_flags, 0, ss_size)
        gprs = [regs[n] for n in S.SIGCONTEXT_GPRS]
        mctx = struct.pack("<18Q", *gprs) + struct.pack("<HHHH", 0x33, 0, 0, 0x2B)
        mctx += struct.pack("<QQQQQ", 0, info.trapno, t.sigmask & 0xFFFF_FFFF, info.addr, 0)
        mctx += b"\0" * 64
        data = (
            struct.pack("<Q", act.restorer)
            + struct.pack("<QQ", 0, 0)
            + uc_stack
            + mctx
            + struct.pack("<Q", t.sigmask if t.saved_sigmask is None else t.saved_sigmask)
            + info.pack()
        )
        try:
            mem.write(frame, data)
        except GuestFault:
            # Cannot build the frame: the kernel kills the thread with SIGSEGV.
            self.terminate(t, S.SigInfo(S.SIGSEGV, S.SI_KERNEL, rip=regs["rip"]))
            return
        t.saved_sigmask = None
        t.charge += SIGNAL_DELIVERY_NS
        saved = e.new_context()  # FPU/SSE state, restored by rt_sigreturn
        t.sig_contexts[frame + S.UC_OFFSET] = saved
        if len(t.sig_contexts) > 64:  # frames abandoned by siglongjmp
            t.sig_contexts.pop(next(iter(t.sig_contexts)))
        if not act.flags & S.SA_NODEFER:
            t.sigmask |= S.bit(info.signo)
        t.sigmask |= act.mask & ~S.UNBLOCKABLE
        e.reg_write(eng.RSP, frame)
        e.reg_write(eng.RIP, act.handler)
        e.reg_write(eng.GPR_IDS[7], info.signo)  # rdi
        e.reg_write(eng.GPR_IDS[6], frame + S.SIGINFO_OFFSET)  # rsi
        e.reg_write(eng.GPR_IDS[2], frame + S.UC_OFFSET)  # rdx
        e.reg_write(eng.RAX, 0)
        e.reg_write(eng.RFLAGS, regs["eflags"] & ~(0x100 | 0x400))  # clear TF, DF

    def sigreturn(self, t: Thread) -> object:
        e = t.process.engine
        uc = e.reg_read(eng.RSP)  # the handler's `ret` popped pretcode: RSP is the ucontext
        mem = t.process.mem
        mctx = mem.read(uc + S.MCONTEXT_OFFSET - S.UC_OFFSET, 18 * 8)
        gprs = struct.unpack("<18Q", mctx)
        mask = mem.read_u64(uc + S.SIGMASK_OFFSET - S.UC_OFFSET)
        saved = t.sig_contexts.pop(uc, None)
        if self.k.tracer.sinks:
            self.k.emit("sigreturn", t, rip=gprs[16])
        if saved is not None:
            e.restore(saved)
        for (name, reg), v in zip(_SIGCTX_REGS, gprs, strict=True):
            if name == "eflags":
                v = (e.reg_read(reg) & ~_FIX_EFLAGS) | (v & _FIX_EFLAGS)
            e.reg_write(reg, v)
        t.sigmask = mask & ~S.UNBLOCKABLE
        return RESTART

    def terminate(self, t: Thread, info: S.SigInfo) -> None:
        k = self.k
        p = t.process
        if k.debugger is not None:
            k.debugger.signal(t, info)  # a stop before it ends the program (once per signal)
        if k.tracer.sinks:
            k.emit("signal", t, signo=info.signo, code=info.code, action="terminate")
        name = S.sig_name(info.signo)
        rip = info.rip or p.engine.reg_read(eng.RIP) if p.loaded is t else info.rip
        detail = f"rip={rip:#x}"
        # si_addr is an address only with a fault's own si_code: not for SI_KERNEL (#GP, #SS,
        # int3: si_addr 0) nor for a signal sent by a process.
        if info.signo in (S.SIGSEGV, S.SIGBUS, S.SIGILL, S.SIGFPE) and 0 < info.code < S.SI_KERNEL:
            detail += f", address {info.addr:#x}"
        if p is k.init_process and info.signo != S.SIGPIPE:  # shells stay quiet on SIGPIPE
            k.warn(info.message or f"program terminated by {name} ({detail})")
        k.tasks.exit_process(p, 128 + info.signo, signaled=info.signo)
