"""Signals sent to the emulator itself (not to the guest): SIGINT (Ctrl-C) and SIGTERM end a
command within a fraction of a second, with status 128+N and one line, whatever the main thread
is doing -- even while a lone guest thread spins without system calls.

Why a helper thread: CPython runs a Python signal handler in the main thread, between two
bytecodes. While the main thread is inside the engine (`uc_emu_start`, the GIL released) that
waits until the guest next traps into Python, which a spinning guest never does. But CPython's
C-level handler also writes the signal's number to the wakeup fd (`signal.set_wakeup_fd`) at
once, and a helper thread blocked on that fd acts on it:

- while a run is on (`HostSignals.running(end)`), it asks the run to end: `end(status,
  message)` (`Kernel.end`) stops the engine asynchronously and the run loop returns that status
  after printing the line (docs/engine-notes.md G14: nothing runs guest code afterwards);
- if the main thread has not left the run GRACE_S later (it is blocked in a host call: a read
  of the terminal for the guest, gdb's socket), or no run is on (loading, waiting for gdb,
  `explore`'s parent), the helper sends the signal again, to the main thread alone: the system
  call it is blocked in fails with EINTR, and the Python handler, told to, raises HostSignal,
  once. Only then, so that the exception never surfaces at a random bytecode of an engine hook
  (ctypes would print and drop one raised at a callback's first line).

`ACTIONS` is the one place that decides what a signal does. Forwarding a signal to the guest,
as qemu-user does, would be another kind of action there, taken by the helper.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType, TracebackType
from typing import Any

#: What a host signal does to the command: end it with this status and one line
#: "uintr-emu: MESSAGE" (128+N, the status a shell reports for a process the signal killed).
ACTIONS: dict[int, tuple[int, str]] = {
    signal.SIGINT: (128 + signal.SIGINT, "interrupted"),
    signal.SIGTERM: (128 + signal.SIGTERM, "terminated"),
}
#: How long a run that was asked to end may take to return before the main thread is
#: interrupted. A spinning guest's run returns within milliseconds.
GRACE_S = 0.1

#: Ends a run from another host thread: `end(status, message)` (api.Machine.end).
Ender = Callable[[int, str], None]


class HostSignal(BaseException):
    """Raised in the main thread to end the command (a BaseException, as KeyboardInterrupt:
    `except Exception` does not stop it)."""

    def __init__(self, signum: int):
        self.signum = signum
        self.status, self.message = ACTIONS[signum]
        super().__init__(self.message)


class HostSignals:
    """`with HostSignals() as signals:` handles ACTIONS' signals for the block (in the main
    thread; elsewhere it does nothing, as Python allows handlers only there); a run inside it
    is wrapped in `signals.running(end)`."""

    def __init__(self) -> None:
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
        self._old_handlers = {s: signal.signal(s, self._handler) for s in ACTIONS}
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
    def running(self, end: Ender) -> Iterator[None]:
        """A run is on in the block: a signal asks it to end with `end(status, message)`."""
        self._asked = False
        self._left.clear()
        self._end = end
        try:
            yield
        finally:
            self._end = None
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
                if signum in ACTIONS:
                    self._act(signum)

    def _act(self, signum: int) -> None:
        """A signal arrived: ACTIONS says the command ends."""
        if self._signum is None:
            self._signum = signum
        status, message = ACTIONS[self._signum]
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
