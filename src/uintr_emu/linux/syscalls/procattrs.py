"""Process attributes found missing in the x86-64 table audit (docs/linux.md): the credential
calls (the guest's credentials are the emulator's and stay so), capabilities, nice values,
scheduling priorities, execveat, personality, getcpu, get_robust_list, membarrier, setrlimit,
and the memory calls that change nothing in an emulator whose memory is always resident
(mlock and its family, msync, mincore)."""

from __future__ import annotations

import os
import struct
from typing import TYPE_CHECKING

from ...engine.unicorn import PAGE
from .. import errno as E
from ..abi import U32, U64
from ..process import HostFile
from . import syscall
from .misc import sys_prlimit64
from .paths import AT_EMPTY_PATH, AT_SYMLINK_NOFOLLOW, FDCWD, host_path, s32
from .process import exec_strings

if TYPE_CHECKING:
    from ..kernel import Kernel
    from ..mm import AddressSpace
    from ..process import Process, Thread

UNCHANGED = 0xFFFF_FFFF  # (uid_t) -1: "leave this id as it is"


# --- credentials (kernel/sys.c) ---------------------------------------------------------------


def _same_ids(want: tuple[int, ...], have: tuple[int, ...]) -> int:
    """The guest cannot change its credentials (they are the emulator's, which getuid
    reports): setting ids to values they already have succeeds and changes nothing; any other
    value is EPERM, as for a process without CAP_SETUID/CAP_SETGID (a documented limit)."""
    return 0 if all(w & UNCHANGED in (UNCHANGED, *have) for w in want) else -E.EPERM


@syscall(105, uid="int")
def sys_setuid(k: Kernel, t: Thread, uid: int) -> int:
    return _same_ids((uid,), os.getresuid())


@syscall(106, gid="int")
def sys_setgid(k: Kernel, t: Thread, gid: int) -> int:
    return _same_ids((gid,), os.getresgid())


@syscall(113, ruid="int", euid="int")
def sys_setreuid(k: Kernel, t: Thread, ruid: int, euid: int) -> int:
    return _same_ids((ruid, euid), os.getresuid())


@syscall(114, rgid="int", egid="int")
def sys_setregid(k: Kernel, t: Thread, rgid: int, egid: int) -> int:
    return _same_ids((rgid, egid), os.getresgid())


@syscall(117, ruid="int", euid="int", suid="int")
def sys_setresuid(k: Kernel, t: Thread, ruid: int, euid: int, suid: int) -> int:
    return _same_ids((ruid, euid, suid), os.getresuid())


@syscall(119, rgid="int", egid="int", sgid="int")
def sys_setresgid(k: Kernel, t: Thread, rgid: int, egid: int, sgid: int) -> int:
    return _same_ids((rgid, egid, sgid), os.getresgid())


def _put_ids(t: Thread, ids: tuple[int, int, int], *addrs: int) -> int:
    for value, addr in zip(ids, addrs, strict=True):
        t.process.mem.write(addr, U32.pack(value))
    return 0


@syscall(118)
def sys_getresuid(k: Kernel, t: Thread, ruid: int, euid: int, suid: int) -> int:
    return _put_ids(t, os.getresuid(), ruid, euid, suid)


@syscall(120)
def sys_getresgid(k: Kernel, t: Thread, rgid: int, egid: int, sgid: int) -> int:
    return _put_ids(t, os.getresgid(), rgid, egid, sgid)


@syscall(122, fsuid="int")
def sys_setfsuid(k: Kernel, t: Thread, fsuid: int) -> int:
    return os.geteuid()  # the old fsuid (the euid); it never fails and here never changes


@syscall(123, fsgid="int")
def sys_setfsgid(k: Kernel, t: Thread, fsgid: int) -> int:
    return os.getegid()


# linux/capability.h: the header versions and how many 32-bit words each copies
CAP_VERSIONS = {0x19980330: 1, 0x20071026: 2, 0x20080522: 2}
CAP_VERSION_3 = 0x20080522
CAP_DATA = struct.Struct("<III")  # struct __user_cap_data_struct: effective, permitted, inheritable


def _own_caps() -> tuple[int, int, int]:
    """The emulator's capability sets (effective, permitted, inheritable), which are the
    guest's as its uid is: /proc/self/status, or none if it cannot tell."""
    caps = {"CapEff": 0, "CapPrm": 0, "CapInh": 0}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in caps:
                    caps[key] = int(value, 16)
    except (OSError, ValueError):
        pass
    return caps["CapEff"], caps["CapPrm"], caps["CapInh"]


def _cap_header(k: Kernel, t: Thread, header: int, data: int) -> int:
    """cap_validate_magic, then the pid: the number of 32-bit words to copy, or -errno (an
    unknown version is EINVAL, and the header gets the preferred one; without a data
    pointer that is a query: 0)."""
    version, pid = struct.unpack("<Ii", t.process.mem.read(header, 8))
    words = CAP_VERSIONS.get(version)
    if words is None:
        t.process.mem.write(header, U32.pack(CAP_VERSION_3))
        return 0 if not data else -E.EINVAL
    if pid < 0:
        return -E.EINVAL
    if pid and k.threads.get(pid) is None:
        return -E.ESRCH
    return words


@syscall(125)
def sys_capget(k: Kernel, t: Thread, header: int, data: int) -> int:
    words = _cap_header(k, t, header, data)
    if words <= 0 or not data:
        return min(words, 0)
    sets = _own_caps()
    out = b"".join(
        CAP_DATA.pack(*(c >> (32 * i) & 0xFFFF_FFFF for c in sets)) for i in range(words)
    )
    t.process.mem.write(data, out)
    return 0


@syscall(126)
def sys_capset(k: Kernel, t: Thread, header: int, data: int) -> int:
    """The capability sets are the emulator's and do not change: setting the ones the
    process has is 0, anything else EPERM (for another process too, as in Linux)."""
    words = _cap_header(k, t, header, data)
    if words <= 0:
        return words or -E.EINVAL
    pid = struct.unpack("<i", t.process.mem.read(header + 4, 4))[0]
    if pid not in (0, t.tid, t.process.pid):
        return -E.EPERM
    raw = t.process.mem.read(data, CAP_DATA.size * words)
    want = [0, 0, 0]
    for i in range(words):
        for j, v in enumerate(CAP_DATA.unpack_from(raw, CAP_DATA.size * i)):
            want[j] |= v << (32 * i)
    return 0 if tuple(want) == _own_caps() else -E.EPERM


# --- nice values and scheduling priorities -------------------------------------------------

PRIO_PROCESS, PRIO_PGRP, PRIO_USER = 0, 1, 2
SCHED_OTHER, SCHED_FIFO, SCHED_RR, SCHED_BATCH, SCHED_IDLE, SCHED_DEADLINE = 0, 1, 2, 3, 5, 6


def _prio_targets(k: Kernel, t: Thread, which: int, who: int) -> list[Process] | int:
    """The processes PRIO_PROCESS/PGRP/USER and `who` (0: the caller's) name; a nice value is
    kept per process (Linux keeps it per thread)."""
    who = s32(who)
    live = [p for p in k.processes.values() if p.exit_status is None]
    if which == PRIO_PROCESS:
        if who == 0:
            return [t.process]
        th = k.threads.get(who)
        return [th.process] if th is not None and th.process.exit_status is None else []
    if which == PRIO_PGRP:
        return [p for p in live if p.pgid == (who or t.process.pgid)]
    if which == PRIO_USER:
        return live if who in (0, os.getuid()) else []
    return -E.EINVAL


@syscall(140, which="int", who="int")
def sys_getpriority(k: Kernel, t: Thread, which: int, who: int) -> int:
    """The best (lowest) nice value of the targets, as 20 - nice (the raw call's form)."""
    targets = _prio_targets(k, t, s32(which), who)
    if isinstance(targets, int):
        return targets
    if not targets:
        return -E.ESRCH
    return 20 - min(p.nice for p in targets)


@syscall(141, which="int", who="int", prio="int")
def sys_setpriority(k: Kernel, t: Thread, which: int, who: int, prio: int) -> int:
    """set_one_prio: the value is clamped to [-20, 19]; lowering it needs CAP_SYS_NICE, which
    the guest has only when the emulator runs as root (EACCES otherwise)."""
    targets = _prio_targets(k, t, s32(which), who)
    if isinstance(targets, int):
        return targets
    if not targets:
        return -E.ESRCH
    nice = min(max(s32(prio), -20), 19)
    for p in targets:
        if nice < p.nice and os.geteuid() != 0:
            return -E.EACCES
        p.nice = nice
    return 0


def _priority_range(policy: int) -> tuple[int, int] | None:
    if policy in (SCHED_FIFO, SCHED_RR):
        return 1, 99  # MAX_RT_PRIO - 1
    if policy in (SCHED_OTHER, SCHED_BATCH, SCHED_IDLE, SCHED_DEADLINE):
        return 0, 0
    return None


@syscall(146, policy="int")
def sys_sched_get_priority_max(k: Kernel, t: Thread, policy: int) -> int:
    r = _priority_range(s32(policy))
    return -E.EINVAL if r is None else r[1]


@syscall(147, policy="int")
def sys_sched_get_priority_min(k: Kernel, t: Thread, policy: int) -> int:
    r = _priority_range(s32(policy))
    return -E.EINVAL if r is None else r[0]


def _sched_target(k: Kernel, t: Thread, pid: int) -> Thread | int:
    pid = s32(pid)
    if pid < 0:
        return -E.EINVAL
    target = t if pid == 0 else k.threads.get(pid)
    return -E.ESRCH if target is None else target


@syscall(145, pid="int")
def sys_sched_getscheduler(k: Kernel, t: Thread, pid: int) -> int:
    """Every guest thread is SCHED_OTHER: the scheduler has no other class."""
    target = _sched_target(k, t, pid)
    return target if isinstance(target, int) else SCHED_OTHER


@syscall(143, pid="int")
def sys_sched_getparam(k: Kernel, t: Thread, pid: int, param: int) -> int:
    target = _sched_target(k, t, pid)
    if isinstance(target, int):
        return target
    if not param:
        return -E.EINVAL
    t.process.mem.write(param, U32.pack(0))  # sched_priority: 0 for SCHED_OTHER
    return 0


# --- small process facts ---------------------------------------------------------------------

PER_QUERY = 0xFFFF_FFFF


@syscall(135, persona="hex")
def sys_personality(k: Kernel, t: Thread, persona: int) -> int:
    """Returns the old persona and keeps the new one (a process's, copied by fork). Its flags
    change nothing: the emulator's layout is never randomized (ADDR_NO_RANDOMIZE holds
    anyway) and there is no 32-bit personality."""
    p = t.process
    old = p.persona
    if persona & 0xFFFF_FFFF != PER_QUERY:
        p.persona = persona & 0xFFFF_FFFF
    return old


@syscall(309)
def sys_getcpu(k: Kernel, t: Thread, cpu: int, node: int, tcache: int) -> int:
    if cpu:
        t.process.mem.write(cpu, U32.pack(t.cpu))
    if node:
        t.process.mem.write(node, U32.pack(0))  # one NUMA node
    return 0


ROBUST_LIST_HEAD_SIZE = 24  # sizeof(struct robust_list_head)


@syscall(274, pid="int")
def sys_get_robust_list(k: Kernel, t: Thread, pid: int, head: int, size: int) -> int:
    target = t if s32(pid) == 0 else k.threads.get(s32(pid))
    if target is None:
        return -E.ESRCH
    t.process.mem.write(size, U64.pack(ROBUST_LIST_HEAD_SIZE))
    t.process.mem.write(head, U64.pack(target.robust_list))
    return 0


# kernel/sched/membarrier.c commands
MEMBARRIER_CMD_QUERY, MEMBARRIER_CMD_GLOBAL, MEMBARRIER_CMD_GLOBAL_EXPEDITED = 0, 1, 2
MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, MEMBARRIER_CMD_PRIVATE_EXPEDITED = 4, 8
MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED = 16
MEMBARRIERS = 0x1F  # the five above: the emulator's CPUs never run guest code at once


@syscall(324, cmd="hex", flags="hex", cpu_id="int")
def sys_membarrier(k: Kernel, t: Thread, cmd: int, flags: int, cpu_id: int) -> int:
    """Guest threads take turns on one host thread, so every CPU has passed a full barrier by
    the time another runs: each supported command only keeps Linux's rules (a private
    expedited barrier needs the process's registration first: EPERM)."""
    cmd = s32(cmd)
    if flags:
        return -E.EINVAL
    if cmd == MEMBARRIER_CMD_QUERY:
        return MEMBARRIERS
    if cmd not in (1, 2, 4, 8, 16):
        return -E.EINVAL
    p = t.process
    if cmd == MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED:
        p.membarrier_private = True
    elif cmd == MEMBARRIER_CMD_PRIVATE_EXPEDITED and not p.membarrier_private:
        return -E.EPERM
    return 0


@syscall(322, dirfd="int", path="str", flags="hex")
def sys_execveat(k: Kernel, t: Thread, dirfd: int, path: int, argv: int, envp: int,
                 flags: int) -> int | object:  # fmt: skip
    """execve of a path relative to dirfd, or with AT_EMPTY_PATH and an empty path of the
    file dirfd is open on (glibc's fexecve); AT_SYMLINK_NOFOLLOW makes a symbolic link ELOOP.
    The kernel names the program "/dev/fd/N" or "/dev/fd/N/path" when dirfd is a descriptor
    (the filename a script interpreter is given)."""
    if flags & ~(AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW):
        return -E.EINVAL
    p = t.process
    name = p.mem.read_cstr(path)
    if not name:
        if not flags & AT_EMPTY_PATH:
            return -E.ENOENT
        f = p.fds.get(s32(dirfd))
        if f is None:
            return -E.EBADF
        if not isinstance(f, HostFile):
            return -E.EACCES
        hp: str | int = f.path
        filename = b"/dev/fd/%d" % s32(dirfd)
    else:
        hp = host_path(k, p, dirfd, name, follow=not flags & AT_SYMLINK_NOFOLLOW, readonly=True)
        relative = not name.startswith(b"/") and s32(dirfd) != FDCWD
        filename = b"/dev/fd/%d/%s" % (s32(dirfd), name) if relative else name
    if isinstance(hp, int):
        return hp
    if flags & AT_SYMLINK_NOFOLLOW and os.path.islink(hp):
        return -E.ELOOP
    if not os.path.exists(hp):
        return -E.ENOENT
    if not os.path.isfile(hp) or not os.access(hp, os.X_OK):
        return -E.EACCES
    strings = exec_strings(p.mem, filename, argv, envp)
    if isinstance(strings, int):
        return strings
    args, env = strings
    return k.tasks.exec(t, hp, [os.fsdecode(a) for a in args], [os.fsdecode(e) for e in env])


@syscall(160, resource="int")
def sys_setrlimit(k: Kernel, t: Thread, resource: int, rlim: int) -> int:
    return sys_prlimit64(k, t, 0, resource, rlim, 0)


# --- memory that is always resident -----------------------------------------------------------


def _range(mem: AddressSpace, addr: int, length: int, *, aligned: bool) -> int:
    """The pages of [addr, addr+length): EINVAL for an unaligned start where the call wants
    one, ENOMEM if any page is not mapped; else 0."""
    if aligned and addr % PAGE:
        return -E.EINVAL
    start, end = addr - addr % PAGE, addr + length
    if end < start:
        return -E.ENOMEM
    while start < end:
        v = mem.find(start)
        if v is None:
            return -E.ENOMEM
        start = v.end
    return 0


@syscall(149, length="int")
def sys_mlock(k: Kernel, t: Thread, addr: int, length: int) -> int:
    return _range(t.process.mem, addr, length, aligned=False)


@syscall(325, length="int", flags="hex")
def sys_mlock2(k: Kernel, t: Thread, addr: int, length: int, flags: int) -> int:
    if flags & ~1:  # MLOCK_ONFAULT
        return -E.EINVAL
    return sys_mlock(k, t, addr, length)


@syscall(150, length="int")
def sys_munlock(k: Kernel, t: Thread, addr: int, length: int) -> int:
    return _range(t.process.mem, addr, length, aligned=False)


@syscall(151, flags="hex")
def sys_mlockall(k: Kernel, t: Thread, flags: int) -> int:
    if not flags or flags & ~7 or flags == 4:  # MCL_CURRENT, MCL_FUTURE, MCL_ONFAULT
        return -E.EINVAL
    return 0


@syscall(152)
def sys_munlockall(k: Kernel, t: Thread) -> int:
    return 0


@syscall(26, length="int", flags="hex")
def sys_msync(k: Kernel, t: Thread, addr: int, length: int, flags: int) -> int:
    """Shared file mappings are the host file's pages, so there is nothing to write back:
    only msync's checks (unknown flags, MS_ASYNC with MS_SYNC, an unaligned start: EINVAL;
    a hole: ENOMEM)."""
    if flags & ~7 or flags & 1 and flags & 4:
        return -E.EINVAL
    return _range(t.process.mem, addr, length, aligned=True)


@syscall(27, length="int")
def sys_mincore(k: Kernel, t: Thread, addr: int, length: int, vec: int) -> int:
    """Every mapped page is resident (1 in its byte)."""
    err = _range(t.process.mem, addr, length, aligned=True)
    if err:
        return err
    t.process.mem.write(vec, b"\1" * ((length + PAGE - 1) // PAGE))
    return 0
