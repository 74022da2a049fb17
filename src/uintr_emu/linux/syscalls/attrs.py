"""File metadata and links on host files: chown and its variants, utimensat, link and linkat,
statfs and fstatfs, fadvise64, and the extended-attribute calls (passed through to the host
file system, which answers ENODATA, ENOTSUP or EPERM as it would natively)."""

from __future__ import annotations

import ctypes
import os
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import errno as E
from ..afunix import UnixSocket
from ..process import HostFile, PipeEnd
from . import syscall
from .paths import FDCWD, host_call, host_fd, host_path, oserr, s32

if TYPE_CHECKING:
    from ..kernel import Kernel
    from ..process import Thread

AT_SYMLINK_NOFOLLOW, AT_SYMLINK_FOLLOW, AT_EMPTY_PATH = 0x100, 0x400, 0x1000
UTIME_NOW, UTIME_OMIT = (1 << 30) - 1, (1 << 30) - 2
XATTR_CREATE, XATTR_REPLACE = 1, 2
XATTR_SIZE_MAX, XATTR_NAME_MAX = 65536, 255
# struct statfs, include/uapi/asm-generic/statfs.h on x86-64: type, bsize, blocks, bfree,
# bavail, files, ffree, fsid[2], namelen, frsize, flags, spare[4]
STATFS = struct.Struct("<qqQQQQQiiqqq4q")
STATFS_SIZE = STATFS.size
PIPEFS_MAGIC, SOCKFS_MAGIC, ANON_INODE_FS_MAGIC = 0x50495045, 0x534F434B, 0x09041934  # magic.h
POSIX_FADV_NOREUSE = 5  # the highest advice value


def _target(k: Kernel, t: Thread, dirfd: int, path: int, flags: int, *, follow: bool) -> str | int:
    """The host path or fd a *at() call with `flags` acts on (AT_EMPTY_PATH: dirfd itself)."""
    name = t.process.mem.read_cstr(path) if path else b""
    if not name and flags & AT_EMPTY_PATH:
        return host_fd(t, dirfd if s32(dirfd) != FDCWD else -1)
    return host_path(k, t.process, dirfd, name, follow=follow)


def _id(v: int) -> int:
    return -1 if v & 0xFFFF_FFFF == 0xFFFF_FFFF else v & 0xFFFF_FFFF


# --- ownership ----------------------------------------------------------------------------


@syscall(260, dirfd="int", path="str", owner="int", group="int", flags="hex")
def sys_fchownat(
    k: Kernel, t: Thread, dirfd: int, path: int, owner: int, group: int, flags: int
) -> int:
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        return -E.EINVAL
    hp = _target(k, t, dirfd, path, flags, follow=not flags & AT_SYMLINK_NOFOLLOW)
    if isinstance(hp, int) and hp < 0:
        return hp
    follow = isinstance(hp, int) or not flags & AT_SYMLINK_NOFOLLOW
    return _chown(hp, _id(owner), _id(group), follow)


def _chown(target: str | int, uid: int, gid: int, follow: bool) -> int:
    try:
        os.chown(target, uid, gid, follow_symlinks=follow)
    except OSError as e:
        return oserr(e)
    return 0


@syscall(92, path="str", owner="int", group="int")
def sys_chown(k: Kernel, t: Thread, path: int, owner: int, group: int) -> int:
    return sys_fchownat(k, t, FDCWD, path, owner, group, 0)


@syscall(94, path="str", owner="int", group="int")
def sys_lchown(k: Kernel, t: Thread, path: int, owner: int, group: int) -> int:
    return sys_fchownat(k, t, FDCWD, path, owner, group, AT_SYMLINK_NOFOLLOW)


@syscall(93, fd="int", owner="int", group="int")
def sys_fchown(k: Kernel, t: Thread, fd: int, owner: int, group: int) -> int:
    h = host_fd(t, fd)
    return h if h < 0 else _chown(h, _id(owner), _id(group), True)


# --- times --------------------------------------------------------------------------------


@syscall(280, dirfd="int", path="str", flags="hex")
def sys_utimensat(k: Kernel, t: Thread, dirfd: int, path: int, times: int, flags: int) -> int:
    """Set a file's access and modification times; "now" is the guest's clock (so that a file
    it touches is as new as its time() says)."""
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        return -E.EINVAL
    now = k.clock.realtime_ns()
    want: list[int | None] = [now, now]
    if times:
        raw = t.process.mem.read(times, 32)
        for i in range(2):
            sec = int.from_bytes(raw[16 * i : 16 * i + 8], "little", signed=True)
            nsec = int.from_bytes(raw[16 * i + 8 : 16 * i + 16], "little", signed=True)
            if nsec == UTIME_OMIT:
                want[i] = None
            elif nsec != UTIME_NOW:
                if not 0 <= nsec < 1_000_000_000:
                    return -E.EINVAL
                want[i] = sec * 1_000_000_000 + nsec
    follow = not flags & AT_SYMLINK_NOFOLLOW
    if path:
        target: str | int = _target(k, t, dirfd, path, flags, follow=follow)
    else:  # utimensat(fd, NULL, ...): the fd itself (futimens)
        target = host_fd(t, dirfd)
    if isinstance(target, int) and target < 0:
        return target
    if want == [None, None]:
        return 0
    try:
        old = os.stat(target, follow_symlinks=follow or isinstance(target, int))
        ns = (old.st_atime_ns if want[0] is None else want[0],
              old.st_mtime_ns if want[1] is None else want[1])  # fmt: skip
        if isinstance(target, int):
            os.utime(target, ns=ns)
        else:
            os.utime(target, ns=ns, follow_symlinks=follow)
    except OSError as e:
        return oserr(e)
    return 0


# --- links --------------------------------------------------------------------------------


@syscall(265, olddirfd="int", old="str", newdirfd="int", new="str", flags="hex")
def sys_linkat(
    k: Kernel, t: Thread, olddirfd: int, old: int, newdirfd: int, new: int, flags: int
) -> int:
    if flags & ~(AT_SYMLINK_FOLLOW | AT_EMPTY_PATH):
        return -E.EINVAL
    mem = t.process.mem
    follow = bool(flags & AT_SYMLINK_FOLLOW)
    a = host_path(k, t.process, olddirfd, mem.read_cstr(old), follow=follow)
    if isinstance(a, int):
        return a
    b = host_path(k, t.process, newdirfd, mem.read_cstr(new), follow=False)
    if isinstance(b, int):
        return b
    if not follow:
        return host_call(lambda: os.link(a, b, follow_symlinks=False))
    # CPython's os.link calls link(2), which does not follow, unless a dir fd makes it use
    # linkat(2); both paths are absolute, so the dir fd itself is never used.
    root = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
    try:
        return host_call(lambda: os.link(a, b, dst_dir_fd=root, follow_symlinks=True))
    finally:
        os.close(root)


@syscall(86, old="str", new="str")
def sys_link(k: Kernel, t: Thread, old: int, new: int) -> int:
    return sys_linkat(k, t, FDCWD, old, FDCWD, new, 0)


# --- file systems and advice --------------------------------------------------------------

_libc: Any = None


def _statfs(target: str | int) -> bytes | int:
    """The host's struct statfs for a path or fd (the layout is the same: both are x86-64)."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(STATFS_SIZE)
    if isinstance(target, int):
        r = _libc.fstatfs(target, buf)
    else:
        r = _libc.statfs(os.fsencode(target), buf)
    return buf.raw if r == 0 else -ctypes.get_errno()


@syscall(137, path="str")
def sys_statfs(k: Kernel, t: Thread, path: int, buf: int) -> int:
    hp = host_path(k, t.process, FDCWD, t.process.mem.read_cstr(path), readonly=True)
    return _write_statfs(t, _statfs(hp) if isinstance(hp, str) else hp, buf)


@syscall(138, fd="int")
def sys_fstatfs(k: Kernel, t: Thread, fd: int, buf: int) -> int:
    f = t.process.fds.get(s32(fd))
    if f is None:
        return -E.EBADF
    if not isinstance(f, HostFile):  # a kernel object: its pseudo file system
        magic = PIPEFS_MAGIC if isinstance(f, PipeEnd) else SOCKFS_MAGIC if isinstance(
            f, UnixSocket) else ANON_INODE_FS_MAGIC  # fmt: skip
        return _write_statfs(t, STATFS.pack(magic, 4096, 0, 0, 0, 0, 0, 0, 0, 255, 4096, 0,
                                            0, 0, 0, 0), buf)  # fmt: skip
    return _write_statfs(t, _statfs(f.fd), buf)


def _write_statfs(t: Thread, data: bytes | int, buf: int) -> int:
    if isinstance(data, int):
        return data
    t.process.mem.write(buf, data)
    return 0


@syscall(221, fd="int", advice="int")
def sys_fadvise64(k: Kernel, t: Thread, fd: int, offset: int, length: int, advice: int) -> int:
    """Advice changes nothing the guest can see: check the arguments as generic_fadvise does."""
    f = t.process.fds.get(s32(fd))
    if f is None:
        return -E.EBADF
    if isinstance(f, PipeEnd):
        return -E.ESPIPE
    if not 0 <= s32(advice) <= POSIX_FADV_NOREUSE or length >> 63:
        return -E.EINVAL
    return 0


# --- extended attributes ------------------------------------------------------------------


def _xattr_target(k: Kernel, t: Thread, how: str, where: int) -> str | int:
    """`how` is "" (a path, followed), "l" (a path, not followed) or "f" (an fd)."""
    if how == "f":
        return host_fd(t, where)
    return host_path(k, t.process, FDCWD, t.process.mem.read_cstr(where), follow=how == "")


def _xattr_name(t: Thread, name: int) -> str | int:
    raw = t.process.mem.read_cstr(name, XATTR_NAME_MAX + 2)
    if not raw or len(raw) > XATTR_NAME_MAX:
        return -E.ERANGE
    return os.fsdecode(raw)


def _host(fn: Callable[..., Any], target: str | int, follow: bool, *args: Any) -> Any:
    if isinstance(target, int):
        return fn(target, *args)
    return fn(target, *args, follow_symlinks=follow)


def _getxattr(k: Kernel, t: Thread, how: str, where: int, name: int, value: int, size: int) -> int:
    target, attr = _xattr_target(k, t, how, where), _xattr_name(t, name)
    if isinstance(target, int) and (how != "f" or target < 0):
        return target
    if isinstance(attr, int):
        return attr
    try:
        data = _host(os.getxattr, target, how == "", attr)
    except OSError as e:
        return oserr(e)
    if size:
        if len(data) > size:
            return -E.ERANGE
        t.process.mem.write(value, data)
    return len(data)


def _setxattr(
    k: Kernel, t: Thread, how: str, where: int, name: int, value: int, size: int, flags: int
) -> int:
    if flags & ~(XATTR_CREATE | XATTR_REPLACE) or size > XATTR_SIZE_MAX:
        return -E.EINVAL if size <= XATTR_SIZE_MAX else -E.E2BIG
    target, attr = _xattr_target(k, t, how, where), _xattr_name(t, name)
    if isinstance(target, int) and (how != "f" or target < 0):
        return target
    if isinstance(attr, int):
        return attr
    data = t.process.mem.read(value, size) if size else b""
    try:
        _host(os.setxattr, target, how == "", attr, data, flags)
    except OSError as e:
        return oserr(e)
    return 0


def _listxattr(k: Kernel, t: Thread, how: str, where: int, out: int, size: int) -> int:
    target = _xattr_target(k, t, how, where)
    if isinstance(target, int) and (how != "f" or target < 0):
        return target
    try:
        names = _host(os.listxattr, target, how == "")
    except OSError as e:
        return oserr(e)
    data = b"".join(os.fsencode(n) + b"\0" for n in names)
    if size:
        if len(data) > size:
            return -E.ERANGE
        t.process.mem.write(out, data)
    return len(data)


def _removexattr(k: Kernel, t: Thread, how: str, where: int, name: int) -> int:
    target, attr = _xattr_target(k, t, how, where), _xattr_name(t, name)
    if isinstance(target, int) and (how != "f" or target < 0):
        return target
    if isinstance(attr, int):
        return attr
    try:
        _host(os.removexattr, target, how == "", attr)
    except OSError as e:
        return oserr(e)
    return 0


@syscall(188, path="str", name="str", flags="hex")
def sys_setxattr(
    k: Kernel, t: Thread, path: int, name: int, value: int, size: int, flags: int
) -> int:
    return _setxattr(k, t, "", path, name, value, size, flags)


@syscall(189, path="str", name="str", flags="hex")
def sys_lsetxattr(
    k: Kernel, t: Thread, path: int, name: int, value: int, size: int, flags: int
) -> int:
    return _setxattr(k, t, "l", path, name, value, size, flags)


@syscall(190, fd="int", name="str", flags="hex")
def sys_fsetxattr(
    k: Kernel, t: Thread, fd: int, name: int, value: int, size: int, flags: int
) -> int:
    return _setxattr(k, t, "f", fd, name, value, size, flags)


@syscall(191, path="str", name="str")
def sys_getxattr(k: Kernel, t: Thread, path: int, name: int, value: int, size: int) -> int:
    return _getxattr(k, t, "", path, name, value, size)


@syscall(192, path="str", name="str")
def sys_lgetxattr(k: Kernel, t: Thread, path: int, name: int, value: int, size: int) -> int:
    return _getxattr(k, t, "l", path, name, value, size)


@syscall(193, fd="int", name="str")
def sys_fgetxattr(k: Kernel, t: Thread, fd: int, name: int, value: int, size: int) -> int:
    return _getxattr(k, t, "f", fd, name, value, size)


@syscall(194, path="str")
def sys_listxattr(k: Kernel, t: Thread, path: int, out: int, size: int) -> int:
    return _listxattr(k, t, "", path, out, size)


@syscall(195, path="str")
def sys_llistxattr(k: Kernel, t: Thread, path: int, out: int, size: int) -> int:
    return _listxattr(k, t, "l", path, out, size)


@syscall(196, fd="int")
def sys_flistxattr(k: Kernel, t: Thread, fd: int, out: int, size: int) -> int:
    return _listxattr(k, t, "f", fd, out, size)


@syscall(197, path="str", name="str")
def sys_removexattr(k: Kernel, t: Thread, path: int, name: int) -> int:
    return _removexattr(k, t, "", path, name)


@syscall(198, path="str", name="str")
def sys_lremovexattr(k: Kernel, t: Thread, path: int, name: int) -> int:
    return _removexattr(k, t, "l", path, name)


@syscall(199, fd="int", name="str")
def sys_fremovexattr(k: Kernel, t: Thread, fd: int, name: int) -> int:
    return _removexattr(k, t, "f", fd, name)
