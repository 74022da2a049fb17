"""Task lifecycle: the first process, threads, fork, execve, exit, and the task limits."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ..engine import unicorn as eng
from . import errno as E
from . import signals as S
from .abi import U32
from .control import RESTART, GuestExit
from .loader import LoadedProgram, LoadError, build_stack, load_elf
from .mm import AddressSpace, GuestFault, OutOfMemory
from .process import (
    INIT_GROUP,
    FdTable,
    HostFile,
    Process,
    Thread,
    ThreadState,
    Wait,
    host_umask,
)

if TYPE_CHECKING:
    from typing import Any

    from ..engine.unicorn import Engine
    from .kernel import Kernel

# clone flags (include/uapi/linux/sched.h) that fork and clone use here.
CLONE_VM, CLONE_VFORK, CLONE_SETTLS, CLONE_PARENT_SETTID = 0x100, 0x4000, 0x80000, 0x100000
CLONE_CHILD_CLEARTID, CLONE_CHILD_SETTID = 0x200000, 0x1000000
USER_RFLAGS = 0x202  # user mode always runs with IF = 1
# A new program's FPU/SSE state is the kernel's init_fpstate (fpu__init_cpu, fpstate_init_fx):
# x87 control word 0x37F (all exceptions masked, 64-bit precision, round to nearest), every
# x87 register empty, MXCSR_DEFAULT 0x1F80. The engine's reset state has zeros instead, which
# is single precision: a program that saves and restores the control word would then compute
# in single precision.
_INIT_FPU = (("fpcw", 0x37F), ("fpsw", 0), ("fptag", 0xFFFF), ("mxcsr", 0x1F80))


def start_registers(engine: Engine, rip: int, rsp: int) -> None:
    """The registers a program starts with (start_thread and the ELF loader's choices): RIP at
    the entry point, RSP at argc, RDX = 0 (no atexit function from the loader), IF set, and the
    initial FPU/SSE state."""
    engine.reg_write(eng.RSP, rsp)
    engine.reg_write(eng.RIP, rip)
    engine.reg_write(eng.GPR_IDS[2], 0)
    engine.reg_write(eng.RFLAGS, USER_RFLAGS)
    for name, value in _INIT_FPU:
        engine.reg_write(eng.register_id(name), value)


def put_tid(mem: AddressSpace, addr: int, tid: int) -> None:
    """Store a CLONE_PARENT_SETTID / CLONE_CHILD_SETTID id. A bad pointer is ignored: the
    kernel does not check put_user() there (kernel_clone for the parent's copy, schedule_tail
    for the child's), so the child exists and runs and clone returns its id."""
    if addr:
        try:
            mem.write(addr, U32.pack(tid))
        except GuestFault:
            pass


class Tasks:
    def __init__(self, k: Kernel) -> None:
        self.k = k
        self.limits_noted: set[str] = set()  # --max-threads / --max-procs, noted once each

    # --- creation -------------------------------------------------------------------------

    def spawn(self, path: str, argv: list[str], env: list[str]) -> Process:
        """The initial process: `path` loaded with `argv` and `env`, ready on a CPU."""
        k = self.k
        engine = k.machine.new_engine()
        mem = AddressSpace(engine, max_bytes=k.opt.max_memory)
        prog = load_elf(path, mem, k.opt.root)
        pid = k.new_id()
        fds = FdTable()
        for fd, host in zip((0, 1, 2), k.opt.stdio, strict=True):
            fds.install_at(fd, HostFile(host, f"<host fd {host}>", owned=False))
        cwd = os.getcwd() if k.opt.root == "/" else "/"
        proc = Process(pid, 1, engine, mem, fds, prog.path, cwd, umask=host_umask(),
                       pgid=INIT_GROUP, sid=INIT_GROUP)  # fmt: skip
        k.processes[pid] = proc
        k.init_process = proc
        rsp = self._setup_stack(mem, prog, argv, env)
        start_registers(engine, prog.start, rsp)
        t = self.new_thread(proc, pid, engine.new_context())
        t.affinity = (1 << k.opt.cpus) - 1
        proc.loaded = t
        k.sched.place(t)
        return proc

    def _setup_stack(self, mem: AddressSpace, prog: LoadedProgram, argv: list[str],
                     env: list[str]) -> int:  # fmt: skip
        enc = [a.encode("utf-8", "surrogateescape") for a in argv]
        envb = [e.encode("utf-8", "surrogateescape") for e in env]
        hwcap = self.k.machine.cpuid(1, 0)[3]  # AT_HWCAP is CPUID.1:EDX, as the kernel reports it
        return build_stack(mem, prog, enc, envb, self.k.entropy.bytes(16), hwcap, enc[0])

    def limit(self, call: str, new_process: bool) -> int | None:
        """-EAGAIN if creating a task now would pass --max-threads or (for a new process)
        --max-procs, as copy_process fails at threads-max (nr_threads) and RLIMIT_NPROC; a task
        counts until it is released, a zombie process until it is reaped. The first time for
        each limit, one note on stderr; the guest goes on (it may handle EAGAIN)."""
        k = self.k
        zombies = sum(p.exit_status is not None for p in k.processes.values())
        if len(k.threads) + zombies >= k.opt.max_threads:
            kind, option, n = "thread", "--max-threads", k.opt.max_threads
        elif new_process and len(k.processes) >= k.opt.max_procs:
            kind, option, n = "process", "--max-procs", k.opt.max_procs
        else:
            return None
        if kind not in self.limits_noted:
            self.limits_noted.add(kind)
            k.warn(f"{kind} limit reached ({option} {n}): {call} returned EAGAIN")
        return -E.EAGAIN

    def new_thread(self, proc: Process, tid: int, ctx: Any) -> Thread:
        t = Thread(tid=tid, process=proc, ctx=ctx)
        proc.threads.append(t)
        self.k.threads[tid] = t
        self.k.uintr.thread_created(t)
        return t

    def fork(self, t: Thread, flags: int, stack: int, ptid: int, ctid: int, tls: int,
             call: str = "fork") -> int:  # fmt: skip
        """clone without CLONE_VM: a child process with a copy of the address space, the same
        open files, and the calling thread's registers (RAX = 0 in the child)."""
        k = self.k
        parent = t.process
        refused = self.limit(call, new_process=True)
        if refused is not None:
            return refused
        e = parent.engine
        engine = k.machine.new_engine()
        mem = parent.mem.clone_into(engine, share_all=bool(flags & CLONE_VM))
        pid = k.new_id()
        child = Process(pid, parent.pid, engine, mem, parent.fds.copy(), parent.exe, parent.cwd)
        child.sigactions = dict(parent.sigactions)
        child.umask = parent.umask
        child.pgid, child.sid = parent.pgid, parent.sid
        child.groups, child.nice, child.persona = parent.groups, parent.nice, parent.persona
        child.exit_signal = flags & 0xFF
        parent.children.append(child)
        k.processes[pid] = child
        # The child's registers: the parent's (RIP is after the SYSCALL), with RAX = 0.
        e.save(t.ctx)
        ctx = engine.new_context()
        engine.restore(t.ctx)
        engine.reg_write(eng.RAX, 0)
        if stack:
            engine.reg_write(eng.RSP, stack)
        if flags & CLONE_SETTLS:
            engine.reg_write(eng.FS_BASE, tls)
        engine.save(ctx)
        ct = self.new_thread(child, pid, ctx)
        child.loaded = ct
        ct.affinity = t.affinity
        ct.sigmask = t.sigmask
        ct.cpu = t.cpu
        ct.altstack = t.altstack
        if flags & CLONE_CHILD_SETTID:
            put_tid(mem, ctid, pid)  # in the child's copy of memory
        if flags & CLONE_CHILD_CLEARTID:
            ct.clear_child_tid = ctid
        if flags & CLONE_PARENT_SETTID:
            put_tid(parent.mem, ptid, pid)  # in the parent's (the child's copy is already made)
        k.uintr.fork(parent, child)
        k.sched.place(ct)
        if flags & CLONE_VFORK:
            # The parent sleeps until the child execs or exits (vfork(2)).
            k.sched.block(t, Wait("vfork", key=child, interruptible=False))
            t.result = pid
            e.stop()
        return pid

    def exec(self, t: Thread, path: str, argv: list[str], env: list[str]) -> int | object:
        """execve of a program: a new address space; other threads end; CLOEXEC fds close;
        handled signals reset to default; UINTR state reset (docs/uintr.md §11.7). Whatever can
        fail (the program, its stack) is built in the new address space first: a failed execve
        leaves the caller as it was (bprm_execve fails before begin_new_exec's point of no
        return). The arguments were checked by sys_execve."""
        k = self.k
        p = t.process
        engine = k.machine.new_engine()
        mem = AddressSpace(engine, max_bytes=k.opt.max_memory)
        try:
            prog = load_elf(path, mem, k.opt.root)
        except LoadError as err:
            msg = str(err)
            if "no such file" in msg:
                return -E.ENOENT
            if "permission denied" in msg or "is a directory" in msg:
                return -E.EACCES
            return -E.ENOEXEC
        except OutOfMemory:
            return -E.ENOMEM
        except Exception:  # noqa: BLE001 - a malformed file the loader did not foresee
            return -E.ENOEXEC
        rsp = self._setup_stack(mem, prog, argv, env)
        # The point of no return (begin_new_exec).
        for other in list(p.threads):
            if other is not t and other.state is not ThreadState.DEAD:
                self._kill_thread(other)
        k.uintr.exec(t)
        for fd in [fd for fd, ent in p.fds.fds.items() if ent.cloexec]:
            p.fds.close(fd)
        for sig, act in list(p.sigactions.items()):
            if act.handler not in (S.SIG_DFL, S.SIG_IGN):
                p.sigactions[sig] = S.SigAction()
        start_registers(engine, prog.start, rsp)
        old = p.engine
        p.engine, p.mem, p.exe = engine, mem, prog.path
        t.ctx = engine.new_context()
        p.loaded = t
        t.altstack = (0, S.SS_DISABLE, 0)
        t.sig_contexts.clear()
        t.clear_child_tid = 0
        self._release_vfork(p)
        old.stop()
        cpu = k.sched.loaded_on(t)
        if cpu is not None:
            cpu.mem.user = mem  # the new address space (CR3)
        return RESTART

    def _release_vfork(self, child: Process) -> None:
        for th in list(self.k.threads.values()):
            if th.wait is not None and th.wait.kind == "vfork" and th.wait.key is child:
                self.k.sched.wake(th, th.result)

    # --- exit -----------------------------------------------------------------------------

    def exit_thread(self, t: Thread, code: int) -> None:
        p = t.process
        t.exit_code = code
        if t.clear_child_tid:
            try:
                p.mem.write(t.clear_child_tid, b"\0\0\0\0")
                self.k.futexes.wake(p, t.clear_child_tid, 1)
            except GuestFault:
                pass
        self._kill_thread(t)
        if all(x.state is ThreadState.DEAD for x in p.threads):
            self.exit_process(p, code & 0xFF)

    def _kill_thread(self, t: Thread) -> None:
        k = self.k
        if t.state is ThreadState.BLOCKED:
            k.sched.wake(t, None)
        if t.state is ThreadState.RUNNABLE:
            k.sched.dequeue(t)
        t.state = ThreadState.DEAD
        if t.wait is not None and t in k.sched.sleepers:
            k.sched.sleepers.remove(t)
        t.wait = None
        k.uintr.thread_exit(t)
        k.threads.pop(t.tid, None)
        if k.tracer.sinks:
            k.emit("thread_exit", t, code=t.exit_code)
        if t is k.sched.running:
            t.process.engine.stop()

    def exit_process(self, p: Process, status: int, signaled: int = 0) -> None:
        k = self.k
        if p.exit_status is not None:
            return
        p.exit_status = status
        if k.tracer.sinks:
            k.tracer.emit("process_exit", k.cpu.index, p.pid, pid=p.pid, status=status)
        # wait(2) status: exit code in bits 15:8, or the terminating signal in bits 6:0.
        p.wait_status = signaled if signaled else (status & 0xFF) << 8
        for t in p.threads:
            if t.state is not ThreadState.DEAD:
                self._kill_thread(t)
        p.fds.close_all()
        self._release_vfork(p)
        if p is k.init_process:
            if k.debugger is not None:
                k.debugger.exited(p)  # W<code> / X<signal> for gdb
            raise GuestExit(status)
        for c in p.children:  # orphans are reparented to init, which reaps them
            c.ppid = 1
            if c.exit_status is not None:
                k.processes.pop(c.pid, None)  # a zombie already: init reaps it now
        parent = k.processes.get(p.ppid)
        if parent is not None and parent.exit_status is None:
            # A parent waiting for it finds it first (its wait returns the child, as
            # do_wait does), then the exit signal comes: it interrupts nothing.
            k.sched.notify(parent)
            if p.exit_signal:
                k.signals.send_process(parent, S.SigInfo(p.exit_signal, S.SI_KERNEL, pid=p.pid))
        elif p.ppid == 1 or parent is None:
            k.processes.pop(p.pid, None)  # init reaps it at once
