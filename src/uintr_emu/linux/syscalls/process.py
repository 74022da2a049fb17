"""Processes: fork, vfork, execve, wait4, waitid."""

from __future__ import annotations

import os
import struct
from typing import TYPE_CHECKING

from ...engine.unicorn import PAGE
from .. import errno as E
from ..abi import INT, SIGINFO_CHLD, SIGINFO_SIZE
from ..control import BLOCK
from ..mm import GuestFault
from ..process import Wait
from ..signals import SIGCHLD
from . import syscall
from .misc import RLIMIT_STACK, RLIMITS
from .paths import FDCWD, host_path, s32
from .thread import CLONE_VFORK, CLONE_VM, create_thread
from .time import process_ns
from .time import rusage as rusage_of

if TYPE_CHECKING:
    from ..kernel import Kernel
    from ..mm import AddressSpace
    from ..process import Process, Thread

WNOHANG, WUNTRACED, WEXITED, WNOWAIT = 1, 2, 4, 0x0100_0000
P_ALL, P_PID = 0, 1
CLD_EXITED, CLD_KILLED = 1, 2


@syscall(57)
def sys_fork(k: Kernel, t: Thread) -> int:
    return create_thread(k, t, SIGCHLD, 0, 0, 0, 0, "fork")


@syscall(58)
def sys_vfork(k: Kernel, t: Thread) -> int:
    return create_thread(k, t, CLONE_VFORK | SIGCHLD, 0, 0, 0, 0, "vfork")


# fs/exec.c and include/uapi/linux/binfmts.h
MAX_ARG_STRLEN = 32 * PAGE  # one argument or environment string, its NUL included
MAX_ARG_STRINGS = 0x7FFF_FFFF
ARG_MAX = 32 * PAGE
_STK_LIM = 8 << 20
_NULL = bytes(8)


def arg_room() -> int:
    """bprm_stack_limits: the strings and their pointers get a quarter of RLIMIT_STACK (the
    8 MiB stack the emulator maps: 2 MiB), at most 3/4 of _STK_LIM, at least ARG_MAX."""
    return max(min(_STK_LIM // 4 * 3, RLIMITS[RLIMIT_STACK][0] // 4), ARG_MAX)


def _count(mem: AddressSpace, addr: int, keep: int) -> tuple[list[int], int] | int:
    """count(): walk a NULL-terminated argv/envp array (NULL itself is empty); the number of
    pointers and the first `keep` of them. -EFAULT when the walk meets a bad address before
    the NULL, -E2BIG past MAX_ARG_STRINGS pointers."""
    ptrs: list[int] = []
    n = 0
    while addr:
        v = mem.find(addr)
        size = (min(v.end, addr + 0x10000) - addr) & ~7 if v is not None else 0
        try:  # the pointers up to the end of this mapping (8 bytes if one straddles it)
            chunk = mem.read(addr, size or 8)
        except GuestFault:
            return -E.EFAULT
        end = chunk.find(_NULL)
        while end > 0 and end % 8:
            end = chunk.find(_NULL, end + 1)
        found = end >= 0
        if not found:
            end = len(chunk)
        if n + end // 8 > MAX_ARG_STRINGS:
            return -E.E2BIG
        if len(ptrs) < keep:
            ptrs += struct.unpack(f"<{end // 8}Q", chunk[:end])[: keep - len(ptrs)]
        n += end // 8
        if found:
            break
        addr += len(chunk)
    return ptrs, n


def _arg_string(mem: AddressSpace, addr: int) -> bytes | int:
    """copy_strings of one string: strnlen_user(str, MAX_ARG_STRLEN) gives -EFAULT at a bad
    address before the NUL, and valid_arg_len -E2BIG when the first MAX_ARG_STRLEN bytes hold
    no NUL."""
    out = b""
    while True:
        v = mem.find(addr)
        if v is None:
            return -E.EFAULT
        try:
            chunk = mem.read(addr, min(v.end - addr, MAX_ARG_STRLEN - len(out)))
        except GuestFault:
            return -E.EFAULT
        nul = chunk.find(0)
        if nul >= 0:
            return out + chunk[:nul]
        out += chunk
        if len(out) >= MAX_ARG_STRLEN:
            return -E.E2BIG
        addr += len(chunk)


def exec_strings(mem: AddressSpace, filename: bytes, argv: int,
                 envp: int) -> tuple[list[bytes], list[bytes]] | int:  # fmt: skip
    """argv and envp as do_execveat_common reads them, with its errors in its order: count
    argv then envp; bprm_stack_limits (their pointers must fit in arg_room()); then the
    strings, the filename first, then envp and argv each from the last string back, each
    taking its length from the room (E2BIG once it is used up)."""
    room = arg_room()
    counted = []
    for array in (argv, envp):
        c = _count(mem, array, room // 8 + 1)
        if isinstance(c, int):
            return c
        counted.append(c)
    (aptrs, argc), (eptrs, envc) = counted
    room -= (max(argc, 1) + envc) * 8  # an empty argv gets one "" (below)
    room -= len(filename) + 1
    if room < 0:
        return -E.E2BIG
    out: list[list[bytes]] = []
    for ptrs in (eptrs, aptrs):
        strs = []
        for ptr in reversed(ptrs):
            s = _arg_string(mem, ptr)
            if isinstance(s, int):
                return s
            room -= len(s) + 1
            if room < 0:
                return -E.E2BIG
            strs.append(s)
        out.append(strs[::-1])
    env, args = out
    if not args:  # argv[0] is "" rather than nothing (do_execveat_common, since Linux 5.18)
        if room < 1:
            return -E.E2BIG
        args = [b""]
    return args, env


@syscall(59, path="str")
def sys_execve(k: Kernel, t: Thread, path: int, argv: int, envp: int) -> int | object:
    mem = t.process.mem
    filename = mem.read_cstr(path)
    hp = host_path(k, t.process, FDCWD, filename, readonly=True)
    if isinstance(hp, int):
        return hp
    # The file is opened before the arguments are read (alloc_bprm -> do_open_execat).
    if not os.path.exists(hp):
        return -E.ENOENT
    if not os.path.isfile(hp) or not os.access(hp, os.X_OK):
        return -E.EACCES
    strings = exec_strings(mem, filename, argv, envp)
    if isinstance(strings, int):
        return strings
    args, env = strings
    return k.tasks.exec(t, hp, [os.fsdecode(a) for a in args], [os.fsdecode(e) for e in env])


def _reapable(k: Kernel, parent: Process, pid: int) -> tuple[list[Process], list[Process]]:
    kids = [c for c in parent.children if pid in (-1, 0) or c.pid == pid]
    return kids, [c for c in kids if c.exit_status is not None]


def _reap(k: Kernel, parent: Process, child: Process) -> None:
    """release_task after wait_task_zombie: the child's CPU time, with its own reaped
    children's, becomes the parent's children's time."""
    parent.children_ns += process_ns(k, child) + child.children_ns
    parent.children.remove(child)
    k.processes.pop(child.pid, None)


@syscall(61, pid="int", options="hex")
def sys_wait4(k: Kernel, t: Thread, pid: int, status: int, options: int,
              rusage: int) -> int | object:  # fmt: skip
    pid = s32(pid)
    p = t.process
    kids, done = _reapable(k, p, pid)
    if not kids:
        return -E.ECHILD
    if done:
        child = done[0]
        if status:
            p.mem.write(status, INT.pack(child.wait_status))
        if rusage:  # getrusage(child, RUSAGE_BOTH): its own time and its children's
            p.mem.write(rusage, rusage_of(process_ns(k, child) + child.children_ns))
        _reap(k, p, child)
        return child.pid
    if options & WNOHANG:
        return 0
    k.sched.block(t, Wait("wait4", key=p, restart=True))
    return BLOCK


@syscall(247, idtype="int", id="int", options="hex")
def sys_waitid(k: Kernel, t: Thread, idtype: int, id: int, infop: int, options: int,
               ru: int) -> int | object:  # fmt: skip
    p = t.process
    pid = -1 if idtype == P_ALL else s32(id)
    if idtype not in (P_ALL, P_PID) or not options & WEXITED:
        return -E.EINVAL
    kids, done = _reapable(k, p, pid)
    if not kids:
        return -E.ECHILD
    if done:
        c = done[0]
        code, st = (CLD_KILLED, c.wait_status) if c.wait_status & 0x7F else (
            CLD_EXITED, c.wait_status >> 8)  # fmt: skip
        if infop:
            p.mem.write(infop, SIGINFO_CHLD.pack(SIGCHLD, 0, code, c.pid, 0, st))
        if ru:
            p.mem.write(ru, rusage_of(process_ns(k, c) + c.children_ns))
        if not options & WNOWAIT:
            _reap(k, p, c)
        return 0
    if options & WNOHANG:
        if infop:
            p.mem.write(infop, bytes(SIGINFO_SIZE))
        return 0
    k.sched.block(t, Wait("wait4", key=p, restart=True))
    return BLOCK


# A clone that is not a thread is a fork (kernel.fork); CLONE_VM without CLONE_THREAD is not
# supported (EINVAL in create_thread).
__all__ = ["CLONE_VM"]
