"""The Python API. The CLI is built on it; docs/api.md has a complete example.

from uintr_emu import Machine, Options
m = Machine(Options(cpus=2, max_insns=10**9))
m.load("./prog", ["./prog"])
result = m.run(capture_output=True)
print(result.status, result.stdout)
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from .hw.uintr import UintrState
from .linux.kernel import Kernel
from .linux.loader import LoadError
from .options import Options
from .trace import Event

ProgramError = LoadError


@dataclass(frozen=True)
class RunResult:
    status: int  # the emulator's exit status (the guest's, 128+N for signal N, 124 for limits)
    stdout: bytes | None
    stderr: bytes | None  # the guest's stderr plus the emulator's own lines


@dataclass(frozen=True)
class ThreadInfo:
    tid: int
    pid: int
    cpu: int
    state: str  # "runnable", "blocked", "dead"
    instructions: int  # counted guest instructions
    uintr: UintrState  # the thread's UINTR state (loaded on its CPU or saved)
    receiver: bool  # registered a user-interrupt handler
    upid: int  # its UPID's kernel address (0 if not a receiver)


class Machine:
    """A multi-core x86-64 machine with the Linux personality and UINTR."""

    def __init__(self, options: Options | None = None):
        self.options = options or Options()
        self.kernel: Kernel | None = None
        self._pending_sinks: list[Callable[[Event], None]] = []
        self._capture: tuple[int, int] | None = None
        self._ending: tuple[int, str] | None = None

    def _make_kernel(self, stdio: tuple[int, int, int]) -> Kernel:
        if self.kernel is None:
            self.kernel = Kernel(replace(self.options, stdio=stdio, warn_stream=stdio[2]))
            for sink in self._pending_sinks:
                self.kernel.subscribe(sink)
            if self._ending is not None:
                self.kernel.end(*self._ending)
        return self.kernel

    def load(self, path: str, argv: list[str] | None = None, env: list[str] | None = None,
             *, capture_output: bool = False) -> None:  # fmt: skip
        """Load a program (argv[0] defaults to `path`, the environment to empty). With
        capture_output, the guest's stdout and stderr go to files that `run` returns."""
        stdio = (0, 1, 2)
        if capture_output:
            out = tempfile.TemporaryFile()
            err = tempfile.TemporaryFile()
            self._files = (out, err)
            stdio = (0, out.fileno(), err.fileno())
            self._capture = (out.fileno(), err.fileno())
        self._make_kernel(stdio).spawn(path, argv or [path], env or [])

    def run(self) -> RunResult:
        """Run until the program ends or a limit stops it."""
        if self.kernel is None:
            raise RuntimeError("load a program first")
        status = self.kernel.run()
        if self._capture is None:
            return RunResult(status, None, None)
        out, err = self._files
        return RunResult(status, _read_all(out), _read_all(err))

    def end(self, status: int, message: str) -> None:
        """From any thread: end the run (the current one, or the next) as soon as possible,
        even while a guest thread spins without system calls. `run` then returns `status`,
        after the line "uintr-emu: MESSAGE" on the guest's stderr. What the guest wrote so far
        stays written (docs/robustness.md, "Signals and exit statuses")."""
        if self.kernel is None:
            self._ending = (status, message)
        else:
            self.kernel.end(status, message)

    def forward_signals(self, signums: Iterable[int]) -> None:
        """These signals are to be forwarded (`signal`): a guest whose threads all wait for
        one (pause, sigsuspend, sigwait, or a blocking call with a handler for it installed)
        waits for it instead of ending as a deadlock, and a read of the terminal or a host
        pipe ends when one comes. Call after `load`."""
        if self.kernel is None:
            raise RuntimeError("load a program first")
        self.kernel.forwarded.enable(frozenset(signums))

    def signal(self, signum: int, message: str = "") -> int:
        """From any thread: send signal `signum` to the guest's first process, as a process
        outside the machine would (si_code SI_USER, si_pid 0). The guest's disposition
        decides: a handler runs, an ignored signal does nothing, a default action that ends
        the process ends the run with status 128+N and the line "uintr-emu: MESSAGE" (when
        given). Returns a ticket for `signal_taken`. (docs/linux.md, "Host signals")"""
        if self.kernel is None:
            raise RuntimeError("load a program first")
        forwarded = self.kernel.forwarded
        forwarded.enable(frozenset((signum,)))
        return forwarded.post(signum, message)

    def signal_taken(self, ticket: int, timeout: float) -> bool:
        """Has the run taken the signal of `ticket` (from `signal`) within `timeout` seconds?
        It has not while it is stuck in a host call that no signal ends."""
        assert self.kernel is not None
        return self.kernel.forwarded.wait_taken(ticket, timeout)

    def subscribe(self, sink: Callable[[Event], None]) -> None:
        """Call `sink(event)` for every event of the run (see uintr_emu.trace)."""
        if self.kernel is None:
            self._pending_sinks.append(sink)
        else:
            self.kernel.subscribe(sink)

    def threads(self) -> list[ThreadInfo]:
        """Every live thread with its UINTR state (at any point: before, during or after run)."""
        k = self.kernel
        if k is None:
            return []
        out = []
        for t in k.threads.values():
            st = k.uintr.state_of(t)
            r = t.uintr.receiver if t.uintr is not None else None
            out.append(ThreadInfo(t.tid, t.process.pid, t.cpu, t.state.value, t.insns,
                                  st, r is not None and r.active,
                                  r.upid if r is not None else 0))  # fmt: skip
        return out


def _read_all(f) -> bytes:  # type: ignore[no-untyped-def]
    f.seek(0)
    data = f.read()
    f.close()
    return data


__all__ = ["Machine", "Options", "ProgramError", "RunResult", "ThreadInfo"]
