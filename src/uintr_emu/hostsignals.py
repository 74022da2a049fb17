"""Signals sent to the emulator itself. `run` forwards them to the guest, as qemu-user does
(FORWARDED: the guest's handler runs, an ignored one does nothing, a default action that ends
the process ends the run with status 128+N and one line); elsewhere, and when forwarding is
off (`explore`, a run under --gdb), SIGINT (Ctrl-C) and SIGTERM end the command within a
fraction of a second with status 128+N and one line, whatever the main thread is doing --
even while a lone guest thread spins without system calls.

Why a helper thread: CPython runs a Python signal handler in the main thread, between two
bytecodes. While the main thread is inside the engine (`uc_emu_start`, the GIL released) that
waits until the guest next traps into Python, which a spinning guest never does. But CPython's
C-level handler also writes the signal's number to the wakeup fd (`signal.set_wakeup_fd`) at
once, and a helper thread blocked on that fd acts on it:

- forwarding, it posts the signal to the run (`api.Machine.signal`): the engine stops at its
  next block boundary, synchronously, and the kernel sends the signal to the guest
  (linux/forwarded.py). If the kernel has not taken it FORWARD_GRACE_S later, its thread is
  stuck in a host call no wake-up ends (a write to a full pipe, ...): a signal whose default
  action ends the process then ends the run as below;
- ending, it asks the run to end: `end(status, message)` (`Kernel.end`) stops the engine
  asynchronously and the run loop returns that status after printing the line
  (docs/engine-notes.md G14: nothing runs guest code afterwards);
- if the main thread has not left the run GRACE_S later (it is blocked in a host call: a read
  of the terminal for the guest, gdb's socket), or no run is on (loading, waiting for gdb,
  `explore`'s parent), the helper sends the signal again, to the main thread alone: the system
  call it is blocked in fails with EINTR, and the Python handler, told to, raises HostSignal,
  once. Only then, so that the exception never surfaces at a random bytecode of an engine hook
  (ctypes would print and drop one raised at a callback's first line).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType, TracebackType
from typing import Any, Protocol

#: The line "uintr-emu: MESSAGE" of each signal whose default action ends a process, when it
#: ends the command, with status 128+N (what a shell reports for a process the signal killed;
#: SIGQUIT's core dump included).
LINES: dict[int, str] = {
    signal.SIGHUP: "hangup", signal.SIGINT: "interrupted", signal.SIGQUIT: "quit",
    signal.SIGUSR1: "user signal 1", signal.SIGUSR2: "user signal 2",
    signal.SIGALRM: "alarm clock", signal.SIGTERM: "terminated",
}  # fmt: skip
#: What a host signal does to a command that does not forward it: end with this status and
#: line.
ACTIONS: dict[int, tuple[int, str]] = {
    s: (128 + s, LINES[s]) for s in (signal.SIGINT, signal.SIGTERM)
}
#: Forwarded to the guest by `run`: the catchable signals a user or terminal sends (qemu-user
#: forwards every one). Not the job-control stops (SIGTSTP, SIGTTIN, SIGTTOU: Ctrl-Z stops the
#: emulator as a whole), nor SIGPIPE and the fault signals, which the host sends the emulator
#: for its own doing (a guest's write to a closed pipe becomes the guest's EPIPE and SIGPIPE
#: in the kernel layer), nor SIGCHLD.
FORWARDED: frozenset[int] = frozenset((*LINES, signal.SIGCONT, signal.SIGWINCH))
#: How long a run that was asked to end may take to return before the main thread is
#: interrupted. A spinning guest's run returns within milliseconds.
GRACE_S = 0.1
#: How long the kernel may take to take a forwarded signal (linux/forwarded.py) before its
#: thread counts as stuck in a host call. Taking one takes microseconds to a millisecond.
FORWARD_GRACE_S = 0.3

#: Ends a run from another host thread: `end(status, message)` (api.Machine.end).
Ender = Callable[[int, str], None]


class Forwarder(Protocol):
    """Where `run` forwards host signals: api.Machine."""

    def signal(self, signum: int, message: str = "") -> int: ...

    def signal_taken(self, ticket: int, timeout: float) -> bool: ...


class HostSignal(BaseException):
    """Raised in the main thread to end the command (a BaseException, as KeyboardInterrupt:
    `except Exception` does not stop it)."""

    def __init__(self, signum: int):
        self.signum = signum
        self.status, self.message = 128 + signum, LINES[signum]
        super().__init__(self.message)


class HostSignals:
    """`with HostSignals() as signals:` handles ACTIONS' signals for the block, FORWARDED's
    with `forward` (in the main thread; elsewhere it does nothing, as Python allows handlers
    only there); a run inside it is wrapped in `signals.running(end, forward)`."""

    def __init__(self, *, forward: bool = False) -> None:
        self._caught = FORWARDED if forward else frozenset(ACTIONS)
        self._forward: Forwarder | None = None  # the run that is on, if it forwards
        self._active = False
        self._signum: int | None = None  # the first signal: it decides the status
        self._end: Ender | None = None  # the run that is on
        self._asked = False  # `_end` was called
        self._left = threading.Event()  # the main thread left the run
        self._interrupting = False  # the main thread is to raise HostSignal
        self._raised = False
        self._closing = False
        self._main = threading.main_thread().ident or 0
        self._old_handlers: dict[int, Any] = {}
        self._old_fd = -1
        self._fds = (-1, -1)
        self._thread: threading.Thread | None = None

    def __enter__(self) -> HostSignals:
        if threading.current_thread() is not threading.main_thread():
            return self
        r, w = os.pipe2(os.O_CLOEXEC)
        os.set_blocking(w, False)  # CPython's handler must never block on it
        self._fds = (r, w)
        # A signal the emulator was started with ignored stays ignored (nohup's SIGHUP, a
        # shell's SIGINT for a background job): it is not the guest's to see either.
        self._caught = frozenset(s for s in self._caught
                                 if signal.getsignal(s) is not signal.SIG_IGN)  # fmt: skip
        self._old_handlers = {s: signal.signal(s, self._handler) for s in self._caught}
        self._old_fd = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
        self._thread = threading.Thread(target=self._serve, name="uintr-emu signals", daemon=True)
        self._thread.start()
        self._active = True
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        if not self._active:
            return
        self._closing = True  # from now on the handler raises nothing
        os.write(self._fds[1], b"\0")  # not a signal number: the helper returns
        assert self._thread is not None
        self._thread.join()
        signal.set_wakeup_fd(self._old_fd)
        for s, handler in self._old_handlers.items():
            signal.signal(s, handler)
        for fd in self._fds:
            os.close(fd)
        self._active = False

    @contextmanager
    def running(self, end: Ender, forward: Forwarder | None = None) -> Iterator[None]:
        """A run is on in the block: a signal is forwarded to it (`forward`), or asks it to end
        with `end(status, message)`."""
        self._asked = False
        self._left.clear()
        self._end = end
        self._forward = forward
        try:
            yield
        finally:
            self._end = self._forward = None
            self._left.set()

    # --- the main thread --------------------------------------------------------------------

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        """The Python-level handler: the helper decides; this only raises when told to."""
        if self._interrupting and not self._raised and not self._closing:
            self._raised = True
            assert self._signum is not None
            raise HostSignal(self._signum)

    # --- the helper thread ------------------------------------------------------------------

    def _serve(self) -> None:
        while True:
            data = os.read(self._fds[0], 64)
            for signum in data:
                if signum == 0:
                    return
                if signum in self._caught:
                    self._act(signum)

    def _act(self, signum: int) -> None:
        """A signal arrived: forward it, or end the command if its default action would."""
        if self._interrupting:
            return  # the command is ending (and this may be the echo of `_interrupt_main`)
        forward = self._forward
        if forward is not None:
            ticket = forward.signal(signum, LINES.get(signum, ""))
            if forward.signal_taken(ticket, FORWARD_GRACE_S) or self._end is None:
                return  # the guest's kernel has it (or the run is over)
        if signum not in LINES:
            return  # its default action does nothing
        if self._signum is None:
            self._signum = signum
        status, message = 128 + self._signum, LINES[self._signum]
        end = self._end
        if end is not None:
            if not self._asked:
                self._asked = True
                end(status, message)
            if self._left.wait(GRACE_S):
                return  # the run returned the status itself
        self._interrupt_main()

    def _interrupt_main(self) -> None:
        if self._interrupting or self._closing:
            return
        self._interrupting = True
        assert self._signum is not None
        signal.pthread_kill(self._main, self._signum)  # (its echo on the wakeup fd is ignored)


def reset_in_child(ignore_interrupt: bool) -> None:
    """In a process forked inside `HostSignals` (explore's workers): the default handlers,
    or SIGINT ignored (`ignore_interrupt`: a terminal's Ctrl-C reaches the whole process group,
    and the parent ends its workers itself), and no wakeup fd (it is the parent's pipe)."""
    signal.set_wakeup_fd(-1)
    for s in ACTIONS:
        signal.signal(s, signal.SIG_DFL)
    if ignore_interrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
