"""libunicorn through ctypes prototypes of our own, instead of Unicorn's Python binding.

Why (docs/performance.md, start-up): `import unicorn` costs ~15 ms beyond loading the library
(the binding locates it through importlib.resources, which brings zipfile, tempfile and shutil;
it declares the constants of every architecture and ~200 prototypes), a sixth of a static hello
world's start-up. The engine needs a few functions, a few constants and a small `Uc`: they are
here, with the values and C signatures of unicorn.h / x86.h of the pinned version (2.1.4);
`tests/test_engine_private.py` checks every constant, and the prototypes' agreement, against the
binding. The library is the one the `unicorn` package installed (its `lib/` directory), found
without importing the package; a layout this does not know falls back to the binding's own
loaded library. Register names beyond the few listed (the debugger's x87 and XMM registers) are
looked up in the binding's x86 constants, imported then.
"""

from __future__ import annotations

import ctypes
import os
import weakref
from collections.abc import Iterator
from importlib.util import find_spec
from typing import Any


class ucc:
    """unicorn_const values (unicorn.h, 2.1.4): only what engine/ uses."""

    UC_ARCH_X86 = 4
    UC_MODE_64 = 8
    UC_ERR_OK = 0
    UC_ERR_NOMEM = 1
    UC_ERR_FETCH_UNMAPPED = 8
    UC_ERR_INSN_INVALID = 10
    UC_ERR_ARG = 15
    UC_ERR_EXCEPTION = 21
    UC_HOOK_INTR = 1
    UC_HOOK_INSN = 2
    UC_HOOK_CODE = 4
    UC_HOOK_BLOCK = 8
    UC_HOOK_MEM_READ_UNMAPPED = 16
    UC_HOOK_MEM_WRITE_UNMAPPED = 32
    UC_HOOK_MEM_FETCH_UNMAPPED = 64
    UC_HOOK_INSN_INVALID = 1 << 14
    UC_HOOK_TLB_FILL = 1 << 17
    UC_MEM_READ = 16
    UC_MEM_WRITE = 17
    UC_MEM_FETCH = 18
    UC_PROT_NONE = 0
    UC_PROT_READ = 1
    UC_PROT_WRITE = 2
    UC_PROT_EXEC = 4
    UC_PROT_ALL = 7
    UC_CTL_IO_WRITE = 1
    UC_CTL_IO_READ = 2
    UC_CTL_IO_READ_WRITE = 3
    UC_CTL_CPU_MODEL = 7
    UC_CTL_TB_REQUEST_CACHE = 8
    UC_CTL_TB_REMOVE_CACHE = 9
    UC_CTL_TB_FLUSH = 10
    UC_CTL_TLB_FLUSH = 11
    UC_CTL_TLB_TYPE = 12
    UC_TLB_CPU = 0
    UC_TLB_VIRTUAL = 1


class x86:
    """x86_const values (x86.h, 2.1.4): the registers engine/ and the Linux layer name, the
    CPU model, the two hooked instructions."""

    UC_X86_REG_RAX = 35
    UC_X86_REG_RBP = 36
    UC_X86_REG_RBX = 37
    UC_X86_REG_RCX = 38
    UC_X86_REG_RDI = 39
    UC_X86_REG_RDX = 40
    UC_X86_REG_RIP = 41
    UC_X86_REG_RSI = 43
    UC_X86_REG_RSP = 44
    UC_X86_REG_R8 = 106
    UC_X86_REG_R9 = 107
    UC_X86_REG_R10 = 108
    UC_X86_REG_R11 = 109
    UC_X86_REG_R12 = 110
    UC_X86_REG_R13 = 111
    UC_X86_REG_R14 = 112
    UC_X86_REG_R15 = 113
    UC_X86_REG_CR4 = 54
    UC_X86_REG_FPSW = 31
    UC_X86_REG_FPCW = 246
    UC_X86_REG_FPTAG = 247
    UC_X86_REG_MXCSR = 249
    UC_X86_REG_FS_BASE = 250
    UC_X86_REG_GS_BASE = 251
    UC_X86_REG_RFLAGS = 253
    UC_CPU_X86_HASWELL = 19
    UC_X86_INS_CPUID = 113
    UC_X86_INS_SYSCALL = 699


uc_hook_h = ctypes.c_size_t  # uc_hook: a pointer-sized handle


class UcTb(ctypes.Structure):
    """uc_tb: a translation block as UC_CTL_TB_REQUEST_CACHE reports it."""

    _fields_ = [("pc", ctypes.c_uint64), ("icount", ctypes.c_uint16), ("size", ctypes.c_uint16)]


class UcMemRegion(ctypes.Structure):
    """uc_mem_region: a mapped range [begin, end] (inclusive) and its permissions."""

    _fields_ = [("begin", ctypes.c_uint64), ("end", ctypes.c_uint64), ("perms", ctypes.c_uint32)]


def _load() -> ctypes.CDLL:
    spec = find_spec("unicorn")
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            path = os.path.join(folder, "lib", "libunicorn.so.2")
            if os.path.exists(path):
                return ctypes.CDLL(path)
    from unicorn.unicorn_py3.unicorn import uclib as theirs  # an install laid out otherwise

    return theirs


def _prototypes(lib: ctypes.CDLL) -> None:
    """The C signatures (unicorn.h) of the functions engine/ calls: without them ctypes would
    pass a Python int as a C int, cutting addresses to 32 bits."""
    e, p, s32, u32, u64 = (
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_int32,
        ctypes.c_uint32,
        ctypes.c_uint64,
    )
    for name, restype, *args in (
        ("uc_open", e, u32, u32, ctypes.POINTER(p)),
        ("uc_close", e, p),
        ("uc_strerror", ctypes.c_char_p, e),
        ("uc_free", e, p),
        ("uc_ctl", e, p, s32),  # variadic: the rest are passed as ctypes objects
        ("uc_emu_start", e, p, u64, u64, u64, ctypes.c_size_t),
        ("uc_emu_stop", e, p),
        ("uc_hook_add", e, p, ctypes.POINTER(uc_hook_h), s32, p, p, u64, u64),  # variadic
        ("uc_hook_del", e, p, uc_hook_h),
        ("uc_reg_read", e, p, s32, p),
        ("uc_reg_write", e, p, s32, p),
        ("uc_reg_read_batch", e, p, ctypes.POINTER(s32), ctypes.POINTER(p), s32),
        ("uc_mem_map", e, p, u64, u64, u32),
        ("uc_mem_map_ptr", e, p, u64, u64, u32, p),
        ("uc_mem_unmap", e, p, u64, u64),
        ("uc_mem_read", e, p, u64, p, u64),
        ("uc_mem_write", e, p, u64, p, u64),
        ("uc_mem_regions", e, p, ctypes.POINTER(ctypes.POINTER(UcMemRegion)), ctypes.POINTER(u32)),
        ("uc_context_alloc", e, p, ctypes.POINTER(p)),
        ("uc_context_free", e, p),
        ("uc_context_save", e, p, p),
        ("uc_context_restore", e, p, p),
        ("uc_context_reg_read", e, p, s32, p),
        ("uc_context_reg_write", e, p, s32, p),
    ):  # fmt: skip
        f = getattr(lib, name)
        f.restype, f.argtypes = restype, args


uclib = _load()
_prototypes(uclib)


class UcError(Exception):
    """A libunicorn call failed: `errno` is its uc_err."""

    def __init__(self, errno: int) -> None:
        super().__init__(uclib.uc_strerror(errno).decode())
        self.errno = errno


def _check(status: int) -> None:
    if status != ucc.UC_ERR_OK:
        raise UcError(status)


class UcContext:
    """A saved CPU context (uc_context_alloc), freed with its last reference. `context` and
    `_context` are the same handle (the names the binding's context has)."""

    def __init__(self, handle: ctypes.c_void_p) -> None:
        ctx = ctypes.c_void_p()
        _check(uclib.uc_context_alloc(handle, ctypes.byref(ctx)))
        self.context = self._context = ctx
        weakref.finalize(self, uclib.uc_context_free, ctx)


class Uc:
    """One Unicorn instance, closed with its last reference: the calls engine/ makes by name
    (everything else goes straight to `uclib` with `_uch`)."""

    def __init__(self, arch: int = ucc.UC_ARCH_X86, mode: int = ucc.UC_MODE_64) -> None:
        h = ctypes.c_void_p()
        _check(uclib.uc_open(arch, mode, ctypes.byref(h)))
        self._uch = h
        weakref.finalize(self, uclib.uc_close, h)

    def ctl(self, control: int, op: int, *args: Any) -> None:
        """uc_ctl with UC_CTL(control, len(args), op): the arguments as ctypes objects."""
        _check(uclib.uc_ctl(self._uch, control | len(args) << 26 | op << 30, *args))

    def ctl_set_cpu_model(self, model: int) -> None:
        self.ctl(ucc.UC_CTL_CPU_MODEL, ucc.UC_CTL_IO_WRITE, ctypes.c_int(model))

    def ctl_set_tlb_mode(self, mode: int) -> None:
        self.ctl(ucc.UC_CTL_TLB_TYPE, ucc.UC_CTL_IO_WRITE, ctypes.c_int(mode))

    def ctl_flush_tb(self) -> None:
        self.ctl(ucc.UC_CTL_TB_FLUSH, ucc.UC_CTL_IO_WRITE)

    def ctl_remove_cache(self, begin: int, end: int) -> None:
        self.ctl(ucc.UC_CTL_TB_REMOVE_CACHE, ucc.UC_CTL_IO_WRITE, ctypes.c_uint64(begin),
                 ctypes.c_uint64(end))  # fmt: skip

    def ctl_request_cache(self, address: int) -> tuple[int, int, int]:
        """(pc, icount, size) of the block at `address`, translated if it was not."""
        tb = UcTb()
        self.ctl(ucc.UC_CTL_TB_REQUEST_CACHE, ucc.UC_CTL_IO_READ_WRITE, ctypes.c_uint64(address),
                 ctypes.byref(tb))  # fmt: skip
        return tb.pc, tb.icount, tb.size

    def emu_start(self, begin: int, until: int, timeout: int = 0, count: int = 0) -> None:
        _check(uclib.uc_emu_start(self._uch, begin, until, timeout, count))

    def mem_map(self, address: int, size: int, perms: int = ucc.UC_PROT_ALL) -> None:
        _check(uclib.uc_mem_map(self._uch, address, size, perms))

    def mem_read(self, address: int, size: int) -> bytearray:
        buf = ctypes.create_string_buffer(size)
        _check(uclib.uc_mem_read(self._uch, address, buf, size))
        return bytearray(buf.raw)

    def mem_write(self, address: int, data: bytes) -> None:
        _check(uclib.uc_mem_write(self._uch, address, data, len(data)))

    def mem_regions(self) -> Iterator[tuple[int, int, int]]:
        """The mapped regions: (begin, end inclusive, perms)."""
        regions = ctypes.POINTER(UcMemRegion)()
        count = ctypes.c_uint32()
        _check(uclib.uc_mem_regions(self._uch, ctypes.byref(regions), ctypes.byref(count)))
        try:
            found = [(r.begin, r.end, r.perms) for r in regions[: count.value]]
        finally:
            uclib.uc_free(regions)
        yield from found

    def reg_read(self, reg: int) -> int:
        """A register of up to 64 bits."""
        value = ctypes.c_uint64()
        _check(uclib.uc_reg_read(self._uch, reg, ctypes.byref(value)))
        return value.value

    def reg_write(self, reg: int, value: int) -> None:
        v = ctypes.c_uint64(value & 0xFFFF_FFFF_FFFF_FFFF)
        _check(uclib.uc_reg_write(self._uch, reg, ctypes.byref(v)))

    def context_save(self) -> UcContext:
        ctx = UcContext(self._uch)
        _check(uclib.uc_context_save(self._uch, ctx.context))
        return ctx


def register_id(name: str) -> int:
    """The engine's id of the x86 register `name` ("rip", "xmm0", "st7", "fpcw", ...)."""
    known = getattr(x86, f"UC_X86_REG_{name.upper()}", None)
    if known is not None:
        return int(known)
    from unicorn import x86_const  # the debugger's registers: the binding's whole table

    return int(getattr(x86_const, f"UC_X86_REG_{name.upper()}"))
