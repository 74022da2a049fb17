"""AF_UNIX sockets (net/socket.c and net/unix/af_unix.c): socket, socketpair, bind, listen,
accept, accept4, connect, the send and receive calls (SCM_RIGHTS with sendmsg/recvmsg),
shutdown, getsockname, getpeername, getsockopt and setsockopt. The sockets themselves and
their names are `linux/afunix.py`'s. Other address families are EAFNOSUPPORT: the machine is
a kernel without networking (docs/linux.md, "AF_UNIX sockets")."""

from __future__ import annotations

import os
import stat as st
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

from .. import errno as E
from ..abi import CMSGHDR, INT, MSG_CONTROLLEN, MSGHDR, TIMEVAL, U32, U64
from ..afunix import (
    AF_UNIX,
    AF_UNSPEC,
    MSG_CMSG_CLOEXEC,
    MSG_DONTWAIT,
    MSG_PEEK,
    MSG_TRUNC,
    OVERFLOW_ID,
    SOCK_DGRAM,
    SOCK_RAW,
    SOCK_SEQPACKET,
    SOCK_STREAM,
    SOCKADDR_UN_SIZE,
    SOCKET_CAPACITY,
    SOMAXCONN,
    SUN_PATH_OFFSET,
    UNNAMED,
    UnixSocket,
    connect_pair,
    host_creds,
    release,
)
from ..control import BLOCK
from ..process import Wait
from . import syscall
from .open import install_pair
from .paths import FDCWD, host_path, oserr, s32, unmask
from .rw import UIO_MAXIOV, Iovec, import_iovec, scatter

if TYPE_CHECKING:
    from ..kernel import Kernel
    from ..process import Thread

NPROTO, SOCK_MAX, SOCK_TYPE_MASK = 46, 11, 0xF
SOCK_NONBLOCK, SOCK_CLOEXEC = 0o4000, 0o2000000
SOL_SOCKET, SCM_RIGHTS = 1, 1
SCM_MAX_FD = 253
MSG_CTRUNC = 0x8
SOCKADDR_STORAGE = 128
MSG_NAMELEN, MSG_FLAGS = 8, 48  # offsetof(struct user_msghdr, msg_namelen / msg_flags)
UCRED = struct.Struct("<iII")  # struct ucred: pid, uid, gid
LINGER = struct.Struct("<ii")  # struct linger: l_onoff, l_linger

# SOL_SOCKET options (include/uapi/asm-generic/socket.h)
SO_DEBUG, SO_REUSEADDR, SO_TYPE, SO_ERROR, SO_DONTROUTE, SO_BROADCAST = 1, 2, 3, 4, 5, 6
SO_SNDBUF, SO_RCVBUF, SO_KEEPALIVE, SO_OOBINLINE, SO_PRIORITY, SO_LINGER = 7, 8, 9, 10, 12, 13
SO_PASSCRED, SO_PEERCRED, SO_RCVLOWAT, SO_SNDLOWAT = 16, 17, 18, 19
SO_RCVTIMEO, SO_SNDTIMEO, SO_ACCEPTCONN, SO_PASSSEC, SO_PROTOCOL, SO_DOMAIN = 20, 21, 30, 34, 38, 39
# Options a program may set and read back that change nothing here (sk_setsockopt keeps
# booleans as 0/1)
BOOL_OPTIONS = {SO_DEBUG, SO_REUSEADDR, SO_DONTROUTE, SO_BROADCAST, SO_KEEPALIVE, SO_OOBINLINE,
                SO_PASSCRED, SO_PASSSEC}  # fmt: skip
SOCK_MIN_SNDBUF, SOCK_MIN_RCVBUF = 4608, 2304  # 2 * (2048 + sizeof(struct sk_buff)) etc.


def _socket(t: Thread, fd: int) -> UnixSocket | int:
    f = t.process.fds.get(s32(fd))
    if f is None:
        return -E.EBADF
    return f if isinstance(f, UnixSocket) else -E.ENOTSOCK


def _kind(domain: int, type: int, protocol: int) -> int:
    """__sys_socket, __sock_create and unix_create's checks, in their order: the socket type,
    or -errno. Only AF_UNIX exists (a kernel built without CONFIG_INET and the others)."""
    if type & ~SOCK_TYPE_MASK & ~(SOCK_NONBLOCK | SOCK_CLOEXEC):
        return -E.EINVAL
    domain, kind = s32(domain), type & SOCK_TYPE_MASK
    if not 0 <= domain < NPROTO:
        return -E.EAFNOSUPPORT
    if kind >= SOCK_MAX:
        return -E.EINVAL
    if domain != AF_UNIX:
        return -E.EAFNOSUPPORT
    if protocol not in (0, AF_UNIX):
        return -E.EPROTONOSUPPORT
    if kind == SOCK_RAW:
        return SOCK_DGRAM  # unix_create: "SOCK_RAW is treated as SOCK_DGRAM"
    return kind if kind in (SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET) else -E.ESOCKTNOSUPPORT


def _new(k: Kernel, t: Thread, kind: int, type: int, protocol: int) -> UnixSocket:
    sock = UnixSocket(k, kind)
    sock.nonblock = bool(type & SOCK_NONBLOCK)
    sock.options[SO_PROTOCOL] = protocol
    return sock


@syscall(41, domain="int", type="hex", protocol="int")
def sys_socket(k: Kernel, t: Thread, domain: int, type: int, protocol: int) -> int:
    kind = _kind(domain, type, protocol)
    if kind < 0:
        return kind
    sock = _new(k, t, kind, type, protocol)
    return t.process.fds.install(sock, cloexec=bool(type & SOCK_CLOEXEC))


@syscall(53, domain="int", type="hex", protocol="int")
def sys_socketpair(k: Kernel, t: Thread, domain: int, type: int, protocol: int, sv: int) -> int:
    kind = _kind(domain, type, protocol)
    if kind < 0:
        return kind
    a, b = _new(k, t, kind, type, protocol), _new(k, t, kind, type, protocol)
    connect_pair(a, b)
    a.creds = b.creds = host_creds(t.process.pid)  # unix_socketpair: init_peercred on both
    return install_pair(t, a, b, bool(type & SOCK_CLOEXEC), sv)


# --- addresses ------------------------------------------------------------------------------


def _read_addr(t: Thread, addr: int, addrlen: int) -> bytes | int:
    """move_addr_to_kernel: a length beyond sockaddr_storage (or negative) is EINVAL."""
    n = s32(addrlen)
    if not 0 <= n <= SOCKADDR_STORAGE:
        return -E.EINVAL
    return t.process.mem.read(addr, n) if n else b""


def _unix_addr(raw: bytes) -> bytes | int:
    """unix_validate_addr: AF_UNIX and at most sizeof(struct sockaddr_un)."""
    if len(raw) < SUN_PATH_OFFSET or raw[:2] != UNNAMED or len(raw) > SOCKADDR_UN_SIZE:
        return -E.EINVAL
    return raw


def _path(raw: bytes) -> bytes:
    """unix_mkname_bsd: the path ends at its first NUL or with the address."""
    return raw[SUN_PATH_OFFSET:].split(b"\0", 1)[0]


def _find(k: Kernel, t: Thread, kind: int, raw: bytes) -> UnixSocket | int:
    """unix_find_other: the socket bound to a path (found through its inode: ENOENT and the
    other path errors, EACCES without write permission, ECONNREFUSED for a file that is not
    a socket or that no guest socket is bound to, EPROTOTYPE for another type) or to an
    abstract name (ECONNREFUSED if nobody holds it for this type)."""
    names = k.unix_names.bound
    if len(raw) > SUN_PATH_OFFSET and raw[SUN_PATH_OFFSET]:
        hp = host_path(k, t.process, FDCWD, _path(raw))
        if isinstance(hp, int):
            return hp
        try:
            info = os.stat(hp)
        except OSError as e:
            return oserr(e)
        if not os.access(hp, os.W_OK):
            return -E.EACCES
        other = names.get(("path", info.st_dev, info.st_ino)) if st.S_ISSOCK(info.st_mode) else None
        if other is None:
            return -E.ECONNREFUSED
        return other if other.type == kind else -E.EPROTOTYPE
    other = names.get(("abstract", kind, raw[SUN_PATH_OFFSET:]))
    return other if other is not None else -E.ECONNREFUSED


def _put_addr(t: Thread, name: bytes, uaddr: int, ulen: int) -> int:
    """move_addr_to_user: copy as much of the address as the caller's length allows, then
    store its full length; a negative length is EINVAL."""
    mem = t.process.mem
    n = INT.unpack(mem.read(ulen, INT.size))[0]
    n = min(n, len(name))
    if n < 0:
        return -E.EINVAL
    if n:
        mem.write(uaddr, name[:n])
    mem.write(ulen, INT.pack(len(name)))
    return 0


@syscall(49, fd="int", addrlen="int")
def sys_bind(k: Kernel, t: Thread, fd: int, addr: int, addrlen: int) -> int:
    sock = _socket(t, fd)
    if isinstance(sock, int):
        return sock
    raw = _read_addr(t, addr, addrlen)
    if isinstance(raw, int):
        return raw
    raw = _unix_addr(raw)
    if isinstance(raw, int):
        return raw
    names = k.unix_names
    if len(raw) == SUN_PATH_OFFSET:  # unix_autobind: a bound socket keeps its name (0)
        while sock.addr is None:
            name = b"\0%05x" % (names.autobind & 0xFFFFF)
            names.autobind += 1
            key = ("abstract", sock.type, name)
            if key not in names.bound:
                sock.addr, sock.key = UNNAMED + name, key
                names.bound[key] = sock
        return 0
    if raw[SUN_PATH_OFFSET]:
        return _bind_path(k, t, sock, raw)
    if sock.addr is not None:
        return -E.EINVAL
    key = ("abstract", sock.type, raw[SUN_PATH_OFFSET:])
    if key in names.bound:
        return -E.EADDRINUSE
    sock.addr, sock.key = raw, key
    names.bound[key] = sock
    return 0


def _bind_path(k: Kernel, t: Thread, sock: UnixSocket, raw: bytes) -> int:
    """unix_bind_bsd: the socket file is made first (mode 0777 less the umask; an existing
    name is EADDRINUSE), and removed again if the socket already has a name (EINVAL). The
    name is the path and its NUL (getsockname's length: strlen + 3)."""
    path = _path(raw)
    hp = host_path(k, t.process, FDCWD, path, follow=False)
    if isinstance(hp, int):
        return hp
    mode = 0o777 & ~t.process.umask
    try:
        os.mknod(hp, st.S_IFSOCK | mode)
    except FileExistsError:
        return -E.EADDRINUSE
    except OSError as e:
        return oserr(e)
    if sock.addr is not None:
        os.unlink(hp)
        return -E.EINVAL
    unmask(mode, lambda: os.lstat(hp).st_mode, lambda m: os.chmod(hp, m))
    info = os.lstat(hp)
    sock.addr, sock.key = UNNAMED + path + b"\0", ("path", info.st_dev, info.st_ino)
    k.unix_names.bound[sock.key] = sock
    return 0


@syscall(50, fd="int", backlog="int")
def sys_listen(k: Kernel, t: Thread, fd: int, backlog: int) -> int:
    sock = _socket(t, fd)
    if isinstance(sock, int):
        return sock
    if sock.type == SOCK_DGRAM:
        return -E.EOPNOTSUPP
    if sock.addr is None or sock.connected:
        return -E.EINVAL
    backlog &= 0xFFFF_FFFF  # __sys_listen: (unsigned) backlog, capped at somaxconn
    if backlog > SOMAXCONN:
        backlog = SOMAXCONN
    if backlog > sock.backlog:
        k.sched.notify(sock)  # blocked connects may find room now
    sock.backlog, sock.listening = backlog, True
    sock.creds = host_creds(t.process.pid)  # init_peercred: what the clients' SO_PEERCRED reports
    return 0


@syscall(42, fd="int", addrlen="int")
def sys_connect(k: Kernel, t: Thread, fd: int, addr: int, addrlen: int) -> int | object:
    sock = _socket(t, fd)
    if isinstance(sock, int):
        return sock
    raw = _read_addr(t, addr, addrlen)
    if isinstance(raw, int):
        return raw
    if sock.type == SOCK_DGRAM:
        return _connect_dgram(k, t, sock, raw)
    raw = _unix_addr(raw)
    if isinstance(raw, int):
        return raw
    other = _find(k, t, sock.type, raw)
    if isinstance(other, int):
        return other
    if not other.listening or other.shut:
        return -E.ECONNREFUSED
    if len(other.pending) > other.backlog:  # unix_recvq_full: wait for an accept
        if sock.nonblock:
            return -E.EAGAIN  # an AF_UNIX connect never answers EINPROGRESS
        deadline = k.clock_ns() + sock.sndtimeo if sock.sndtimeo else None
        k.sched.block(t, Wait("socket-connect", deadline, key=other, restart=True,
                              on_timeout=-E.EAGAIN))  # fmt: skip
        return BLOCK
    if sock.connected:
        return -E.EISCONN
    if sock.listening:
        return -E.EINVAL
    server = UnixSocket(k, sock.type, creds=host_creds(t.process.pid))
    server.addr = other.addr  # an accepted socket has its listener's name
    sock.creds = other.creds
    connect_pair(sock, server)
    other.pending.append(server)
    k.sched.notify(other)
    return 0


def _connect_dgram(k: Kernel, t: Thread, sock: UnixSocket, raw: bytes) -> int:
    """unix_dgram_connect: AF_UNSPEC forgets the peer; else the peer must accept our
    datagrams (EPERM if it is connected to another socket)."""
    if len(raw) < SUN_PATH_OFFSET:
        return -E.EINVAL
    if int.from_bytes(raw[:2], "little") == AF_UNSPEC:
        sock.peer = None
        return 0
    raw = _unix_addr(raw)
    if isinstance(raw, int):
        return raw
    other = _find(k, t, sock.type, raw)
    if isinstance(other, int):
        return other
    if other.peer is not None and other.peer is not sock:
        return -E.EPERM
    sock.peer = other
    return 0


def _accept(k: Kernel, t: Thread, fd: int, addr: int, addrlen: int,
            flags: int) -> int | object:  # fmt: skip
    if flags & ~(SOCK_CLOEXEC | SOCK_NONBLOCK):
        return -E.EINVAL
    sock = _socket(t, fd)
    if isinstance(sock, int):
        return sock
    if sock.type == SOCK_DGRAM:
        return -E.EOPNOTSUPP
    if not sock.listening:
        return -E.EINVAL
    if not sock.pending:
        if sock.nonblock:
            return -E.EAGAIN
        deadline = k.clock_ns() + sock.rcvtimeo if sock.rcvtimeo else None
        k.sched.block(t, Wait("socket-accept", deadline, key=sock, restart=True,
                              on_timeout=-E.EAGAIN))  # fmt: skip
        return BLOCK
    new = sock.pending.popleft()
    k.sched.notify(sock)  # room in the backlog: a blocked connect goes on
    new.nonblock = bool(flags & SOCK_NONBLOCK)
    nfd = t.process.fds.install(new, cloexec=bool(flags & SOCK_CLOEXEC))
    if addr:
        peer = new.peer
        err = _put_addr(t, peer.name() if peer is not None else UNNAMED, addr, addrlen)
        if err:
            t.process.fds.close(nfd)  # __sys_accept4_file: the connection is lost
            return err
    return nfd


@syscall(43, fd="int")
def sys_accept(k: Kernel, t: Thread, fd: int, addr: int, addrlen: int) -> int | object:
    return _accept(k, t, fd, addr, addrlen, 0)


@syscall(288, fd="int", flags="hex")
def sys_accept4(k: Kernel, t: Thread, fd: int, addr: int, addrlen: int,
                flags: int) -> int | object:  # fmt: skip
    return _accept(k, t, fd, addr, addrlen, flags)


@syscall(51, fd="int")
def sys_getsockname(k: Kernel, t: Thread, fd: int, addr: int, addrlen: int) -> int:
    sock = _socket(t, fd)
    if isinstance(sock, int):
        return sock
    return _put_addr(t, sock.name(), addr, addrlen)


@syscall(52, fd="int")
def sys_getpeername(k: Kernel, t: Thread, fd: int, addr: int, addrlen: int) -> int:
    sock = _socket(t, fd)
    if isinstance(sock, int):
        return sock
    if sock.peer is None:
        return -E.ENOTCONN
    return _put_addr(t, sock.peer.name(), addr, addrlen)


# --- sending and receiving ------------------------------------------------------------------


def _destination(k: Kernel, t: Thread, sock: UnixSocket, raw: bytes) -> UnixSocket | int | None:
    """What a send's address means (unix_*_sendmsg): a stream socket refuses one (EISCONN
    when connected, else EOPNOTSUPP), a seqpacket socket ignores it, a datagram goes to the
    socket it names (`_find`'s errors come back as the send's result)."""
    if not raw:
        return None
    if sock.type == SOCK_STREAM:
        return -E.EISCONN if sock.connected else -E.EOPNOTSUPP
    if sock.type == SOCK_SEQPACKET:
        return None
    checked = _unix_addr(raw)
    return checked if isinstance(checked, int) else _find(k, t, sock.type, checked)


def _send(k: Kernel, t: Thread, sock: UnixSocket, data: bytes, files: list, flags: int,
          raw: bytes) -> int | object:  # fmt: skip
    to = _destination(k, t, sock, raw)
    if isinstance(to, int) and sock.type != SOCK_DGRAM:
        return to
    return sock.sendmsg(t, data, files, flags, to)


def _msghdr(t: Thread, fd: int, msg: int) -> tuple[UnixSocket, Iovec, int, int, int, int] | int:
    """The socket and its user msghdr: (socket, iovec segments, msg_name, msg_namelen,
    msg_control, msg_controllen), or -errno. The fd first (EBADF, ENOTSOCK), then
    __copy_msghdr: a negative msg_namelen (an int) with a msg_name is EINVAL, more than
    UIO_MAXIOV segments EMSGSIZE; then import_iovec's checks."""
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
    if isinstance(vecs, int):
        return vecs
    return sock, vecs, name, namelen if name else 0, control, clen


@syscall(46, fd="int", flags="hex")
def sys_sendmsg(k: Kernel, t: Thread, fd: int, msg: int, flags: int) -> int | object:
    hdr = _msghdr(t, fd, msg)
    if isinstance(hdr, int):
        return hdr
    sock, vecs, name, namelen, control, clen = hdr
    mem = t.process.mem
    raw = _read_addr(t, name, namelen) if namelen else b""
    if isinstance(raw, int):
        return raw
    data = b"".join(mem.read(b, n) for b, n in vecs)
    files = []
    pos = 0
    while pos + CMSGHDR.size <= clen:  # control messages (cmsghdr, 8-byte aligned)
        length, level, ctype = CMSGHDR.unpack(mem.read(control + pos, CMSGHDR.size))
        if length < CMSGHDR.size or pos + length > clen:
            return -E.EINVAL
        if level == SOL_SOCKET and ctype == SCM_RIGHTS:
            count = (length - CMSGHDR.size) // INT.size
            if count > SCM_MAX_FD:
                return -E.EINVAL
            for i in range(count):
                off = control + pos + CMSGHDR.size + INT.size * i
                f = t.process.fds.get(INT.unpack(mem.read(off, INT.size))[0])
                if f is None:
                    return -E.EBADF
                files.append(f)
        pos += (length + 7) & ~7
    return _send(k, t, sock, data, files, flags, raw)


@syscall(44, fd="int", length="int", flags="hex", addrlen="int")
def sys_sendto(k: Kernel, t: Thread, fd: int, buf: int, length: int, flags: int, addr: int,
               addrlen: int) -> int | object:  # fmt: skip
    sock = _socket(t, fd)
    if isinstance(sock, int):
        return sock
    raw = _read_addr(t, addr, addrlen) if addr else b""
    if isinstance(raw, int):
        return raw
    return _send(k, t, sock, t.process.mem.read(buf, length), [], flags, raw)


@syscall(47, fd="int", flags="hex")
def sys_recvmsg(k: Kernel, t: Thread, fd: int, msg: int, flags: int) -> int | object:
    hdr = _msghdr(t, fd, msg)
    if isinstance(hdr, int):
        return hdr
    sock, vecs, name, _namelen, control, clen = hdr
    mem = t.process.mem
    r = sock.recvmsg(t, sum(n for _, n in vecs), flags)
    if not isinstance(r, tuple):
        return r
    data, files, sender, msg_flags, full = r
    scatter(mem, vecs, data)
    used = 0
    if files:
        room = max(0, (clen - CMSGHDR.size) // INT.size)
        fds = [t.process.fds.install(f, cloexec=bool(flags & MSG_CMSG_CLOEXEC))
               for f in files[:room]]  # fmt: skip
        if len(fds) < len(files):
            msg_flags |= MSG_CTRUNC  # scm_detach_fds: the rest are closed
        for f in files:
            release(f)  # the message's in-flight reference
        if fds:
            body = b"".join(INT.pack(n) for n in fds)
            used = CMSGHDR.size + len(body)
            mem.write(control, CMSGHDR.pack(used, SOL_SOCKET, SCM_RIGHTS) + body)
    if name:
        err = _put_addr(t, sender or b"", name, msg + MSG_NAMELEN)
        if err:
            return err
    mem.write(msg + MSG_CONTROLLEN, U64.pack((used + 7) & ~7 if used else 0))
    mem.write(msg + MSG_FLAGS, INT.pack(msg_flags))
    return full if flags & MSG_TRUNC else len(data)  # MSG_TRUNC: a datagram's real length


@syscall(45, fd="int", length="int", flags="hex")
def sys_recvfrom(k: Kernel, t: Thread, fd: int, buf: int, length: int, flags: int, addr: int,
                 addrlen: int) -> int | object:  # fmt: skip
    sock = _socket(t, fd)
    if isinstance(sock, int):
        return sock
    r = sock.recvmsg(t, length, flags)
    if not isinstance(r, tuple):
        return r
    data, files, sender, _, full = r
    for f in files:
        release(f)  # no control buffer: the passed files are dropped
    t.process.mem.write(buf, data)
    if addr:
        err = _put_addr(t, sender or b"", addr, addrlen)
        if err:
            return err
    return full if flags & MSG_TRUNC else len(data)


MMSGHDR_SIZE = MSGHDR.size + 8  # struct mmsghdr: msg_hdr, unsigned int msg_len, padding
MSG_WAITFORONE = 0x10000


def _each_message(k: Kernel, t: Thread, fd: int, msgvec: int, vlen: int, flags: int,
                  call: Callable[..., int | object]) -> int | object:  # fmt: skip
    """sendmmsg/recvmmsg as a run of sendmsg/recvmsg calls, each result in its msg_len.
    Only the first may block (the call runs again from the start when woken); the others
    do not wait (MSG_DONTWAIT), and the count so far is returned at the first that fails."""
    sock = _socket(t, fd)
    if isinstance(sock, int):
        return sock
    vlen = min(vlen & 0xFFFF_FFFF, UIO_MAXIOV)
    done = 0
    for i in range(vlen):
        hdr = msgvec + MMSGHDR_SIZE * i
        r = call(k, t, fd, hdr, flags if i == 0 else flags | MSG_DONTWAIT)
        if not isinstance(r, int) or r < 0:
            return r if done == 0 else done
        t.process.mem.write(hdr + MSGHDR.size, U32.pack(r))
        done += 1
    return done


@syscall(307, fd="int", vlen="int", flags="hex")
def sys_sendmmsg(k: Kernel, t: Thread, fd: int, msgvec: int, vlen: int,
                 flags: int) -> int | object:  # fmt: skip
    return _each_message(k, t, fd, msgvec, vlen, flags, sys_sendmsg)


@syscall(299, fd="int", vlen="int", flags="hex")
def sys_recvmmsg(k: Kernel, t: Thread, fd: int, msgvec: int, vlen: int, flags: int,
                 timeout: int) -> int | object:  # fmt: skip
    """MSG_WAITFORONE is what this does anyway; the timeout is not applied (a documented
    limit: the first message is waited for as by recvmsg)."""
    return _each_message(k, t, fd, msgvec, vlen, flags & ~MSG_WAITFORONE, sys_recvmsg)


@syscall(48, fd="int", how="int")
def sys_shutdown(k: Kernel, t: Thread, fd: int, how: int) -> int:
    """unix_shutdown: SHUT_RD/WR/RDWR (0-2) become RCV/SEND shutdown bits here and the
    mirrored bits at a connected stream or seqpacket peer."""
    sock = _socket(t, fd)
    if isinstance(sock, int):
        return sock
    how = s32(how)
    if not 0 <= how <= 2:
        return -E.EINVAL
    mode = how + 1
    sock.shut |= mode
    k.sched.notify(sock)
    peer = sock.peer
    if peer is not None and sock.type != SOCK_DGRAM:
        peer.shut |= (mode & 1) << 1 | (mode & 2) >> 1
        k.sched.notify(peer)
    return 0


# --- options (net/core/sock.c: sk_getsockopt, sk_setsockopt) ---------------------------------


def _timeval(ns: int) -> bytes:
    us = ns // 1000
    return TIMEVAL.pack(us // 1_000_000, us % 1_000_000)


@syscall(55, fd="int", level="int", optname="int")
def sys_getsockopt(k: Kernel, t: Thread, fd: int, level: int, optname: int, optval: int,
                   optlen: int) -> int:  # fmt: skip
    sock = _socket(t, fd)
    if isinstance(sock, int):
        return sock
    if s32(level) != SOL_SOCKET:
        return -E.EOPNOTSUPP  # AF_UNIX has no options of its own
    mem = t.process.mem
    n = INT.unpack(mem.read(optlen, INT.size))[0]
    if n < 0:
        return -E.EINVAL
    opt = s32(optname)
    value: int | bytes
    if opt == SO_TYPE:
        value = sock.type
    elif opt == SO_ERROR:
        value, sock.err = sock.err, 0
    elif opt == SO_DOMAIN:
        value = AF_UNIX
    elif opt == SO_ACCEPTCONN:
        value = int(sock.listening)
    elif opt in (SO_SNDBUF, SO_RCVBUF):
        value = sock.options.get(opt, SOCKET_CAPACITY)
    elif opt in (SO_RCVLOWAT, SO_SNDLOWAT):
        value = sock.options.get(opt, 1)
    elif opt in BOOL_OPTIONS or opt in (SO_PROTOCOL, SO_PRIORITY):
        value = sock.options.get(opt, 0)
    elif opt == SO_PEERCRED:
        value = UCRED.pack(*(sock.creds or (0, OVERFLOW_ID, OVERFLOW_ID)))
    elif opt == SO_LINGER:
        value = LINGER.pack(sock.options.get(SO_LINGER, 0), sock.options.get(-SO_LINGER, 0))
    elif opt in (SO_RCVTIMEO, SO_SNDTIMEO):
        value = _timeval(sock.rcvtimeo if opt == SO_RCVTIMEO else sock.sndtimeo)
    else:
        return -E.ENOPROTOOPT
    data = INT.pack(value) if isinstance(value, int) else value
    n = min(n, len(data))
    mem.write(optval, data[:n])
    mem.write(optlen, INT.pack(n))
    return 0


@syscall(54, fd="int", level="int", optname="int", optlen="int")
def sys_setsockopt(k: Kernel, t: Thread, fd: int, level: int, optname: int, optval: int,
                   optlen: int) -> int:  # fmt: skip
    sock = _socket(t, fd)
    if isinstance(sock, int):
        return sock
    if s32(level) != SOL_SOCKET:
        return -E.EOPNOTSUPP
    opt, optlen = s32(optname), s32(optlen)
    if optlen < INT.size:
        return -E.EINVAL
    mem = t.process.mem
    if opt in (SO_RCVTIMEO, SO_SNDTIMEO):  # sock_set_timeout
        if optlen < TIMEVAL.size:
            return -E.EINVAL
        sec, usec = TIMEVAL.unpack(mem.read(optval, TIMEVAL.size))
        if not 0 <= usec < 1_000_000:
            return -E.EDOM
        ns = 0 if sec < 0 else sec * 1_000_000_000 + usec * 1000
        if opt == SO_RCVTIMEO:
            sock.rcvtimeo = ns
        else:
            sock.sndtimeo = ns
        return 0
    if opt == SO_LINGER:
        if optlen < LINGER.size:
            return -E.EINVAL
        onoff, secs = LINGER.unpack(mem.read(optval, LINGER.size))
        sock.options[SO_LINGER], sock.options[-SO_LINGER] = int(onoff != 0), secs
        return 0
    val = INT.unpack(mem.read(optval, INT.size))[0]
    if opt in BOOL_OPTIONS:
        sock.options[opt] = int(val != 0)
    elif opt == SO_SNDBUF:  # capped at net.core.wmem_max, doubled for the overhead
        sock.options[opt] = max(min(val & 0xFFFF_FFFF, SOCKET_CAPACITY) * 2, SOCK_MIN_SNDBUF)
    elif opt == SO_RCVBUF:
        sock.options[opt] = max(min(val & 0xFFFF_FFFF, SOCKET_CAPACITY) * 2, SOCK_MIN_RCVBUF)
    elif opt == SO_RCVLOWAT:
        sock.options[opt] = val if val >= 0 else 0x7FFF_FFFF
    elif opt == SO_PRIORITY:
        sock.options[opt] = val
    else:
        return -E.ENOPROTOOPT
    return 0


__all__ = ["MSG_DONTWAIT", "MSG_PEEK"]
