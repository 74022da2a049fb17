"""Kernel objects behind fds besides files, pipes and sockets (linux/afunix.py): eventfd."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import errno as E
from .abi import POLLIN, POLLOUT, U64
from .control import BLOCK
from .process import File, Wait

if TYPE_CHECKING:
    from .kernel import Kernel
    from .process import Thread

EVENTFD_MAX = 0xFFFF_FFFF_FFFF_FFFE


class EventFd(File):
    kind = "eventfd"

    def __init__(self, initval: int, semaphore: bool):
        self.counter = initval
        self.semaphore = semaphore

    def read(self, k: Kernel, t: Thread, count: int) -> bytes | int | object:
        if count < 8:
            return -E.EINVAL
        if self.counter == 0:
            if self.nonblock:
                return -E.EAGAIN
            k.sched.block(t, Wait("eventfd-read", key=self, restart=True))
            return BLOCK
        value = 1 if self.semaphore else self.counter
        self.counter -= value
        k.sched.notify(self)
        return U64.pack(value)

    def write(self, k: Kernel, t: Thread, data: bytes) -> int | object:
        if len(data) < 8:
            return -E.EINVAL
        value = U64.unpack_from(data)[0]
        if value == 0xFFFF_FFFF_FFFF_FFFF:
            return -E.EINVAL
        if self.counter + value > EVENTFD_MAX:
            if self.nonblock:
                return -E.EAGAIN
            k.sched.block(t, Wait("eventfd-write", key=self, restart=True))
            return BLOCK
        self.counter += value
        k.sched.notify(self)
        return 8

    def poll(self, events: int) -> int:
        rev = POLLIN if self.counter else 0
        if self.counter < EVENTFD_MAX:
            rev |= POLLOUT
        return rev & events
