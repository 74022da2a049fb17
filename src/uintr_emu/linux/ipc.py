"""Kernel objects behind fds besides files and pipes: eventfd and AF_UNIX socket pairs."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import errno as E
from .abi import POLLHUP, POLLIN, POLLOUT, U64
from .control import BLOCK
from .process import File, Wait
from .signals import SIGPIPE, SigInfo

if TYPE_CHECKING:
    from .kernel import Kernel
    from .process import Thread

EVENTFD_MAX = 0xFFFF_FFFF_FFFF_FFFE
SOCKET_CAPACITY = 212_992  # the default net.core.wmem_default


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


class UnixSocket(File):
    """One end of a socketpair(AF_UNIX): messages carry bytes and passed files (SCM_RIGHTS)."""

    kind = "socket"

    def __init__(self, stream: bool, wake: Callable[[Any], None] | None = None):
        self.stream = stream
        self.peer: UnixSocket | None = None
        self.rx: deque[list[Any]] = deque()  # [bytearray, files]
        self.closed = False
        self.wake = wake  # Scheduler.notify: wakes the threads waiting on a socket

    def queued(self) -> int:
        return sum(len(m[0]) for m in self.rx)

    def close(self) -> None:
        """The last reference is gone: a reader blocked on the peer reads EOF now, a writer
        blocked sending to this end gets EPIPE (unix_release_sock wakes both)."""
        self.closed = True
        self.rx.clear()
        if self.wake is not None:
            self.wake(self)
            if self.peer is not None:
                self.wake(self.peer)

    def recv(self, k: Kernel, t: Thread, count: int) -> tuple[bytes, list[File]] | int | object:
        if not self.rx:
            if self.peer is None or self.peer.closed:
                return b"", []
            if self.nonblock:
                return -E.EAGAIN
            k.sched.block(t, Wait("socket-read", key=self, restart=True))
            return BLOCK
        msg = self.rx[0]
        data, files = msg
        if self.stream:
            out = bytes(data[:count])
            del data[:count]
            msg[1] = []
            if not data:
                self.rx.popleft()
        else:
            out = bytes(data[:count])
            self.rx.popleft()
        if self.peer is not None:
            k.sched.notify(self.peer)
        return out, files

    def send(self, k: Kernel, t: Thread, data: bytes, files: list[File]) -> int | object:
        peer = self.peer
        if peer is None or peer.closed:
            k.signals.send(t, SigInfo(SIGPIPE, 0, pid=t.process.pid))
            return -E.EPIPE
        if peer.queued() + len(data) > SOCKET_CAPACITY and peer.rx:
            if self.nonblock:
                return -E.EAGAIN
            k.sched.block(t, Wait("socket-write", key=peer, restart=True))
            return BLOCK
        for f in files:  # in flight: the message holds a reference (unix_inflight)
            f.refs += 1
        peer.rx.append([bytearray(data), files])
        k.sched.notify(peer)
        return len(data)

    def read(self, k: Kernel, t: Thread, count: int) -> bytes | int | object:
        r = self.recv(k, t, count)
        if isinstance(r, tuple):
            for f in r[1]:  # passed files with no recvmsg to take them are dropped
                release(f)
            return r[0]
        return r

    def write(self, k: Kernel, t: Thread, data: bytes) -> int | object:
        return self.send(k, t, data, [])

    def poll(self, events: int) -> int:
        rev = POLLIN if self.rx else 0
        if self.peer is None or self.peer.closed:
            rev |= POLLHUP | POLLIN
        elif self.peer.queued() < SOCKET_CAPACITY:
            rev |= POLLOUT
        return rev & (events | POLLHUP)


def release(f: File) -> None:
    f.refs -= 1
    if f.refs <= 0:
        f.close()
