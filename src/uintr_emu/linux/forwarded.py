"""Signals from outside the machine: the host's signals to the emulator, forwarded to the guest
as the kernel would send them (docs/linux.md, "Host signals").

A host signal is a process-directed signal to the first process, from a sender outside its
PID namespace: si_code SI_USER, si_pid 0 (kernel/signal.c: the sender's pid as seen from the
receiver's namespace, 0 when it is not in it), si_uid the guest's own uid (the same user sent
it). Which thread takes it, what its disposition does and how a blocked system call ends are
the guest kernel's ordinary rules (signaling.py).

`post` is called from any host thread (cli.py's HostSignals helper, `api.Machine.signal`),
once `enable` said which signals are forwarded. It only queues the signal, writes a byte to a
wake-up pipe and calls the machine's attention (`Machine.call_attention`), which stops the
running engine at its next block boundary from inside a hook: a synchronous stop, unlike the
asynchronous one that ends a run (docs/engine-notes.md G14). Everything else happens on the
kernel's own thread, between two engine runs (`take`, at the start of a round) or inside a
system call that waits on the host (`wait_host`), so a signal is delivered like any other: at
the boundary where the run stopped.
"""

from __future__ import annotations

import os
import select
import threading
import weakref
from collections import deque
from typing import TYPE_CHECKING

from . import errno as E
from . import signals as S
from .control import RESTART

if TYPE_CHECKING:
    from .kernel import Kernel
    from .process import Thread

#: How long an idle wait (every thread waits for a signal) sleeps between looks at `Kernel.end`.
IDLE_POLL_S = 0.05


def _close(*fds: int) -> None:
    for fd in fds:
        os.close(fd)


class Forwarded:
    def __init__(self, k: Kernel) -> None:
        self.k = k
        # The signals someone forwards (`enable`): a guest waiting for one is then not
        # deadlocked (`idle`), and host calls wait interruptibly (`wait_host`).
        self.enabled: frozenset[int] = frozenset()
        self._queue: deque[tuple[int, str]] = deque()
        self._wake_r = self._wake_w = -1  # the wake-up pipe, made by `enable`
        self._taken = threading.Condition()
        self._posted = 0  # signals posted / taken, for `wait_taken`
        self._took = 0

    def enable(self, signums: frozenset[int]) -> None:
        """These signals are forwarded from now on (the command line: hostsignals.py
        FORWARDED; the API: `forward_signals`, `signal`)."""
        with self._taken:
            if self._wake_r < 0:
                self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
                weakref.finalize(self, _close, self._wake_r, self._wake_w)
            self.enabled = self.enabled | signums

    # --- any host thread ------------------------------------------------------------------

    def post(self, signo: int, message: str) -> int:
        """Forward `signo`; `message` is the line printed if it ends the run (its default
        action). Returns a ticket for `wait_taken`."""
        with self._taken:
            self._posted += 1
            ticket = self._posted
        self._queue.append((signo, message))
        self.wake()
        self.k.machine.call_attention()
        return ticket

    def wake(self) -> None:
        """Ends a wait on the host (`wait_host`, `idle`) early: something is to be looked at."""
        if self._wake_w < 0:
            return  # nothing forwards, nothing waits for it
        try:
            os.write(self._wake_w, b"!")
        except BlockingIOError:
            pass  # full: a wake-up is pending anyway

    def wait_taken(self, ticket: int, timeout: float) -> bool:
        """Has the kernel taken the signal of `ticket` within `timeout` seconds? (It has not
        when its thread is stuck in a host call that no wake-up ends.)"""
        with self._taken:
            return self._taken.wait_for(lambda: self._took >= ticket, timeout)

    # --- the kernel's thread ------------------------------------------------------------

    def take(self) -> None:
        """Send every posted signal to the first process (called between engine runs)."""
        if not self.k.machine.take_attention() and not self._queue:
            return
        n = 0
        while self._queue:
            signo, message = self._queue.popleft()
            n += 1
            p = self.k.init_process
            if p is not None and p.exit_status is None:
                info = S.SigInfo(signo, S.SI_USER, pid=0, uid=os.getuid(), message=message)
                if self.k.tracer.sinks:
                    self.k.emit("signal", None, signo=signo, code=S.SI_USER, action="host")
                self.k.signals.send_process(p, info)
        if n:
            with self._taken:
                self._took += n
                self._taken.notify_all()

    def wait_host(self, t: Thread, fd: int, events: int) -> bool:
        """Before a host call on `fd` that may block `t` (a read of the terminal or a pipe):
        wait until `fd` is ready for `events` (select.POLLIN/POLLOUT) -- True -- or a forwarded
        signal is deliverable to `t` -- False: the call ends with ERESTARTSYS. While nothing
        forwards signals the call just blocks (a signal then ends the run: cli.py)."""
        if not self.enabled or not os.get_blocking(fd):
            return True  # (a non-blocking fd: the call itself fails with EAGAIN)
        poll = select.poll()
        poll.register(fd, events)
        poll.register(self._wake_r, select.POLLIN)
        while True:
            ready = dict(poll.poll())
            if fd in ready:
                return True
            self._drain()
            self.take()
            if self.k.ending is not None or self.k.signals.deliverable(t):
                return False

    def interrupted(self, t: Thread) -> object:
        """What a system call that `wait_host` said False to returns: ERESTARTSYS, RAX left
        holding the call's number (delivery decides: Signals.restart)."""
        t.interrupted = E.ERESTARTSYS
        return RESTART

    def idle(self) -> bool:
        """Every thread is blocked and no timer is armed. If host signals are forwarded and
        one could end a wait -- a thread waits in pause, sigsuspend or sigtimedwait, or one
        waits interruptibly in a process with a handler for a forwarded signal -- wait for one
        (or for `Kernel.end`) and return True; otherwise it is a deadlock (False)."""
        if not self.enabled or not any(self._ends_wait(t) for t in self.k.threads.values()):
            return False
        while self.k.ending is None and not self._queue:
            select.select([self._wake_r], [], [], IDLE_POLL_S)
            self._drain()
        return True

    def _ends_wait(self, t: Thread) -> bool:
        w = t.wait
        if w is None or not w.interruptible:
            return False
        if w.kind in ("sigsuspend", "sigtimedwait"):
            return True
        acts = t.process.sigactions
        return any(acts[s].handler not in (S.SIG_DFL, S.SIG_IGN)
                   for s in self.enabled if s in acts)  # fmt: skip

    def _drain(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass
