"""How guest paths and descriptors reach the host, shared by the file-system families; and the
calls that work on paths: unlink, rmdir, mkdir, rename, symlink, readlink, getcwd, chdir."""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import errno as E
from ..process import File, HostFile
from ..vfs import PathError, guest_join, resolve
from . import syscall

if TYPE_CHECKING:
    from ..kernel import Kernel
    from ..process import Process, Thread

AT_FDCWD = -100
FDCWD = AT_FDCWD & 0xFFFF_FFFF  # AT_FDCWD as a register holds it: what the old calls pass on
AT_EMPTY_PATH, AT_SYMLINK_NOFOLLOW, AT_REMOVEDIR, AT_EACCESS = 0x1000, 0x100, 0x200, 0x200


def s32(v: int) -> int:
    v &= 0xFFFF_FFFF
    return v - (1 << 32) if v >> 31 else v


def oserr(e: OSError) -> int:
    return -(e.errno or E.EIO)


def host_call(fn: Callable[..., Any], *args: Any) -> int:
    """0 once the host call `fn(*args)` returns, or the -errno it raised."""
    try:
        fn(*args)
    except OSError as e:
        return oserr(e)
    return 0


def host_fd(t: Thread, fd: int) -> int:
    """The host descriptor behind a guest fd: EBADF if it is not open, EINVAL if it is a kernel
    object (a pipe, a socket...) rather than a host file."""
    f = t.process.fds.get(s32(fd))
    if f is None:
        return -E.EBADF
    if not isinstance(f, HostFile):
        return -E.EINVAL
    return f.fd


def host_path(
    k: Kernel, p: Process, dirfd: int, path: bytes, *, follow: bool = True, readonly: bool = False
) -> str | int:
    """The host path for a guest path relative to dirfd (confined under --root), or -errno.
    `/proc/self/exe` is the program itself, which may lie outside --root: it is only given to
    calls that read (open O_RDONLY, stat, access, execve); others get EACCES. The guest's own
    descriptors, `/proc/self/fd/N` and `/dev/fd/N`, are the host files behind them."""
    if not path:
        return -E.ENOENT
    s = os.fsdecode(path)
    if s == "/proc/self/exe":
        return p.exe if readonly else -E.EACCES
    own = _own_fd(p, s)
    if own is not None:
        return own
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


#: The links to a process's own descriptors: /dev/fd -> /proc/self/fd, and the standard ones.
FD_DIRS = ("/proc/self/fd/", "/dev/fd/")
STD_LINKS = {"/dev/stdin": 0, "/dev/stdout": 1, "/dev/stderr": 2}


def own_fd(p: Process, s: str) -> File | int | None:
    """The guest file behind /proc/self/fd/N, /dev/fd/N or /dev/std{in,out,err} (the
    host's links would name the emulator's own descriptors), -ENOENT if N is not open, None
    for any other path."""
    n = STD_LINKS.get(s)
    for d in FD_DIRS if n is None else ():
        if s.startswith(d):
            digits = s[len(d) :]
            if digits.isdigit() and str(int(digits)) == digits:
                n = int(digits)
    if n is None:
        return None
    f = p.fds.get(n)
    return -E.ENOENT if f is None else f


def _own_fd(p: Process, s: str) -> str | int | None:
    """The host's link to the host file behind an own-descriptor path (own_fd), -ENXIO for an
    object of the emulator's own (a pipe, a socket: no host file; open() gives a pipe's new
    end itself). None for any other path."""
    f = own_fd(p, s)
    if f is None or isinstance(f, int):
        return f
    if not isinstance(f, HostFile):
        return -E.ENXIO
    return f"/proc/self/fd/{f.fd}"


def guest_path(p: Process, dirfd: int, name: str) -> str:
    """The guest's absolute spelling of an opened path (for *at() calls relative to it)."""
    if name.startswith("/"):
        return posixpath.normpath(name)
    if s32(dirfd) == AT_FDCWD:
        return posixpath.normpath(guest_join(p.cwd, name))
    f = p.fds.get(s32(dirfd))
    base = f.gpath if isinstance(f, HostFile) and f.gpath else "/"
    return posixpath.normpath(guest_join(base, name))


def unmask(want: int, stat: Callable[[], int], chmod: Callable[[int], None]) -> None:
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


@syscall(263, dirfd="int", path="str", flags="hex")
def sys_unlinkat(k: Kernel, t: Thread, dirfd: int, path: int, flags: int) -> int:
    hp = host_path(k, t.process, dirfd, t.process.mem.read_cstr(path), follow=False)
    if isinstance(hp, int):
        return hp
    try:
        os.rmdir(hp) if flags & AT_REMOVEDIR else os.unlink(hp)
    except OSError as e:
        return oserr(e)
    return 0


@syscall(87, path="str")
def sys_unlink(k: Kernel, t: Thread, path: int) -> int:
    return sys_unlinkat(k, t, FDCWD, path, 0)


@syscall(84, path="str")
def sys_rmdir(k: Kernel, t: Thread, path: int) -> int:
    return sys_unlinkat(k, t, FDCWD, path, AT_REMOVEDIR)


@syscall(258, dirfd="int", path="str", mode="hex")
def sys_mkdirat(k: Kernel, t: Thread, dirfd: int, path: int, mode: int) -> int:
    hp = host_path(k, t.process, dirfd, t.process.mem.read_cstr(path))
    if isinstance(hp, int):
        return hp
    mode &= 0o7777 & ~t.process.umask
    try:
        os.mkdir(hp, mode)
    except OSError as e:
        return oserr(e)
    unmask(mode, lambda: os.stat(hp).st_mode, lambda m: os.chmod(hp, m))
    return 0


@syscall(83, path="str", mode="hex")
def sys_mkdir(k: Kernel, t: Thread, path: int, mode: int) -> int:
    return sys_mkdirat(k, t, FDCWD, path, mode)


@syscall(264, olddirfd="int", old="str", newdirfd="int", new="str")
def sys_renameat(k: Kernel, t: Thread, olddirfd: int, old: int, newdirfd: int, new: int) -> int:
    a = host_path(k, t.process, olddirfd, t.process.mem.read_cstr(old))
    b = host_path(k, t.process, newdirfd, t.process.mem.read_cstr(new))
    if isinstance(a, int) or isinstance(b, int):
        return a if isinstance(a, int) else b  # type: ignore[return-value]
    try:
        os.rename(a, b)
    except OSError as e:
        return oserr(e)
    return 0


@syscall(82, old="str", new="str")
def sys_rename(k: Kernel, t: Thread, old: int, new: int) -> int:
    return sys_renameat(k, t, FDCWD, old, FDCWD, new)


@syscall(266, target="str", dirfd="int", path="str")
def sys_symlinkat(k: Kernel, t: Thread, target: int, dirfd: int, path: int) -> int:
    hp = host_path(k, t.process, dirfd, t.process.mem.read_cstr(path))
    tgt = os.fsdecode(t.process.mem.read_cstr(target))
    return hp if isinstance(hp, int) else host_call(os.symlink, tgt, hp)


@syscall(88, target="str", path="str")
def sys_symlink(k: Kernel, t: Thread, target: int, path: int) -> int:
    return sys_symlinkat(k, t, target, FDCWD, path)


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
            return oserr(e)
    target = target[:size]
    t.process.mem.write(buf, target)
    return len(target)


@syscall(89, path="str", size="int")
def sys_readlink(k: Kernel, t: Thread, path: int, buf: int, size: int) -> int:
    return sys_readlinkat(k, t, FDCWD, path, buf, size)


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
    hp = host_path(k, t.process, FDCWD, os.fsencode(name))
    if isinstance(hp, int):
        return hp
    if not os.path.isdir(hp):
        return -E.ENOENT if not os.path.exists(hp) else -E.ENOTDIR
    t.process.cwd = guest_path(t.process, FDCWD, name)
    return 0


@syscall(81, fd="int")
def sys_fchdir(k: Kernel, t: Thread, fd: int) -> int:
    f = t.process.fds.get(s32(fd))
    if not isinstance(f, HostFile) or not os.path.isdir(f.path):
        return -E.EBADF if f is None else -E.ENOTDIR
    t.process.cwd = f.gpath
    return 0
