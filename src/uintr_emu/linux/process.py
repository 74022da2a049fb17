"""Processes, threads and open files of the Linux personality."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..engine.unicorn import Engine
    from .mm import AddressSpace
    from .signals import SigAction


class ThreadState(Enum):
    RUNNABLE = "runnable"
    BLOCKED = "blocked"
    DEAD = "dead"


@dataclass
class Wait:
    """Why a blocked thread sleeps and how it wakes (a futex, a pipe, a timer, a child)."""

    kind: str  # "futex", "sleep", "pipe-read", "pipe-write", "poll", "wait4", "uintr"
    deadline: int | None = None  # virtual ns, absolute
    key: Any = None
    bitset: int = 0xFFFF_FFFF
    interruptible: bool = True  # a signal (or a WAITING-flag user interrupt) ends it: -EINTR
    on_timeout: int = 0  # the syscall's result when the deadline passes
    restart: bool = False  # woken by `Kernel.notify`: the syscall runs again (ERESTARTSYS)
    expired: Callable[[], None] | None = None  # what the call does to user memory at timeout


# --- open files ---------------------------------------------------------------------------


class File:
    """Base of every open file description (shared by dup'd fds and across fork)."""

    kind = "file"
    nonblock = False
    refs = 0  # how many fds, in any process, refer to this description

    def close(self) -> None:  # the last fd referring to it was closed
        pass


class HostFile(File):
    """A real host file descriptor (regular files, directories, the terminal, /dev/null)."""

    kind = "host"

    def __init__(self, fd: int, path: str = "", *, owned: bool = True):
        self.fd = fd
        self.path = path  # host path
        self.gpath = path  # the guest's absolute path (differs from `path` under --root)
        self.owned = owned
        self.dir_entries: list[tuple[bytes, int, int]] | None = None  # getdents64 state
        self.dir_pos = 0

    def close(self) -> None:
        if self.owned:
            try:
                os.close(self.fd)
            except OSError:
                pass


class Pipe:
    CAPACITY = 65536

    def __init__(self, wake: Callable[[Any], None] | None = None) -> None:
        self.buf = bytearray()
        self.readers = 0
        self.writers = 0
        self.born_ns = 0  # CLOCK_REALTIME at pipe2: the inode's times (fstat)
        # Wakes the threads waiting on the pipe (Scheduler.notify): readers when the last
        # writer goes (they then read EOF), writers and pollers when the last reader goes
        # (EPIPE, POLLERR), as pipe_release's wake_up_interruptible_all does.
        self.wake = wake


class PipeEnd(File):
    kind = "pipe"

    def __init__(self, pipe: Pipe, write: bool):
        self.pipe = pipe
        self.write_end = write
        if write:
            pipe.writers += 1
        else:
            pipe.readers += 1

    def close(self) -> None:
        pipe = self.pipe
        if self.write_end:
            pipe.writers -= 1
            last = pipe.writers == 0
        else:
            pipe.readers -= 1
            last = pipe.readers == 0
        if last and pipe.wake is not None:
            pipe.wake(pipe)


@dataclass
class FdEntry:
    file: File
    cloexec: bool = False


class FdTable:
    def __init__(self) -> None:
        self.fds: dict[int, FdEntry] = {}

    @staticmethod
    def _ref(f: File, d: int) -> None:
        f.refs += d
        if f.refs <= 0:
            f.close()

    def install(self, f: File, *, cloexec: bool = False, lowest: int = 0) -> int:
        fd = lowest
        while fd in self.fds:
            fd += 1
        self.fds[fd] = FdEntry(f, cloexec)
        self._ref(f, +1)
        return fd

    def install_at(self, fd: int, f: File, *, cloexec: bool = False) -> None:
        if fd in self.fds:
            self.close(fd)
        self.fds[fd] = FdEntry(f, cloexec)
        self._ref(f, +1)

    def get(self, fd: int) -> File | None:
        e = self.fds.get(fd)
        return e.file if e else None

    def close(self, fd: int) -> bool:
        e = self.fds.pop(fd, None)
        if e is None:
            return False
        self._ref(e.file, -1)
        return True

    def close_all(self) -> None:
        for fd in list(self.fds):
            self.close(fd)

    def copy(self) -> FdTable:
        """fork: the child's table refers to the same open file descriptions."""
        t = FdTable()
        for fd, e in self.fds.items():
            t.fds[fd] = FdEntry(e.file, e.cloexec)
            t._ref(e.file, +1)
        return t


# --- processes and threads ----------------------------------------------------------------


#: The process group and session of the first process's parent (see Process.pgid): an id no
#: guest process gets (they start at 1001).
INIT_GROUP = 1000


@dataclass
class Process:
    pid: int
    ppid: int
    engine: Engine
    mem: AddressSpace
    fds: FdTable
    exe: str
    cwd: str
    sigactions: dict[int, SigAction] = field(default_factory=dict)
    threads: list[Thread] = field(default_factory=list)
    exit_status: int | None = None  # wait status once the process has ended
    children: list[Process] = field(default_factory=list)
    loaded: Thread | None = None  # the thread whose registers are in the engine
    uitt: Any = None  # per-process UITT (uintr-next ABI)
    itimer: tuple[int, int] | None = None  # ITIMER_REAL: (deadline ns, interval ns)
    wait_status: int = 0  # the status wait4 reports once the process has ended
    exit_signal: int = 0  # sent to the parent at exit (SIGCHLD for fork)
    umask: int = 0o022  # fs_struct's umask: the threads share it, fork copies it
    # Process group and session (fork copies them). The first process is in the group and
    # session of its invisible parent (INIT_GROUP), as a program a shell starts is in the
    # shell's session, and leads neither.
    pgid: int = 0
    sid: int = 0
    # The CPU time (ns) of the children it reaped and of theirs (signal->cutime), and its
    # supplementary groups (setgroups; None: the emulator's own).
    children_ns: int = 0
    groups: list[int] | None = None
    nice: int = 0  # setpriority (fork copies it)
    persona: int = 0  # personality (fork copies it)
    membarrier_private: bool = False  # MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED was made


def host_umask() -> int:
    """The emulator's own umask, read without changing it: the first guest inherits it, as a
    process inherits its parent's (0o022, init's, if /proc cannot tell)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8) & 0o777
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


@dataclass(eq=False)
class Thread:
    tid: int
    process: Process
    ctx: Any  # the engine context holding this thread's registers while it is not loaded
    state: ThreadState = ThreadState.RUNNABLE
    cpu: int = 0  # the virtual CPU it last ran on (placement)
    affinity: int = 0  # bitmask of allowed CPUs
    clear_child_tid: int = 0
    robust_list: int = 0
    sigmask: int = 0
    pending: deque[Any] = field(default_factory=deque)  # queued signals (siginfo records)
    altstack: tuple[int, int, int] = (0, 2, 0)  # ss_sp, ss_flags (SS_DISABLE=2), ss_size
    wait: Wait | None = None
    result: int | None = None  # value to put in RAX before the thread next runs
    insns: int = 0  # counted guest instructions executed
    charge: int = 0  # kernel work (virtual ns) to put on the clock when it next runs
    syscalls: int = 0
    fault: Any = None  # a pending synchronous fault signal
    sig_contexts: dict[int, Any] = field(default_factory=dict)  # frame addr -> saved context
    uintr: Any = None  # the thread's saved UINTR state (linux.uintr)
    exit_code: int = 0
    restart: bool = False  # re-execute the syscall instruction before running again
    saved_sigmask: int | None = None  # rt_sigsuspend: the mask the handler's sigreturn restores
    # A signal ended its system call with this -ERESTART* code (errno.py), RAX still holding
    # the call's number: delivery makes it EINTR or a restart (Signals.restart).
    interrupted: int = 0

    @property
    def runnable(self) -> bool:
        return self.state is ThreadState.RUNNABLE
