"""Processes and their IPC: fork, vfork, execve, wait4, waitid, eventfd, socketpair, sendmsg,
recvmsg (with SCM_RIGHTS)."""

from __future__ import annotations

import os
import struct
from typing import TYPE_CHECKING

from .. import errno as E
from ..ipc import EventFd, UnixSocket, release
from ..process import Wait
from ..signals import SIGCHLD
from . import syscall
from .fs import AT_FDCWD, UIO_MAXIOV, host_path, import_iovec, s32
from .thread import CLONE_VFORK, CLONE_VM, create_thread

if TYPE_CHECKING:
    from ..kernel import Kernel
    from ..process import Process, Thread

WNOHANG, WUNTRACED, WEXITED, WNOWAIT = 1, 2, 4, 0x0100_0000
P_ALL, P_PID = 0, 1
CLD_EXITED, CLD_KILLED = 1, 2
AF_UNIX = 1
SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET = 1, 2, 5
SOCK_NONBLOCK, SOCK_CLOEXEC = 0o4000, 0o2000000
SOL_SOCKET, SCM_RIGHTS = 1, 1
MSG_DONTWAIT, MSG_CMSG_CLOEXEC = 0x40, 0x4000_0000
EFD_SEMAPHORE, EFD_NONBLOCK, EFD_CLOEXEC = 1, 0o4000, 0o2000000


@syscall(57)
def sys_fork(k: Kernel, t: Thread) -> int:
    return create_thread(k, t, SIGCHLD, 0, 0, 0, 0)


@syscall(58)
def sys_vfork(k: Kernel, t: Thread) -> int:
    return create_thread(k, t, CLONE_VFORK | SIGCHLD, 0, 0, 0, 0)


def _strings(t: Thread, addr: int, limit: int = 4096) -> list[str] | None:
    out: list[str] = []
    mem = t.process.mem
    while addr:
        p = mem.read_u64(addr + 8 * len(out))
        if p == 0:
            return out
        out.append(os.fsdecode(mem.read_cstr(p, 128 * 1024)))
        if len(out) > limit:
            return None
    return out


@syscall(59, path="str")
def sys_execve(k: Kernel, t: Thread, path: int, argv: int, envp: int) -> int | object:
    hp = host_path(k, t.process, AT_FDCWD & 0xFFFF_FFFF, t.process.mem.read_cstr(path),
                   readonly=True)  # fmt: skip
    if isinstance(hp, int):
        return hp
    args, env = _strings(t, argv), _strings(t, envp)
    if args is None or env is None:
        return -E.E2BIG
    if not os.path.exists(hp):
        return -E.ENOENT
    return k.exec(t, hp, args or [hp], env)


def _reapable(k: Kernel, parent: Process, pid: int) -> tuple[list[Process], list[Process]]:
    kids = [c for c in parent.children if pid in (-1, 0) or c.pid == pid]
    return kids, [c for c in kids if c.exit_status is not None]


def _reap(k: Kernel, parent: Process, child: Process) -> None:
    parent.children.remove(child)
    k.processes.pop(child.pid, None)


@syscall(61, pid="int", options="hex")
def sys_wait4(k: Kernel, t: Thread, pid: int, status: int, options: int,
              rusage: int) -> int | object:  # fmt: skip
    from ..kernel import BLOCK

    pid = s32(pid)
    p = t.process
    kids, done = _reapable(k, p, pid)
    if not kids:
        return -E.ECHILD
    if done:
        child = done[0]
        if status:
            p.mem.write(status, struct.pack("<i", child.wait_status))
        if rusage:
            p.mem.write(rusage, bytes(144))
        _reap(k, p, child)
        return child.pid
    if options & WNOHANG:
        return 0
    k.block(t, Wait("wait4", key=p, restart=True))
    return BLOCK


@syscall(247, idtype="int", id="int", options="hex")
def sys_waitid(k: Kernel, t: Thread, idtype: int, id: int, infop: int,
               options: int) -> int | object:  # fmt: skip
    from ..kernel import BLOCK

    p = t.process
    pid = -1 if idtype == P_ALL else s32(id)
    if idtype not in (P_ALL, P_PID) or not options & WEXITED:
        return -E.EINVAL
    kids, done = _reapable(k, p, pid)
    if not kids:
        return -E.ECHILD
    if done:
        c = done[0]
        code, st = (CLD_KILLED, c.wait_status) if c.wait_status & 0x7F else (
            CLD_EXITED, c.wait_status >> 8)  # fmt: skip
        if infop:
            info = struct.pack("<iii4xiI", SIGCHLD, 0, code, c.pid, 0) + struct.pack("<i", st)
            p.mem.write(infop, info.ljust(128, b"\0"))
        if not options & WNOWAIT:
            _reap(k, p, c)
        return 0
    if options & WNOHANG:
        if infop:
            p.mem.write(infop, bytes(128))
        return 0
    k.block(t, Wait("wait4", key=p, restart=True))
    return BLOCK


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


@syscall(53, domain="int", type="hex", protocol="int")
def sys_socketpair(k: Kernel, t: Thread, domain: int, type: int, protocol: int, sv: int) -> int:
    kind = type & 0xF
    if domain != AF_UNIX:
        return -E.EAFNOSUPPORT
    if kind not in (SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET) or protocol:
        return -E.EPROTONOSUPPORT if protocol else -E.EINVAL
    a, b = UnixSocket(kind == SOCK_STREAM), UnixSocket(kind == SOCK_STREAM)
    a.peer, b.peer = b, a
    a.nonblock = b.nonblock = bool(type & SOCK_NONBLOCK)
    cloexec = bool(type & SOCK_CLOEXEC)
    fa = t.process.fds.install(a, cloexec=cloexec)
    fb = t.process.fds.install(b, cloexec=cloexec)
    t.process.mem.write(sv, struct.pack("<ii", fa, fb))
    return 0


def _socket(t: Thread, fd: int) -> UnixSocket | int:
    f = t.process.fds.get(s32(fd))
    if f is None:
        return -E.EBADF
    return f if isinstance(f, UnixSocket) else -E.ENOTSOCK


def _msghdr(t: Thread, msg: int) -> tuple[list[tuple[int, int]], int, int] | int:
    """A user msghdr: (iovec segments, msg_control, msg_controllen), or -errno.
    __copy_msghdr: a negative msg_namelen (an int) with a msg_name is EINVAL, more than
    UIO_MAXIOV segments EMSGSIZE; then import_iovec's checks."""
    name, namelen, iov, iovlen, control, clen, _flags = struct.unpack(
        "<QI4xQQQQi4x", t.process.mem.read(msg, 56)
    )
    if name and s32(namelen) < 0:
        return -E.EINVAL
    if iovlen > UIO_MAXIOV:
        return -E.EMSGSIZE
    vecs = import_iovec(t.process.mem, iov, iovlen)
    return vecs if isinstance(vecs, int) else (vecs, control, clen)


@syscall(46, fd="int", flags="hex")
def sys_sendmsg(k: Kernel, t: Thread, fd: int, msg: int, flags: int) -> int | object:
    sock = _socket(t, fd)
    if isinstance(sock, int):
        return sock
    mem = t.process.mem
    hdr = _msghdr(t, msg)
    if isinstance(hdr, int):
        return hdr
    vecs, control, clen = hdr
    data = b"".join(mem.read(b, n) for b, n in vecs)
    files = []
    pos = 0
    while pos + 16 <= clen:  # control messages (cmsghdr, 8-byte aligned)
        length, level, ctype = struct.unpack("<Qii", mem.read(control + pos, 16))
        if length < 16:
            return -E.EINVAL
        if level == SOL_SOCKET and ctype == SCM_RIGHTS:
            for i in range((length - 16) // 4):
                n = struct.unpack("<i", mem.read(control + pos + 16 + 4 * i, 4))[0]
                f = t.process.fds.get(n)
                if f is None:
                    return -E.EBADF
                files.append(f)
        pos += (length + 7) & ~7
    nonblock, sock.nonblock = sock.nonblock, sock.nonblock or bool(flags & MSG_DONTWAIT)
    try:
        return sock.send(k, t, data, files)
    finally:
        sock.nonblock = nonblock


@syscall(47, fd="int", flags="hex")
def sys_recvmsg(k: Kernel, t: Thread, fd: int, msg: int, flags: int) -> int | object:
    sock = _socket(t, fd)
    if isinstance(sock, int):
        return sock
    mem = t.process.mem
    hdr = _msghdr(t, msg)
    if isinstance(hdr, int):
        return hdr
    vecs, control, clen = hdr
    nonblock, sock.nonblock = sock.nonblock, sock.nonblock or bool(flags & MSG_DONTWAIT)
    try:
        r = sock.recv(k, t, sum(n for _, n in vecs))
    finally:
        sock.nonblock = nonblock
    if not isinstance(r, tuple):
        return r
    data, files = r
    pos = 0
    for base, n in vecs:
        chunk = data[pos : pos + n]
        mem.write(base, chunk)
        pos += len(chunk)
    used = 0
    if files:
        room = max(0, (clen - 16) // 4)
        fds = [t.process.fds.install(f, cloexec=bool(flags & MSG_CMSG_CLOEXEC))
               for f in files[:room]]  # fmt: skip
        for f in files:
            release(f)  # the message's in-flight reference
        if fds:
            body = struct.pack(f"<{len(fds)}i", *fds)
            used = 16 + len(body)
            mem.write(control, struct.pack("<Qii", used, SOL_SOCKET, SCM_RIGHTS) + body)
    mem.write(msg + 40, struct.pack("<Q", (used + 7) & ~7 if used else 0))
    return len(data)


@syscall(44, fd="int", length="int", flags="hex")
def sys_sendto(k: Kernel, t: Thread, fd: int, buf: int, length: int, flags: int, addr: int,
               addrlen: int) -> int | object:  # fmt: skip
    sock = _socket(t, fd)
    if isinstance(sock, int):
        return sock
    return sock.send(k, t, t.process.mem.read(buf, length), [])


@syscall(45, fd="int", length="int", flags="hex")
def sys_recvfrom(k: Kernel, t: Thread, fd: int, buf: int, length: int, flags: int, addr: int,
                 addrlen: int) -> int | object:  # fmt: skip
    sock = _socket(t, fd)
    if isinstance(sock, int):
        return sock
    r = sock.read(k, t, length)
    if isinstance(r, bytes):
        t.process.mem.write(buf, r)
        return len(r)
    return r


@syscall(48, fd="int", how="int")
def sys_shutdown(k: Kernel, t: Thread, fd: int, how: int) -> int:
    sock = _socket(t, fd)
    if isinstance(sock, int):
        return sock
    sock.closed = True
    if sock.peer is not None:
        k.notify(sock.peer)
    return 0


# A clone that is not a thread is a fork (kernel.fork); CLONE_VM without CLONE_THREAD is not
# supported (EINVAL in create_thread).
__all__ = ["CLONE_VM"]
