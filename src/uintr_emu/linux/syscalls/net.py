"""AF_UNIX socket pairs: socketpair, sendmsg and recvmsg (with SCM_RIGHTS), sendto, recvfrom,
shutdown, getsockname and getpeername (an unnamed address). The sockets themselves are
`linux/ipc.py`'s UnixSocket."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from .. import errno as E
from ..abi import CMSGHDR, INT, MSG_CONTROLLEN, MSGHDR, U64
from ..ipc import UnixSocket, release
from . import syscall
from .open import install_pair
from .paths import s32
from .rw import UIO_MAXIOV, Iovec, import_iovec, scatter

if TYPE_CHECKING:
    from ..kernel import Kernel
    from ..process import Thread

AF_UNIX = 1
SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET = 1, 2, 5
SOCK_NONBLOCK, SOCK_CLOEXEC = 0o4000, 0o2000000
SOL_SOCKET, SCM_RIGHTS = 1, 1
MSG_DONTWAIT, MSG_CMSG_CLOEXEC = 0x40, 0x4000_0000


@syscall(53, domain="int", type="hex", protocol="int")
def sys_socketpair(k: Kernel, t: Thread, domain: int, type: int, protocol: int, sv: int) -> int:
    kind = type & 0xF
    if domain != AF_UNIX:
        return -E.EAFNOSUPPORT
    if kind not in (SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET) or protocol:
        return -E.EPROTONOSUPPORT if protocol else -E.EINVAL
    a = UnixSocket(kind == SOCK_STREAM, wake=k.sched.notify)
    b = UnixSocket(kind == SOCK_STREAM, wake=k.sched.notify)
    a.peer, b.peer = b, a
    a.nonblock = b.nonblock = bool(type & SOCK_NONBLOCK)
    return install_pair(t, a, b, bool(type & SOCK_CLOEXEC), sv)


def _socket(t: Thread, fd: int) -> UnixSocket | int:
    f = t.process.fds.get(s32(fd))
    if f is None:
        return -E.EBADF
    return f if isinstance(f, UnixSocket) else -E.ENOTSOCK


def _msghdr(t: Thread, fd: int, msg: int) -> tuple[UnixSocket, Iovec, int, int] | int:
    """The socket and its user msghdr: (socket, iovec segments, msg_control, msg_controllen),
    or -errno. The fd first (EBADF, ENOTSOCK), then __copy_msghdr: a negative msg_namelen (an
    int) with a msg_name is EINVAL, more than UIO_MAXIOV segments EMSGSIZE; then
    import_iovec's checks."""
    sock = _socket(t, fd)
    if isinstance(sock, int):
        return sock
    name, namelen, iov, iovlen, control, clen, _flags = MSGHDR.unpack(
        t.process.mem.read(msg, MSGHDR.size)
    )
    if name and s32(namelen) < 0:
        return -E.EINVAL
    if iovlen > UIO_MAXIOV:
        return -E.EMSGSIZE
    vecs = import_iovec(t.process.mem, iov, iovlen)
    return vecs if isinstance(vecs, int) else (sock, vecs, control, clen)


@contextmanager
def _dontwait(sock: UnixSocket, flags: int) -> Iterator[None]:
    """MSG_DONTWAIT: this one call does not block, whatever the socket's O_NONBLOCK."""
    nonblock, sock.nonblock = sock.nonblock, sock.nonblock or bool(flags & MSG_DONTWAIT)
    try:
        yield
    finally:
        sock.nonblock = nonblock


@syscall(46, fd="int", flags="hex")
def sys_sendmsg(k: Kernel, t: Thread, fd: int, msg: int, flags: int) -> int | object:
    hdr = _msghdr(t, fd, msg)
    if isinstance(hdr, int):
        return hdr
    sock, vecs, control, clen = hdr
    mem = t.process.mem
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
    with _dontwait(sock, flags):
        return sock.send(k, t, data, files)


@syscall(47, fd="int", flags="hex")
def sys_recvmsg(k: Kernel, t: Thread, fd: int, msg: int, flags: int) -> int | object:
    hdr = _msghdr(t, fd, msg)
    if isinstance(hdr, int):
        return hdr
    sock, vecs, control, clen = hdr
    mem = t.process.mem
    with _dontwait(sock, flags):
        r = sock.recv(k, t, sum(n for _, n in vecs))
    if not isinstance(r, tuple):
        return r
    data, files = r
    scatter(mem, vecs, data)
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
        k.sched.notify(sock.peer)
    return 0


def _unnamed_address(t: Thread, fd: int, addr: int, addrlen: int) -> int:
    """getsockname/getpeername of a socketpair(AF_UNIX) socket: an unnamed address, just the
    family (unix_getname: addrlen 2), copied truncated to the caller's length."""
    sock = _socket(t, fd)
    if isinstance(sock, int):
        return sock
    mem = t.process.mem
    size = s32(int.from_bytes(mem.read(addrlen, 4), "little"))
    if size < 0:
        return -E.EINVAL
    family = AF_UNIX.to_bytes(2, "little")
    mem.write(addr, family[: min(size, 2)])
    mem.write(addrlen, (2).to_bytes(4, "little"))
    return 0


@syscall(51, fd="int")
def sys_getsockname(k: Kernel, t: Thread, fd: int, addr: int, addrlen: int) -> int:
    return _unnamed_address(t, fd, addr, addrlen)


@syscall(52, fd="int")
def sys_getpeername(k: Kernel, t: Thread, fd: int, addr: int, addrlen: int) -> int:
    return _unnamed_address(t, fd, addr, addrlen)
