"""The Python API: `Machine` loads a program and runs it; the CLI is built on it."""

from __future__ import annotations

from collections.abc import Callable

from .linux.kernel import Kernel
from .linux.loader import LoadError
from .options import Options
from .trace import Event

ProgramError = LoadError


class Machine:
    """A multi-core x86-64 machine with the Linux personality.

    >>> m = Machine(Options(cpus=2))
    >>> m.load("prog", ["prog"], ["PATH=/bin"])
    >>> status = m.run()
    """

    def __init__(self, options: Options | None = None):
        self.options = options or Options()
        self.kernel = Kernel(self.options)

    def load(self, path: str, argv: list[str] | None = None, env: list[str] | None = None) -> None:
        self.kernel.spawn(path, argv or [path], env or [])

    def run(self) -> int:
        return self.kernel.run()

    def subscribe(self, sink: Callable[[Event], None]) -> None:
        """Call `sink(event)` for every event of the run (see uintr_emu.trace)."""
        self.kernel.subscribe(sink)
