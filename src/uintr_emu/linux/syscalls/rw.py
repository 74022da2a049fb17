"""Moving data through a descriptor: read, write, readv, writev, pread64, pwrite64, lseek,
truncate, ftruncate, fsync, fdatasync; and the user-buffer checks of vfs_read/vfs_write."""

from __future__ import annotations

import fcntl
import os
import select
from typing import TYPE_CHECKING

from .. import errno as E
from ..abi import IOVEC
from ..mm import TASK_SIZE, AddressSpace, GuestFault
from ..process import File, HostFile, PipeEnd
from . import syscall
from .paths import FDCWD, host_call, host_fd, host_path, oserr, s32
from .pipes import epipe, pipe_read, pipe_write

if TYPE_CHECKING:
    from ..kernel import Kernel
    from ..process import Thread

UIO_MAXIOV = 1024
SEEK_MAX = 4  # SEEK_HOLE
MAX_RW_COUNT = 0x7FFF_F000  # INT_MAX & PAGE_MASK: the most one read or write moves
IO_CHUNK = 1 << 24  # the most read from the host at once: a short read, which read(2) allows
Iovec = list[tuple[int, int]]  # the (base, length) segments of a user iovec array


def do_read(k: Kernel, t: Thread, f: File, count: int) -> bytes | int | object:
    if isinstance(f, PipeEnd):
        return pipe_read(k, t, f, count)
    if isinstance(f, HostFile):
        if not k.forwarded.wait_host(t, f.fd, select.POLLIN):
            return k.forwarded.interrupted(t)  # a host signal for a handler: ERESTARTSYS
        try:
            return os.read(f.fd, count)
        except OSError as e:
            return oserr(e)
    reader = getattr(f, "read", None)
    return reader(k, t, count) if reader is not None else -E.EINVAL


def do_write(k: Kernel, t: Thread, f: File, data: bytes) -> int | object:
    if isinstance(f, PipeEnd):
        return pipe_write(k, t, f, data)
    if isinstance(f, HostFile):
        try:
            return os.write(f.fd, data)
        except BrokenPipeError:
            return epipe(k, t)
        except OSError as e:
            return oserr(e)
    writer = getattr(f, "write", None)
    return writer(k, t, data) if writer is not None else -E.EINVAL


def access_ok(addr: int, size: int) -> bool:
    """x86-64 access_ok: [addr, addr + size) lies below TASK_SIZE_MAX (no wrap-around)."""
    return addr + size <= TASK_SIZE


def _mode_ok(f: File, write: bool) -> bool:
    """FMODE_READ (FMODE_WRITE): vfs_read (vfs_write) refuses a file without it (EBADF) first."""
    if isinstance(f, PipeEnd):
        return f.write_end == write
    if isinstance(f, HostFile):
        try:
            acc = fcntl.fcntl(f.fd, fcntl.F_GETFL) & os.O_ACCMODE
        except OSError:
            return True  # the host call itself will tell
        return acc in ((os.O_WRONLY if write else os.O_RDONLY), os.O_RDWR)
    return True


def rw_count(f: File, buf: int, count: int, pos: int | None, write: bool) -> int:
    """vfs_read/vfs_write's checks of a user buffer: a file not open for it is EBADF, a
    buffer beyond user space EFAULT (access_ok), pos + count beyond loff_t EINVAL
    (rw_verify_area); else the count, clamped to MAX_RW_COUNT."""
    err = 0
    if not access_ok(buf, count):
        err = -E.EFAULT
    elif pos is not None and pos + count >= 1 << 63:
        err = -E.EINVAL
    if err and not _mode_ok(f, write):
        return -E.EBADF
    return err or min(count, MAX_RW_COUNT)


@syscall(0, fd="int", count="int")
def sys_read(k: Kernel, t: Thread, fd: int, buf: int, count: int) -> int | object:
    f = t.process.fds.get(s32(fd))
    if f is None:
        return -E.EBADF
    count = rw_count(f, buf, count, None, write=False)
    if count < 0:
        return count
    r = do_read(k, t, f, min(count, IO_CHUNK))
    if isinstance(r, bytes):
        t.process.mem.write(buf, r)
        return len(r)
    return r


@syscall(1, fd="int", count="int")
def sys_write(k: Kernel, t: Thread, fd: int, buf: int, count: int) -> int | object:
    f = t.process.fds.get(s32(fd))
    if f is None:
        return -E.EBADF
    count = rw_count(f, buf, count, None, write=True)
    if count < 0:
        return count
    return do_write(k, t, f, t.process.mem.read(buf, count))


def import_iovec(mem: AddressSpace, iov: int, n: int) -> Iovec | int:
    """import_iovec: the (base, len) segments of a user iovec array, or -errno. More than
    UIO_MAXIOV entries is EINVAL; copy_iovec_from_user reads the entries in order (EFAULT)
    and refuses a len that is negative as an ssize_t (EINVAL); then each segment must lie in
    user space (access_ok: EFAULT) and the lengths are cut so that they add up to at most
    MAX_RW_COUNT -- one segment is cut before its access_ok (import_ubuf), several after."""
    if n > UIO_MAXIOV:
        return -E.EINVAL
    if n and not access_ok(iov, IOVEC.size * n):
        return -E.EFAULT  # user_access_begin over the whole array
    vecs = []
    for i in range(n):
        try:
            base, length = IOVEC.unpack(mem.read(iov + IOVEC.size * i, IOVEC.size))
        except GuestFault:
            return -E.EFAULT
        if length >> 63:
            return -E.EINVAL
        vecs.append((base, length))
    if n == 1:
        vecs[0] = (vecs[0][0], min(vecs[0][1], MAX_RW_COUNT))
    total = 0
    for i, (base, length) in enumerate(vecs):
        if not access_ok(base, length):
            return -E.EFAULT
        vecs[i] = (base, min(length, MAX_RW_COUNT - total))
        total += vecs[i][1]
    return vecs


def scatter(mem: AddressSpace, vecs: Iovec, data: bytes) -> None:
    """Copy `data` into the iovec segments in order, as far as it goes."""
    pos = 0
    for base, n in vecs:
        chunk = data[pos : pos + n]
        mem.write(base, chunk)
        pos += len(chunk)


def _iov_total(vecs: Iovec | int) -> int:
    return 0 if isinstance(vecs, int) else sum(n for _, n in vecs)


@syscall(19, fd="int", iovcnt="int")
def sys_readv(k: Kernel, t: Thread, fd: int, iov: int, iovcnt: int) -> int | object:
    f = t.process.fds.get(s32(fd))
    if f is None:
        return -E.EBADF
    vecs = import_iovec(t.process.mem, iov, iovcnt & 0xFFFF_FFFF)  # nr_segs: unsigned int
    total = _iov_total(vecs)
    if isinstance(vecs, int) or total == 0:
        if not _mode_ok(f, write=False):
            return -E.EBADF  # vfs_readv checks the file before the iovec
        return vecs if isinstance(vecs, int) else 0  # nothing to read
    r = do_read(k, t, f, min(total, IO_CHUNK))
    if not isinstance(r, bytes):
        return r
    scatter(t.process.mem, vecs, r)
    return len(r)


@syscall(20, fd="int", iovcnt="int")
def sys_writev(k: Kernel, t: Thread, fd: int, iov: int, iovcnt: int) -> int | object:
    f = t.process.fds.get(s32(fd))
    if f is None:
        return -E.EBADF
    vecs = import_iovec(t.process.mem, iov, iovcnt & 0xFFFF_FFFF)  # nr_segs: unsigned int
    if isinstance(vecs, int) or _iov_total(vecs) == 0:
        if not _mode_ok(f, write=True):
            return -E.EBADF  # vfs_writev checks the file before the iovec
        return vecs if isinstance(vecs, int) else 0  # nothing to write
    return do_write(k, t, f, b"".join(t.process.mem.read(b, n) for b, n in vecs))


def _positional(t: Thread, fd: int, pos: int) -> HostFile | int:
    """ksys_pread64/ksys_pwrite64: a negative pos is EINVAL, before the fd lookup (EBADF);
    only files with FMODE_PREAD (not pipes, sockets, eventfds) take a position (ESPIPE)."""
    if pos >> 63:
        return -E.EINVAL
    f = t.process.fds.get(s32(fd))
    if not isinstance(f, HostFile):
        return -E.EBADF if f is None else -E.ESPIPE
    return f


@syscall(17, fd="int", count="int", offset="int")
def sys_pread64(k: Kernel, t: Thread, fd: int, buf: int, count: int, offset: int) -> int:
    f = _positional(t, fd, offset)
    if isinstance(f, int):
        return f
    count = rw_count(f, buf, count, offset, write=False)
    if count < 0:
        return count
    try:
        data = os.pread(f.fd, min(count, IO_CHUNK), offset)
    except OSError as e:
        return oserr(e)
    t.process.mem.write(buf, data)
    return len(data)


@syscall(18, fd="int", count="int", offset="int")
def sys_pwrite64(k: Kernel, t: Thread, fd: int, buf: int, count: int, offset: int) -> int:
    f = _positional(t, fd, offset)
    if isinstance(f, int):
        return f
    count = rw_count(f, buf, count, offset, write=True)
    if count < 0:
        return count
    try:
        return os.pwrite(f.fd, t.process.mem.read(buf, count), offset)
    except OSError as e:
        return oserr(e)


@syscall(8, fd="int", offset="int", whence="int")
def sys_lseek(k: Kernel, t: Thread, fd: int, offset: int, whence: int) -> int:
    f = t.process.fds.get(s32(fd))
    if f is None:
        return -E.EBADF
    # ksys_lseek: an (unsigned int) whence beyond SEEK_MAX (SEEK_HOLE) is EINVAL, before
    # vfs_llseek's ESPIPE for pipes and sockets
    whence &= 0xFFFF_FFFF
    if whence > SEEK_MAX:
        return -E.EINVAL
    if f.kind == "eventfd":
        return 0  # eventfd's llseek is noop_llseek: its position stays 0
    if not isinstance(f, HostFile):
        return -E.ESPIPE
    try:
        off = offset - (1 << 64) if offset >> 63 else offset
        return os.lseek(f.fd, off, whence)
    except OSError as e:
        return oserr(e)


@syscall(77, fd="int", length="int")
def sys_ftruncate(k: Kernel, t: Thread, fd: int, length: int) -> int:
    if length >> 63:
        return -E.EINVAL  # do_sys_ftruncate: a negative loff_t, even before the fd lookup
    h = host_fd(t, fd)
    return h if h < 0 else host_call(os.ftruncate, h, length)


@syscall(76, path="str", length="int")
def sys_truncate(k: Kernel, t: Thread, path: int, length: int) -> int:
    if length >> 63:
        return -E.EINVAL  # do_sys_truncate: a negative loff_t, before the path is read
    hp = host_path(k, t.process, FDCWD, t.process.mem.read_cstr(path))
    return hp if isinstance(hp, int) else host_call(os.truncate, hp, length)


@syscall(74, fd="int")
def sys_fsync(k: Kernel, t: Thread, fd: int) -> int:
    f = t.process.fds.get(s32(fd))
    return -E.EBADF if f is None else 0


@syscall(75, fd="int")
def sys_fdatasync(k: Kernel, t: Thread, fd: int) -> int:
    return sys_fsync(k, t, fd)
