"""Only the native library needs this file; everything else is in pyproject.toml.

`uintr_emu._fastpath` is a plain C library loaded with ctypes (engine/native.py), not a Python
extension module: it includes no Python header and links nothing but libc. It holds the UINTR
fast path (native/fastpath.c), the instruction counters (native/counter.c) and the TLB-fill hook
(native/mmu.c). `optional=True`: a machine without a C compiler still gets a working, slower
emulator (the Python model executes every UINTR instruction, and the counters and the fill hook
run as Python callbacks); the test suite insists on the library unless UINTR_EMU_NATIVE=0.
"""

from setuptools import Extension, setup

NATIVE = "src/uintr_emu/native"

setup(
    ext_modules=[
        Extension(
            "uintr_emu._fastpath",
            sources=[f"{NATIVE}/fastpath.c", f"{NATIVE}/counter.c", f"{NATIVE}/mmu.c",
                     f"{NATIVE}/layout.c"],
            depends=[f"{NATIVE}/shared.h"],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra", "-fvisibility=default"],
            optional=True,
        )
    ]
)
