"""The scheduler: which thread runs on which CPU; blocking, waking, placement, context switches.

Each CPU has a run queue. `RunQueue.current` is the thread whose state is loaded on the CPU
(its UINTR state restored with XRSTORS, not yet saved with XSAVES). Context switches happen only
in the run loop, between runs (`settle`, `rotate`): a thread that blocks, dies or must migrate
inside a system call stays `current` until its CPU's run has ended, and a thread woken onto an
idle CPU waits in that CPU's queue until the CPU's next turn.

Placement follows CFS's wake-affine habit: a thread goes back to its last CPU if that is idle,
else to an idle CPU it may use, else into the least loaded allowed CPU's queue.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..options import WAKEUP_NS
from .process import Thread, ThreadState, Wait

if TYPE_CHECKING:
    from ..machine import Cpu
    from .kernel import Kernel

RUNNABLE = ThreadState.RUNNABLE


class RunQueue:
    """One CPU's threads: the loaded one and those waiting for it."""

    __slots__ = ("cpu", "index", "current", "queue")

    def __init__(self, cpu: Cpu) -> None:
        self.cpu = cpu
        self.index = cpu.index
        self.current: Thread | None = None
        self.queue: deque[Thread] = deque()

    @property
    def busy(self) -> bool:
        """A thread is (or will be, at the CPU's next turn) running here."""
        cur = self.current
        return bool(self.queue) or (cur is not None and cur.state is RUNNABLE)

    @property
    def load(self) -> int:
        cur = self.current
        return len(self.queue) + (cur is not None and cur.state is RUNNABLE)

    def __repr__(self) -> str:
        cur = self.current.tid if self.current is not None else None
        return f"RunQueue(cpu {self.index}, current {cur}, queue {[t.tid for t in self.queue]})"


class Scheduler:
    def __init__(self, k: Kernel, seed: int) -> None:
        self.k = k
        self.edge_watchers: list[Callable[[Any], None]] = []  # epoll: called by notify
        self.rqs = [RunQueue(cpu) for cpu in k.machine.cpus]
        self.sleepers: list[Thread] = []  # blocked with a deadline
        # The run loop's state: the thread inside the engine, and whether that run is a lone
        # thread's long (unsliced) one, which must end when another thread becomes runnable.
        self.running: Thread | None = None
        self.unsliced = False
        # --seed N (N != 0) varies placement, reproducibly per seed.
        self.rng = random.Random(seed) if seed else None

    def rq(self, t: Thread) -> RunQueue:
        return self.rqs[t.cpu]

    def runnable_count(self) -> int:
        return sum(rq.load for rq in self.rqs)

    def loaded_on(self, t: Thread) -> Cpu | None:
        """The CPU whose UINTR state is `t`'s, if any (it ran last there, not switched out)."""
        rq = self.rqs[t.cpu] if t.cpu < len(self.rqs) else None
        return rq.cpu if rq is not None and rq.current is t else None

    # --- waking and blocking --------------------------------------------------------------

    def place(self, t: Thread) -> None:
        """Put a runnable thread on a CPU (wake-affine, see the module docstring)."""
        rqs = self.rqs
        if t.cpu < len(rqs) and rqs[t.cpu].current is t:
            # Woken before its CPU's run ended (it blocked in the same run): still loaded.
            self.replan()
            return
        allowed = [rq for rq in rqs if t.affinity >> rq.index & 1] or rqs
        prev = rqs[t.cpu] if t.cpu < len(rqs) and rqs[t.cpu] in allowed else allowed[0]
        if not prev.busy:
            target = prev
        else:
            idle = [rq for rq in allowed if not rq.busy]
            if idle and self.rng is not None:
                target = self.rng.choice(idle)  # --seed: another placement
            else:
                target = idle[0] if idle else min(allowed, key=lambda rq: (rq.load, rq.index))
        t.cpu = target.index
        self.k.kick(target.cpu)
        if t.state is RUNNABLE and t.insns == 0 and not t.syscalls and self.k.tracer.sinks:
            self.k.emit("thread_start", t, pid=t.process.pid)
        target.queue.append(t)
        target.cpu.halted = False
        self.replan()

    def replan(self) -> None:
        """A thread became runnable or a timer was armed while a lone thread runs unsliced:
        stop it (synchronously, from inside a hook) so the next round slices."""
        t = self.running
        if t is not None and self.unsliced:
            t.process.engine.stop()

    def block(self, t: Thread, wait: Wait) -> None:
        """`t` (the thread in the current system call) sleeps until woken; it leaves its CPU
        when the run ends (`settle`)."""
        t.state = ThreadState.BLOCKED
        t.wait = wait
        if self.k.tracer.sinks:
            self.k.emit("block", t, wait=wait.kind, deadline=wait.deadline)
        self.k.uintr.on_block(t, wait)
        if wait.deadline is not None:
            self.sleepers.append(t)
        rq = self.rqs[t.cpu]
        if t in rq.queue:
            rq.queue.remove(t)

    def wake(self, t: Thread, result: int | None) -> None:
        if t.state is not ThreadState.BLOCKED:
            return
        w = t.wait
        if w is not None and w.deadline is not None and t in self.sleepers:
            self.sleepers.remove(t)
        if w is not None and w.kind == "futex":
            self.k.futexes.forget(t, w.key)
        t.wait = None
        t.result = result
        t.state = RUNNABLE
        t.charge += WAKEUP_NS
        if self.k.tracer.sinks:
            self.k.emit("wake", t, result=result)
        self.place(t)

    def notify(self, obj: Any) -> None:
        """Wake every thread whose restartable wait is on `obj` (a pipe, ...); each re-runs
        its syscall, which re-checks the condition (ERESTARTSYS). Edge watchers (epoll's
        EPOLLET entries) hear of it first."""
        for watcher in self.edge_watchers:
            watcher(obj)
        for t in list(self.k.threads.values()):
            w = t.wait
            if w is not None and w.restart and (w.key is obj or (
                    isinstance(w.key, tuple) and obj in w.key)):  # fmt: skip
                self.wake(t, None)
                t.restart = True

    def dequeue(self, t: Thread) -> None:
        """`t` died or must move: off its CPU's queue now; if it is the loaded thread, the
        loop switches it out when the run ends (`settle`)."""
        rq = self.rqs[t.cpu]
        if t in rq.queue:
            rq.queue.remove(t)
        elif rq.current is t and t is self.running:
            t.process.engine.stop()

    def expire(self, now: int) -> None:
        """Sleepers whose deadline passed wake with their timeout result."""
        if self.sleepers:
            for t in [t for t in self.sleepers if t.wait and t.wait.deadline <= now]:
                if t.wait.expired is not None:  # type: ignore[union-attr]
                    t.wait.expired()  # type: ignore[union-attr]
                self.wake(t, t.wait.on_timeout)  # type: ignore[union-attr]

    # --- context switches (the run loop only) ---------------------------------------------

    def settle(self, rq: RunQueue) -> None:
        """Before and after a CPU's run: switch out a loaded thread that may not run here (it
        blocked, died, or its affinity excludes this CPU: it is placed anew), then switch in
        the next queued thread if the CPU is free."""
        cur = rq.current
        if cur is not None and (cur.state is not RUNNABLE or not cur.affinity >> rq.index & 1):
            self._switch_out(rq, cur)
            rq.current = None
            if cur.state is RUNNABLE:
                self.place(cur)
        if rq.current is None and rq.queue:
            rq.current = rq.queue.popleft()
            self._switch_in(rq, rq.current)
        cpu = rq.cpu
        cpu.halted = rq.current is None
        if cpu.halted and cpu.ipi_arrived:  # it halts with an interrupt pending: it takes it
            cpu.machine.woken = True

    def halt_all(self) -> None:
        """The machine stops: every loaded thread is switched out, no other one in."""
        for rq in self.rqs:
            if rq.current is not None:
                self._switch_out(rq, rq.current)
                rq.current = None
            rq.cpu.halted = True

    def rotate(self, rq: RunQueue) -> None:
        """After a slice: the loaded thread goes to the back of the queue, the next one in."""
        cur = rq.current
        if cur is not None and rq.queue and cur.state is RUNNABLE:
            self._switch_out(rq, cur)
            rq.queue.append(cur)
            rq.current = rq.queue.popleft()
            self._switch_in(rq, rq.current)

    def _switch_out(self, rq: RunQueue, t: Thread) -> None:
        self.k.uintr.switch_out(rq.cpu, t)
        if self.k.tracer.sinks:
            self.k.tracer.emit("switch_out", rq.index, t.tid, state=t.state.value)

    def _switch_in(self, rq: RunQueue, t: Thread) -> None:
        rq.cpu.mem.user = t.process.mem  # the address space (CR3)
        self.k.uintr.switch_in(rq.cpu, t)
        if self.k.tracer.sinks:
            self.k.tracer.emit("switch_in", rq.index, t.tid, pid=t.process.pid)
