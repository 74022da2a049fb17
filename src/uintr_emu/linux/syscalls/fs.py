"""Files on the host filesystem, pipes between guest threads, and poll."""

from __future__ import annotations

import fcntl
import os
import select
import stat as st
from collections.abc import Callable
from typing import TYPE_CHECKING

from .. import errno as E
from .. import signals as S
from ..abi import (
    DIRENT64,
    FD_PAIR,
    INT,
    IOVEC,
    POLLERR,
    POLLFD,
    POLLHUP,
    POLLIN,
    POLLNVAL,
    POLLOUT,
    STAT,
)
from ..control import BLOCK
from ..mm import TASK_SIZE, AddressSpace, GuestFault
from ..process import File, HostFile, Pipe, PipeEnd, Wait
from ..vfs import PathError, guest_join, resolve
from . import syscall
from .misc import RLIMIT_NOFILE, RLIMITS

if TYPE_CHECKING:
    from ..kernel import Kernel
    from ..process import Process, Thread

AT_FDCWD = -100
# O_ACCMODE and every flag from O_CREAT (0o100) to __O_TMPFILE (0o20000000), x86-64's values
VALID_OPEN_FLAGS = 0o37777703
AT_EMPTY_PATH, AT_SYMLINK_NOFOLLOW, AT_REMOVEDIR, AT_EACCESS = 0x1000, 0x100, 0x200, 0x200
O_NONBLOCK, O_CLOEXEC = os.O_NONBLOCK, os.O_CLOEXEC
F_DUPFD, F_GETFD, F_SETFD, F_GETFL, F_SETFL, F_DUPFD_CLOEXEC = 0, 1, 2, 3, 4, 1030
F_GETLK, F_SETLK, F_SETLKW = 5, 6, 7
FD_CLOEXEC = 1
NOFILE = RLIMITS[RLIMIT_NOFILE][0]  # the soft RLIMIT_NOFILE getrlimit reports (fixed)
TCGETS, TIOCGWINSZ, FIONREAD = 0x5401, 0x5413, 0x541B
UIO_MAXIOV = 1024
SEEK_MAX = 4  # SEEK_HOLE
MAX_RW_COUNT = 0x7FFF_F000  # INT_MAX & PAGE_MASK: the most one read or write moves
IO_CHUNK = 1 << 24  # the most read from the host at once: a short read, which read(2) allows


def s32(v: int) -> int:
    v &= 0xFFFF_FFFF
    return v - (1 << 32) if v >> 31 else v


def host_path(
    k: Kernel, p: Process, dirfd: int, path: bytes, *, follow: bool = True, readonly: bool = False
) -> str | int:
    """The host path for a guest path relative to dirfd (confined under --root), or -errno.
    `/proc/self/exe` is the program itself, which may lie outside --root: it is only given to
    calls that read (open O_RDONLY, stat, access, execve); others get EACCES."""
    if not path:
        return -E.ENOENT
    s = os.fsdecode(path)
    if s == "/proc/self/exe":
        return p.exe if readonly else -E.EACCES
    if not s.startswith("/"):
        dirfd = s32(dirfd)
        if dirfd == AT_FDCWD:
            s = guest_join(p.cwd, s)
        else:
            f = p.fds.get(dirfd)
            if f is None:
                return -E.EBADF
            if not isinstance(f, HostFile) or not f.gpath:
                return -E.ENOTDIR
            s = guest_join(f.gpath, s)
    try:
        return resolve(k.opt.root, s, follow_last=follow)
    except PathError as e:
        return -e.errno


def _guest_path(p: Process, dirfd: int, name: str) -> str:
    """The guest's absolute spelling of an opened path (for *at() calls relative to it)."""
    import posixpath

    if name.startswith("/"):
        return posixpath.normpath(name)
    if s32(dirfd) == AT_FDCWD:
        return posixpath.normpath(guest_join(p.cwd, name))
    f = p.fds.get(s32(dirfd))
    base = f.gpath if isinstance(f, HostFile) and f.gpath else "/"
    return posixpath.normpath(guest_join(base, name))


def _oserr(e: OSError) -> int:
    return -(e.errno or E.EIO)


def _unmask(want: int, stat: Callable[[], int], chmod: Callable[[int], None]) -> None:
    """A file the guest just created should have `want` (its mode less the guest's umask), but
    the host's umask applied too: give back the permission bits only that one took away (a
    best effort: the file exists either way)."""
    try:
        have = stat()
        lost = want & 0o777 & ~have
        if lost:
            chmod((have | lost) & 0o7777)
    except OSError:
        pass


# --- open / close ---------------------------------------------------------------------------


@syscall(257, dirfd="int", path="str", flags="hex", mode="hex")
def sys_openat(k: Kernel, t: Thread, dirfd: int, path: int, flags: int, mode: int) -> int:
    p = t.process
    flags &= VALID_OPEN_FLAGS  # build_open_how: open/openat ignore unknown flags
    name = p.mem.read_cstr(path)
    reading = flags & os.O_ACCMODE == os.O_RDONLY and not flags & (os.O_TRUNC | os.O_CREAT)
    hp = host_path(k, p, dirfd, name, readonly=reading)
    if isinstance(hp, int):
        return hp
    creating = flags & os.O_CREAT or flags & os.O_TMPFILE == os.O_TMPFILE
    mode = mode & 0o7777 & ~p.umask if creating else 0  # build_open_how, the guest's umask
    # O_CREAT only opens a file that exists (unless O_EXCL): its mode must stay as it is
    existed = bool(flags & os.O_CREAT) and not flags & os.O_EXCL and os.path.exists(hp)
    try:
        fd = os.open(hp, flags | O_CLOEXEC, mode)
    except OSError as e:
        return _oserr(e)
    if creating and not existed:
        _unmask(mode, lambda: os.fstat(fd).st_mode, lambda m: os.fchmod(fd, m))
    f = HostFile(fd, os.path.abspath(hp))
    f.gpath = _guest_path(p, dirfd, os.fsdecode(name))
    f.nonblock = bool(flags & O_NONBLOCK)
    return p.fds.install(f, cloexec=bool(flags & O_CLOEXEC))


@syscall(2, path="str", flags="hex", mode="hex")
def sys_open(k: Kernel, t: Thread, path: int, flags: int, mode: int) -> int:
    return sys_openat(k, t, AT_FDCWD & 0xFFFF_FFFF, path, flags, mode)


@syscall(3, fd="int")
def sys_close(k: Kernel, t: Thread, fd: int) -> int:
    return 0 if t.process.fds.close(s32(fd)) else -E.EBADF


# --- read / write ---------------------------------------------------------------------------


def do_read(k: Kernel, t: Thread, f: File, count: int) -> bytes | int | object:
    if isinstance(f, PipeEnd):
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
            k.block(t, Wait("pipe-read", key=pipe, restart=True))
            return BLOCK
        data = bytes(pipe.buf[:count])
        del pipe.buf[:count]
        k.notify(pipe)
        return data
    if isinstance(f, HostFile):
        try:
            return os.read(f.fd, count)
        except OSError as e:
            return _oserr(e)
    reader = getattr(f, "read", None)
    return reader(k, t, count) if reader is not None else -E.EINVAL


def do_write(k: Kernel, t: Thread, f: File, data: bytes) -> int | object:
    if isinstance(f, PipeEnd):
        if not f.write_end:
            return -E.EBADF
        pipe = f.pipe
        if pipe.readers == 0:
            k.send_signal(t, S.SigInfo(S.SIGPIPE, S.SI_USER, pid=t.process.pid))
            return -E.EPIPE
        room = Pipe.CAPACITY - len(pipe.buf)
        if room <= 0:
            if f.nonblock:
                return -E.EAGAIN
            k.block(t, Wait("pipe-write", key=pipe, restart=True))
            return BLOCK
        pipe.buf += data[:room]
        k.notify(pipe)
        return min(room, len(data))
    if isinstance(f, HostFile):
        try:
            return os.write(f.fd, data)
        except BrokenPipeError:
            k.send_signal(t, S.SigInfo(S.SIGPIPE, S.SI_USER, pid=t.process.pid))
            return -E.EPIPE
        except OSError as e:
            return _oserr(e)
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


def import_iovec(mem: AddressSpace, iov: int, n: int) -> list[tuple[int, int]] | int:
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


def _iov_total(vecs: list[tuple[int, int]] | int) -> int:
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
    pos = 0
    for base, n in vecs:
        chunk = r[pos : pos + n]
        t.process.mem.write(base, chunk)
        pos += len(chunk)
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
        return _oserr(e)
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
        return _oserr(e)


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
        return _oserr(e)


# --- metadata -------------------------------------------------------------------------------


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
    return ANON_INODE_DEV, ANON_INODE_INO, 0o600, 0, 0, k.realtime_ns() - k.monotonic_ns()


def _fstat_file(k: Kernel, f: File) -> bytes | int:
    """The packed struct stat of an open file, or -errno."""
    if isinstance(f, HostFile):
        try:
            return pack_stat(os.fstat(f.fd))
        except OSError as e:
            return _oserr(e)
    dev, ino, mode, uid, gid, times = _pseudo_inode(k, f)
    return pack_stat_fields(dev, ino, 1, mode, uid, gid, 0, 0, 4096, 0, times_ns=(times,) * 3)


@syscall(262, dirfd="int", path="str", flags="hex")
def sys_newfstatat(k: Kernel, t: Thread, dirfd: int, path: int, statbuf: int, flags: int) -> int:
    p = t.process
    name = p.mem.read_cstr(path)
    if not name and flags & AT_EMPTY_PATH:
        f = p.fds.get(s32(dirfd))
        if f is None:
            return -E.EBADF
        s = _fstat_file(k, f)
    else:
        hp = host_path(k, p, dirfd, name, follow=not flags & AT_SYMLINK_NOFOLLOW, readonly=True)
        if isinstance(hp, int):
            return hp
        try:
            s = pack_stat(os.stat(hp, follow_symlinks=not flags & AT_SYMLINK_NOFOLLOW))
        except OSError as e:
            return _oserr(e)
    if isinstance(s, int):
        return s
    p.mem.write(statbuf, s)
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
    return sys_newfstatat(k, t, AT_FDCWD & 0xFFFF_FFFF, path, statbuf, 0)


@syscall(6, path="str")
def sys_lstat(k: Kernel, t: Thread, path: int, statbuf: int) -> int:
    return sys_newfstatat(k, t, AT_FDCWD & 0xFFFF_FFFF, path, statbuf, AT_SYMLINK_NOFOLLOW)


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
        return _oserr(e)  # the lookup failed: no such file, a loop...
    return -E.EACCES


@syscall(269, dirfd="int", path="str", mode="int")
def sys_faccessat(k: Kernel, t: Thread, dirfd: int, path: int, mode: int) -> int:
    return do_faccessat(k, t, dirfd, path, mode, 0)  # faccessat has no flags argument


@syscall(439, dirfd="int", path="str", mode="int", flags="hex")
def sys_faccessat2(k: Kernel, t: Thread, dirfd: int, path: int, mode: int, flags: int) -> int:
    return do_faccessat(k, t, dirfd, path, mode, flags)


@syscall(21, path="str", mode="int")
def sys_access(k: Kernel, t: Thread, path: int, mode: int) -> int:
    return do_faccessat(k, t, AT_FDCWD & 0xFFFF_FFFF, path, mode, 0)


@syscall(263, dirfd="int", path="str", flags="hex")
def sys_unlinkat(k: Kernel, t: Thread, dirfd: int, path: int, flags: int) -> int:
    hp = host_path(k, t.process, dirfd, t.process.mem.read_cstr(path), follow=False)
    if isinstance(hp, int):
        return hp
    try:
        os.rmdir(hp) if flags & AT_REMOVEDIR else os.unlink(hp)
    except OSError as e:
        return _oserr(e)
    return 0


@syscall(87, path="str")
def sys_unlink(k: Kernel, t: Thread, path: int) -> int:
    return sys_unlinkat(k, t, AT_FDCWD & 0xFFFF_FFFF, path, 0)


@syscall(84, path="str")
def sys_rmdir(k: Kernel, t: Thread, path: int) -> int:
    return sys_unlinkat(k, t, AT_FDCWD & 0xFFFF_FFFF, path, AT_REMOVEDIR)


@syscall(258, dirfd="int", path="str", mode="hex")
def sys_mkdirat(k: Kernel, t: Thread, dirfd: int, path: int, mode: int) -> int:
    hp = host_path(k, t.process, dirfd, t.process.mem.read_cstr(path))
    if isinstance(hp, int):
        return hp
    mode &= 0o7777 & ~t.process.umask
    try:
        os.mkdir(hp, mode)
    except OSError as e:
        return _oserr(e)
    _unmask(mode, lambda: os.stat(hp).st_mode, lambda m: os.chmod(hp, m))
    return 0


@syscall(83, path="str", mode="hex")
def sys_mkdir(k: Kernel, t: Thread, path: int, mode: int) -> int:
    return sys_mkdirat(k, t, AT_FDCWD & 0xFFFF_FFFF, path, mode)


@syscall(264, olddirfd="int", old="str", newdirfd="int", new="str")
def sys_renameat(k: Kernel, t: Thread, olddirfd: int, old: int, newdirfd: int, new: int) -> int:
    a = host_path(k, t.process, olddirfd, t.process.mem.read_cstr(old))
    b = host_path(k, t.process, newdirfd, t.process.mem.read_cstr(new))
    if isinstance(a, int) or isinstance(b, int):
        return a if isinstance(a, int) else b  # type: ignore[return-value]
    try:
        os.rename(a, b)
    except OSError as e:
        return _oserr(e)
    return 0


@syscall(82, old="str", new="str")
def sys_rename(k: Kernel, t: Thread, old: int, new: int) -> int:
    cwd = AT_FDCWD & 0xFFFF_FFFF
    return sys_renameat(k, t, cwd, old, cwd, new)


@syscall(79, size="int")
def sys_getcwd(k: Kernel, t: Thread, buf: int, size: int) -> int:
    cwd = os.fsencode(t.process.cwd) + b"\0"
    if len(cwd) > size:
        return -E.ERANGE
    t.process.mem.write(buf, cwd)
    return len(cwd)


@syscall(80, path="str")
def sys_chdir(k: Kernel, t: Thread, path: int) -> int:
    name = os.fsdecode(t.process.mem.read_cstr(path))
    hp = host_path(k, t.process, AT_FDCWD & 0xFFFF_FFFF, os.fsencode(name))
    if isinstance(hp, int):
        return hp
    if not os.path.isdir(hp):
        return -E.ENOENT if not os.path.exists(hp) else -E.ENOTDIR
    t.process.cwd = _guest_path(t.process, AT_FDCWD & 0xFFFF_FFFF, name)
    return 0


@syscall(267, dirfd="int", path="str", size="int")
def sys_readlinkat(k: Kernel, t: Thread, dirfd: int, path: int, buf: int, size: int) -> int:
    name = t.process.mem.read_cstr(path)
    if name == b"/proc/self/exe":
        target = os.fsencode(t.process.exe)
    else:
        hp = host_path(k, t.process, dirfd, name, follow=False)
        if isinstance(hp, int):
            return hp
        try:
            target = os.fsencode(os.readlink(hp))
        except OSError as e:
            return _oserr(e)
    target = target[:size]
    t.process.mem.write(buf, target)
    return len(target)


@syscall(89, path="str", size="int")
def sys_readlink(k: Kernel, t: Thread, path: int, buf: int, size: int) -> int:
    return sys_readlinkat(k, t, AT_FDCWD & 0xFFFF_FFFF, path, buf, size)


@syscall(217, fd="int", count="int")
def sys_getdents64(k: Kernel, t: Thread, fd: int, dirp: int, count: int) -> int:
    f = t.process.fds.get(s32(fd))
    if not isinstance(f, HostFile):
        return -E.EBADF if f is None else -E.ENOTDIR
    if f.dir_entries is None:
        try:
            names = [".", "..", *sorted(os.listdir(f.path))]
        except OSError as e:
            return _oserr(e)
        ents = []
        for n in names:
            try:
                s = os.lstat(os.path.join(f.path, n))
                dtype = {st.S_IFDIR: 4, st.S_IFREG: 8, st.S_IFLNK: 10, st.S_IFIFO: 1,
                         st.S_IFCHR: 2, st.S_IFBLK: 6, st.S_IFSOCK: 12}.get(
                    st.S_IFMT(s.st_mode), 0)  # fmt: skip
                ents.append((os.fsencode(n), s.st_ino, dtype))
            except OSError:
                continue
        f.dir_entries = ents
    out = bytearray()
    while f.dir_pos < len(f.dir_entries):
        name, ino, dtype = f.dir_entries[f.dir_pos]
        reclen = (DIRENT64.size + len(name) + 1 + 7) & ~7  # the name's NUL, 8-byte aligned
        if len(out) + reclen > count:
            if not out:
                return -E.EINVAL
            break
        rec = DIRENT64.pack(ino, f.dir_pos + 1, reclen, dtype) + name + b"\0"
        out += rec.ljust(reclen, b"\0")
        f.dir_pos += 1
    t.process.mem.write(dirp, bytes(out))
    return len(out)


# --- descriptors ----------------------------------------------------------------------------


@syscall(32, fd="int")
def sys_dup(k: Kernel, t: Thread, fd: int) -> int:
    f = t.process.fds.get(s32(fd))
    return -E.EBADF if f is None else t.process.fds.install(f)


@syscall(292, old="int", new="int", flags="hex")
def sys_dup3(k: Kernel, t: Thread, old: int, new: int, flags: int) -> int:
    # ksys_dup3 (unsigned int fds, int flags): bad flags or old == new are EINVAL, then a new
    # fd at or above RLIMIT_NOFILE is EBADF, before the old one is looked up
    old, new = old & 0xFFFF_FFFF, new & 0xFFFF_FFFF
    if flags & 0xFFFF_FFFF & ~O_CLOEXEC or old == new:
        return -E.EINVAL
    if new >= NOFILE:
        return -E.EBADF
    fds = t.process.fds
    f = fds.get(old)
    if f is None:
        return -E.EBADF
    fds.install_at(new, f, cloexec=bool(flags & O_CLOEXEC))
    return new


@syscall(33, old="int", new="int")
def sys_dup2(k: Kernel, t: Thread, old: int, new: int) -> int:
    if (old - new) & 0xFFFF_FFFF == 0:  # the same (unsigned int) fd: returned if it is open
        return old & 0xFFFF_FFFF if t.process.fds.get(old & 0xFFFF_FFFF) is not None else -E.EBADF
    return sys_dup3(k, t, old, new, 0)


@syscall(72, fd="int", cmd="int")
def sys_fcntl(k: Kernel, t: Thread, fd: int, cmd: int, arg: int) -> int:
    fds = t.process.fds
    entry = fds.fds.get(s32(fd))
    if entry is None:
        return -E.EBADF
    f = entry.file
    cmd &= 0xFFFF_FFFF  # an unsigned int
    if cmd in (F_DUPFD, F_DUPFD_CLOEXEC):
        # f_dupfd(unsigned int from = (int)arg): from >= RLIMIT_NOFILE, so any negative int,
        # is EINVAL; no free fd from there up to the limit is EMFILE (alloc_fd)
        new = arg & 0xFFFF_FFFF
        if new >= NOFILE:
            return -E.EINVAL
        while new in fds.fds:
            new += 1
        if new >= NOFILE:
            return -E.EMFILE
        fds.install_at(new, f, cloexec=cmd == F_DUPFD_CLOEXEC)
        return new
    if cmd == F_GETFD:
        return FD_CLOEXEC if entry.cloexec else 0
    if cmd == F_SETFD:
        entry.cloexec = bool(arg & FD_CLOEXEC)
        return 0
    if cmd == F_GETFL:
        if isinstance(f, HostFile):
            try:
                import fcntl as _fcntl

                return _fcntl.fcntl(f.fd, _fcntl.F_GETFL)
            except OSError as e:
                return _oserr(e)
        acc = os.O_WRONLY if isinstance(f, PipeEnd) and f.write_end else os.O_RDONLY
        return acc | (O_NONBLOCK if f.nonblock else 0)
    if cmd == F_SETFL:
        f.nonblock = bool(arg & O_NONBLOCK)
        if isinstance(f, HostFile) and f.owned:
            try:
                import fcntl as _fcntl

                _fcntl.fcntl(f.fd, _fcntl.F_SETFL, arg & 0xFFFF_FFFF)
            except OSError as e:
                return _oserr(e)
        return 0
    if cmd in (F_GETLK, F_SETLK, F_SETLKW):
        return 0  # one guest at a time: advisory locks always succeed
    return -E.EINVAL


@syscall(16, fd="int", req="hex")
def sys_ioctl(k: Kernel, t: Thread, fd: int, req: int, arg: int) -> int:
    f = t.process.fds.get(s32(fd))
    if f is None:
        return -E.EBADF
    r = k.uintr.ioctl(t, f, req & 0xFFFF_FFFF, arg)
    if r is not None:
        return r
    req &= 0xFFFF_FFFF
    if req in (TCGETS, TIOCGWINSZ):
        if not isinstance(f, HostFile) or not os.isatty(f.fd):
            return -E.ENOTTY
        import fcntl as _fcntl

        size = 60 if req == TCGETS else 8
        try:
            data = _fcntl.ioctl(f.fd, req, bytes(size))
        except OSError as e:
            return _oserr(e)
        t.process.mem.write(arg, data)
        return 0
    if req == FIONREAD and isinstance(f, PipeEnd):
        t.process.mem.write(arg, INT.pack(len(f.pipe.buf)))
        return 0
    return -E.ENOTTY


@syscall(293, flags="hex")
def sys_pipe2(k: Kernel, t: Thread, fds_addr: int, flags: int) -> int:
    if flags & ~(O_CLOEXEC | O_NONBLOCK | os.O_DIRECT):
        return -E.EINVAL
    pipe = Pipe()
    pipe.born_ns = k.realtime_ns()
    r, w = PipeEnd(pipe, False), PipeEnd(pipe, True)
    r.nonblock = w.nonblock = bool(flags & O_NONBLOCK)
    cloexec = bool(flags & O_CLOEXEC)
    fr = t.process.fds.install(r, cloexec=cloexec)
    fw = t.process.fds.install(w, cloexec=cloexec)
    t.process.mem.write(fds_addr, FD_PAIR.pack(fr, fw))
    return 0


@syscall(22)
def sys_pipe(k: Kernel, t: Thread, fds_addr: int) -> int:
    return sys_pipe2(k, t, fds_addr, 0)


# --- poll -----------------------------------------------------------------------------------


def _poll_ready(f: File | None, events: int) -> int:
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
    if nfds > 4096:
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
            rev = _poll_ready(f, events & 0xFFFF)
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
    k.block(t, Wait("poll", deadline, key=tuple(pipes), restart=True, on_timeout=0))
    return BLOCK


@syscall(7, nfds="int", timeout="int")
def sys_poll(k: Kernel, t: Thread, fds: int, nfds: int, timeout: int) -> object:
    ms = s32(timeout)
    return do_poll(k, t, fds, nfds, None if ms < 0 else ms * 1_000_000)


@syscall(271, nfds="int")
def sys_ppoll(k: Kernel, t: Thread, fds: int, nfds: int, tsp: int, sigmask: int) -> object:
    from .futex import read_timespec

    ns = None
    if tsp:
        ns = read_timespec(t, tsp)
        if ns is None:
            return -E.EINVAL
    return do_poll(k, t, fds, nfds, ns)


# --- more metadata calls --------------------------------------------------------------------


def _host_fd(t: Thread, fd: int) -> int:
    f = t.process.fds.get(s32(fd))
    if f is None:
        return -E.EBADF
    if not isinstance(f, HostFile):
        return -E.EINVAL
    return f.fd


def _call(fn, *args) -> int:  # type: ignore[no-untyped-def]
    try:
        fn(*args)
    except OSError as e:
        return _oserr(e)
    return 0


@syscall(77, fd="int", length="int")
def sys_ftruncate(k: Kernel, t: Thread, fd: int, length: int) -> int:
    if length >> 63:
        return -E.EINVAL  # do_sys_ftruncate: a negative loff_t, even before the fd lookup
    h = _host_fd(t, fd)
    return h if h < 0 else _call(os.ftruncate, h, length)


@syscall(76, path="str", length="int")
def sys_truncate(k: Kernel, t: Thread, path: int, length: int) -> int:
    if length >> 63:
        return -E.EINVAL  # do_sys_truncate: a negative loff_t, before the path is read
    hp = host_path(k, t.process, AT_FDCWD & 0xFFFF_FFFF, t.process.mem.read_cstr(path))
    return hp if isinstance(hp, int) else _call(os.truncate, hp, length)


@syscall(74, fd="int")
def sys_fsync(k: Kernel, t: Thread, fd: int) -> int:
    f = t.process.fds.get(s32(fd))
    return -E.EBADF if f is None else 0


@syscall(75, fd="int")
def sys_fdatasync(k: Kernel, t: Thread, fd: int) -> int:
    return sys_fsync(k, t, fd)


@syscall(91, fd="int", mode="hex")
def sys_fchmod(k: Kernel, t: Thread, fd: int, mode: int) -> int:
    h = _host_fd(t, fd)
    return h if h < 0 else _call(os.chmod, h, mode & 0o7777)


@syscall(268, dirfd="int", path="str", mode="hex")
def sys_fchmodat(k: Kernel, t: Thread, dirfd: int, path: int, mode: int) -> int:
    hp = host_path(k, t.process, dirfd, t.process.mem.read_cstr(path))
    return hp if isinstance(hp, int) else _call(os.chmod, hp, mode & 0o7777)


@syscall(90, path="str", mode="hex")
def sys_chmod(k: Kernel, t: Thread, path: int, mode: int) -> int:
    return sys_fchmodat(k, t, AT_FDCWD & 0xFFFF_FFFF, path, mode)


@syscall(266, target="str", dirfd="int", path="str")
def sys_symlinkat(k: Kernel, t: Thread, target: int, dirfd: int, path: int) -> int:
    hp = host_path(k, t.process, dirfd, t.process.mem.read_cstr(path))
    tgt = os.fsdecode(t.process.mem.read_cstr(target))
    return hp if isinstance(hp, int) else _call(os.symlink, tgt, hp)


@syscall(88, target="str", path="str")
def sys_symlink(k: Kernel, t: Thread, target: int, path: int) -> int:
    return sys_symlinkat(k, t, target, AT_FDCWD & 0xFFFF_FFFF, path)


@syscall(81, fd="int")
def sys_fchdir(k: Kernel, t: Thread, fd: int) -> int:
    f = t.process.fds.get(s32(fd))
    if not isinstance(f, HostFile) or not os.path.isdir(f.path):
        return -E.EBADF if f is None else -E.ENOTDIR
    t.process.cwd = f.gpath
    return 0
