"""epoll (fs/eventpoll.c) over the same readiness as poll: epoll_create/create1, epoll_ctl,
epoll_wait, epoll_pwait and epoll_pwait2. Level-triggered as Linux; EPOLLONESHOT disarms an
entry once reported; an EPOLLET entry is reported when ready and something happened to its
file since it was last reported (a write, a read, a close: whatever makes the scheduler
`notify` waiters on it, ep_poll_callback's moment). Regular files and directories cannot be
added (EPERM), as in Linux."""

from __future__ import annotations

import os
import stat as st
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import errno as E
from ..control import BLOCK
from ..process import File, HostFile, PipeEnd, Wait
from . import syscall
from .open import O_CLOEXEC
from .paths import s32
from .pipes import poll_ready
from .signal import masked_wait, set_user_sigmask
from .time import read_timespec

if TYPE_CHECKING:
    from ..kernel import Kernel
    from ..process import Thread

EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD = 1, 2, 3
EPOLLERR, EPOLLHUP = 0x008, 0x010
EPOLLEXCLUSIVE, EPOLLWAKEUP, EPOLLONESHOT, EPOLLET = 1 << 28, 1 << 29, 1 << 30, 1 << 31
EPOLL_EVENT = struct.Struct("<IQ")  # struct epoll_event is packed on x86-64: 12 bytes
EP_MAX_EVENTS = 0x7FFF_FFFF // EPOLL_EVENT.size


@dataclass(eq=False)
class Interest:
    file: File
    events: int
    data: int
    armed: bool = True  # EPOLLONESHOT: off once reported, until EPOLL_CTL_MOD
    edge: bool = True  # EPOLLET: its file changed since the entry was last reported

    def watches(self, obj: Any) -> bool:
        f = self.file
        return (f.pipe if isinstance(f, PipeEnd) else f) is obj


class Epoll(File):
    kind = "epoll"

    def __init__(self, k: Kernel) -> None:
        self.interest: dict[int, Interest] = {}
        self.watchers = k.sched.edge_watchers
        self.watchers.append(self.on_notify)

    def on_notify(self, obj: Any) -> None:
        for it in self.interest.values():
            if it.events & EPOLLET and it.watches(obj):
                it.edge = True

    def close(self) -> None:
        self.watchers.remove(self.on_notify)

    def _ready(self, report: bool, maxevents: int = EP_MAX_EVENTS) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        for fd, it in list(self.interest.items()):
            if it.file.refs <= 0:  # the file was closed everywhere: eventpoll_release
                del self.interest[fd]
                continue
            if not it.armed:
                continue
            rev = poll_ready(it.file, it.events & 0xFFFF) & (it.events | EPOLLERR | EPOLLHUP)
            if not rev or it.events & EPOLLET and not it.edge:
                continue
            if len(out) < maxevents:
                out.append((rev, it.data))
                if report:
                    it.edge = False
                    if it.events & EPOLLONESHOT:
                        it.armed = False
        return out

    def poll(self, events: int) -> int:
        """An epoll fd is readable while one of its entries is ready (nested epoll, poll)."""
        return events & 1 if self._ready(report=False, maxevents=1) else 0

    def waitables(self) -> tuple[Any, ...]:
        """What a sleeping epoll_wait is woken by: the pipes and kernel objects watched."""
        out: list[Any] = []
        for it in self.interest.values():
            if isinstance(it.file, PipeEnd):
                out.append(it.file.pipe)
            elif hasattr(it.file, "poll"):
                out.append(it.file)
        return tuple(out)


@syscall(291, flags="hex")
def sys_epoll_create1(k: Kernel, t: Thread, flags: int) -> int:
    if flags & ~O_CLOEXEC:
        return -E.EINVAL
    return t.process.fds.install(Epoll(k), cloexec=bool(flags & O_CLOEXEC))


@syscall(213, size="int")
def sys_epoll_create(k: Kernel, t: Thread, size: int) -> int:
    return -E.EINVAL if s32(size) <= 0 else sys_epoll_create1(k, t, 0)


@syscall(233, epfd="int", op="int", fd="int")
def sys_epoll_ctl(k: Kernel, t: Thread, epfd: int, op: int, fd: int, event: int) -> int:
    fds = t.process.fds
    ep, target = fds.get(s32(epfd)), fds.get(s32(fd))
    if ep is None or target is None:
        return -E.EBADF
    if isinstance(target, HostFile):
        try:
            mode = os.fstat(target.fd).st_mode
        except OSError:
            mode = 0
        if st.S_ISREG(mode) or st.S_ISDIR(mode):  # no poll method: EPERM
            return -E.EPERM
    if ep is target or not isinstance(ep, Epoll):
        return -E.EINVAL
    fd = s32(fd)
    it = ep.interest.get(fd)
    if it is not None and it.file is not target:  # a stale entry of a closed fd number
        del ep.interest[fd]
        it = None
    if op == EPOLL_CTL_DEL:
        if it is None:
            return -E.ENOENT
        del ep.interest[fd]
        return 0
    if op not in (EPOLL_CTL_ADD, EPOLL_CTL_MOD):
        return -E.EINVAL
    events, data = EPOLL_EVENT.unpack(t.process.mem.read(event, EPOLL_EVENT.size))
    if op == EPOLL_CTL_ADD:
        if it is not None:
            return -E.EEXIST
        ep.interest[fd] = Interest(target, events, data)
        return 0
    if it is None:
        return -E.ENOENT
    if events & EPOLLEXCLUSIVE or it.events & EPOLLEXCLUSIVE:
        return -E.EINVAL
    it.events, it.data, it.armed, it.edge = events, data, True, True
    k.sched.notify(ep)
    return 0


def do_epoll_wait(
    k: Kernel, t: Thread, epfd: int, events: int, maxevents: int, timeout_ns: int | None
) -> object:
    ep = t.process.fds.get(s32(epfd))
    if ep is None:
        return -E.EBADF
    maxevents = s32(maxevents)
    if not 0 < maxevents <= EP_MAX_EVENTS or not isinstance(ep, Epoll):
        return -E.EINVAL
    ready = ep._ready(report=True, maxevents=maxevents)
    if ready or timeout_ns == 0:
        t.process.mem.write(events, b"".join(EPOLL_EVENT.pack(*r) for r in ready))
        return len(ready)
    deadline = None if timeout_ns is None else k.clock_ns() + timeout_ns
    k.sched.block(t, Wait("poll", deadline, key=(ep, *ep.waitables()), restart=True,
                          on_timeout=0))  # fmt: skip
    return BLOCK


@syscall(232, epfd="int", maxevents="int", timeout="int")
def sys_epoll_wait(
    k: Kernel, t: Thread, epfd: int, events: int, maxevents: int, timeout: int
) -> object:
    ms = s32(timeout)
    return do_epoll_wait(k, t, epfd, events, maxevents, None if ms < 0 else ms * 1_000_000)


@syscall(281, epfd="int", maxevents="int", timeout="int", sigsetsize="int")
def sys_epoll_pwait(k: Kernel, t: Thread, epfd: int, events: int, maxevents: int, timeout: int,
                    sigmask: int, sigsetsize: int) -> object:  # fmt: skip
    err = set_user_sigmask(t, sigmask, sigsetsize)
    return err or masked_wait(k, t, sys_epoll_wait(k, t, epfd, events, maxevents, timeout))


@syscall(441, epfd="int", maxevents="int", sigsetsize="int")
def sys_epoll_pwait2(k: Kernel, t: Thread, epfd: int, events: int, maxevents: int, tsp: int,
                     sigmask: int, sigsetsize: int) -> object:  # fmt: skip
    ns = None
    if tsp:
        ns = read_timespec(t, tsp)
        if ns is None:
            return -E.EINVAL
    err = set_user_sigmask(t, sigmask, sigsetsize)
    return err or masked_wait(k, t, do_epoll_wait(k, t, epfd, events, maxevents, ns))
