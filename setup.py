"""Only the native fast path needs this file; everything else is in pyproject.toml.

`uintr_emu._fastpath` is a plain C library loaded with ctypes (engine/native.py), not a Python
extension module: it includes no Python header and links nothing but libc. `optional=True`: a
machine without a C compiler still gets a working, slower emulator (the Python model executes
every UINTR instruction); the test suite insists on the library unless UINTR_EMU_NATIVE=0.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "uintr_emu._fastpath",
            sources=["src/uintr_emu/native/fastpath.c"],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra", "-fvisibility=default"],
            optional=True,
        )
    ]
)
