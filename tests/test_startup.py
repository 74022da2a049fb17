"""Start-up stays cheap (docs/performance.md, start-up): a plain `uintr-emu run` imports only
what a run needs and starts one engine. Nothing here is timed; each check stands for a cost
that was measured once (imports of tens of milliseconds, a second Unicorn instance)."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

from uintr_emu.linux.syscalls import registry

#: Modules a plain run must not import: test and plotting libraries, what only tracing, gdb or
#: explore use, and what they would pull in (the largest first-party and stdlib costs once).
NOT_IMPORTED = (
    "hypothesis",
    "matplotlib",
    "elftools",  # the loader reads ELF headers itself
    "unicorn",  # the engine declares what it calls of libunicorn (engine/binding.py)
    "uintr_emu.trace.timeline",
    "uintr_emu.trace.png",
    "uintr_emu.trace.stats",
    "uintr_emu.gdbstub",
    "concurrent.futures",
    "multiprocessing",
    "subprocess",
    "statistics",
    "json",
    "hashlib",
    "logging",
    "pdb",
    "traceback",
)

PROBE = """
import sys
from uintr_emu import cli
from uintr_emu.engine import unicorn as eng
status = cli.main(["run", *sys.argv[1:]])
print(" ".join(sorted(sys.modules)))
print(eng._cpuid_engine.cache_info().currsize)
"""


@pytest.mark.parametrize("static", [True, False], ids=["static", "dynamic"])
def test_a_plain_run_imports_only_what_it_needs(static, build_program):
    prog = build_program("args_env", static=static)
    p = subprocess.run([sys.executable, "-c", PROBE, str(prog)], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    modules_line, engines_line = p.stdout.splitlines()[-2:]
    modules = set(modules_line.split())
    loaded = sorted(m for m in modules for bad in NOT_IMPORTED
                    if m == bad or m.startswith(bad + "."))  # fmt: skip
    assert not loaded, f"a plain run imported {loaded}"
    assert "uintr_emu.explore" in modules  # the probe really ran the CLI (its parser)
    # CPUID answers come from engine/cpuid.py: no scratch engine was started to ask.
    assert engines_line == "0"


def test_syscall_argument_names_are_the_handlers_signatures():
    """registry() reads them from the code objects; they must be what inspect says."""
    for abi in ("next", "rfc"):
        for sc in registry(abi).values():
            assert sc.argnames == tuple(inspect.signature(sc.fn).parameters)[2:], sc.name
