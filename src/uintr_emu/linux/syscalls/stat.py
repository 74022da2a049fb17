"""What a file is and who may use it: stat, lstat, fstat, newfstatat, access, faccessat,
faccessat2, chmod, fchmod, fchmodat; and the inodes of the kernel's own objects (pipes,
sockets, eventfds, UINTR fds)."""

from __future__ import annotations

import os
import stat as st
import struct
from typing import TYPE_CHECKING

from .. import errno as E
from ..abi import STAT
from ..process import File, HostFile, PipeEnd
from . import syscall
from .paths import (
    AT_EACCESS,
    AT_EMPTY_PATH,
    AT_FDCWD,
    AT_SYMLINK_NOFOLLOW,
    FDCWD,
    host_call,
    host_fd,
    host_path,
    oserr,
    own_fd,
    s32,
)

if TYPE_CHECKING:
    from ..kernel import Kernel
    from ..process import Thread


def pack_stat_fields(*fields: int, times_ns: tuple[int, int, int]) -> bytes:
    """struct stat from st_dev, st_ino, st_nlink, st_mode, st_uid, st_gid, st_rdev, st_size,
    st_blksize, st_blocks and the atime, mtime and ctime in nanoseconds."""
    dev, ino, nlink, mode, uid, gid, rdev, size, blksize, blocks = fields
    secs = [v for ns in times_ns for v in divmod(ns, 1_000_000_000)]
    return STAT.pack(dev, ino, nlink, mode, uid, gid, 0, rdev, size, blksize, blocks, *secs)


def pack_stat(s: os.stat_result) -> bytes:
    return pack_stat_fields(
        s.st_dev, s.st_ino, s.st_nlink, s.st_mode, s.st_uid, s.st_gid, s.st_rdev, s.st_size,
        s.st_blksize, s.st_blocks, times_ns=(s.st_atime_ns, s.st_mtime_ns, s.st_ctime_ns),
    )  # fmt: skip


# Kernel objects live on pseudo file systems, each an anonymous device (major 0): pipefs,
# sockfs, and anon_inodefs, whose one inode (made at boot by root) every eventfd and UINTR fd
# shares (anon_inode_getfd). Their blksize is PAGE_SIZE (generic_fillattr).
PIPEFS_DEV, SOCKFS_DEV, ANON_INODE_DEV, ANON_INODE_INO = 0xC, 0x8, 0xD, 1


def _pseudo_ino(k: Kernel, obj: object) -> int:
    """A pipe's or socket's inode number (get_next_ino), given at its first stat, per kernel."""
    if not getattr(obj, "ino", 0):
        k.next_ino += 1
        obj.ino = k.next_ino  # type: ignore[attr-defined]
    return obj.ino  # type: ignore[attr-defined]


def _pseudo_inode(k: Kernel, f: File) -> tuple[int, int, int, int, int, int]:
    """(st_dev, st_ino, st_mode, st_uid, st_gid, times) of a kernel object's inode."""
    uid, gid = os.getuid(), os.getgid()  # what getuid() reports
    if isinstance(f, PipeEnd):
        # get_pipe_inode: S_IFIFO | 0600, both ends one inode, times set at creation
        return PIPEFS_DEV, _pseudo_ino(k, f.pipe), st.S_IFIFO | 0o600, uid, gid, f.pipe.born_ns
    if f.kind == "socket":
        # sock_alloc: S_IFSOCK | 0777, one inode per end; it never sets the times (0)
        return SOCKFS_DEV, _pseudo_ino(k, f), st.S_IFSOCK | 0o777, uid, gid, 0
    # alloc_anon_inode: 0600 without a file type, root's, made at boot
    boot = k.clock.realtime_ns() - k.clock.monotonic_ns()
    return ANON_INODE_DEV, ANON_INODE_INO, 0o600, 0, 0, boot


def _fstat_file(k: Kernel, f: File) -> bytes | int:
    """The packed struct stat of an open file, or -errno."""
    if isinstance(f, HostFile):
        try:
            return pack_stat(os.fstat(f.fd))
        except OSError as e:
            return oserr(e)
    dev, ino, mode, uid, gid, times = _pseudo_inode(k, f)
    return pack_stat_fields(dev, ino, 1, mode, uid, gid, 0, 0, 4096, 0, times_ns=(times,) * 3)


@syscall(262, dirfd="int", path="str", flags="hex")
def sys_newfstatat(k: Kernel, t: Thread, dirfd: int, path: int, statbuf: int, flags: int) -> int:
    s = _stat_at(k, t, dirfd, path, flags)
    if isinstance(s, int):
        return s
    t.process.mem.write(statbuf, s)
    return 0


def _stat_at(k: Kernel, t: Thread, dirfd: int, path: int, flags: int) -> bytes | int:
    """The struct stat of a *at() call's target, or -errno."""
    p = t.process
    name = p.mem.read_cstr(path)
    if not name and flags & AT_EMPTY_PATH:
        f = p.fds.get(s32(dirfd))
        if f is None:
            return -E.EBADF
        return _fstat_file(k, f)
    follow = not flags & AT_SYMLINK_NOFOLLOW
    own = own_fd(p, os.fsdecode(name)) if follow else None
    if own is not None and not isinstance(own, int | HostFile):
        return _fstat_file(k, own)  # /dev/fd/N of a pipe (bash's <(...)): the pipe's inode
    hp = host_path(k, p, dirfd, name, follow=follow, readonly=True)
    if isinstance(hp, int):
        return hp
    try:
        return pack_stat(os.stat(hp, follow_symlinks=follow))
    except OSError as e:
        return oserr(e)


# statx(2): include/uapi/linux/stat.h
STATX = struct.Struct("<IIQIIIHxxQQQQ" + "qIi" * 4 + "IIIIQII96x")
STATX_BASIC_STATS, STATX_RESERVED = 0x7FF, 0x8000_0000
AT_NO_AUTOMOUNT, AT_STATX_SYNC_TYPE = 0x800, 0x6000


@syscall(332, dirfd="int", path="str", flags="hex", mask="hex")
def sys_statx(k: Kernel, t: Thread, dirfd: int, path: int, flags: int, mask: int, buf: int) -> int:
    """statx from the same struct stat as newfstatat: the basic fields (no birth time, no
    mount id); STATX_SYNC types make no difference to host files seen through the host."""
    known = AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT | AT_STATX_SYNC_TYPE
    if flags & ~known or flags & AT_STATX_SYNC_TYPE == AT_STATX_SYNC_TYPE:
        return -E.EINVAL
    if mask & STATX_RESERVED:
        return -E.EINVAL
    s = _stat_at(k, t, dirfd, path, flags)
    if isinstance(s, int):
        return s
    (dev, ino, nlink, mode, uid, gid, _, rdev, size, blksize, blocks,
     a, an, m, mn, c, cn) = STAT.unpack(s)  # fmt: skip
    t.process.mem.write(buf, STATX.pack(
        STATX_BASIC_STATS, blksize, 0, nlink, uid, gid, mode & 0xFFFF, ino, size, blocks, 0,
        a, an, 0, 0, 0, 0, c, cn, 0, m, mn, 0,
        os.major(rdev), os.minor(rdev), os.major(dev), os.minor(dev), 0, 0, 0))  # fmt: skip
    return 0


@syscall(5, fd="int")
def sys_fstat(k: Kernel, t: Thread, fd: int, statbuf: int) -> int:
    f = t.process.fds.get(s32(fd))
    if f is None:
        return -E.EBADF
    s = _fstat_file(k, f)
    if isinstance(s, int):
        return s
    t.process.mem.write(statbuf, s)
    return 0


@syscall(4, path="str")
def sys_stat(k: Kernel, t: Thread, path: int, statbuf: int) -> int:
    return sys_newfstatat(k, t, FDCWD, path, statbuf, 0)


@syscall(6, path="str")
def sys_lstat(k: Kernel, t: Thread, path: int, statbuf: int) -> int:
    return sys_newfstatat(k, t, FDCWD, path, statbuf, AT_SYMLINK_NOFOLLOW)


def _may_access(mode: int, uid: int, gid: int, want: int, effective: bool) -> bool:
    """generic_permission for a kernel object's inode, with the real ids (or the effective
    ones: AT_EACCESS); root may read and write anything, execute what has an x bit."""
    me = os.geteuid() if effective else os.getuid()
    if me == 0:
        return not want & os.X_OK or bool(mode & 0o111)
    if me == uid:
        bits = mode >> 6
    elif gid in (os.getegid() if effective else os.getgid(), *os.getgroups()):
        bits = mode >> 3
    else:
        bits = mode
    return not want & ~bits & 7


def do_faccessat(k: Kernel, t: Thread, dirfd: int, path: int, mode: int, flags: int) -> int:
    # do_faccessat: mode and flags are ints; a mode beyond R_OK|W_OK|X_OK or an unknown flag
    # is EINVAL, before the path is read
    mode, flags = mode & 0xFFFF_FFFF, flags & 0xFFFF_FFFF
    if mode & ~(os.R_OK | os.W_OK | os.X_OK):
        return -E.EINVAL
    if flags & ~(AT_EACCESS | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        return -E.EINVAL
    p = t.process
    name = p.mem.read_cstr(path)
    if not name and not flags & AT_EMPTY_PATH:
        return -E.ENOENT  # getname: an empty path
    follow, effective = not flags & AT_SYMLINK_NOFOLLOW, bool(flags & AT_EACCESS)
    if name or s32(dirfd) == AT_FDCWD:
        hp = host_path(k, p, dirfd, name or b".", follow=follow, readonly=True)
        if isinstance(hp, int):
            return hp
    else:  # LOOKUP_EMPTY: the file dirfd refers to
        f = p.fds.get(s32(dirfd))
        if f is None:
            return -E.EBADF
        if not isinstance(f, HostFile):
            _, _, imode, uid, gid, _ = _pseudo_inode(k, f)
            return 0 if _may_access(imode, uid, gid, mode, effective) else -E.EACCES
        hp, follow = f"/proc/self/fd/{f.fd}", True
    if os.access(hp, mode, effective_ids=effective, follow_symlinks=follow):
        return 0
    try:
        os.stat(hp, follow_symlinks=follow)
    except OSError as e:
        return oserr(e)  # the lookup failed: no such file, a loop...
    return -E.EACCES


@syscall(269, dirfd="int", path="str", mode="int")
def sys_faccessat(k: Kernel, t: Thread, dirfd: int, path: int, mode: int) -> int:
    return do_faccessat(k, t, dirfd, path, mode, 0)  # faccessat has no flags argument


@syscall(439, dirfd="int", path="str", mode="int", flags="hex")
def sys_faccessat2(k: Kernel, t: Thread, dirfd: int, path: int, mode: int, flags: int) -> int:
    return do_faccessat(k, t, dirfd, path, mode, flags)


@syscall(21, path="str", mode="int")
def sys_access(k: Kernel, t: Thread, path: int, mode: int) -> int:
    return do_faccessat(k, t, FDCWD, path, mode, 0)


@syscall(91, fd="int", mode="hex")
def sys_fchmod(k: Kernel, t: Thread, fd: int, mode: int) -> int:
    h = host_fd(t, fd)
    return h if h < 0 else host_call(os.chmod, h, mode & 0o7777)


@syscall(268, dirfd="int", path="str", mode="hex")
def sys_fchmodat(k: Kernel, t: Thread, dirfd: int, path: int, mode: int) -> int:
    hp = host_path(k, t.process, dirfd, t.process.mem.read_cstr(path))
    return hp if isinstance(hp, int) else host_call(os.chmod, hp, mode & 0o7777)


@syscall(90, path="str", mode="hex")
def sys_chmod(k: Kernel, t: Thread, path: int, mode: int) -> int:
    return sys_fchmodat(k, t, FDCWD, path, mode)
