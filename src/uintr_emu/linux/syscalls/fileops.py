"""File calls found missing in the x86-64 table audit (docs/linux.md): creat, mknod, mknodat,
utime, utimes, futimesat, sync, syncfs, sync_file_range, fallocate, readahead, the positioned
vector reads and writes (preadv, pwritev, preadv2, pwritev2), renameat2, memfd_create,
close_range, flock, sendfile and copy_file_range. Host files are the host's, so these pass
through to them."""

from __future__ import annotations

import ctypes
import os
import stat as st
import struct
from typing import TYPE_CHECKING

from .. import errno as E
from ..process import HostFile, PipeEnd
from . import syscall
from .open import O_CLOEXEC, sys_openat
from .paths import FDCWD, host_path, oserr, s32, unmask
from .rw import (
    IO_CHUNK,
    Iovec,
    _positional,
    do_write,
    import_iovec,
    scatter,
    sys_readv,
    sys_writev,
)

if TYPE_CHECKING:
    from ..kernel import Kernel
    from ..process import Thread

_libc = ctypes.CDLL(None, use_errno=True)
TIMEVAL2 = struct.Struct("<qqqq")  # struct timeval[2]: access, modification
UTIMBUF = struct.Struct("<qq")  # struct utimbuf: actime, modtime (seconds)
RWF_SUPPORTED = 0x1F  # RWF_HIPRI | RWF_DSYNC | RWF_SYNC | RWF_NOWAIT | RWF_APPEND
RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT = 1, 2, 4
MFD_CLOEXEC, MFD_ALL_FLAGS, MFD_NAME_MAX = 1, 0x1F, 249  # MFD_* up to MFD_EXEC; NAME_MAX - 6
CLOSE_RANGE_UNSHARE, CLOSE_RANGE_CLOEXEC = 2, 4


@syscall(85, path="str", mode="hex")
def sys_creat(k: Kernel, t: Thread, path: int, mode: int) -> int:
    return sys_openat(k, t, FDCWD, path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, mode)


@syscall(259, dirfd="int", path="str", mode="hex", dev="hex")
def sys_mknodat(k: Kernel, t: Thread, dirfd: int, path: int, mode: int, dev: int) -> int:
    """may_mknod: regular files (type 0 too), FIFOs and sockets are made (mode less the
    umask); a directory is EPERM, a device EPERM too (the guest has no CAP_MKNOD: it never
    makes the host's devices), another type EINVAL."""
    mode &= 0xFFFF  # umode_t
    kind = st.S_IFMT(mode) or st.S_IFREG
    if kind in (st.S_IFCHR, st.S_IFBLK, st.S_IFDIR):
        return -E.EPERM
    if kind not in (st.S_IFREG, st.S_IFIFO, st.S_IFSOCK):
        return -E.EINVAL
    hp = host_path(k, t.process, dirfd, t.process.mem.read_cstr(path), follow=False)
    if isinstance(hp, int):
        return hp
    perm = mode & 0o7777 & ~t.process.umask
    try:
        os.mknod(hp, kind | perm)
    except OSError as e:
        return oserr(e)
    unmask(perm, lambda: os.lstat(hp).st_mode, lambda m: os.chmod(hp, m))
    return 0


@syscall(133, path="str", mode="hex", dev="hex")
def sys_mknod(k: Kernel, t: Thread, path: int, mode: int, dev: int) -> int:
    return sys_mknodat(k, t, FDCWD, path, mode, dev)


def _set_times(k: Kernel, t: Thread, dirfd: int, path: int, ns: tuple[int, int] | None) -> int:
    """utime, utimes, futimesat: the times in ns, or None for now (the guest's clock)."""
    hp = host_path(k, t.process, dirfd, t.process.mem.read_cstr(path))
    if isinstance(hp, int):
        return hp
    if ns is None:
        now = k.clock.realtime_ns()
        ns = (now, now)
    try:
        os.utime(hp, ns=ns)
    except OSError as e:
        return oserr(e)
    return 0


@syscall(261, dirfd="int", path="str")
def sys_futimesat(k: Kernel, t: Thread, dirfd: int, path: int, times: int) -> int:
    ns = None
    if times:
        a, au, m, mu = TIMEVAL2.unpack(t.process.mem.read(times, TIMEVAL2.size))
        if not (0 <= au < 1_000_000 and 0 <= mu < 1_000_000):
            return -E.EINVAL  # do_futimesat
        ns = (a * 1_000_000_000 + au * 1000, m * 1_000_000_000 + mu * 1000)
    return _set_times(k, t, dirfd, path, ns)


@syscall(235, path="str")
def sys_utimes(k: Kernel, t: Thread, path: int, times: int) -> int:
    return sys_futimesat(k, t, FDCWD, path, times)


@syscall(132, path="str")
def sys_utime(k: Kernel, t: Thread, path: int, times: int) -> int:
    ns = None
    if times:
        a, m = UTIMBUF.unpack(t.process.mem.read(times, UTIMBUF.size))
        ns = (a * 1_000_000_000, m * 1_000_000_000)
    return _set_times(k, t, FDCWD, path, ns)


@syscall(162)
def sys_sync(k: Kernel, t: Thread) -> int:
    return 0  # guest writes go straight to the host's files


@syscall(306, fd="int")
def sys_syncfs(k: Kernel, t: Thread, fd: int) -> int:
    return 0 if t.process.fds.get(s32(fd)) is not None else -E.EBADF


@syscall(277, fd="int", offset="int", nbytes="int", flags="hex")
def sys_sync_file_range(k: Kernel, t: Thread, fd: int, offset: int, nbytes: int,
                        flags: int) -> int:  # fmt: skip
    """ksys_sync_file_range: unknown flags or a negative range are EINVAL; then the fd
    (EBADF), and a pipe or socket is ESPIPE."""
    if flags & ~7 or offset >> 63 or nbytes >> 63:
        return -E.EINVAL
    f = t.process.fds.get(s32(fd))
    if f is None:
        return -E.EBADF
    return 0 if isinstance(f, HostFile) else -E.ESPIPE


@syscall(285, fd="int", mode="hex", offset="int", length="int")
def sys_fallocate(k: Kernel, t: Thread, fd: int, mode: int, offset: int, length: int) -> int:
    """vfs_fallocate: a negative offset or a length of 0 or less is EINVAL, a pipe ESPIPE,
    another kernel object ENODEV; a host file gets the host's fallocate (its errors)."""
    if offset >> 63 or length == 0 or length >> 63:
        return -E.EINVAL
    f = t.process.fds.get(s32(fd))
    if f is None:
        return -E.EBADF
    if not isinstance(f, HostFile):
        return -E.ESPIPE if isinstance(f, PipeEnd) else -E.ENODEV
    if _libc.fallocate(f.fd, ctypes.c_int(mode), ctypes.c_long(offset), ctypes.c_long(length)):
        return -(ctypes.get_errno() or E.EIO)
    return 0


@syscall(187, fd="int", offset="int", count="int")
def sys_readahead(k: Kernel, t: Thread, fd: int, offset: int, count: int) -> int:
    f = t.process.fds.get(s32(fd))
    if f is None:
        return -E.EBADF
    if not isinstance(f, HostFile) or not st.S_ISREG(os.fstat(f.fd).st_mode):
        return -E.EINVAL  # ksys_readahead: only files with a page cache
    return 0


# --- positioned vector I/O (fs/read_write.c: do_preadv, do_pwritev) ----------------------------


def _vectors_at(t: Thread, fd: int, iov: int, iovcnt: int, pos: int
                ) -> int | tuple[HostFile, Iovec]:  # fmt: skip
    """preadv's and pwritev's file (checked for a positional access at `pos`) and iovec, or
    the errno, in that order of checks."""
    f = _positional(t, fd, pos)
    if isinstance(f, int):
        return f
    vecs = import_iovec(t.process.mem, iov, iovcnt & 0xFFFF_FFFF)
    if isinstance(vecs, int):
        return vecs
    return f, vecs


def _preadv(k: Kernel, t: Thread, fd: int, iov: int, iovcnt: int, pos: int, flags: int,
            v2: bool) -> int | object:  # fmt: skip
    if flags & ~RWF_SUPPORTED:
        return -E.EOPNOTSUPP
    if v2 and pos == (1 << 64) - 1:  # preadv2 at -1: the file position, as readv
        return sys_readv(k, t, fd, iov, iovcnt)
    target = _vectors_at(t, fd, iov, iovcnt, pos)
    if isinstance(target, int):
        return target
    f, vecs = target
    try:
        data = os.pread(f.fd, min(sum(n for _, n in vecs), IO_CHUNK), pos)
    except OSError as e:
        return oserr(e)
    scatter(t.process.mem, vecs, data)
    return len(data)


def _pwritev(k: Kernel, t: Thread, fd: int, iov: int, iovcnt: int, pos: int, flags: int,
             v2: bool) -> int | object:  # fmt: skip
    if flags & ~RWF_SUPPORTED:
        return -E.EOPNOTSUPP
    if v2 and pos == (1 << 64) - 1:
        return sys_writev(k, t, fd, iov, iovcnt)
    target = _vectors_at(t, fd, iov, iovcnt, pos)
    if isinstance(target, int):
        return target
    f, vecs = target
    try:
        return os.pwrite(f.fd, b"".join(t.process.mem.read(b, n) for b, n in vecs), pos)
    except OSError as e:
        return oserr(e)


# On x86-64 the position is pos_l alone (pos_from_hilo shifts pos_h out).
@syscall(295, fd="int", iovcnt="int", pos="int")
def sys_preadv(k: Kernel, t: Thread, fd: int, iov: int, iovcnt: int, pos: int) -> int | object:
    return _preadv(k, t, fd, iov, iovcnt, pos, 0, v2=False)


@syscall(296, fd="int", iovcnt="int", pos="int")
def sys_pwritev(k: Kernel, t: Thread, fd: int, iov: int, iovcnt: int, pos: int) -> int | object:
    return _pwritev(k, t, fd, iov, iovcnt, pos, 0, v2=False)


@syscall(327, fd="int", iovcnt="int", pos="int", flags="hex")
def sys_preadv2(k: Kernel, t: Thread, fd: int, iov: int, iovcnt: int, pos: int, pos_h: int,
                flags: int) -> int | object:  # fmt: skip
    return _preadv(k, t, fd, iov, iovcnt, pos, flags, v2=True)


@syscall(328, fd="int", iovcnt="int", pos="int", flags="hex")
def sys_pwritev2(k: Kernel, t: Thread, fd: int, iov: int, iovcnt: int, pos: int, pos_h: int,
                 flags: int) -> int | object:  # fmt: skip
    return _pwritev(k, t, fd, iov, iovcnt, pos, flags, v2=True)


# --- names and descriptors -------------------------------------------------------------------


@syscall(316, olddirfd="int", old="str", newdirfd="int", new="str", flags="hex")
def sys_renameat2(k: Kernel, t: Thread, olddirfd: int, old: int, newdirfd: int, new: int,
                  flags: int) -> int:  # fmt: skip
    """do_renameat2: RENAME_NOREPLACE, RENAME_EXCHANGE (not both: EINVAL) and
    RENAME_WHITEOUT, by the host's renameat2 on the host paths (its errors: EEXIST,
    EINVAL where the file system cannot)."""
    if flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT) or (
            flags & RENAME_NOREPLACE and flags & RENAME_EXCHANGE):  # fmt: skip
        return -E.EINVAL
    mem = t.process.mem
    a = host_path(k, t.process, olddirfd, mem.read_cstr(old), follow=False)
    b = host_path(k, t.process, newdirfd, mem.read_cstr(new), follow=False)
    if isinstance(a, int) or isinstance(b, int):
        return a if isinstance(a, int) else b  # type: ignore[return-value]
    if _libc.renameat2(-100, os.fsencode(a), -100, os.fsencode(b), flags):  # AT_FDCWD
        return -(ctypes.get_errno() or E.EIO)
    return 0


@syscall(319, name="str", flags="hex")
def sys_memfd_create(k: Kernel, t: Thread, name: int, flags: int) -> int:
    """An anonymous file: the host's own memfd (so mmap, ftruncate and /proc/self/fd work as
    on any host file); unknown flags or a name over 249 bytes are EINVAL."""
    if flags & ~MFD_ALL_FLAGS:
        return -E.EINVAL
    raw = t.process.mem.read_cstr(name, MFD_NAME_MAX + 1)
    if len(raw) > MFD_NAME_MAX:
        return -E.EINVAL
    try:
        fd = os.memfd_create(os.fsdecode(raw), (flags & ~MFD_CLOEXEC) | MFD_CLOEXEC)
    except OSError as e:
        return oserr(e)
    f = HostFile(fd, f"/proc/self/fd/{fd}")
    f.gpath = f"/memfd:{os.fsdecode(raw)} (deleted)"
    return t.process.fds.install(f, cloexec=bool(flags & MFD_CLOEXEC))


@syscall(436, first="int", last="int", flags="hex")
def sys_close_range(k: Kernel, t: Thread, first: int, last: int, flags: int) -> int:
    """Close, or with CLOSE_RANGE_CLOEXEC mark close-on-exec, the open fds in [first, last]
    (unsigned). CLOSE_RANGE_UNSHARE changes nothing here: a process's threads share one
    table, which the call acts on (a documented limit)."""
    first, last = first & 0xFFFF_FFFF, last & 0xFFFF_FFFF
    if flags & ~(CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC) or first > last:
        return -E.EINVAL
    fds = t.process.fds
    for fd in sorted(n for n in fds.fds if first <= n <= last):
        if flags & CLOSE_RANGE_CLOEXEC:
            fds.fds[fd].cloexec = True
        else:
            fds.close(fd)
    return 0


LOCK_SH, LOCK_EX, LOCK_NB, LOCK_UN = 1, 2, 4, 8


@syscall(73, fd="int", op="hex")
def sys_flock(k: Kernel, t: Thread, fd: int, op: int) -> int:
    """Checked as sys_flock does (EBADF, EINVAL for an operation other than LOCK_SH, LOCK_EX
    or LOCK_UN), then granted: advisory locks always succeed here, as fcntl's do (a
    documented limit: guest processes do not exclude each other)."""
    if t.process.fds.get(s32(fd)) is None:
        return -E.EBADF
    return 0 if op & ~LOCK_NB in (LOCK_SH, LOCK_EX, LOCK_UN) else -E.EINVAL


def _offset(t: Thread, addr: int) -> int | None:
    return struct.unpack("<q", t.process.mem.read(addr, 8))[0] if addr else None


@syscall(40, out_fd="int", in_fd="int", count="int")
def sys_sendfile(k: Kernel, t: Thread, out_fd: int, in_fd: int, offset: int,
                 count: int) -> int | object:  # fmt: skip
    """do_sendfile: the input must be a host file (it has a page cache: else EINVAL), the
    output anything writable; at most MAX_RW_COUNT. Read at the offset (updated) or the
    file position (advanced by what was written); a full pipe blocks, and the call runs
    again from the start, nothing having been consumed."""
    fin, fout = t.process.fds.get(s32(in_fd)), t.process.fds.get(s32(out_fd))
    if fin is None or fout is None:
        return -E.EBADF
    if not isinstance(fin, HostFile):
        return -E.EINVAL
    pos = _offset(t, offset)
    if pos is not None and pos < 0:
        return -E.EINVAL
    try:
        at = pos if pos is not None else os.lseek(fin.fd, 0, os.SEEK_CUR)
        data = os.pread(fin.fd, min(count, IO_CHUNK), at) if count else b""
    except OSError as e:
        return oserr(e)
    if not data:
        return 0
    n = do_write(k, t, fout, data)
    if not isinstance(n, int) or n < 0:
        return n
    if pos is not None:
        t.process.mem.write(offset, struct.pack("<q", pos + n))
    else:
        os.lseek(fin.fd, at + n, os.SEEK_SET)
    return n


@syscall(326, fd_in="int", fd_out="int", length="int", flags="hex")
def sys_copy_file_range(k: Kernel, t: Thread, fd_in: int, off_in: int, fd_out: int,
                        off_out: int, length: int, flags: int) -> int:  # fmt: skip
    """Between two host files, by the host's copy_file_range (its errors: EBADF for a file
    not open for it, EINVAL for a non-regular one, ...); nonzero flags are EINVAL."""
    if flags:
        return -E.EINVAL
    fin, fout = t.process.fds.get(s32(fd_in)), t.process.fds.get(s32(fd_out))
    if fin is None or fout is None:
        return -E.EBADF
    if not isinstance(fin, HostFile) or not isinstance(fout, HostFile):
        return -E.EINVAL
    src, dst = _offset(t, off_in), _offset(t, off_out)
    try:
        n = os.copy_file_range(fin.fd, fout.fd, min(length, IO_CHUNK), src, dst)
    except OSError as e:
        return oserr(e)
    if src is not None:
        t.process.mem.write(off_in, struct.pack("<q", src + n))
    if dst is not None:
        t.process.mem.write(off_out, struct.pack("<q", dst + n))
    return n


__all__ = ["O_CLOEXEC"]
