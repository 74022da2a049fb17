"""The Linux personality: processes, the scheduler and run loop, syscalls, signals.

The run loop follows unicorn-notes §6: one host thread, one `emu_start` at a time (so guest
LOCK instructions are atomic by construction, G1); hooks record a reason and stop the engine
synchronously (G14); the loop acts on the reason. While two or more threads are runnable (or a
sleeper's timeout is armed) the virtual CPUs take turns in counted slices; a lone thread runs
unsliced at full engine speed.
"""

from __future__ import annotations

import os
import random
import struct
import threading
import time
from collections import deque
from typing import Any

from unicorn import UcError
from unicorn import unicorn_const as ucc

from ..engine import unicorn as eng
from ..engine.unicorn import Engine
from ..hw.cpu import CR4_UINTR, cpuid_adjust
from ..machine import KERNEL_BASE, Machine
from ..options import (
    DETERMINISTIC_EPOCH_NS,
    SIGNAL_DELIVERY_NS,
    SYSCALL_NS,
    UNCOUNTED_SYSCALL_NS,
    WAKEUP_NS,
    Options,
)
from . import errno as E
from . import memfault
from . import signals as S
from .control import BLOCK, RESTART, GuestExit
from .loader import LoadedProgram, build_stack, load_elf
from .mm import AddressSpace, GuestFault
from .process import FdTable, HostFile, Process, Thread, ThreadState, Wait, host_umask
from .syscalls import Syscall, registry

RUNNABLE = ThreadState.RUNNABLE

# Counted single-thread running is switched off (a translation-cache flush) only after this many
# instructions, so programs that keep blocking and waking do not flush on every switch.
UNSLICE_AFTER_INSNS = 20_000_000


class Kernel:
    def __init__(self, options: Options):
        self.opt = options
        self.machine = Machine(options.cpus, options.features)
        if options.features.uintr:
            for cpu in self.machine.cpus:  # Linux enables UINTR on every CPU at boot (§1)
                cpu.uintr.cr4 |= CR4_UINTR
        self.syscalls = registry()
        self.processes: dict[int, Process] = {}
        self.threads: dict[int, Thread] = {}
        self.next_id = 1000  # pids/tids; deterministic
        self.next_ino = 1000  # inode numbers of pipes and sockets (fstat); deterministic
        self.now = 0  # virtual ns since boot
        self.host_start = time.monotonic()
        self.total_insns = 0
        self.cpu_insns: dict[int, int] = {}
        self.thread_insns: dict[int, int] = {}
        self.init_process: Process | None = None
        self.exit_status: int | None = None
        self.futex_queues: dict[Any, deque[Thread]] = {}
        self.sleepers: list[Thread] = []
        self.warned: set[int] = set()
        self.limits_noted: set[str] = set()  # --max-threads / --max-procs, noted once each
        self.current: Thread | None = None
        self.debugger: Any = None  # the GDB stub while gdb is attached (gdbstub.py)
        self.in_engine: Thread | None = None  # the thread inside emu_start (its count is live)
        self.unsliced = False  # that run has no instruction limit
        self.current_cpu = 0
        self.counted_single = 0
        self._timed_out = threading.Event()
        self._cpuid_cache: dict[tuple[int, int], tuple[int, int, int, int]] = {}
        self._scratch: Engine | None = None
        self.rng_state = options.seed * 0x9E3779B97F4A7C15 + 0x1234567
        # --seed N (N != 0) varies slice lengths and placement, reproducibly per seed.
        self.sched_rng = random.Random(options.seed) if options.seed else None
        from ..trace import Tracer
        from .uintr import UintrKernel

        self.tracer = Tracer(self.clock_ns)

        self.uintr = UintrKernel(self)  # registers the UINTR syscalls of the chosen ABI

    # --- identities and time ------------------------------------------------------------

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def clock_ns(self) -> int:
        """Virtual time on the CPU in turn: its turn's start plus the instructions (and charged
        kernel work) of the slice so far. CPUs take turns in lockstep rounds; a turn starts no
        earlier than the round and than anything sent to the CPU (see `kick`)."""
        t = self.in_engine
        cpu = self.machine.cpus[self.current_cpu]
        if t is not None:
            e = t.process.engine
            if e.counting:
                return cpu.base + e.counter.count  # type: ignore[no-any-return]
        return max(cpu.base, self.now)  # after a turn: its end; between rounds: the round

    def kick(self, cpu: Any, now: int | None = None) -> None:
        """Something (an IPI, a wake-up, a signal) was sent to `cpu` now (`clock_ns()`, if the
        caller has not just read it): its next turn must not start earlier in virtual time
        (causality across the lockstep rounds)."""
        cpu.not_before = max(cpu.not_before, self.clock_ns() if now is None else now)

    def monotonic_ns(self) -> int:
        if self.opt.realtime:
            return time.monotonic_ns()
        return self.clock_ns() + 1_000_000_000  # boot was one second ago, like a fresh VM

    def realtime_ns(self) -> int:
        if self.opt.realtime:
            return time.time_ns()
        return DETERMINISTIC_EPOCH_NS + self.clock_ns()

    def random_bytes(self, n: int) -> bytes:
        if self.opt.realtime:
            return os.urandom(n)
        out = bytearray()
        while len(out) < n:  # splitmix64: deterministic per --seed
            self.rng_state = (self.rng_state + 0x9E3779B97F4A7C15) & (2**64 - 1)
            z = self.rng_state
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & (2**64 - 1)
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & (2**64 - 1)
            out += struct.pack("<Q", z ^ (z >> 31))
        return bytes(out[:n])

    def emit(self, kind: str, t: Thread | None, **fields: Any) -> None:
        """Report a kernel event (only called when a sink is subscribed)."""
        cpu = t.cpu if t is not None else self.current_cpu
        self.tracer.emit(kind, cpu, t.tid if t is not None else 0, **fields)

    def subscribe(self, sink: Any) -> None:
        """Receive every event from now on (trace.Event); turns the hardware's reports on."""
        self.tracer.subscribe(sink)
        for cpu in self.machine.cpus:
            cpu.uintr.events = self._hw_reporter(cpu.index)

    def _hw_reporter(self, index: int) -> Any:
        def report(kind: str, **fields: Any) -> None:
            t = self.machine.cpus[index].current
            self.tracer.emit(kind, index, t.tid if t is not None else 0, **fields)

        return report

    def warn(self, msg: str) -> None:
        os.write(self.opt.warn_stream, f"uintr-emu: {msg}\n".encode())

    # --- process creation ---------------------------------------------------------------

    def new_engine(self) -> Engine:
        e = Engine()
        e.on_syscall = self._on_syscall
        e.on_invalid = self._on_invalid
        e.on_interrupt = self._on_interrupt
        e.on_mem_fault = self._on_mem_fault
        e.on_cpuid = self._on_cpuid
        e.on_post = self.uintr.native_post
        e.on_deliver = self.uintr.native_deliver
        e.set_kernel_memory(self.machine.kmem.data, KERNEL_BASE)
        if self.opt.features.uintr:
            # Linux sets CR4.UINTR when the CPU has the feature (arch doc §1); the engine ignores
            # the bit, the hardware model keeps its own copy per CPU.
            e.reg_write(eng.CR4, e.reg_read(eng.CR4) | CR4_UINTR)
        return e

    def spawn(self, path: str, argv: list[str], env: list[str]) -> Process:
        engine = self.new_engine()
        mem = AddressSpace(engine, max_bytes=self.opt.max_memory)
        prog = load_elf(path, mem, self.opt.root)
        pid = self.new_id()
        fds = FdTable()
        for fd, host in zip((0, 1, 2), self.opt.stdio, strict=True):
            fds.install_at(fd, HostFile(host, f"<host fd {host}>", owned=False))
        cwd = os.getcwd() if self.opt.root == "/" else "/"
        proc = Process(pid, 1, engine, mem, fds, prog.path, cwd, umask=host_umask())
        self.processes[pid] = proc
        self.init_process = proc
        rsp = self._setup_stack(mem, prog, argv, env)
        engine.reg_write(eng.RSP, rsp)
        engine.reg_write(eng.RIP, prog.start)
        engine.reg_write(eng.GPR_IDS[2], 0)  # RDX = 0: no atexit function from the loader
        engine.reg_write(eng.RFLAGS, 0x202)  # user mode always runs with IF = 1
        t = self._new_thread(proc, pid, engine.new_context())
        t.affinity = (1 << self.opt.cpus) - 1
        proc.loaded = t
        self.place(t)
        return proc

    def _setup_stack(
        self, mem: AddressSpace, prog: LoadedProgram, argv: list[str], env: list[str]
    ) -> int:
        enc = [a.encode("utf-8", "surrogateescape") for a in argv]
        envb = [e.encode("utf-8", "surrogateescape") for e in env]
        # AT_HWCAP is CPUID.1:EDX, as the kernel reports it.
        hwcap = self._cpuid(1, 0)[3]
        return build_stack(mem, prog, enc, envb, self.random_bytes(16), hwcap, enc[0])

    def task_limit(self, call: str, new_process: bool) -> int | None:
        """-EAGAIN if creating a task now would pass --max-threads or (for a new process)
        --max-procs, as copy_process fails at threads-max (nr_threads) and RLIMIT_NPROC; a task
        counts until it is released, a zombie process until it is reaped. The first time for
        each limit, one note on stderr; the guest goes on (it may handle EAGAIN)."""
        zombies = sum(p.exit_status is not None for p in self.processes.values())
        if len(self.threads) + zombies >= self.opt.max_threads:
            kind, option, n = "thread", "--max-threads", self.opt.max_threads
        elif new_process and len(self.processes) >= self.opt.max_procs:
            kind, option, n = "process", "--max-procs", self.opt.max_procs
        else:
            return None
        if kind not in self.limits_noted:
            self.limits_noted.add(kind)
            self.warn(f"{kind} limit reached ({option} {n}): {call} returned EAGAIN")
        return -E.EAGAIN

    def _new_thread(self, proc: Process, tid: int, ctx: Any) -> Thread:
        t = Thread(tid=tid, process=proc, ctx=ctx)
        proc.threads.append(t)
        self.threads[tid] = t
        self.uintr.thread_created(t)
        return t

    # --- scheduling ---------------------------------------------------------------------

    def place(self, t: Thread) -> None:
        """Put a runnable thread on a CPU: its last CPU if idle, else an idle allowed CPU,
        else its last CPU's queue (wake-affine, like CFS's select_idle_sibling)."""
        cpus = self.machine.cpus
        allowed = [c for c in cpus if t.affinity >> c.index & 1] or cpus
        prev = cpus[t.cpu] if t.cpu < len(cpus) and cpus[t.cpu] in allowed else allowed[0]
        if not prev.busy:
            target = prev
        else:
            idle = [c for c in allowed if not c.busy]
            if idle and self.sched_rng is not None:
                target = self.sched_rng.choice(idle)  # --seed: another placement
            else:
                target = idle[0] if idle else min(allowed, key=lambda c: (c.load, c.index))
        t.cpu = target.index
        self.kick(target)
        if t.state is ThreadState.RUNNABLE and t.insns == 0 and not t.syscalls and (
                self.tracer.sinks):  # fmt: skip
            self.emit("thread_start", t, pid=t.process.pid)
        if target.current is None:
            target.current = t
            self._switch_in(target, t)
        else:
            target.queue.append(t)
        self.replan()

    def replan(self) -> None:
        """A thread became runnable or a timer was armed while a lone thread runs unsliced:
        stop it (synchronously, from inside a hook) so the next round slices."""
        t = self.in_engine
        if t is not None and self.unsliced:
            t.process.engine.stop()

    def block(self, t: Thread, wait: Wait) -> None:
        t.state = ThreadState.BLOCKED
        t.wait = wait
        if self.tracer.sinks:
            self.emit("block", t, wait=wait.kind, deadline=wait.deadline)
        self.uintr.on_block(t, wait)
        if wait.deadline is not None:
            self.sleepers.append(t)
        self._unqueue(t)

    def _unqueue(self, t: Thread) -> None:
        cpu = self.machine.cpus[t.cpu]
        if cpu.current is t:
            self._switch_out(cpu, t)
            cpu.current = cpu.queue.popleft() if cpu.queue else None
            if cpu.current is not None:
                self._switch_in(cpu, cpu.current)
        elif t in cpu.queue:
            cpu.queue.remove(t)

    def wake(self, t: Thread, result: int | None) -> None:
        if t.state is not ThreadState.BLOCKED:
            return
        w = t.wait
        if w is not None and w.deadline is not None and t in self.sleepers:
            self.sleepers.remove(t)
        if w is not None and w.kind == "futex" and w.key in self.futex_queues:
            q = self.futex_queues[w.key]
            if t in q:
                q.remove(t)
        t.wait = None
        t.result = result
        t.state = ThreadState.RUNNABLE
        t.charge += WAKEUP_NS
        if self.tracer.sinks:
            self.emit("wake", t, result=result)
        self.place(t)

    def notify(self, obj: Any) -> None:
        """Wake every thread whose restartable wait is on `obj` (a pipe, ...); each re-runs
        its syscall, which re-checks the condition."""
        for t in list(self.threads.values()):
            w = t.wait
            if w is not None and w.restart and (w.key is obj or (
                    isinstance(w.key, tuple) and obj in w.key)):  # fmt: skip
                self.wake(t, None)
                t.restart = True

    def _switch_out(self, cpu: Any, t: Thread) -> None:
        self.uintr.switch_out(cpu, t)
        if self.tracer.sinks:
            self.tracer.emit("switch_out", cpu.index, t.tid, state=t.state.value)

    def _switch_in(self, cpu: Any, t: Thread) -> None:
        self.uintr.switch_in(cpu, t)
        if self.tracer.sinks:
            self.tracer.emit("switch_in", cpu.index, t.tid, pid=t.process.pid)

    def armed_deadlines(self) -> list[int]:
        out = [t.wait.deadline for t in self.sleepers if t.wait and t.wait.deadline is not None]
        out += [p.itimer[0] for p in self.processes.values() if p.itimer is not None]
        return out

    def _wake_timers(self) -> None:
        now = self.now
        for p in self.processes.values():
            if p.itimer is not None and p.itimer[0] <= now and p.exit_status is None:
                deadline, interval = p.itimer
                p.itimer = (deadline + interval, interval) if interval else None
                self.send_process_signal(p, S.SigInfo(S.SIGALRM, S.SI_KERNEL))
        if not self.sleepers:
            return
        for t in [t for t in self.sleepers if t.wait and t.wait.deadline <= now]:
            self.wake(t, t.wait.on_timeout)

    def runnable_count(self) -> int:
        return sum(c.load for c in self.machine.cpus)

    # --- the run loop -------------------------------------------------------------------

    def run(self) -> int:
        """Run until the initial process ends; returns the emulator's exit status."""
        watchdog = None
        if self.opt.timeout is not None:
            watchdog = threading.Timer(self.opt.timeout, self._on_timeout)
            watchdog.daemon = True
            watchdog.start()
        try:
            while True:
                self._round()
        except GuestExit as e:
            if e.message:
                self.warn(e.message)
            return e.status
        finally:
            if watchdog is not None:
                watchdog.cancel()

    def _on_timeout(self) -> None:
        # The only asynchronous stop: the guest is being killed, so G14's double execution of
        # the interrupted instruction cannot be observed.
        self._timed_out.set()
        for p in list(self.processes.values()):
            p.engine.stop_async()

    def _round(self) -> None:
        if self._timed_out.is_set():
            raise GuestExit(124, f"timeout: stopped after {self.opt.timeout:g} s (--timeout)")
        self._wake_timers()
        cpus = [c for c in self.machine.cpus if c.current is not None]
        if not cpus:
            deadlines = self.armed_deadlines()
            if deadlines:
                self.now = max(self.now, min(deadlines))
                return
            raise GuestExit(124, self._deadlock_message())
        sliced = (len(cpus) > 1 or self.opt.max_insns is not None or self.runnable_count() > 1
                  or bool(self.armed_deadlines()))  # fmt: skip
        limit = self.opt.slice if sliced else None
        if limit is not None and self.sched_rng is not None:
            # --seed: slices between half and one and a half times --slice, per round
            limit = self.sched_rng.randint(max(1, limit // 2), limit + limit // 2)
        if self.opt.max_insns is not None:
            limit = max(1, min(limit or self.opt.slice, self.opt.max_insns - self.total_insns))
        end = self.now
        seeded, insn_limit = self.sched_rng is not None, self.opt.max_insns is not None
        for cpu in cpus:
            t = cpu.current
            if t is None or t.state is not RUNNABLE:  # (not t.runnable: a property, per turn)
                continue
            cpu.base = max(self.now, cpu.not_before)
            e = t.process.engine
            if limit is not None:
                e.set_counting(True, precise=seeded or (insn_limit and self._near_insn_limit()))
            elif e.counting:
                # One runnable thread: keep counting a while before paying for the flush.
                if self.counted_single < UNSLICE_AFTER_INSNS:
                    limit = self.opt.slice * 10
                else:
                    e.set_counting(False)
            n = self.run_thread(cpu, t, limit)
            if limit is None:  # unsliced: the clock moved by the charges on cpu.base only
                n = 0
            if limit is not None and not sliced:
                self.counted_single += n
            elif sliced:
                self.counted_single = 0
            end = max(end, cpu.base)
            if cpu.current is t and cpu.queue and t.runnable:
                self._switch_out(cpu, t)
                cpu.queue.append(t)
                cpu.current = cpu.queue.popleft()
                self._switch_in(cpu, cpu.current)
        self.now = end
        if self.opt.max_insns is not None and self.total_insns >= self.opt.max_insns:
            raise GuestExit(
                124, f"instruction limit reached: {self.total_insns} instructions (--max-insns)"
            )

    def _near_insn_limit(self) -> bool:
        """Counting per block ends slices (and so interleavings and interrupt delivery) at
        translation-block boundaries only. --seed explores interleavings and counts each
        instruction (see `_round`); so do the last rounds before --max-insns, which stops at
        exactly N."""
        if self.opt.max_insns is None:
            return False
        left = self.opt.max_insns - self.total_insns
        return left <= 2 * len(self.machine.cpus) * (self.opt.slice + self.opt.slice // 2)

    def _deadlock_message(self) -> str:
        kinds = sorted({t.wait.kind for t in self.threads.values() if t.wait is not None})
        return (
            "deadlock: every thread is blocked with no timeout pending "
            f"(waiting in: {', '.join(kinds) or 'nothing'})"
        )

    def load_thread(self, t: Thread) -> Engine:
        """Make `t`'s registers the engine's registers."""
        p = t.process
        e = p.engine
        if p.loaded is not t:
            out = p.loaded
            e.switch(out.ctx if out is not None and out.state is not ThreadState.DEAD else None,
                     t.ctx)  # fmt: skip
            p.loaded = t
        return e

    def run_thread(self, cpu: Any, t: Thread, limit: int | None) -> int:
        e = self.load_thread(t)
        e.set_fast_unit(cpu.uintr)
        self.current = t
        self.current_cpu = cpu.index
        if t.result is not None:
            e.reg_write(eng.RAX, t.result)
            t.result = None
        elif t.restart:
            # RAX still holds the syscall number: run the syscall instruction again.
            e.reg_write(eng.RIP, e.reg_read(eng.RIP) - 2)
        t.restart = False
        self.return_to_user(t)
        if t.state is not RUNNABLE or cpu.current is not t:
            return 0
        self.in_engine = t
        # A lone thread's run (unsliced, or an extended counted slice) ends when another
        # thread becomes runnable: see replan().
        self.unsliced = limit is None or limit > self.opt.slice * 3 // 2
        charge, t.charge = t.charge, 0
        if limit is None:
            cpu.base += charge
        try:
            if self.debugger is None:
                n = e.run(None, limit, charge if limit is not None else 0)
            else:  # the stub runs the turn: breakpoints, single steps, stops for gdb
                n = self.debugger.run(t, limit, charge if limit is not None else 0)
        except UcError as err:
            n = e.counter.count if limit is not None else 0
            self._engine_fault(t, err)
        finally:
            self.in_engine = None
        t.insns += n
        cpu.base += n  # the CPU's clock is now at the end of this turn's slice
        self.total_insns += n
        self.cpu_insns[cpu.index] = self.cpu_insns.get(cpu.index, 0) + n
        self.thread_insns[t.tid] = t.insns
        self.current = None
        if t.fault is not None and t.state is not ThreadState.DEAD:
            info, t.fault = t.fault, None
            self.force_signal(t, info)
        return n

    def return_to_user(self, t: Thread) -> None:
        """What the kernel does before returning to user mode: UINTR notification and
        delivery (arch doc §11.5), then pending signals."""
        self.uintr.return_to_user(t)
        if t.pending and t.runnable:
            self.deliver_signals(t)

    # --- traps ---------------------------------------------------------------------------

    def _on_syscall(self) -> None:
        t = self.current
        assert t is not None
        e = t.process.engine
        regs = e.syscall_regs()
        nr = regs[0]
        t.syscalls += 1
        if e.counting:
            e.counter.count += SYSCALL_NS  # kernel entry/exit on the virtual clock
        else:
            self.machine.cpus[self.current_cpu].base += UNCOUNTED_SYSCALL_NS
        sc = self.syscalls.get(nr)
        if sc is None:
            if nr not in self.warned:
                self.warned.add(nr)
                self.warn(f"warning: unsupported syscall {nr}; returning -ENOSYS")
            result: Any = -E.ENOSYS
            if self.opt.strace:
                self._strace(t, f"syscall_{nr}(...)", result)
        else:
            args = [regs[i + 1] for i in range(len(sc.argnames))]
            trace = self._strace_call(t, sc, args) if self.opt.strace else None
            if self.tracer.sinks:
                self.emit("syscall", t, nr=nr, name=sc.name, args=args)
            try:
                result = sc.fn(self, t, *args)
            except GuestFault:
                result = -E.EFAULT
            except GuestExit:
                if trace is not None:
                    self._strace(t, trace, RESTART)  # exit_group(3) = ?
                raise
            if trace is not None:
                self._strace(t, trace, result)
            if self.tracer.sinks:
                self.emit("syscall_return", t, nr=nr, name=sc.name,
                          result=result if isinstance(result, int) else None)  # fmt: skip
        if result is BLOCK or not t.runnable or t.process.engine is not e:
            e.stop()  # blocked, ended, or exec'd: the loop takes over
            return
        if result is not RESTART:
            e.reg_write(eng.RAX, result)
        if t.pending or self.uintr.wants_stop(t):
            # Return to user with a deliverable user interrupt or signal: deliver it here, so
            # its frame returns to the instruction after the syscall (arch doc §8). The SYSCALL
            # hook adds 2 to RIP afterwards (unicorn-notes G2).
            e.reg_write(eng.RIP, e.reg_read(eng.RIP) + 2)
            self.return_to_user(t)
            e.reg_write(eng.RIP, e.reg_read(eng.RIP) - 2)
            if not t.runnable:
                e.stop()

    def _strace_call(self, t: Thread, sc: Syscall, args: list[int]) -> str:
        parts = []
        for name, v in zip(sc.argnames, args, strict=False):
            kind = sc.fmt.get(name)
            if kind == "str":
                try:
                    parts.append(repr(t.process.mem.read_cstr(v, 256).decode("utf-8", "replace")))
                    continue
                except GuestFault:
                    pass
            if kind == "int" or (kind is None and v < 4096):
                parts.append(str(v if v < 2**63 else v - 2**64))
            else:
                parts.append(hex(v))
        return f"{sc.name}({', '.join(parts)})"

    def _strace(self, t: Thread, call: str, result: Any) -> None:
        if result is BLOCK:
            res = "? <blocks>"
        elif result is RESTART:
            res = "?"
        elif isinstance(result, int) and -4096 < result < 0:
            res = f"-1 {E.name(-result)}"
        else:
            res = hex(result) if isinstance(result, int) and result > 0xFFFF else str(result)
        os.write(2, f"[{t.tid}] {call} = {res}\n".encode())

    def _on_invalid(self) -> bool:
        t = self.current
        assert t is not None
        if self.tracer.sinks:
            self.emit("trap", t, vector=6, rip=t.process.engine.reg_read(eng.RIP))
        if self.uintr.trap(t):
            return True
        if t.fault is not None:  # the instruction's own fault (#GP from SENDUIPI, ...)
            return False
        rip = t.process.engine.reg_read(eng.RIP)
        # #UD: SIGILL with ILL_ILLOPN at the instruction (arch doc §12).
        t.fault = S.SigInfo(S.SIGILL, S.ILL_ILLOPN, addr=rip, rip=rip, trapno=6)
        return False

    def _on_interrupt(self, intno: int) -> None:
        t = self.current
        assert t is not None
        e = t.process.engine
        rip = e.reg_read(eng.RIP)
        if intno == 0:  # #DE: RIP is the faulting instruction
            t.fault = S.SigInfo(S.SIGFPE, S.FPE_INTDIV, addr=rip, rip=rip, trapno=0)
        elif intno in (1, 3):  # #DB / int3: RIP is after the instruction
            t.fault = S.SigInfo(S.SIGTRAP, S.SI_KERNEL if intno == 3 else S.TRAP_BRKPT, rip=rip,
                                trapno=intno)  # fmt: skip
        else:  # #GP and friends, int n from user mode: SIGSEGV SI_KERNEL (arch doc §12)
            t.fault = S.SigInfo(S.SIGSEGV, S.SI_KERNEL, addr=0, rip=rip, trapno=intno)
        e.stop()

    def _on_mem_fault(self, kind: int, address: int, size: int) -> None:
        t = self.current
        assert t is not None
        if address >> 47:
            # The engine reports addresses cut to 52 bits: restore the sign extension of a
            # canonical upper-half address. Whether the access was canonical at all is only
            # known once the engine has stopped (_engine_fault, linux/memfault.py).
            address |= 0xFFF0_0000_0000_0000
        if t.process.mem.sigbus(address, kind):  # a file page wholly beyond EOF (mmap(2))
            t.fault = S.SigInfo(S.SIGBUS, S.BUS_ADRERR, addr=address, trapno=14)
            return
        prot = kind in eng.ACCESS_PROT_KINDS
        if not prot and t.process.mem.find(address) is not None:
            prot = True
        t.fault = S.SigInfo(S.SIGSEGV, S.SEGV_ACCERR if prot else S.SEGV_MAPERR, addr=address,
                            trapno=14)  # fmt: skip

    def _engine_fault(self, t: Thread, err: UcError) -> None:
        e = t.process.engine
        rip = e.reg_read(eng.RIP)
        if e.mem_fault is not None and t.fault is not None and t.fault.trapno == 14:
            # A non-canonical access is #GP/#SS, not the page fault _on_mem_fault assumed.
            kind, address, _size, fault_rip = e.mem_fault
            arch = memfault.classify(e, kind, address, fault_rip)
            if arch is not None:
                t.fault = memfault.fault_signal(arch, rip)
        if t.fault is None:
            if err.errno == ucc.UC_ERR_INSN_INVALID:
                t.fault = S.SigInfo(S.SIGILL, S.ILL_ILLOPN, addr=rip, trapno=6)
            else:
                t.fault = S.SigInfo(S.SIGSEGV, S.SI_KERNEL, addr=0, trapno=13)
        t.fault.rip = rip

    def _on_cpuid(self) -> None:
        t = self.current
        assert t is not None
        e = t.process.engine
        leaf = e.reg_read(eng.GPR_IDS[0]) & 0xFFFF_FFFF
        sub = e.reg_read(eng.GPR_IDS[1]) & 0xFFFF_FFFF
        a, b, c, d = self._cpuid(leaf, sub)
        for reg, v in zip((0, 3, 1, 2), (a, b, c, d), strict=True):
            e.reg_write(eng.GPR_IDS[reg], v)

    def _cpuid(self, leaf: int, sub: int) -> tuple[int, int, int, int]:
        """The engine's own answer (asked once of a scratch CPU) plus the model's bits."""
        key = (leaf, sub)
        ans = self._cpuid_cache.get(key)
        if ans is None:
            if self._scratch is None:
                self._scratch = Engine()
                self._scratch.uc.mem_map(0x1000, 0x1000)
                self._scratch.uc.mem_write(0x1000, b"\x0f\xa2")  # cpuid
            s = self._scratch
            s.reg_write(eng.GPR_IDS[0], leaf)
            s.reg_write(eng.GPR_IDS[1], sub)
            s.uc.emu_start(0x1000, 0x1002)
            raw = tuple(s.reg_read(eng.GPR_IDS[i]) & 0xFFFF_FFFF for i in (0, 3, 1, 2))
            ans = cpuid_adjust(self.opt.features, leaf, sub, *raw)
            self._cpuid_cache[key] = ans
        return ans

    # --- signals ------------------------------------------------------------------------

    def send_signal(self, t: Thread, info: S.SigInfo) -> None:
        """Queue a signal for a thread; wake it if it sleeps interruptibly."""
        act = t.process.sigactions.get(info.signo, S.SigAction())
        blocked = t.sigmask & S.bit(info.signo)
        # An ignored signal is discarded at once unless blocked: the handler may change
        # before it is unblocked (kernel/signal.c sig_ignored()).
        if not blocked and (act.handler == S.SIG_IGN or (
                act.handler == S.SIG_DFL and not S.default_is_fatal(info.signo))):  # fmt: skip
            return
        if any(p.signo == info.signo for p in t.pending) and info.signo < 32:
            return  # standard signals do not queue
        t.pending.append(info)
        if (
            t.state is ThreadState.BLOCKED
            and not (t.sigmask & S.bit(info.signo))
            and t.wait is not None
            and t.wait.interruptible
        ):
            self.wake(t, -E.EINTR)
        if t is self.current:
            t.process.engine.stop()
        elif self.in_engine is not None and self.machine.cpus[t.cpu].current is t:
            # The target runs on another CPU: the kernel kicks it with an IPI (kick_process);
            # end the sender's slice so the target's turn, and the delivery, come now.
            self.kick(self.machine.cpus[t.cpu])
            self.in_engine.process.engine.stop()

    def send_process_signal(self, p: Process, info: S.SigInfo) -> None:
        live = [t for t in p.threads if t.state is not ThreadState.DEAD]
        if not live:
            return
        target = next((t for t in live if not t.sigmask & S.bit(info.signo)), live[0])
        self.send_signal(target, info)

    def force_signal(self, t: Thread, info: S.SigInfo) -> None:
        """A synchronous fault: blocked or ignored means death (kernel force_sig_fault)."""
        act = t.process.sigactions.get(info.signo, S.SigAction())
        if t.sigmask & S.bit(info.signo) or act.handler == S.SIG_IGN:
            t.process.sigactions[info.signo] = S.SigAction()
            t.sigmask &= ~S.bit(info.signo)
        t.pending.appendleft(info)
        self.deliver_signals(t)

    def deliver_signals(self, t: Thread) -> None:
        for info in list(t.pending):
            if t.sigmask & S.bit(info.signo) and info.signo not in (S.SIGKILL, S.SIGSTOP):
                continue
            t.pending.remove(info)
            act = t.process.sigactions.get(info.signo, S.SigAction())
            if act.handler == S.SIG_IGN:
                continue
            if self.debugger is not None and not self.debugger.signal(t, info):
                continue  # gdb stopped for it and went on without it
            if act.handler == S.SIG_DFL:
                if S.default_is_fatal(info.signo):
                    self.terminate_by_signal(t, info)
                    return
                continue
            if self.tracer.sinks:
                self.emit("signal", t, signo=info.signo, code=info.code, action="handler",
                          handler=act.handler)  # fmt: skip
            self._setup_frame(t, info, act)
            if act.flags & S.SA_RESETHAND:
                t.process.sigactions[info.signo] = S.SigAction()
            return  # one frame at a time; the rest are delivered on the next return to user

    def _setup_frame(self, t: Thread, info: S.SigInfo, act: S.SigAction) -> None:
        e = self.load_thread(t)
        mem = t.process.mem
        regs = {n: e.reg_read(r) for n, r in _SIGCTX_REGS}
        rsp = regs["rsp"]
        ss_sp, ss_flags, ss_size = t.altstack
        on_alt = ss_size and ss_sp <= rsp < ss_sp + ss_size
        if act.flags & S.SA_ONSTACK and not ss_flags & S.SS_DISABLE and not on_alt:
            sp = ss_sp + ss_size
        else:
            sp = rsp - 128  # skip the red zone
        frame = ((sp - S.FRAME_SIZE) & ~0xF) - 8  # (frame + 8) % 16 == 0 at handler entry
        uc_stack = struct.pack("<QiiQ", ss_sp, S.SS_ONSTACK if on_alt else ss_flags, 0, ss_size)
        gprs = [regs[n] for n in S.SIGCONTEXT_GPRS]
        mctx = struct.pack("<18Q", *gprs) + struct.pack("<HHHH", 0x33, 0, 0, 0x2B)
        mctx += struct.pack("<QQQQQ", 0, info.trapno, t.sigmask & 0xFFFF_FFFF, info.addr, 0)
        mctx += b"\0" * 64
        data = (
            struct.pack("<Q", act.restorer)
            + struct.pack("<QQ", 0, 0)
            + uc_stack
            + mctx
            + struct.pack("<Q", t.sigmask if t.saved_sigmask is None else t.saved_sigmask)
            + info.pack()
        )
        try:
            mem.write(frame, data)
        except GuestFault:
            # Cannot build the frame: the kernel kills the thread with SIGSEGV.
            self.terminate_by_signal(t, S.SigInfo(S.SIGSEGV, S.SI_KERNEL, rip=regs["rip"]))
            return
        t.saved_sigmask = None
        t.charge += SIGNAL_DELIVERY_NS
        saved = e.new_context()  # FPU/SSE state, restored by rt_sigreturn
        t.sig_contexts[frame + S.UC_OFFSET] = saved
        if len(t.sig_contexts) > 64:  # frames abandoned by siglongjmp
            t.sig_contexts.pop(next(iter(t.sig_contexts)))
        if not act.flags & S.SA_NODEFER:
            t.sigmask |= S.bit(info.signo)
        t.sigmask |= act.mask & ~S.UNBLOCKABLE
        e.reg_write(eng.RSP, frame)
        e.reg_write(eng.RIP, act.handler)
        e.reg_write(eng.GPR_IDS[7], info.signo)  # rdi
        e.reg_write(eng.GPR_IDS[6], frame + S.SIGINFO_OFFSET)  # rsi
        e.reg_write(eng.GPR_IDS[2], frame + S.UC_OFFSET)  # rdx
        e.reg_write(eng.RAX, 0)
        e.reg_write(eng.RFLAGS, regs["eflags"] & ~(0x100 | 0x400))  # clear TF, DF

    def sigreturn(self, t: Thread) -> Any:
        e = t.process.engine
        uc = e.reg_read(eng.RSP)  # the handler's `ret` popped pretcode: RSP is the ucontext
        mem = t.process.mem
        mctx = mem.read(uc + S.MCONTEXT_OFFSET - S.UC_OFFSET, 18 * 8)
        gprs = struct.unpack("<18Q", mctx)
        mask = mem.read_u64(uc + S.SIGMASK_OFFSET - S.UC_OFFSET)
        saved = t.sig_contexts.pop(uc, None)
        if self.tracer.sinks:
            self.emit("sigreturn", t, rip=gprs[16])
        if saved is not None:
            e.restore(saved)
        for (name, reg), v in zip(_SIGCTX_REGS, gprs, strict=True):
            if name == "eflags":
                cur = e.reg_read(reg)
                v = (cur & ~0x254DD5) | (v & 0x254DD5)  # FIX_EFLAGS: user-changeable flags
            e.reg_write(reg, v)
        # The SYSCALL hook adds 2 to RIP after we return (unicorn-notes G2).
        e.reg_write(eng.RIP, gprs[16] - 2)
        t.sigmask = mask & ~S.UNBLOCKABLE
        return RESTART

    def terminate_by_signal(self, t: Thread, info: S.SigInfo) -> None:
        p = t.process
        if self.debugger is not None:
            self.debugger.signal(t, info)  # a stop before it ends the program (once per signal)
        if self.tracer.sinks:
            self.emit("signal", t, signo=info.signo, code=info.code, action="terminate")
        name = S.sig_name(info.signo)
        rip = info.rip or p.engine.reg_read(eng.RIP) if p.loaded is t else info.rip
        detail = f"rip={rip:#x}"
        # si_addr is an address only with a fault's own si_code: not for SI_KERNEL (#GP, #SS,
        # int3: si_addr 0) nor for a signal sent by a process.
        if info.signo in (S.SIGSEGV, S.SIGBUS, S.SIGILL, S.SIGFPE) and 0 < info.code < S.SI_KERNEL:
            detail += f", address {info.addr:#x}"
        if p is self.init_process:
            self.warn(f"program terminated by {name} ({detail})")
        self.exit_process(p, 128 + info.signo, signaled=info.signo)

    # --- processes ----------------------------------------------------------------------

    def fork(self, t: Thread, flags: int, stack: int, ptid: int, ctid: int, tls: int,
             call: str = "fork") -> int:  # fmt: skip
        """clone without CLONE_VM: a child process with a copy of the address space, the same
        open files, and the calling thread's registers (RAX = 0 in the child)."""
        from .syscalls.thread import (
            CLONE_CHILD_CLEARTID,
            CLONE_CHILD_SETTID,
            CLONE_PARENT_SETTID,
            CLONE_SETTLS,
            CLONE_VFORK,
            put_tid,
        )

        parent = t.process
        refused = self.task_limit(call, new_process=True)
        if refused is not None:
            return refused
        e = parent.engine
        engine = self.new_engine()
        mem = parent.mem.clone_into(engine)
        pid = self.new_id()
        child = Process(pid, parent.pid, engine, mem, parent.fds.copy(), parent.exe, parent.cwd)
        child.sigactions = dict(parent.sigactions)
        child.umask = parent.umask
        child.exit_signal = flags & 0xFF
        parent.children.append(child)
        self.processes[pid] = child
        # The child's registers: the parent's, resuming after the syscall with RAX = 0.
        rip = e.reg_read(eng.RIP)
        e.save(t.ctx)
        ctx = engine.new_context()
        eng.uclib.uc_context_restore(engine.handle, t.ctx.context)
        engine.reg_write(eng.RAX, 0)
        engine.reg_write(eng.RIP, rip + 2)
        if stack:
            engine.reg_write(eng.RSP, stack)
        if flags & CLONE_SETTLS:
            engine.reg_write(eng.FS_BASE, tls)
        engine.save(ctx)
        ct = self._new_thread(child, pid, ctx)
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
        self.uintr.fork(parent, child)
        self.place(ct)
        if flags & CLONE_VFORK:
            # The parent sleeps until the child execs or exits (vfork(2)).
            self.block(t, Wait("vfork", key=child, interruptible=False))
            t.result = pid
            e.stop()
        return pid

    def exec(self, t: Thread, path: str, argv: list[str], env: list[str]) -> int | object:
        """execve of a static program: a new address space; other threads end; CLOEXEC fds
        close; handled signals reset to default; UINTR state reset (§11.7). Whatever can fail
        (the program, its stack) is built in the new address space first: a failed execve
        leaves the caller as it was (bprm_execve fails before begin_new_exec's point of no
        return). The arguments were checked by sys_execve."""
        p = t.process
        engine = self.new_engine()
        mem = AddressSpace(engine, max_bytes=self.opt.max_memory)
        try:
            prog = load_elf(path, mem, self.opt.root)
        except Exception as err:  # noqa: BLE001 - a LoadError or a malformed file
            from .loader import LoadError

            if isinstance(err, LoadError):
                msg = str(err)
                if "no such file" in msg:
                    return -E.ENOENT
                if "permission denied" in msg:
                    return -E.EACCES
                if "is a directory" in msg:
                    return -E.EACCES
            return -E.ENOEXEC
        rsp = self._setup_stack(mem, prog, argv, env)
        # The point of no return (begin_new_exec).
        for other in list(p.threads):
            if other is not t and other.state is not ThreadState.DEAD:
                self._kill_thread(other)
        self.uintr.thread_exit(t)
        self.uintr.thread_created(t)
        p.uitt = None
        for fd in [fd for fd, ent in p.fds.fds.items() if ent.cloexec]:
            p.fds.close(fd)
        for sig, act in list(p.sigactions.items()):
            if act.handler not in (S.SIG_DFL, S.SIG_IGN):
                p.sigactions[sig] = S.SigAction()
        engine.reg_write(eng.RSP, rsp)
        engine.reg_write(eng.RIP, prog.start)
        engine.reg_write(eng.RFLAGS, 0x202)
        old = p.engine
        p.engine, p.mem, p.exe = engine, mem, prog.path
        t.ctx = engine.new_context()
        p.loaded = t
        t.altstack = (0, S.SS_DISABLE, 0)
        t.sig_contexts.clear()
        t.clear_child_tid = 0
        self._release_vfork(p)
        old.stop()
        if t.cpu < len(self.machine.cpus):
            self.machine.cpus[t.cpu].mem.user = mem
        return RESTART

    def _release_vfork(self, child: Process) -> None:
        for th in list(self.threads.values()):
            if th.wait is not None and th.wait.kind == "vfork" and th.wait.key is child:
                self.wake(th, th.result)

    # --- exit ---------------------------------------------------------------------------

    def exit_thread(self, t: Thread, code: int) -> None:
        p = t.process
        t.exit_code = code
        if t.clear_child_tid:
            try:
                p.mem.write(t.clear_child_tid, b"\0\0\0\0")
                self.futex_wake(p, t.clear_child_tid, 1)
            except GuestFault:
                pass
        self._kill_thread(t)
        if all(x.state is ThreadState.DEAD for x in p.threads):
            self.exit_process(p, code & 0xFF)

    def _kill_thread(self, t: Thread) -> None:
        if t.state is ThreadState.BLOCKED:
            self.wake(t, None)
        if t.state is ThreadState.RUNNABLE:
            self._unqueue(t)
        t.state = ThreadState.DEAD
        if t.wait is not None and t in self.sleepers:
            self.sleepers.remove(t)
        t.wait = None
        self.uintr.thread_exit(t)
        self.threads.pop(t.tid, None)
        if self.tracer.sinks:
            self.emit("thread_exit", t, code=t.exit_code)
        if t is self.current:
            t.process.engine.stop()

    def exit_process(self, p: Process, status: int, signaled: int = 0) -> None:
        if p.exit_status is not None:
            return
        p.exit_status = status
        if self.tracer.sinks:
            self.tracer.emit("process_exit", self.current_cpu, p.pid, pid=p.pid, status=status)
        # wait(2) status: exit code in bits 15:8, or the terminating signal in bits 6:0.
        p.wait_status = signaled if signaled else (status & 0xFF) << 8
        for t in p.threads:
            if t.state is not ThreadState.DEAD:
                self._kill_thread(t)
        p.fds.close_all()
        self._release_vfork(p)
        if p is self.init_process:
            if self.debugger is not None:
                self.debugger.exited(p)  # W<code> / X<signal> for gdb
            raise GuestExit(status)
        for c in p.children:  # orphans are reparented to init, which reaps them
            c.ppid = 1
            if c.exit_status is not None:
                self.processes.pop(c.pid, None)  # a zombie already: init reaps it now
        parent = self.processes.get(p.ppid)
        if parent is not None and parent.exit_status is None:
            if p.exit_signal:
                self.send_process_signal(parent, S.SigInfo(p.exit_signal, S.SI_KERNEL,
                                                           pid=p.pid))  # fmt: skip
            self.notify(parent)
        elif p.ppid == 1 or parent is None:
            self.processes.pop(p.pid, None)

    # --- futexes (the wait queues live here because exit and signals use them) ----------

    def futex_key(self, p: Process, addr: int) -> Any:
        v = p.mem.find(addr)
        if v is None:
            raise GuestFault(addr)
        return (id(v.buf), v.offset + addr - v.start)

    def futex_wake(self, p: Process, addr: int, n: int, bitset: int = 0xFFFF_FFFF) -> int:
        q = self.futex_queues.get(self.futex_key(p, addr))
        woken = 0
        while q and woken < n:
            cand = next((t for t in q if t.wait is not None and t.wait.bitset & bitset), None)
            if cand is None:
                break
            q.remove(cand)
            self.wake(cand, 0)
            woken += 1
        return woken


_SIGCTX_REGS: tuple[tuple[str, int], ...] = tuple(
    (n, eng.RFLAGS if n == "eflags" else (eng.RIP if n == "rip" else eng.GPR_IDS[_i]))
    for n, _i in (
        ("r8", 8), ("r9", 9), ("r10", 10), ("r11", 11), ("r12", 12), ("r13", 13), ("r14", 14),
        ("r15", 15), ("rdi", 7), ("rsi", 6), ("rbp", 5), ("rbx", 3), ("rdx", 2), ("rax", 0),
        ("rcx", 1), ("rsp", 4), ("rip", -1), ("eflags", -1),
    )
)  # fmt: skip

__all__ = ["BLOCK", "RESTART", "GuestExit", "Kernel", "Syscall"]
