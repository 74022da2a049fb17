"""eventfd and eventfd2. The counter itself is `linux/ipc.py`'s EventFd."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import errno as E
from ..ipc import EventFd
from . import syscall

if TYPE_CHECKING:
    from ..kernel import Kernel
    from ..process import Thread

EFD_SEMAPHORE, EFD_NONBLOCK, EFD_CLOEXEC = 1, 0o4000, 0o2000000


@syscall(290, initval="int", flags="hex")
def sys_eventfd2(k: Kernel, t: Thread, initval: int, flags: int) -> int:
    if flags & ~(EFD_SEMAPHORE | EFD_NONBLOCK | EFD_CLOEXEC):
        return -E.EINVAL
    f = EventFd(initval & 0xFFFF_FFFF, bool(flags & EFD_SEMAPHORE))
    f.nonblock = bool(flags & EFD_NONBLOCK)
    return t.process.fds.install(f, cloexec=bool(flags & EFD_CLOEXEC))


@syscall(284, initval="int")
def sys_eventfd(k: Kernel, t: Thread, initval: int) -> int:
    return sys_eventfd2(k, t, initval, 0)
