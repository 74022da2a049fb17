"""Pipes between guest threads (pipe, pipe2; their reads and writes) and waiting on
descriptors (poll, ppoll)."""

from __future__ import annotations

import os
import select
import struct
from typing import TYPE_CHECKING

from .. import errno as E
from .. import signals as S
from ..abi import POLLERR, POLLFD, POLLHUP, POLLIN, POLLNVAL, POLLOUT, POLLPRI, TIMEVAL
from ..control import BLOCK
from ..process import File, HostFile, Pipe, PipeEnd, Wait
from . import syscall
from .misc import RLIMIT_NOFILE, RLIMITS
from .open import O_CLOEXEC, O_NONBLOCK, install_pair
from .paths import s32
from .signal import masked_wait, set_user_sigmask
from .time import read_timespec

SIGSET_ARGPACK = struct.Struct("<QQ")

if TYPE_CHECKING:
    from ..kernel import Kernel
    from ..process import Thread


def epipe(k: Kernel, t: Thread) -> int:
    """A write to a pipe nobody reads: SIGPIPE to the writer, and EPIPE."""
    k.signals.send(t, S.SigInfo(S.SIGPIPE, S.SI_USER, pid=t.process.pid))
    return -E.EPIPE


def pipe_read(k: Kernel, t: Thread, f: PipeEnd, count: int) -> bytes | int | object:
    if f.write_end:
        return -E.EBADF
    pipe = f.pipe
    if not count:
        return b""  # pipe_read: nothing asked for is 0 at once, even from an empty pipe
    if not pipe.buf:
        if pipe.writers == 0:
            return b""
        if f.nonblock:
            return -E.EAGAIN
        k.sched.block(t, Wait("pipe-read", key=pipe, restart=True))
        return BLOCK
    data = bytes(pipe.buf[:count])
    del pipe.buf[:count]
    k.sched.notify(pipe)
    return data


def pipe_write(k: Kernel, t: Thread, f: PipeEnd, data: bytes) -> int | object:
    if not f.write_end:
        return -E.EBADF
    pipe = f.pipe
    if pipe.readers == 0:
        return epipe(k, t)
    room = Pipe.CAPACITY - len(pipe.buf)
    if room <= 0:
        if f.nonblock:
            return -E.EAGAIN
        k.sched.block(t, Wait("pipe-write", key=pipe, restart=True))
        return BLOCK
    pipe.buf += data[:room]
    k.sched.notify(pipe)
    return min(room, len(data))


@syscall(293, flags="hex")
def sys_pipe2(k: Kernel, t: Thread, fds_addr: int, flags: int) -> int:
    if flags & ~(O_CLOEXEC | O_NONBLOCK | os.O_DIRECT):
        return -E.EINVAL
    pipe = Pipe(wake=k.sched.notify)
    pipe.born_ns = k.clock.realtime_ns()
    r, w = PipeEnd(pipe, False), PipeEnd(pipe, True)
    r.nonblock = w.nonblock = bool(flags & O_NONBLOCK)
    return install_pair(t, r, w, bool(flags & O_CLOEXEC), fds_addr)


@syscall(22)
def sys_pipe(k: Kernel, t: Thread, fds_addr: int) -> int:
    return sys_pipe2(k, t, fds_addr, 0)


def poll_ready(f: File | None, events: int) -> int:
    if f is None:
        return POLLNVAL
    if isinstance(f, PipeEnd):
        pipe = f.pipe
        if f.write_end:
            if pipe.readers == 0:
                return POLLERR
            return events & POLLOUT if len(pipe.buf) < Pipe.CAPACITY else 0
        rev = events & POLLIN if pipe.buf else 0
        if pipe.writers == 0:
            rev |= POLLHUP
        return rev
    if isinstance(f, HostFile):
        p = select.poll()
        p.register(f.fd, events & 0xFFFF)
        res = p.poll(0)
        return res[0][1] if res else 0
    poll = getattr(f, "poll", None)
    return poll(events) if poll is not None else 0


def do_poll(k: Kernel, t: Thread, fds_addr: int, nfds: int, timeout_ns: int | None) -> object:
    if nfds > RLIMITS[RLIMIT_NOFILE][0]:  # do_sys_poll: nfds > rlimit(RLIMIT_NOFILE), the soft one
        return -E.EINVAL
    mem = t.process.mem
    raw = bytearray(mem.read(fds_addr, POLLFD.size * nfds))
    ready = 0
    pipes = []
    for i in range(nfds):
        fd, events, _ = POLLFD.unpack_from(raw, POLLFD.size * i)
        rev = 0
        if fd >= 0:
            f = t.process.fds.get(fd)
            rev = poll_ready(f, events & 0xFFFF)
            if isinstance(f, PipeEnd):
                pipes.append(f.pipe)
            elif f is not None and hasattr(f, "poll"):
                pipes.append(f)
        POLLFD.pack_into(raw, POLLFD.size * i, fd, events, rev)
        ready += rev != 0
    if ready or timeout_ns == 0:
        mem.write(fds_addr, bytes(raw))
        return ready
    deadline = None if timeout_ns is None else k.clock_ns() + timeout_ns
    k.sched.block(t, Wait("poll", deadline, key=tuple(pipes), restart=True, on_timeout=0))
    return BLOCK


@syscall(7, nfds="int", timeout="int")
def sys_poll(k: Kernel, t: Thread, fds: int, nfds: int, timeout: int) -> object:
    ms = s32(timeout)
    return do_poll(k, t, fds, nfds, None if ms < 0 else ms * 1_000_000)


@syscall(271, nfds="int", sigsetsize="int")
def sys_ppoll(k: Kernel, t: Thread, fds: int, nfds: int, tsp: int, sigmask: int,
              sigsetsize: int) -> object:  # fmt: skip
    ns = None
    if tsp:
        ns = read_timespec(t, tsp)
        if ns is None:
            return -E.EINVAL
    err = set_user_sigmask(t, sigmask, sigsetsize)
    return err or masked_wait(k, t, do_poll(k, t, fds, nfds, ns))


# --- select (fs/select.c: core_sys_select, do_select) --------------------------------------

# What makes an fd ready in each of select's three sets (fs/select.c POLLIN_SET...).
SELECT_SETS = (POLLIN | POLLHUP | POLLERR, POLLOUT | POLLERR, POLLPRI)


def do_select(
    k: Kernel, t: Thread, nfds: int, sets: tuple[int, int, int], timeout_ns: int | None
) -> object:
    """select and pselect6 over the same readiness as poll: the ready fds' bits are left in
    the three sets (all cleared at timeout); a set fd that is not open is EBADF."""
    nfds = s32(nfds)
    if nfds < 0:
        return -E.EINVAL
    nfds = min(nfds, RLIMITS[RLIMIT_NOFILE][1])  # core_sys_select: capped at max_fds
    mem = t.process.mem
    nbytes = (nfds + 63) // 64 * 8
    given = [int.from_bytes(mem.read(a, nbytes), "little") if a and nbytes else 0 for a in sets]
    out, ready, waits = [0, 0, 0], 0, []
    wanted = given[0] | given[1] | given[2]
    for fd in range(nfds):
        if not wanted >> fd & 1:
            continue
        f = t.process.fds.get(fd)
        if f is None:
            return -E.EBADF
        rev = poll_ready(f, POLLIN | POLLOUT | POLLPRI)
        for i, mask in enumerate(SELECT_SETS):
            if given[i] >> fd & 1 and rev & mask:
                out[i] |= 1 << fd
                ready += 1
        if isinstance(f, PipeEnd):
            waits.append(f.pipe)
        elif hasattr(f, "poll"):
            waits.append(f)

    def write(result: list[int]) -> None:
        for addr, bits in zip(sets, result, strict=True):
            if addr and nbytes:
                mem.write(addr, bits.to_bytes(nbytes, "little"))

    if ready or timeout_ns == 0:
        write(out)
        return ready
    deadline = None if timeout_ns is None else k.clock_ns() + timeout_ns
    k.sched.block(t, Wait("poll", deadline, key=tuple(waits), restart=True, on_timeout=0,
                          expired=lambda: write([0, 0, 0])))  # fmt: skip
    return BLOCK


@syscall(23, nfds="int")
def sys_select(
    k: Kernel, t: Thread, nfds: int, rfds: int, wfds: int, efds: int, tvp: int
) -> object:
    ns = None
    if tvp:
        sec, usec = TIMEVAL.unpack(t.process.mem.read(tvp, TIMEVAL.size))
        if sec < 0 or usec < 0:  # kern_select: microseconds past a second carry into seconds
            return -E.EINVAL
        ns = sec * 1_000_000_000 + usec * 1000
    return do_select(k, t, nfds, (rfds, wfds, efds), ns)


@syscall(270, nfds="int")
def sys_pselect6(
    k: Kernel, t: Thread, nfds: int, rfds: int, wfds: int, efds: int, tsp: int, sig: int
) -> object:
    ns = None
    if tsp:
        ns = read_timespec(t, tsp)
        if ns is None:
            return -E.EINVAL
    if sig:  # the 6th argument: {const sigset_t *ss; size_t ss_len} (get_sigset_argpack)
        err = set_user_sigmask(t, *SIGSET_ARGPACK.unpack(t.process.mem.read(sig, 16)))
        if err:
            return err
    return masked_wait(k, t, do_select(k, t, nfds, (rfds, wfds, efds), ns))
