"""AF_UNIX sockets between the guest's threads and processes (net/unix/af_unix.c's model):
stream, datagram and seqpacket sockets, unnamed (socketpair), bound to a path (a socket file
on the host, made by bind) or to a name in the abstract namespace, with listen/accept/connect.

Names live in `UnixNames`, one per emulated machine (the abstract namespace belongs to a
network namespace, and a path socket is found through its inode, so a renamed or hard-linked
socket file still reaches it). A socket file that no guest socket is bound to -- a stale one,
or a host program's -- refuses connections (ECONNREFUSED): the guest's sockets never reach
the host's. docs/linux.md, "AF_UNIX sockets", says what is and is not modelled.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import errno as E
from .abi import POLLERR, POLLHUP, POLLIN, POLLOUT
from .control import BLOCK
from .process import File, Wait
from .signals import SI_USER, SIGPIPE, SigInfo

if TYPE_CHECKING:
    from .kernel import Kernel
    from .process import Thread

AF_UNSPEC, AF_UNIX = 0, 1
SOCK_STREAM, SOCK_DGRAM, SOCK_RAW, SOCK_SEQPACKET = 1, 2, 3, 5
POLLRDHUP = 0x2000
RCV_SHUTDOWN, SEND_SHUTDOWN, SHUTDOWN_MASK = 1, 2, 3
MSG_OOB, MSG_PEEK, MSG_TRUNC, MSG_DONTWAIT = 0x1, 0x2, 0x20, 0x40
MSG_WAITALL, MSG_NOSIGNAL, MSG_CMSG_CLOEXEC = 0x100, 0x4000, 0x4000_0000
SUN_PATH_OFFSET, SOCKADDR_UN_SIZE = 2, 110  # offsetof(struct sockaddr_un, sun_path), sizeof
SOCKET_CAPACITY = 212_992  # net.core.wmem_default: sk_sndbuf
MAX_DGRAM_QLEN = 10  # net.unix.max_dgram_qlen: a datagram socket's receive queue
SOMAXCONN = 4096  # net.core.somaxconn: listen()'s backlog is capped at it
UNNAMED = AF_UNIX.to_bytes(2, "little")  # the address of a socket without a name (len 2)
OVERFLOW_ID = 65534  # overflowuid/gid: SO_PEERCRED of a socket without a peer


@dataclass(eq=False)
class Message:
    data: bytearray
    files: list[File]
    sender: UnixSocket
    addr: bytes | None  # the sender's name when it sent (recvfrom's address), if it had one


@dataclass
class UnixNames:
    """The machine's bound names: path sockets by (st_dev, st_ino), abstract ones by (type,
    name) -- unix_abstract_hash mixes the type in, so a stream and a datagram socket may hold
    the same abstract name."""

    bound: dict[tuple[Any, ...], UnixSocket] = field(default_factory=dict)
    autobind: int = 0  # the next autobind name ("\\0%05x"); a counter, so runs repeat


#: A read's result: data, passed files, the sender's name, msg_flags, the message's length.
Received = tuple[bytes, list[File], bytes | None, int, int]


class UnixSocket(File):
    """One AF_UNIX socket. `peer` is the socket it is connected to (a datagram socket's
    default destination); it stays set when that peer dies, as unix_peer does, so the survivor
    learns of the death from the peer's `dead` (EPIPE, ECONNREFUSED)."""

    kind = "socket"

    def __init__(self, k: Kernel, type_: int, creds: tuple[int, int, int] | None = None):
        self.type = type_
        self.k = k
        self.wake: Callable[[Any], None] = k.sched.notify
        self.peer: UnixSocket | None = None
        self.rx: deque[Message] = deque()
        self.inflight = 0  # bytes this socket sent that wait in a receive queue (sk_wmem_alloc)
        self.listening = False
        self.pending: deque[UnixSocket] = deque()  # a listener's connected, unaccepted sockets
        self.backlog = MAX_DGRAM_QLEN  # sk_max_ack_backlog: listen()'s, else max_dgram_qlen
        self.addr: bytes | None = None  # its name (sockaddr_un bytes, getsockname's length)
        self.key: tuple[Any, ...] | None = None  # the name it bound (UnixNames.bound)
        self.shut = 0
        self.err = 0
        self.dead = False
        self.creds = creds  # SO_PEERCRED: (pid, uid, gid) of the peer when it connected
        self.options: dict[int, int] = {}  # SOL_SOCKET options kept only to report them back
        self.rcvtimeo = self.sndtimeo = 0  # SO_RCVTIMEO / SO_SNDTIMEO, ns (0: none)

    @property
    def connected(self) -> bool:
        return self.peer is not None

    @property
    def stream(self) -> bool:
        return self.type == SOCK_STREAM

    def queued(self) -> int:
        return sum(len(m.data) for m in self.rx)

    # --- life and death -------------------------------------------------------------------

    def close(self) -> None:
        """The last reference is gone (unix_release_sock): the name is free again, a
        connected peer reads EOF (ECONNRESET first if this end dropped unread data), a
        listener's unaccepted connections are reset, and whoever waits on either end wakes."""
        self.release(embryo=False)

    def release(self, embryo: bool) -> None:
        if self.dead:
            return
        self.dead = True
        self.shut = SHUTDOWN_MASK
        names = self.k.unix_names
        if self.key is not None and names.bound.get(self.key) is self:
            del names.bound[self.key]
        peer, self.peer = self.peer, None
        if peer is not None and self.type != SOCK_DGRAM:
            peer.shut = SHUTDOWN_MASK
            if self.rx or embryo:
                peer.err = E.ECONNRESET
            self.wake(peer)
        self._purge()
        while self.pending:  # a listener's embryos: their clients are reset
            self.pending.popleft().release(embryo=True)
        self.wake(self)

    def _purge(self) -> None:
        while self.rx:
            self._consumed(self.rx.popleft())

    def _consumed(self, m: Message) -> None:
        """A message left the queue: its sender may write again, its in-flight files (those
        no recvmsg took) lose the message's reference."""
        m.sender.inflight -= len(m.data)
        self.wake(m.sender)
        for f in m.files:
            release(f)
        m.files = []

    # --- sending --------------------------------------------------------------------------

    def sendmsg(self, t: Thread, data: bytes, files: list[File], flags: int,
                to: UnixSocket | int | None = None) -> int | object:  # fmt: skip
        """Send one message (a datagram, or bytes of a stream); `to` is the socket a
        datagram's address named (or its lookup's -errno); stream sockets reject an address
        before this (EISCONN, EOPNOTSUPP)."""
        if flags & MSG_OOB:
            return -E.EOPNOTSUPP
        if self.type == SOCK_DGRAM:
            return self._send_dgram(t, data, files, flags, to)
        if self.type == SOCK_SEQPACKET and not self.connected:
            return -E.ENOTCONN
        peer = self.peer
        if peer is None:
            return -E.ENOTCONN
        if self.shut & SEND_SHUTDOWN or peer.dead or peer.shut & RCV_SHUTDOWN:
            if not flags & MSG_NOSIGNAL:  # unix_stream_sendmsg's pipe_err: send_sig(SIGPIPE)
                self.k.signals.send(t, SigInfo(SIGPIPE, SI_USER, pid=t.process.pid))
            return -E.EPIPE
        if self.type == SOCK_SEQPACKET and len(data) > SOCKET_CAPACITY - 32:
            return -E.EMSGSIZE
        if self.inflight and self.inflight + len(data) > SOCKET_CAPACITY:
            return self._wait(t, "socket-write", flags, self.sndtimeo)
        return self._queue(peer, data, files)

    def _send_dgram(self, t: Thread, data: bytes, files: list[File], flags: int,
                    to: UnixSocket | int | None) -> int | object:  # fmt: skip
        if to is None and self.peer is None:
            return -E.ENOTCONN
        if len(data) > SOCKET_CAPACITY - 32:
            return -E.EMSGSIZE
        if isinstance(to, int):
            return to
        other = to if to is not None else self.peer
        assert other is not None
        if other.dead:  # a dead default destination is forgotten (unix_dgram_sendmsg)
            if other is self.peer:
                self.peer = None
            return -E.ECONNREFUSED
        if other.peer is not None and other.peer is not self:  # unix_may_send
            return -E.EPERM
        if other.shut & RCV_SHUTDOWN:
            return -E.EPIPE
        if other.peer is not self and len(other.rx) > other.backlog:  # unix_recvq_full
            return self._wait(t, "socket-write", flags, self.sndtimeo, key=other)
        if self.inflight and self.inflight + len(data) > SOCKET_CAPACITY:
            return self._wait(t, "socket-write", flags, self.sndtimeo)
        return self._queue(other, data, files)

    def _queue(self, to: UnixSocket, data: bytes, files: list[File]) -> int:
        for f in files:  # in flight: the message holds a reference (unix_inflight)
            f.refs += 1
        to.rx.append(Message(bytearray(data), files, self, self.addr))
        self.inflight += len(data)
        self.wake(to)
        return len(data)

    def _wait(self, t: Thread, kind: str, flags: int, timeo: int,
              key: Any = None) -> int | object:  # fmt: skip
        """Block until woken by `key` (this socket), or EAGAIN for a nonblocking call or
        at the socket's timeout (SO_RCVTIMEO / SO_SNDTIMEO)."""
        if self.nonblock or flags & MSG_DONTWAIT:
            return -E.EAGAIN
        deadline = self.k.clock_ns() + timeo if timeo else None
        self.k.sched.block(t, Wait(kind, deadline, key=self if key is None else key,
                                   restart=True, on_timeout=-E.EAGAIN))  # fmt: skip
        return BLOCK

    # --- receiving ------------------------------------------------------------------------

    def recvmsg(self, t: Thread, size: int, flags: int) -> Received | int | object:
        """(data, files, the sender's name, msg_flags, the message's full length), or
        -errno, or BLOCK. A stream read
        joins messages up to `size` and stops after one that carried files
        (unix_stream_read_generic); a datagram or seqpacket read takes one message, the rest
        of a longer one is lost (MSG_TRUNC)."""
        if self.type == SOCK_STREAM and not self.connected:
            return -E.EINVAL  # unix_stream_read_generic: not TCP_ESTABLISHED
        if self.type == SOCK_SEQPACKET and not self.connected:
            return -E.ENOTCONN
        if not self.rx or (
            self.stream and flags & MSG_WAITALL and self.queued() < min(size, SOCKET_CAPACITY)
            and not self.shut & RCV_SHUTDOWN and not self.err and not self.rx[-1].files
        ):  # fmt: skip
            if self.rx:
                return self._wait(t, "socket-read", flags, self.rcvtimeo)
            if self.err:
                err, self.err = self.err, 0
                return -err
            if self.shut & RCV_SHUTDOWN:
                return b"", [], None, 0, 0
            return self._wait(t, "socket-read", flags, self.rcvtimeo)
        peek = bool(flags & MSG_PEEK)
        if not self.stream:
            m = self.rx[0]
            out, files = bytes(m.data[:size]), m.files
            msg_flags = MSG_TRUNC if len(m.data) > size else 0
            if not peek:
                self.rx.popleft()
                m.files = []
                self._consumed(m)
            elif files:
                for f in files:  # a peek passes new references to the files
                    f.refs += 1
            return out, list(files), m.addr, msg_flags, len(m.data)
        out = bytearray()
        files = []
        addr = self.rx[0].addr
        for m in list(self.rx):
            if len(out) >= size:
                break
            take = size - len(out)
            out += m.data[:take]
            if peek:
                continue
            if m.files:
                files, m.files = m.files, []
            if take >= len(m.data):
                self.rx.popleft()
                self._consumed(m)
            else:
                del m.data[:take]
                m.sender.inflight -= take
                self.wake(m.sender)
            if files:
                break
        return bytes(out), files, addr, 0, len(out)

    # --- the file interface (read, write, poll) -------------------------------------------

    def read(self, k: Kernel, t: Thread, count: int) -> bytes | int | object:
        r = self.recvmsg(t, count, 0)
        if isinstance(r, tuple):
            for f in r[1]:  # passed files with no recvmsg to take them are dropped
                release(f)
            return r[0]
        return r

    def write(self, k: Kernel, t: Thread, data: bytes) -> int | object:
        return self.sendmsg(t, data, [], 0)

    def writable(self) -> bool:
        """unix_writable: not a listener, and a quarter of the send buffer or less in flight."""
        return not self.listening and self.inflight * 4 <= SOCKET_CAPACITY

    def poll(self, events: int) -> int:
        """unix_poll and unix_dgram_poll."""
        rev = POLLERR if self.err else 0
        if self.shut == SHUTDOWN_MASK:
            rev |= POLLHUP
        if self.shut & RCV_SHUTDOWN:
            rev |= POLLIN | POLLRDHUP
        if self.rx or self.pending:
            rev |= POLLIN
        if self.type == SOCK_DGRAM:
            other = self.peer
            if self.writable() and not (other is not None and other.peer is not self
                                        and len(other.rx) > other.backlog):  # fmt: skip
                rev |= POLLOUT
        else:
            if not self.connected and not self.listening:
                rev |= POLLHUP  # connection-based and TCP_CLOSE
            if self.writable():
                rev |= POLLOUT
        return rev & (events | POLLHUP | POLLERR)

    # --- names ----------------------------------------------------------------------------

    def name(self) -> bytes:
        return self.addr if self.addr is not None else UNNAMED


def release(f: File) -> None:
    f.refs -= 1
    if f.refs <= 0:
        f.close()


def connect_pair(a: UnixSocket, b: UnixSocket) -> None:
    a.peer, b.peer = b, a


def host_creds(pid: int) -> tuple[int, int, int]:
    """What SO_PEERCRED reports of a process: its pid and the credentials the guest has
    (the emulator's own, as getuid() reports)."""
    return pid, os.getuid(), os.getgid()


__all__ = ["AF_UNIX", "UnixNames", "UnixSocket"]
