"""The native library (native/*.c): loading it, and the UINTR fast path's context per engine.

The library (`uintr_emu._fastpath`, built by `pip install`, setup.py) holds three things:
- the UINTR fast path (fastpath.c; what it does and why: docs/performance.md, "The native fast
  path"). In short, the engine's #UD hook is a C function that executes the common cases of the
  five UINTR instructions and of delivery on the shared UINTR state (`hw.uintr.NativeUnit`) and
  hands everything else, before changing anything, to the Python model;
- the instruction counters and the block tracker (counter.c), installed by engine/counting.py;
- the TLB-fill hook and its region table (mmu.c), installed by engine/mmu.py.

UINTR_EMU_NATIVE=0 in the environment turns the fast path off: the Python model then executes
every UINTR instruction, which is what the variable is for (checking the model, comparing the
two). It does not touch the counters or the fill hook: they are no model of anything, behave the
same either way, and come from the library whenever it is built, so that a run with the
variable differs from one without only in who executes UINTR. Without the library (no C
compiler at install) there is no fast path, and the counters and the fill hook are Python
callbacks with the same logic (engine/counting.py, engine/mmu.py): exact, only slower.

`Page` and `Ctx` are `struct page` and `struct ctx` of native/shared.h; tests/test_native_layout.py
checks that both sides lay them out alike.
"""

from __future__ import annotations

import ctypes
import functools
import mmap
import os
from collections.abc import Callable
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path
from typing import Any

from .binding import uclib

NPAGES = 16  # struct ctx.pages
NO_PAGE = 0xFFFF_FFFF_FFFF_FFFF
PERM_R, PERM_W = 1, 2
SLOW = -1  # a native function left the work to the model
STATS = ("clui", "stui", "testui", "uiret", "senduipi", "deliver", "slow")

POST_CB = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.c_uint64, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_uint64
)
POST_OK, POST_STOP = 1, 2  # bits of POST_CB's result: the #UD hook's result, stop the engine
DELIVER_CB = ctypes.CFUNCTYPE(ctypes.c_bool)


class Page(ctypes.Structure):
    """`struct page` of native/shared.h: a user page the fast path may access."""

    _fields_ = [
        ("vpage", ctypes.c_uint64),
        ("host", ctypes.c_uint64),
        ("perms", ctypes.c_uint32),
        ("_pad", ctypes.c_uint32),
    ]


class Ctx(ctypes.Structure):
    """`struct ctx` of native/shared.h: the fast path's view of one engine."""

    _fields_ = [
        ("unit", ctypes.c_void_p),
        ("kmem", ctypes.c_void_p),
        ("kmem_base", ctypes.c_uint64),
        ("kmem_size", ctypes.c_uint64),
        ("reg_read", ctypes.c_void_p),
        ("reg_write", ctypes.c_void_p),
        ("mem_read", ctypes.c_void_p),
        ("emu_start", ctypes.c_void_p),
        ("emu_stop", ctypes.c_void_p),
        ("context_save", ctypes.c_void_p),
        ("context_restore", ctypes.c_void_p),
        ("slow", ctypes.c_void_p),
        ("slow_data", ctypes.c_void_p),
        ("post", ctypes.c_void_p),
        ("deliver", ctypes.c_void_p),
        ("regs", ctypes.c_int * 3),
        ("gprs", ctypes.c_int * 16),
        ("pages", Page * NPAGES),
        ("next_page", ctypes.c_uint32),
        ("_pad", ctypes.c_uint32),
        ("stats", ctypes.c_uint64 * len(STATS)),
    ]


def _library_path() -> Path | None:
    here = Path(__file__).resolve().parent.parent
    for suffix in EXTENSION_SUFFIXES:
        p = here / f"_fastpath{suffix}"
        if p.is_file():
            return p
    return None


def _load() -> ctypes.CDLL | None:
    path = _library_path()
    if path is None:
        return None
    lib = ctypes.CDLL(str(path))
    u64, vp, i32 = ctypes.c_uint64, ctypes.c_void_p, ctypes.c_int
    out = ctypes.POINTER(ctypes.c_uint64)
    lib.uf_decode.argtypes = [ctypes.c_char_p, i32, ctypes.POINTER(i32), ctypes.POINTER(i32)]
    lib.uf_decode.restype = i32
    lib.uf_uiret.argtypes = [vp, u64, u64, out]
    lib.uf_uiret.restype = i32
    lib.uf_senduipi.argtypes = [vp, u64, out]
    lib.uf_senduipi.restype = i32
    lib.uf_deliver.argtypes = [vp, u64, u64, u64, out]
    lib.uf_deliver.restype = i32
    return lib


#: The library, when it is built (also with UINTR_EMU_NATIVE=0: the counters and the fill use
#: it).
LIB: ctypes.CDLL | None = _load()
#: The fast path is used: the library is built and UINTR_EMU_NATIVE is not 0.
FAST_PATH = LIB is not None and os.environ.get("UINTR_EMU_NATIVE", "1") != "0"


def address(name: str) -> int | None:
    """The address of the library's function `name`, None without the library."""
    if LIB is None:
        return None
    return ctypes.cast(getattr(LIB, name), ctypes.c_void_p).value


#: The native #UD hook, None without the fast path.
HOOK_ADDRESS: int | None = address("uf_ud_hook") if FAST_PATH else None


def available() -> bool:
    """The UINTR fast path is in use (see the module docstring)."""
    return FAST_PATH


def raw_entry(function: Any) -> Any:
    """`function` (of libunicorn or this library) callable without ctypes converting its
    arguments: the caller passes prepared c_void_p/c_uint64 objects; it returns a C int. For the
    calls made every scheduling turn (~0.15 us less each)."""
    address = ctypes.cast(function, ctypes.c_void_p).value
    assert address is not None, "a null function pointer"
    return ctypes.CFUNCTYPE(ctypes.c_int)(address)


def buffer_address(buf: Any) -> int:
    """Host address of a writable buffer (mmap, bytearray). It stays valid while the buffer
    lives and is not resized (a bytearray with a live export cannot be)."""
    return ctypes.addressof(ctypes.c_char.from_buffer(buf))


def notifier(unit: Any, buf: bytearray | mmap.mmap, base: int) -> Callable[[], int] | None:
    """Native notification processing for `unit` (a hw.uintr.UintrUnit) with kernel memory
    `buf` at guest address `base`: a call returns 0 when done, SLOW when the model must do it.
    None without the fast path."""
    if not FAST_PATH or LIB is None:
        return None
    kmem = ctypes.c_void_p(buffer_address(buf))
    return functools.partial(raw_entry(LIB.uf_notify), unit.pointer, kmem, ctypes.c_uint64(base),
                             ctypes.c_uint64(len(buf)))  # fmt: skip


def new_ctx(reg_ids: tuple[int, int, int], gpr_ids: tuple[int, ...]) -> Ctx:
    """A context with the engine's functions and register ids; no unit, no pages."""
    c = Ctx()
    c.reg_read = ctypes.cast(uclib.uc_reg_read, ctypes.c_void_p).value
    c.reg_write = ctypes.cast(uclib.uc_reg_write, ctypes.c_void_p).value
    c.mem_read = ctypes.cast(uclib.uc_mem_read, ctypes.c_void_p).value
    c.emu_start = ctypes.cast(uclib.uc_emu_start, ctypes.c_void_p).value
    c.emu_stop = ctypes.cast(uclib.uc_emu_stop, ctypes.c_void_p).value
    c.context_save = ctypes.cast(uclib.uc_context_save, ctypes.c_void_p).value
    c.context_restore = ctypes.cast(uclib.uc_context_restore, ctypes.c_void_p).value
    c.regs[:] = reg_ids
    c.gprs[:] = gpr_ids
    forget_pages(c)
    return c


def set_kernel_memory(c: Ctx, buf: bytearray | mmap.mmap, base: int) -> None:
    """Kernel memory (UPIDs and UITTs): `buf` must never be resized (its export pins it)."""
    c.kmem = buffer_address(buf)
    c.kmem_base = base
    c.kmem_size = len(buf)


def forget_pages(c: Ctx) -> None:
    """The address space changed (map, unmap, protect): no page is vouched for any more."""
    ctypes.memmove(ctypes.addressof(c.pages), _NO_PAGES, len(_NO_PAGES))
    c.next_page = 0


# `Ctx.pages` with every entry empty: one copy forgets them all (a loop over the ctypes
# entries costs ~50 us, on every map, unmap and mprotect).
_NO_PAGES = bytes((Page * NPAGES)(*[Page(NO_PAGE, 0, 0) for _ in range(NPAGES)]))


def remember_page(c: Ctx, vpage: int, host: int, perms: int) -> None:
    """Vouch for guest page `vpage` at host address `host` with `perms` (PERM_R | PERM_W)."""
    for p in c.pages:
        if p.vpage == vpage:
            p.host, p.perms = host, perms
            return
    p = c.pages[c.next_page]
    p.vpage, p.host, p.perms = vpage, host, perms
    c.next_page = (c.next_page + 1) % NPAGES


def stats(c: Ctx) -> dict[str, int]:
    return dict(zip(STATS, c.stats, strict=True))
