"""Processes and their IPC: fork, vfork, execve, wait4, waitid, eventfd, socketpair, sendmsg,
recvmsg (with SCM_RIGHTS)."""

from __future__ import annotations

import os
import struct
from typing import TYPE_CHECKING

from ...engine.unicorn import PAGE
from .. import errno as E
from ..abi import (
    CMSGHDR,
    FD_PAIR,
    INT,
    MSG_CONTROLLEN,
    MSGHDR,
    RUSAGE,
    SIGINFO_CHLD,
    SIGINFO_SIZE,
    U64,
)
from ..control import BLOCK
from ..ipc import EventFd, UnixSocket, release
from ..mm import GuestFault
from ..process import Wait
from ..signals import SIGCHLD
from . import syscall
from .misc import RLIMIT_STACK, RLIMITS
from .paths import FDCWD, host_path, s32
from .rw import UIO_MAXIOV, import_iovec
from .thread import CLONE_VFORK, CLONE_VM, create_thread

if TYPE_CHECKING:
    from ..kernel import Kernel
    from ..mm import AddressSpace
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
    return create_thread(k, t, SIGCHLD, 0, 0, 0, 0, "fork")


@syscall(58)
def sys_vfork(k: Kernel, t: Thread) -> int:
    return create_thread(k, t, CLONE_VFORK | SIGCHLD, 0, 0, 0, 0, "vfork")


# fs/exec.c and include/uapi/linux/binfmts.h
MAX_ARG_STRLEN = 32 * PAGE  # one argument or environment string, its NUL included
MAX_ARG_STRINGS = 0x7FFF_FFFF
ARG_MAX = 32 * PAGE
_STK_LIM = 8 << 20
_NULL = bytes(8)


def arg_room() -> int:
    """bprm_stack_limits: the strings and their pointers get a quarter of RLIMIT_STACK (the
    8 MiB stack the emulator maps: 2 MiB), at most 3/4 of _STK_LIM, at least ARG_MAX."""
    return max(min(_STK_LIM // 4 * 3, RLIMITS[RLIMIT_STACK][0] // 4), ARG_MAX)


def _count(mem: AddressSpace, addr: int, keep: int) -> tuple[list[int], int] | int:
    """count(): walk a NULL-terminated argv/envp array (NULL itself is empty); the number of
    pointers and the first `keep` of them. -EFAULT when the walk meets a bad address before
    the NULL, -E2BIG past MAX_ARG_STRINGS pointers."""
    ptrs: list[int] = []
    n = 0
    while addr:
        v = mem.find(addr)
        size = (min(v.end, addr + 0x10000) - addr) & ~7 if v is not None else 0
        try:  # the pointers up to the end of this mapping (8 bytes if one straddles it)
            chunk = mem.read(addr, size or 8)
        except GuestFault:
            return -E.EFAULT
        end = chunk.find(_NULL)
        while end > 0 and end % 8:
            end = chunk.find(_NULL, end + 1)
        found = end >= 0
        if not found:
            end = len(chunk)
        if n + end // 8 > MAX_ARG_STRINGS:
            return -E.E2BIG
        if len(ptrs) < keep:
            ptrs += struct.unpack(f"<{end // 8}Q", chunk[:end])[: keep - len(ptrs)]
        n += end // 8
        if found:
            break
        addr += len(chunk)
    return ptrs, n


def _arg_string(mem: AddressSpace, addr: int) -> bytes | int:
    """copy_strings of one string: strnlen_user(str, MAX_ARG_STRLEN) gives -EFAULT at a bad
    address before the NUL, and valid_arg_len -E2BIG when the first MAX_ARG_STRLEN bytes hold
    no NUL."""
    out = b""
    while True:
        v = mem.find(addr)
        if v is None:
            return -E.EFAULT
        try:
            chunk = mem.read(addr, min(v.end - addr, MAX_ARG_STRLEN - len(out)))
        except GuestFault:
            return -E.EFAULT
        nul = chunk.find(0)
        if nul >= 0:
            return out + chunk[:nul]
        out += chunk
        if len(out) >= MAX_ARG_STRLEN:
            return -E.E2BIG
        addr += len(chunk)


def exec_strings(mem: AddressSpace, filename: bytes, argv: int,
                 envp: int) -> tuple[list[bytes], list[bytes]] | int:  # fmt: skip
    """argv and envp as do_execveat_common reads them, with its errors in its order: count
    argv then envp; bprm_stack_limits (their pointers must fit in arg_room()); then the
    strings, the filename first, then envp and argv each from the last string back, each
    taking its length from the room (E2BIG once it is used up)."""
    room = arg_room()
    counted = []
    for array in (argv, envp):
        c = _count(mem, array, room // 8 + 1)
        if isinstance(c, int):
            return c
        counted.append(c)
    (aptrs, argc), (eptrs, envc) = counted
    room -= (max(argc, 1) + envc) * 8  # an empty argv gets one "" (below)
    room -= len(filename) + 1
    if room < 0:
        return -E.E2BIG
    out: list[list[bytes]] = []
    for ptrs in (eptrs, aptrs):
        strs = []
        for ptr in reversed(ptrs):
            s = _arg_string(mem, ptr)
            if isinstance(s, int):
                return s
            room -= len(s) + 1
            if room < 0:
                return -E.E2BIG
            strs.append(s)
        out.append(strs[::-1])
    env, args = out
    if not args:  # argv[0] is "" rather than nothing (do_execveat_common, since Linux 5.18)
        if room < 1:
            return -E.E2BIG
        args = [b""]
    return args, env


@syscall(59, path="str")
def sys_execve(k: Kernel, t: Thread, path: int, argv: int, envp: int) -> int | object:
    mem = t.process.mem
    filename = mem.read_cstr(path)
    hp = host_path(k, t.process, FDCWD, filename, readonly=True)
    if isinstance(hp, int):
        return hp
    # The file is opened before the arguments are read (alloc_bprm -> do_open_execat).
    if not os.path.exists(hp):
        return -E.ENOENT
    if not os.path.isfile(hp) or not os.access(hp, os.X_OK):
        return -E.EACCES
    strings = exec_strings(mem, filename, argv, envp)
    if isinstance(strings, int):
        return strings
    args, env = strings
    return k.exec(t, hp, [os.fsdecode(a) for a in args], [os.fsdecode(e) for e in env])


def _reapable(k: Kernel, parent: Process, pid: int) -> tuple[list[Process], list[Process]]:
    kids = [c for c in parent.children if pid in (-1, 0) or c.pid == pid]
    return kids, [c for c in kids if c.exit_status is not None]


def _reap(k: Kernel, parent: Process, child: Process) -> None:
    parent.children.remove(child)
    k.processes.pop(child.pid, None)


@syscall(61, pid="int", options="hex")
def sys_wait4(k: Kernel, t: Thread, pid: int, status: int, options: int,
              rusage: int) -> int | object:  # fmt: skip
    pid = s32(pid)
    p = t.process
    kids, done = _reapable(k, p, pid)
    if not kids:
        return -E.ECHILD
    if done:
        child = done[0]
        if status:
            p.mem.write(status, INT.pack(child.wait_status))
        if rusage:
            p.mem.write(rusage, bytes(RUSAGE.size))
        _reap(k, p, child)
        return child.pid
    if options & WNOHANG:
        return 0
    k.block(t, Wait("wait4", key=p, restart=True))
    return BLOCK


@syscall(247, idtype="int", id="int", options="hex")
def sys_waitid(k: Kernel, t: Thread, idtype: int, id: int, infop: int,
               options: int) -> int | object:  # fmt: skip
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
            p.mem.write(infop, SIGINFO_CHLD.pack(SIGCHLD, 0, code, c.pid, 0, st))
        if not options & WNOWAIT:
            _reap(k, p, c)
        return 0
    if options & WNOHANG:
        if infop:
            p.mem.write(infop, bytes(SIGINFO_SIZE))
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
    t.process.mem.write(sv, FD_PAIR.pack(fa, fb))
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
    name, namelen, iov, iovlen, control, clen, _flags = MSGHDR.unpack(
        t.process.mem.read(msg, MSGHDR.size)
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
    while pos + CMSGHDR.size <= clen:  # control messages (cmsghdr, 8-byte aligned)
        length, level, ctype = CMSGHDR.unpack(mem.read(control + pos, CMSGHDR.size))
        if length < CMSGHDR.size:
            return -E.EINVAL
        if level == SOL_SOCKET and ctype == SCM_RIGHTS:
            for i in range((length - CMSGHDR.size) // INT.size):
                off = control + pos + CMSGHDR.size + INT.size * i
                n = INT.unpack(mem.read(off, INT.size))[0]
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
        room = max(0, (clen - CMSGHDR.size) // INT.size)
        fds = [t.process.fds.install(f, cloexec=bool(flags & MSG_CMSG_CLOEXEC))
               for f in files[:room]]  # fmt: skip
        for f in files:
            release(f)  # the message's in-flight reference
        if fds:
            body = b"".join(INT.pack(n) for n in fds)
            used = CMSGHDR.size + len(body)
            mem.write(control, CMSGHDR.pack(used, SOL_SOCKET, SCM_RIGHTS) + body)
    mem.write(msg + MSG_CONTROLLEN, U64.pack((used + 7) & ~7 if used else 0))
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
