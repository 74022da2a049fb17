"""The Linux personality's kernel: its entry points from the machine, and the run loop.

`Kernel` implements `machine.OperatingSystem` (SYSCALL, exceptions, interrupts) and owns the
parts of the kernel, each a module of its own: the scheduler (sched.py), time (clock.py),
entropy, tasks (tasks.py: spawn, fork, exec, exit), signals (signaling.py), futexes (futex.py),
the UINTR support (uintr.py), the system calls (syscalls/) and --strace (strace.py).

The run loop follows docs/engine-notes.md §6: one host thread, one engine run at a time (so
guest LOCK instructions are atomic by construction, docs/engine-notes.md G1); hooks act on the
instruction they trap and stop the engine synchronously (docs/engine-notes.md G14); the loop does
everything else. Like QEMU's cpu_loop, a CPU's turn is: the way back to user mode (`exit_to_user`),
a run of user code until a trap, and the trap's handling. A system call is handled inside its hook
(a stop and restart of the engine would cost more than the call), but through the same
`exit_to_user`; context switches happen only in the loop (sched.py).
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..engine import unicorn as eng
from ..hw.cpu import CR4_UINTR
from ..hw.faults import ArchFault
from ..machine import Cpu, Machine
from ..options import SYSCALL_NS, UNCOUNTED_SYSCALL_NS, Options
from ..trace import Tracer
from . import errno as E
from . import strace
from .afunix import UnixNames
from .clock import Clock
from .control import BLOCK, RESTART, GuestExit
from .entropy import Entropy
from .faults import fault_signal
from .forwarded import Forwarded
from .futex import Futexes
from .mm import GuestFault
from .process import Process, Thread, ThreadState
from .sched import RUNNABLE, RunQueue, Scheduler
from .signaling import Signals
from .signals import SI_KERNEL, SIGALRM, SigInfo
from .syscall_names import NAMES
from .syscalls import registry
from .syscalls.refused import errno_for
from .syscalls.uintr import other_abi_hint
from .tasks import Tasks
from .uintr import KERNEL_VECTOR, UintrKernel

if TYPE_CHECKING:
    from ..engine.unicorn import Engine

# Counted single-thread running is switched off (a translation-cache flush) only after this many
# instructions, so programs that keep blocking and waking do not flush on every switch.
UNSLICE_AFTER_INSNS = 20_000_000
# Once the run is to end, the watchdog stops the machine this often until the loop has returned
# (a stop between two engine runs is lost: docs/engine-notes.md G3).
STOP_RETRY_S = 0.01


class Kernel:
    def __init__(self, options: Options):
        self.opt = options
        self.machine = Machine(options.cpus, options.features, fast_path=options.fast_path)
        if options.features.uintr:
            for cpu in self.machine.cpus:  # Linux enables UINTR on every CPU at boot (§1)
                cpu.uintr.cr4 |= CR4_UINTR
        self.machine.attach(self)
        self.cpu: Cpu = self.machine.cpus[0]  # the CPU the kernel's code runs on now
        self.clock = Clock(self, options.realtime)
        self.tracer = Tracer(self.clock.ns)
        self.strace = strace.Strace() if options.strace else None
        self.entropy = Entropy(options.seed, options.realtime)
        self.processes: dict[int, Process] = {}
        self.threads: dict[int, Thread] = {}
        self.init_process: Process | None = None
        self.next_id = 1000  # pids/tids; deterministic
        self.next_ino = 1000  # inode numbers of pipes and sockets (fstat); deterministic
        self.unix_names = UnixNames()  # AF_UNIX names: the machine's one network namespace
        self.sched = Scheduler(self, options.seed)
        self.futexes = Futexes(self)
        self.signals = Signals(self)
        self.forwarded = Forwarded(self)  # host signals (forwarded.py)
        self.tasks = Tasks(self)
        self.uintr = UintrKernel(self)
        # The interrupt handlers by vector (the IDT's external-interrupt entries).
        self.idt: dict[int, tuple[str, Callable[[], None]]] = {
            KERNEL_VECTOR: ("wake waiters", self.uintr.wake_waiters),
        }
        self.syscalls = registry(options.uintr_abi)
        self.total_insns = 0
        self.cpu_insns: dict[int, int] = {}
        self.thread_insns: dict[int, int] = {}
        self.warned: set[int] = set()
        self.debugger: Any = None  # the GDB stub while gdb is attached (gdbstub.py)
        self.counted_single = 0
        # Why the run must end, asked from another host thread (`end`), and the watchdog's
        # wake-up (`run`).
        self.ending: GuestExit | None = None
        self._end_lock = threading.Lock()
        self._end_asked = threading.Event()

    # --- small services ----------------------------------------------------------------

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def clock_ns(self) -> int:
        return self.clock.ns()

    def kick(self, cpu: Cpu, now: int | None = None) -> None:
        """Something (a wake-up, a signal) was sent to `cpu` at `now` (default: the current
        time): it cannot take it earlier (what a reschedule IPI would carry)."""
        cpu.sync(self.clock.ns() if now is None else now)

    def emit(self, kind: str, t: Thread | None, **fields: Any) -> None:
        """Report a kernel event (only called when a sink is subscribed)."""
        cpu = t.cpu if t is not None else self.cpu.index
        self.tracer.emit(kind, cpu, t.tid if t is not None else 0, **fields)

    def subscribe(self, sink: Any) -> None:
        """Receive every event from now on (trace.Event); turns the hardware's reports on."""
        self.tracer.subscribe(sink)
        for cpu in self.machine.cpus:
            cpu.uintr.events = functools.partial(self._hardware_event, cpu.index)
        self.machine.events = self._hardware_event

    def _tid_on(self, index: int) -> int:
        t = self.sched.rqs[index].current
        return t.tid if t is not None else 0

    def _hardware_event(self, cpu: int, kind: str, /, **fields: Any) -> None:
        """An event the hardware reports on CPU `cpu`, with the thread loaded there (positional
        parameters: the events have fields of every name, `index` among them)."""
        self.tracer.emit(kind, cpu, self._tid_on(cpu), **fields)

    def warn(self, msg: str) -> None:
        os.write(self.opt.warn_stream, f"uintr-emu: {msg}\n".encode())

    def spawn(self, path: str, argv: list[str], env: list[str]) -> Process:
        return self.tasks.spawn(path, argv, env)

    def load_thread(self, t: Thread) -> Engine:
        """Make `t`'s registers its process engine's registers."""
        p = t.process
        e = p.engine
        if p.loaded is not t:
            out = p.loaded
            e.switch(out.ctx if out is not None and out.state is not ThreadState.DEAD else None,
                     t.ctx)  # fmt: skip
            p.loaded = t
        return e

    # --- the entry points (machine.OperatingSystem) -------------------------------------

    def syscall(self, cpu: Cpu) -> None:
        """SYSCALL: dispatch, then the way back to user mode (inside the engine's hook)."""
        t = self.sched.running
        assert t is not None
        e = t.process.engine
        regs = e.syscall_regs()
        nr = regs[0]
        t.syscalls += 1
        cpu.charge(SYSCALL_NS if cpu.counting else UNCOUNTED_SYSCALL_NS)
        sc = self.syscalls.get(nr)
        traced = self.tracer.sinks
        if sc is None:
            if nr not in self.warned:
                self.warned.add(nr)
                name = NAMES.get(nr)
                what = f"{nr} ({name})" if name else str(nr)
                hint = other_abi_hint(self.opt.uintr_abi, nr)
                more = f" (it is {hint})" if hint else ""
                err = E.name(errno_for(nr))
                self.warn(f"warning: unsupported syscall {what}; returning -{err}{more}")
            result: Any = -errno_for(nr)  # docs/linux.md, "Calls not implemented"
            if self.strace is not None:
                self.strace.report(t, f"{NAMES.get(nr, f'syscall_{nr}')}(...)", result)
        else:
            args = [regs[i + 1] for i in range(len(sc.argnames))]
            call = strace.format_call(t, sc, args) if self.strace is not None else None
            if traced:
                self.emit("syscall", t, nr=nr, name=sc.name, args=args)
            try:
                result = sc.fn(self, t, *args)
            except GuestFault:
                result = -E.EFAULT
            except GuestExit:
                if self.strace is not None and call is not None:
                    self.strace.report(t, call, RESTART)  # exit_group(3) = ?
                raise
            if self.strace is not None and call is not None:
                self.strace.report(t, call, result)
            if traced:
                self.emit("syscall_return", t, nr=nr, name=sc.name,
                          result=result if isinstance(result, int) else None)  # fmt: skip
        if result is BLOCK or not t.runnable or t.process.engine is not e:
            e.stop()  # blocked, ended, or exec'd: the loop takes over
            return
        if result is not RESTART:
            e.reg_write(eng.RAX, result)
        self.exit_to_user(cpu, t)
        if not t.runnable:
            e.stop()

    def exception(self, cpu: Cpu, fault: ArchFault) -> None:
        """An exception in user code: the signal is forced when the run has stopped."""
        t = self.sched.running
        assert t is not None
        t.fault = fault_signal(fault, t.process.engine.reg_read(eng.RIP), t.process.mem)

    def interrupt(self, cpu: Cpu, vector: int) -> None:
        """An external interrupt through the IDT: EOI, then the vector's handler. Only the
        UINTR kernel vector has one (it wakes blocked receivers); any other vector, 0xEC
        included, is a spurious interrupt here ("UIS": a notification for a receiver that was
        switched out, its post waiting in PIR; docs/uintr.md §7)."""
        cpu.apic.eoi()
        handler = self.idt.get(vector)
        if self.tracer.sinks:
            self.tracer.emit("interrupt", cpu.index, self._tid_on(cpu.index), vector=vector,
                             handler=handler[0] if handler else "spurious")  # fmt: skip
        if handler is not None:
            handler[1]()

    def exit_to_user(self, cpu: Cpu, t: Thread) -> None:
        """The way back to user mode, from a system call or at the start of a turn: pending
        signals (a frame for the first deliverable one), the UINTR return work
        (switch_uintr_return), then the first user instruction boundary, where the processor
        accepts pending interrupts and delivers a user interrupt (docs/uintr.md §8, §11.5)."""
        if t.pending or t.interrupted:
            self.signals.deliver(t)
            if not t.runnable:
                return
        if t.saved_sigmask is not None:  # no handler frame took it: the wait's mask ends here
            t.sigmask, t.saved_sigmask = t.saved_sigmask, None
            if t.pending:  # what the old mask lets through is delivered now (recalc_sigpending)
                self.signals.deliver(t)
                if not t.runnable:
                    return
        self.uintr.exit_to_user(cpu, t)
        if cpu.boundary_work():
            e = t.process.engine
            if cpu.ipi_arrived:
                cpu.accept_interrupts()  # Linux returns to user mode with IF = 1, always
            try:
                cpu.deliver_pending(e)
            except ArchFault as f:
                self.signals.force(t, fault_signal(f, e.reg_read(eng.RIP), t.process.mem))

    # --- the run loop -------------------------------------------------------------------

    def run(self) -> int:
        """Run until the initial process ends, a limit is reached or `end` is called; returns
        the emulator's exit status."""
        over = threading.Event()
        if self.ending is None:
            self._end_asked.clear()  # (a second run) an `end` now is still seen by `_round`
        watchdog = threading.Thread(target=self._watch, args=(over,), name="uintr-emu watchdog",
                                    daemon=True)  # fmt: skip
        watchdog.start()
        try:
            while True:
                self._round()
        except BaseException as exc:  # noqa: BLE001 - re-raised below unless the run was ended
            # Once `end` was called, whatever stops the loop ends the run as asked: an engine
            # cut short by the asynchronous stop, or the exception a host-signal handler
            # raises to free the loop from a blocking host call (cli.py, HostSignals).
            ending = exc if isinstance(exc, GuestExit) else self.ending
            if ending is None:
                raise
        finally:
            over.set()
            self._end_asked.set()  # the watchdog returns
        self.sched.halt_all()
        if ending.message:
            self.warn(ending.message)
        return ending.status

    def end(self, status: int, message: str) -> None:
        """End the run, from any host thread (a host signal: cli.py; --timeout: `_watch`): the
        emulator exits with `status` after one line, `message`. The first call decides. The
        machine stops at once (`Machine.stop_async`, by the watchdog) and runs no guest code
        again; the loop ends at its next round. Called before `run`, the run ends at once."""
        with self._end_lock:
            if self.ending is None:
                self.ending = GuestExit(status, message)
        self._end_asked.set()
        self.forwarded.wake()  # out of a wait on the host

    def _watch(self, over: threading.Event) -> None:
        """The watchdog thread of one `run`: waits for `end` or --timeout, then stops the
        machine, again every STOP_RETRY_S until the loop has returned. The asynchronous stop
        may apply the instruction it lands in twice (docs/engine-notes.md G14), which is
        harmless only because the run ends: nothing runs guest code afterwards."""
        limit = self.opt.timeout  # a wait longer than TIMEOUT_MAX (292 years) is an error
        asked = self._end_asked.wait(None if limit is None else min(limit, threading.TIMEOUT_MAX))
        if over.is_set():
            return
        if not asked:
            self.end(124, f"timeout: stopped after {self.opt.timeout:g} s (--timeout)")
        while not over.is_set():
            self.machine.stop_async()
            over.wait(STOP_RETRY_S)

    def _round(self) -> None:
        """One round: every CPU with a thread takes a turn; CPUs run in parallel in virtual time,
        so the round ends at the latest turn's end."""
        if self.ending is not None:
            raise self.ending
        sched = self.sched
        clock = self.clock
        self.forwarded.take()
        self._expire_timers()
        if self.machine.woken:
            self._idle_interrupts()
        for rq in sched.rqs:
            cur = rq.current
            if cur is None or cur.state is not RUNNABLE or not cur.affinity >> rq.index & 1:
                sched.settle(rq)
        rqs = [rq for rq in sched.rqs if rq.current is not None]
        if not rqs:
            deadlines = self._deadlines()
            if deadlines:
                clock.round_start = max(clock.round_start, min(deadlines))
                return
            if self.forwarded.idle():
                return  # it waited for a host signal
            raise GuestExit(124, self._deadlock_message())
        max_insns = self.opt.max_insns
        sliced = (len(rqs) > 1 or max_insns is not None or sched.runnable_count() > 1
                  or bool(self._deadlines()))  # fmt: skip
        limit = self.opt.slice if sliced else None
        if limit is not None and sched.rng is not None:
            # --seed: slices between half and one and a half times --slice, per round
            limit = sched.rng.randint(max(1, limit // 2), limit + limit // 2)
        if max_insns is not None:
            limit = max(1, min(limit or self.opt.slice, max_insns - self.total_insns))
        end = clock.round_start
        seeded = sched.rng is not None
        near_limit = max_insns is not None and self._near_insn_limit()
        for rq in rqs:
            t = rq.current
            if t is None or t.state is not RUNNABLE:
                continue
            cpu = rq.cpu
            if cpu.clock < clock.round_start:
                cpu.clock = clock.round_start  # CPUs run in parallel: all from the round's start
            e = t.process.engine
            turn_limit = limit
            if limit is not None:
                e.set_counting(True, precise=seeded or near_limit)
            elif e.counting:
                # One runnable thread: keep counting a while before paying for the flush.
                if self.counted_single < UNSLICE_AFTER_INSNS:
                    turn_limit = self.opt.slice * 10
                else:
                    e.set_counting(False)
            n = self._turn(rq, t, turn_limit)
            if turn_limit is not None and not sliced:
                self.counted_single += n
            elif sliced:
                self.counted_single = 0
            if cpu.clock > end:
                end = cpu.clock
            if t.state is not RUNNABLE or not t.affinity >> rq.index & 1:
                sched.settle(rq)  # it blocked, ended or must move
            elif rq.queue:
                sched.rotate(rq)
            if self.machine.woken:
                self._idle_interrupts()
        clock.round_start = end
        if max_insns is not None and self.total_insns >= max_insns:
            raise GuestExit(
                124, f"instruction limit reached: {self.total_insns} instructions (--max-insns)"
            )

    def _turn(self, rq: RunQueue, t: Thread, limit: int | None) -> int:
        """`t`'s turn on its CPU: back to user mode, run, then the run's stop reason."""
        cpu = rq.cpu
        sched = self.sched
        e = self.load_thread(t)
        self.cpu = cpu
        if t.result is not None:
            e.reg_write(eng.RAX, t.result)
            if self.strace is not None:
                self.strace.resumed(t, t.result)  # <... futex resumed> = 0
            t.result = None
        elif t.restart:
            # RAX still holds the syscall number: run the syscall instruction again.
            e.reg_write(eng.RIP, e.reg_read(eng.RIP) - 2)
        t.restart = False
        self.exit_to_user(cpu, t)
        if t.state is not RUNNABLE or rq.current is not t:
            return 0
        # A lone thread's run (unsliced, or an extended counted slice) ends when another
        # thread becomes runnable: see Scheduler.replan().
        unsliced = limit is None or limit > self.opt.slice * 3 // 2
        sched.running, sched.unsliced = t, unsliced
        charge, t.charge = t.charge, 0
        runner = None
        if self.debugger is not None:  # the stub runs the turn: breakpoints, steps, stops
            debugger = self.debugger

            def runner(_rip: int | None, lim: int | None, start: int) -> int:
                return debugger.run(t, lim, start)  # type: ignore[no-any-return]

        try:
            n = cpu.run(e, limit, charge, yield_to_wakeups=unsliced, runner=runner)
        finally:
            sched.running = None
        t.insns += n
        self.total_insns += n
        self.cpu_insns[cpu.index] = self.cpu_insns.get(cpu.index, 0) + n
        self.thread_insns[t.tid] = t.insns
        if t.fault is not None and t.state is not ThreadState.DEAD:
            info, t.fault = t.fault, None
            self.signals.force(t, info)
        return n

    def _idle_interrupts(self) -> None:
        """Halted CPUs take their pending interrupts (the idle loop runs with IF = 1); called
        when an interrupt woke one (`Machine.woken`)."""
        self.machine.woken = False
        for rq in self.sched.rqs:
            cpu = rq.cpu
            if cpu.halted and cpu.ipi_arrived:
                self.cpu = cpu
                cpu.accept_interrupts()

    def _near_insn_limit(self) -> bool:
        """Counting per block ends slices (and so interleavings and interrupt delivery) at
        translation-block boundaries only. --seed explores interleavings and counts each
        instruction (see `_round`); so do the last rounds before --max-insns, which stops at
        exactly N."""
        if self.opt.max_insns is None:
            return False
        left = self.opt.max_insns - self.total_insns
        return left <= 2 * len(self.machine.cpus) * (self.opt.slice + self.opt.slice // 2)

    def _deadlines(self) -> list[int]:
        out = [t.wait.deadline for t in self.sched.sleepers
               if t.wait and t.wait.deadline is not None]  # fmt: skip
        out += [p.itimer[0] for p in self.processes.values() if p.itimer is not None]
        return out

    def _expire_timers(self) -> None:
        """The timer interrupt's work: ITIMER_REAL sends SIGALRM; sleepers time out."""
        now = self.clock.round_start
        for p in self.processes.values():
            if p.itimer is not None and p.itimer[0] <= now and p.exit_status is None:
                deadline, interval = p.itimer
                p.itimer = (deadline + interval, interval) if interval else None
                self.signals.send_process(p, SigInfo(SIGALRM, SI_KERNEL))
        self.sched.expire(now)

    def _deadlock_message(self) -> str:
        kinds = sorted({t.wait.kind for t in self.threads.values() if t.wait is not None})
        return (
            "deadlock: every thread is blocked with no timeout pending "
            f"(waiting in: {', '.join(kinds) or 'nothing'})"
        )


__all__ = ["BLOCK", "RESTART", "GuestExit", "Kernel"]
