"""How a system call or a trap hands control back to the kernel, besides a return value.

A leaf module: syscall handlers, the scheduler and the run loop all import it, so none of them
needs to import the kernel for these names.
"""

from __future__ import annotations

#: A syscall handler's result: the thread blocked (its `Wait` is set); RAX is written when it
#: is woken (`Thread.result`).
BLOCK = object()
#: A syscall handler's result: the thread's registers were replaced (sigreturn, exec, exit):
#: leave RAX alone.
RESTART = object()


class GuestExit(Exception):
    """The machine stops: the initial process ended, or a limit was reached."""

    def __init__(self, status: int, message: str | None = None):
        super().__init__(message or f"exit {status}")
        self.status = status
        self.message = message
