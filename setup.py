"""The native library and the demo programs need this file; the rest is in pyproject.toml.

`uintr_emu._fastpath` is a plain C library loaded with ctypes (engine/native.py), not a Python
extension module: it includes no Python header and links nothing but libc. It holds the UINTR
fast path (native/fastpath.c), the instruction counters (native/counter.c) and the TLB-fill hook
(native/mmu.c). `optional=True`: a machine without a C compiler still gets a working, slower
emulator (the Python model executes every UINTR instruction, and the counters and the fill hook
run as Python callbacks); the test suite insists on the library unless UINTR_EMU_NATIVE=0.
"""

import shutil
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_py import build_py

NATIVE = "src/uintr_emu/native"

# `uintr-emu demo` runs these. They are built from examples/ by examples/Makefile and kept in the
# repository (tests/test_examples.py checks that a fresh build of their sources is identical), so
# an install needs no -muintr compiler; an installed package finds them in uintr_emu/demos/.
DEMOS = ("uipi_demo", "uipi_demo-rfc")


class BuildPyWithDemos(build_py):
    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "uintr_emu" / "demos"
        target.mkdir(parents=True, exist_ok=True)
        for name in DEMOS:
            shutil.copy2(Path("examples/bin") / name, target / name)


setup(
    cmdclass={"build_py": BuildPyWithDemos},
    ext_modules=[
        Extension(
            "uintr_emu._fastpath",
            sources=[
                f"{NATIVE}/fastpath.c",
                f"{NATIVE}/counter.c",
                f"{NATIVE}/mmu.c",
                f"{NATIVE}/layout.c",
            ],
            depends=[f"{NATIVE}/shared.h"],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra", "-fvisibility=default"],
            optional=True,
        )
    ],
)
