"""Threads and process identity: clone/clone3, exit, ids, affinity, arch_prctl, rseq."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ...engine import unicorn as eng
from .. import errno as E
from ..abi import CLONE_ARGS
from ..control import RESTART
from ..signals import NSIG
from ..tasks import put_tid
from . import syscall
from .paths import s32

if TYPE_CHECKING:
    from ..kernel import Kernel
    from ..process import Process, Thread

CLONE_VM, CLONE_FS, CLONE_FILES, CLONE_SIGHAND = 0x100, 0x200, 0x400, 0x800
CLONE_VFORK, CLONE_PARENT, CLONE_THREAD = 0x4000, 0x8000, 0x10000
CLONE_SYSVSEM, CLONE_SETTLS, CLONE_PARENT_SETTID = 0x40000, 0x80000, 0x100000
CLONE_CHILD_CLEARTID, CLONE_DETACHED, CLONE_CHILD_SETTID = 0x200000, 0x400000, 0x1000000
THREAD_FLAGS = CLONE_VM | CLONE_SIGHAND | CLONE_THREAD
CSIGNAL = 0xFF  # the exit signal in clone's flags
ARCH_SET_GS, ARCH_SET_FS, ARCH_GET_FS, ARCH_GET_GS = 0x1001, 0x1002, 0x1003, 0x1004


def create_thread(k: Kernel, t: Thread, flags: int, stack: int, ptid: int, ctid: int,
                  tls: int, call: str = "clone") -> int:  # fmt: skip
    """clone, clone3, fork, vfork (`call`): a thread (CLONE_VM|CLONE_THREAD|CLONE_SIGHAND) or
    a process (Kernel.fork)."""
    if flags & THREAD_FLAGS != THREAD_FLAGS:
        # A process. With CLONE_VM only as vfork does it (posix_spawn, system, popen: the
        # parent sleeps until the child execs or exits); CLONE_VM alone, a process running
        # beside its parent in one address space, is not supported (EINVAL, docs/linux.md).
        if flags & CLONE_THREAD or (flags & CLONE_VM and not flags & CLONE_VFORK):
            return -E.EINVAL
        return k.tasks.fork(t, flags, stack, ptid, ctid, tls, call)
    p = t.process
    refused = k.tasks.limit(call, new_process=False)
    if refused is not None:
        return refused
    e = p.engine
    tid = k.new_id()
    saved = {r: e.reg_read(r) for r in (eng.RAX, eng.RSP, eng.FS_BASE)}
    # The child resumes after the syscall (RIP is there already) with RAX = 0 on its own
    # stack and TLS.
    e.reg_write(eng.RAX, 0)
    if stack:
        e.reg_write(eng.RSP, stack)
    if flags & CLONE_SETTLS:
        e.reg_write(eng.FS_BASE, tls)
    ctx = e.new_context()
    for r, v in saved.items():
        e.reg_write(r, v)
    child = k.tasks.new_thread(p, tid, ctx)
    child.affinity = t.affinity
    child.sigmask = t.sigmask
    child.cpu = t.cpu
    if flags & CLONE_PARENT_SETTID:
        put_tid(p.mem, ptid, tid)
    if flags & CLONE_CHILD_SETTID:
        put_tid(p.mem, ctid, tid)
    if flags & CLONE_CHILD_CLEARTID:
        child.clear_child_tid = ctid
    k.sched.place(child)
    return tid


@syscall(56, flags="hex")
def sys_clone(k: Kernel, t: Thread, flags: int, stack: int, ptid: int, ctid: int,
              tls: int) -> int:  # fmt: skip
    # The low byte (CSIGNAL) is the signal the parent gets when a child process exits.
    return create_thread(k, t, flags, stack, ptid, ctid, tls)


@syscall(435, size="int")
def sys_clone3(k: Kernel, t: Thread, args: int, size: int) -> int:
    if size < 64:
        return -E.EINVAL
    flags, _pidfd, ctid, ptid, exit_signal, stack, stack_size, tls = CLONE_ARGS.unpack(
        t.process.mem.read(args, CLONE_ARGS.size)
    )
    # copy_clone_args_from_user: the exit signal has its own field (CSIGNAL bits in flags are
    # EINVAL) and must be a valid signal.
    if stack and not stack_size or flags & CSIGNAL or exit_signal > NSIG:
        return -E.EINVAL
    return create_thread(k, t, flags | exit_signal, stack + stack_size if stack else 0, ptid,
                         ctid, tls, "clone3")  # fmt: skip


@syscall(218)
def sys_set_tid_address(k: Kernel, t: Thread, tidptr: int) -> int:
    t.clear_child_tid = tidptr
    return t.tid


@syscall(273, size="int")
def sys_set_robust_list(k: Kernel, t: Thread, head: int, size: int) -> int:
    if size != 24:
        return -E.EINVAL
    t.robust_list = head
    return 0


@syscall(334)
def sys_rseq(k: Kernel, t: Thread, rseq: int, size: int, flags: int, sig: int) -> int:
    return -E.ENOSYS  # glibc accepts this and runs without restartable sequences


@syscall(60, code="int")
def sys_exit(k: Kernel, t: Thread, code: int) -> object:
    k.tasks.exit_thread(t, code & 0xFF)
    return RESTART


@syscall(231, code="int")
def sys_exit_group(k: Kernel, t: Thread, code: int) -> object:
    k.tasks.exit_process(t.process, code & 0xFF)
    return RESTART


@syscall(186)
def sys_gettid(k: Kernel, t: Thread) -> int:
    return t.tid


@syscall(39)
def sys_getpid(k: Kernel, t: Thread) -> int:
    return t.process.pid


@syscall(110)
def sys_getppid(k: Kernel, t: Thread) -> int:
    return t.process.ppid


@syscall(102)
def sys_getuid(k: Kernel, t: Thread) -> int:
    return os.getuid()


@syscall(107)
def sys_geteuid(k: Kernel, t: Thread) -> int:
    return os.geteuid()


@syscall(104)
def sys_getgid(k: Kernel, t: Thread) -> int:
    return os.getgid()


@syscall(108)
def sys_getegid(k: Kernel, t: Thread) -> int:
    return os.getegid()


@syscall(24)
def sys_sched_yield(k: Kernel, t: Thread) -> int:
    if k.sched.rq(t).queue:
        t.process.engine.stop()  # the loop rotates this CPU's queue after the slice
    return 0


def _find_thread(k: Kernel, t: Thread, tid: int) -> Thread | None:
    return t if tid == 0 else k.threads.get(tid)


@syscall(204, pid="int", size="int")
def sys_sched_getaffinity(k: Kernel, t: Thread, pid: int, size: int, mask: int) -> int:
    target = _find_thread(k, t, pid)
    if target is None:
        return -E.ESRCH
    nbytes = max(8, (k.opt.cpus + 63) // 64 * 8)
    if size < nbytes or size & 7:
        return -E.EINVAL
    t.process.mem.write(mask, target.affinity.to_bytes(nbytes, "little"))
    return nbytes


@syscall(203, pid="int", size="int")
def sys_sched_setaffinity(k: Kernel, t: Thread, pid: int, size: int, mask: int) -> int:
    target = _find_thread(k, t, pid)
    if target is None:
        return -E.ESRCH
    want = int.from_bytes(t.process.mem.read(mask, min(size, 128)), "little")
    want &= (1 << k.opt.cpus) - 1
    if not want:
        return -E.EINVAL
    target.affinity = want
    if not want >> target.cpu & 1 and target.runnable:
        # Migrate now: the thread leaves a CPU it may no longer use (Scheduler.settle places
        # a loaded thread anew when its CPU's run ends; a queued one moves at once).
        rq = k.sched.rq(target)
        if target in rq.queue:
            rq.queue.remove(target)
            k.sched.place(target)
        elif target is t:
            t.process.engine.stop()
    return 0


@syscall(158, code="hex")
def sys_arch_prctl(k: Kernel, t: Thread, code: int, addr: int) -> int:
    e = t.process.engine
    if code == ARCH_SET_FS:
        e.reg_write(eng.FS_BASE, addr)
    elif code == ARCH_SET_GS:
        e.reg_write(eng.GS_BASE, addr)
    elif code == ARCH_GET_FS:
        t.process.mem.write_u64(addr, e.reg_read(eng.FS_BASE))
    elif code == ARCH_GET_GS:
        t.process.mem.write_u64(addr, e.reg_read(eng.GS_BASE))
    else:
        return -E.EINVAL
    return 0


# --- process groups and sessions (kernel/sys.c: setpgid, getpgid, getsid, setsid) ---------


def _live_process(k: Kernel, t: Thread, pid: int) -> Process | None:
    pid = s32(pid)
    p = t.process if pid == 0 else k.processes.get(pid)
    return p if p is not None and p.exit_status is None else None


@syscall(109, pid="int", pgid="int")
def sys_setpgid(k: Kernel, t: Thread, pid: int, pgid: int) -> int:
    me = t.process
    target = _live_process(k, t, pid)
    pgid = s32(pgid)
    if pgid < 0:
        return -E.EINVAL
    if target is None or (target is not me and target not in me.children):
        return -E.ESRCH
    if target.sid == target.pid:  # a session leader
        return -E.EPERM
    if target.sid != me.sid:  # a child in another session
        return -E.EPERM
    pgid = pgid or target.pid
    if pgid != target.pid and not any(
        p.pgid == pgid and p.sid == me.sid for p in k.processes.values()
    ):
        return -E.EPERM  # no such group in the caller's session
    target.pgid = pgid
    return 0


@syscall(121, pid="int")
def sys_getpgid(k: Kernel, t: Thread, pid: int) -> int:
    p = _live_process(k, t, pid)
    return -E.ESRCH if p is None else p.pgid


@syscall(111)
def sys_getpgrp(k: Kernel, t: Thread) -> int:
    return t.process.pgid


@syscall(124, pid="int")
def sys_getsid(k: Kernel, t: Thread, pid: int) -> int:
    p = _live_process(k, t, pid)
    return -E.ESRCH if p is None else p.sid


@syscall(112)
def sys_setsid(k: Kernel, t: Thread) -> int:
    me = t.process
    if any(p.pgid == me.pid for p in k.processes.values()):  # it leads a group
        return -E.EPERM
    me.pgid = me.sid = me.pid
    return me.pid


@syscall(115, size="int")
def sys_getgroups(k: Kernel, t: Thread, size: int, list_: int) -> int:
    """The supplementary groups: the emulator's own (the guest runs as its user) until the
    process sets its own (setgroups)."""
    groups = t.process.groups if t.process.groups is not None else os.getgroups()
    size = s32(size)
    if size < 0:
        return -E.EINVAL
    if size == 0:
        return len(groups)
    if size < len(groups):
        return -E.EINVAL
    t.process.mem.write(list_, b"".join(g.to_bytes(4, "little") for g in groups))
    return len(groups)


NGROUPS_MAX = 65536


@syscall(116, size="int")
def sys_setgroups(k: Kernel, t: Thread, size: int, list_: int) -> int:
    """kernel/groups.c: CAP_SETGID is needed, which the guest has when the emulator runs as
    root (its credentials are the emulator's, as getuid() says) and otherwise not (EPERM);
    more than NGROUPS_MAX is EINVAL; the list is kept sorted (groups_sort) for the process
    and its children, never applied to the host."""
    if os.geteuid() != 0:
        return -E.EPERM
    size &= 0xFFFF_FFFF
    if size > NGROUPS_MAX:
        return -E.EINVAL
    raw = t.process.mem.read(list_, 4 * size) if size else b""
    t.process.groups = sorted(
        int.from_bytes(raw[i : i + 4], "little") for i in range(0, size * 4, 4)
    )
    return 0
