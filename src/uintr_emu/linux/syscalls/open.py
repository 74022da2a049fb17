"""Opening and closing files and what is done to a descriptor itself: open, openat, close,
dup, dup2, dup3, fcntl, ioctl, umask."""

from __future__ import annotations

import fcntl
import os
from typing import TYPE_CHECKING

from .. import errno as E
from ..abi import FD_PAIR, INT
from ..process import File, HostFile, PipeEnd
from ..sysfs import FILES as MACHINE_FILES
from ..sysfs import open_machine_file
from . import syscall
from .misc import RLIMIT_NOFILE, RLIMITS
from .paths import FDCWD, guest_path, host_path, oserr, own_fd, s32, unmask

if TYPE_CHECKING:
    from ..kernel import Kernel
    from ..process import Thread

# O_ACCMODE and every flag from O_CREAT (0o100) to __O_TMPFILE (0o20000000), x86-64's values
VALID_OPEN_FLAGS = 0o37777703
O_NONBLOCK, O_CLOEXEC = os.O_NONBLOCK, os.O_CLOEXEC
F_DUPFD, F_GETFD, F_SETFD, F_GETFL, F_SETFL, F_DUPFD_CLOEXEC = 0, 1, 2, 3, 4, 1030
F_GETLK, F_SETLK, F_SETLKW = 5, 6, 7
FD_CLOEXEC = 1
NOFILE = RLIMITS[RLIMIT_NOFILE][0]  # the soft RLIMIT_NOFILE getrlimit reports (fixed)
TCGETS, TIOCGWINSZ, FIONREAD = 0x5401, 0x5413, 0x541B
FIONBIO, FIONCLEX, FIOCLEX = 0x5421, 0x5450, 0x5451


@syscall(257, dirfd="int", path="str", flags="hex", mode="hex")
def sys_openat(k: Kernel, t: Thread, dirfd: int, path: int, flags: int, mode: int) -> int:
    p = t.process
    flags &= VALID_OPEN_FLAGS  # build_open_how: open/openat ignore unknown flags
    name = p.mem.read_cstr(path)
    reading = flags & os.O_ACCMODE == os.O_RDONLY and not flags & (os.O_TRUNC | os.O_CREAT)
    gpath = guest_path(p, dirfd, os.fsdecode(name)) if name else ""
    if gpath in MACHINE_FILES:  # /proc and /sys files describing the emulated machine
        if not reading:
            return -E.EACCES
        f = HostFile(open_machine_file(k, gpath), gpath)
        f.gpath = gpath
        return p.fds.install(f, cloexec=bool(flags & O_CLOEXEC))
    own = own_fd(p, gpath)
    if isinstance(own, PipeEnd):
        # A pipe opened through /dev/fd/N (bash's <(...) and >(...)): a new end of the same
        # pipe in the direction asked for (fifo_open); both at once is not modelled (ENXIO).
        acc = flags & os.O_ACCMODE
        if acc == os.O_RDWR:
            return -E.ENXIO
        f = PipeEnd(own.pipe, write=acc == os.O_WRONLY)
        f.nonblock = bool(flags & O_NONBLOCK)
        return p.fds.install(f, cloexec=bool(flags & O_CLOEXEC))
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
        return oserr(e)
    if creating and not existed:
        unmask(mode, lambda: os.fstat(fd).st_mode, lambda m: os.fchmod(fd, m))
    f = HostFile(fd, os.path.abspath(hp))
    f.gpath = gpath
    f.nonblock = bool(flags & O_NONBLOCK)
    return p.fds.install(f, cloexec=bool(flags & O_CLOEXEC))


@syscall(2, path="str", flags="hex", mode="hex")
def sys_open(k: Kernel, t: Thread, path: int, flags: int, mode: int) -> int:
    return sys_openat(k, t, FDCWD, path, flags, mode)


@syscall(3, fd="int")
def sys_close(k: Kernel, t: Thread, fd: int) -> int:
    return 0 if t.process.fds.close(s32(fd)) else -E.EBADF


@syscall(95, mask="hex")
def sys_umask(k: Kernel, t: Thread, mask: int) -> int:
    # the guest's own (current->fs->umask), never the host's: S_IRWXUGO bits of an int
    p = t.process
    old, p.umask = p.umask, mask & 0o777
    return old


def install_pair(t: Thread, a: File, b: File, cloexec: bool, addr: int) -> int:
    """Give two new files the lowest free fds, in order, and store the pair at `addr` (pipe2,
    socketpair); 0."""
    fa = t.process.fds.install(a, cloexec=cloexec)
    fb = t.process.fds.install(b, cloexec=cloexec)
    t.process.mem.write(addr, FD_PAIR.pack(fa, fb))
    return 0


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
                return fcntl.fcntl(f.fd, fcntl.F_GETFL)
            except OSError as e:
                return oserr(e)
        acc = os.O_WRONLY if isinstance(f, PipeEnd) and f.write_end else os.O_RDONLY
        return acc | (O_NONBLOCK if f.nonblock else 0)
    if cmd == F_SETFL:
        f.nonblock = bool(arg & O_NONBLOCK)
        if isinstance(f, HostFile) and f.owned:
            try:
                fcntl.fcntl(f.fd, fcntl.F_SETFL, arg & 0xFFFF_FFFF)
            except OSError as e:
                return oserr(e)
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
        # The kernel's struct termios (include/uapi/asm-generic/termbits.h: four tcflag_t,
        # c_line, c_cc[19]) is 36 bytes, struct winsize 8. (glibc's own struct termios, 60
        # bytes, is filled from the kernel's: writing 60 would overrun its caller's buffer.)
        size = 36 if req == TCGETS else 8
        try:
            data = fcntl.ioctl(f.fd, req, bytes(size))
        except OSError as e:
            return oserr(e)
        t.process.mem.write(arg, data)
        return 0
    if req == FIONBIO:  # any file: O_NONBLOCK from an int (fs/ioctl.c, ioctl_fionbio)
        (nonblock,) = INT.unpack(t.process.mem.read(arg, INT.size))
        return sys_fcntl(k, t, fd, F_SETFL, (sys_fcntl(k, t, fd, F_GETFL, 0) & ~O_NONBLOCK)
                         | (O_NONBLOCK if nonblock else 0))  # fmt: skip
    if req in (FIOCLEX, FIONCLEX):
        t.process.fds.fds[s32(fd)].cloexec = req == FIOCLEX
        return 0
    if req == FIONREAD and isinstance(f, PipeEnd):
        t.process.mem.write(arg, INT.pack(len(f.pipe.buf)))
        return 0
    return -E.ENOTTY
