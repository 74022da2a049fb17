"""The only module that touches Unicorn.

One `Engine` is one address space (one guest process): one `Uc` instance whose hooks are
installed once, plus fast register access through direct ctypes calls into libunicorn (the
binding's `reg_read` costs ~2.2 µs, the direct call ~0.7 µs; unicorn-notes §5.3).

Two private details of the Python binding are used, hence the `unicorn==2.1.4` pin:
`unicorn.unicorn_py3.unicorn.uclib` (the loaded library) and `Uc._uch` (the engine handle).

Instruction counting. Slicing needs an instruction limit, and the virtual clock needs to know how
many instructions a slice really ran, also when a hook stopped it early. Unicorn's own `count=`
cannot say that. Instead a five-instruction native callback (machine code in an executable page,
see `_COUNTER_CODE`) is installed as a `UC_HOOK_CODE` hook: it increments a counter and, at the
limit, tail-calls `uc_emu_stop` from inside the hook, which is a synchronous stop (unicorn-notes
G14: never stop asynchronously). It costs what `count=` costs (a per-instruction helper call), so
it is only installed while the scheduler slices; adding or removing it flushes translated code
(G8), so the scheduler switches with hysteresis.
"""

from __future__ import annotations

import ctypes
import mmap
from collections.abc import Callable
from typing import Any

from unicorn import UC_ARCH_X86, UC_MODE_64, Uc, UcError
from unicorn import unicorn_const as ucc
from unicorn import x86_const as x86
from unicorn.unicorn_py3.unicorn import uc_hook_h, uclib

PAGE = 0x1000
PROT_R, PROT_W, PROT_X = ucc.UC_PROT_READ, ucc.UC_PROT_WRITE, ucc.UC_PROT_EXEC

# General-purpose registers in x86 encoding order (ModRM.rm | REX.B << 3).
GPR_IDS: tuple[int, ...] = (
    x86.UC_X86_REG_RAX, x86.UC_X86_REG_RCX, x86.UC_X86_REG_RDX, x86.UC_X86_REG_RBX,
    x86.UC_X86_REG_RSP, x86.UC_X86_REG_RBP, x86.UC_X86_REG_RSI, x86.UC_X86_REG_RDI,
    x86.UC_X86_REG_R8, x86.UC_X86_REG_R9, x86.UC_X86_REG_R10, x86.UC_X86_REG_R11,
    x86.UC_X86_REG_R12, x86.UC_X86_REG_R13, x86.UC_X86_REG_R14, x86.UC_X86_REG_R15,
)  # fmt: skip
RIP = x86.UC_X86_REG_RIP
RSP = x86.UC_X86_REG_RSP
RAX = x86.UC_X86_REG_RAX
RFLAGS = x86.UC_X86_REG_RFLAGS
FS_BASE = x86.UC_X86_REG_FS_BASE
GS_BASE = x86.UC_X86_REG_GS_BASE
CR4 = x86.UC_X86_REG_CR4
# Syscall number and arguments (x86-64 ABI: rax; rdi, rsi, rdx, r10, r8, r9).
SYSCALL_REGS: tuple[int, ...] = (
    x86.UC_X86_REG_RAX, x86.UC_X86_REG_RDI, x86.UC_X86_REG_RSI, x86.UC_X86_REG_RDX,
    x86.UC_X86_REG_R10, x86.UC_X86_REG_R8, x86.UC_X86_REG_R9, x86.UC_X86_REG_RIP,
)  # fmt: skip

# void counter(uc_engine *uc, uint64_t addr, uint32_t size, struct Counter *c)
#   if (c->count >= c->limit) return uc_emu_stop(uc);   /* tail call, rdi = uc */
#   c->count++;
_COUNTER_CODE = bytes(
    [0x48, 0x8B, 0x01]  # mov rax, [rcx]
    + [0x48, 0x3B, 0x41, 0x08]  # cmp rax, [rcx+8]
    + [0x73, 0x05]  # jae stop
    + [0x48, 0x83, 0x01, 0x01]  # add qword [rcx], 1
    + [0xC3]  # ret
    + [0xFF, 0x61, 0x10]  # stop: jmp [rcx+16]
)


class _Counter(ctypes.Structure):
    _fields_ = [("count", ctypes.c_uint64), ("limit", ctypes.c_uint64), ("stop", ctypes.c_void_p)]


class _NativeCode:
    """The counter callback, placed once per host process in an executable page."""

    _instance: _NativeCode | None = None

    def __init__(self) -> None:
        self.page = mmap.mmap(-1, PAGE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        self.page.write(_COUNTER_CODE)
        self.address = ctypes.addressof(ctypes.c_char.from_buffer(self.page))
        self.emu_stop = ctypes.cast(uclib.uc_emu_stop, ctypes.c_void_p).value

    @classmethod
    def get(cls) -> _NativeCode:
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance


_SYSCALL_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)
_CPUID_CB = ctypes.CFUNCTYPE(ctypes.c_uint32, ctypes.c_void_p, ctypes.c_void_p)
_INVALID_CB = ctypes.CFUNCTYPE(ctypes.c_bool, ctypes.c_void_p, ctypes.c_void_p)
_INTR_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_void_p)
_CODE_CB = ctypes.CFUNCTYPE(
    None, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint32, ctypes.c_void_p
)
_MEMFAULT_CB = ctypes.CFUNCTYPE(
    ctypes.c_bool,
    ctypes.c_void_p,
    ctypes.c_int,
    ctypes.c_uint64,
    ctypes.c_int,
    ctypes.c_int64,
    ctypes.c_void_p,
)

MEM_FAULT_HOOKS = (
    ucc.UC_HOOK_MEM_READ_UNMAPPED
    | ucc.UC_HOOK_MEM_WRITE_UNMAPPED
    | ucc.UC_HOOK_MEM_FETCH_UNMAPPED
    | ucc.UC_HOOK_MEM_READ_PROT
    | ucc.UC_HOOK_MEM_WRITE_PROT
    | ucc.UC_HOOK_MEM_FETCH_PROT
)
ACCESS_WRITE_KINDS = (ucc.UC_MEM_WRITE_UNMAPPED, ucc.UC_MEM_WRITE_PROT)
ACCESS_PROT_KINDS = (ucc.UC_MEM_READ_PROT, ucc.UC_MEM_WRITE_PROT, ucc.UC_MEM_FETCH_PROT)
ACCESS_FETCH_KINDS = (ucc.UC_MEM_FETCH_UNMAPPED, ucc.UC_MEM_FETCH_PROT)


class EngineError(Exception):
    """Unicorn refused an operation (bad mapping, corrupt state); a bug or bad guest input."""

    def __init__(self, message: str, status: int = ucc.UC_ERR_OK) -> None:
        super().__init__(message)
        self.status = status  # Unicorn's uc_err

    @property
    def out_of_memory(self) -> bool:
        return self.status == ucc.UC_ERR_NOMEM


class Engine:
    """One Unicorn instance = one guest address space, with its hooks installed once.

    The owner sets the callbacks (`on_syscall`, `on_invalid`, `on_interrupt`, `on_mem_fault`,
    `on_cpuid`) before running. An exception raised by a callback stops the engine and is
    re-raised by `run()` (unicorn-notes G6: the binding would otherwise swallow it).
    """

    def __init__(self) -> None:
        self.uc = Uc(UC_ARCH_X86, UC_MODE_64)
        # Haswell: the richest model TCG really implements, with a sane CR4 (unicorn-notes §10).
        # Must be the first call after Uc().
        self.uc.ctl_set_cpu_model(x86.UC_CPU_X86_HASWELL)
        self.handle = self.uc._uch
        self.error: BaseException | None = None
        self.on_syscall: Callable[[], None] = _unset
        self.on_invalid: Callable[[], bool] = _unset
        self.on_interrupt: Callable[[int], None] = _unset
        self.on_mem_fault: Callable[[int, int, int], None] = _unset
        self.on_cpuid: Callable[[], None] | None = None

        self._u64 = ctypes.c_uint64()
        self._u64_ref = ctypes.byref(self._u64)
        n = len(SYSCALL_REGS)
        self._sys_vals = (ctypes.c_uint64 * n)()
        self._sys_ids = (ctypes.c_int * n)(*SYSCALL_REGS)
        self._sys_ptrs = (ctypes.c_void_p * n)(
            *[ctypes.addressof(self._sys_vals) + 8 * i for i in range(n)]
        )
        self._code = ctypes.create_string_buffer(16)
        self._callbacks: list[Any] = []
        self._hooks: dict[str, int] = {}
        self.counter = _Counter(0, 0, _NativeCode.get().emu_stop)
        self._counter_hook: int | None = None
        self._hook_order = 0  # UC_HOOK_CODE hooks run in the order they were added
        self._counter_order = 0
        # Breakpoints (the GDB stub): address -> (hook handle, order). A hit stops the engine
        # before the instruction runs and is recorded in `breakpoint_hit`; a hit at
        # `breakpoint_skip` is ignored once (resuming from a breakpoint address).
        self._breakpoints: dict[int, tuple[int, int]] = {}
        self._breakpoint_cb = _CODE_CB(self._on_breakpoint)
        self.breakpoint_hit: int | None = None
        self.breakpoint_skip: int | None = None
        self.stop_requested = False  # `stop()` was called during the last `run()`

        cr4 = self.reg_read(CR4)
        if cr4 == 0:  # G11: models without OSFXSR/OSXMMEXCPT would #UD on the first SSE insn.
            self.reg_write(CR4, 0x600)
        self._install_hooks()

    # --- hooks --------------------------------------------------------------------------

    def _hook_add(self, name: str, htype: int, cb: Any, *extra: Any) -> None:
        h = uc_hook_h()
        status = uclib.uc_hook_add(
            self.handle, ctypes.byref(h), htype, ctypes.cast(cb, ctypes.c_void_p), None,
            ctypes.c_uint64(1), ctypes.c_uint64(0), *extra,
        )  # fmt: skip
        if status != ucc.UC_ERR_OK:
            raise EngineError(f"uc_hook_add({name}) failed: {UcError(status)}")
        self._callbacks.append(cb)
        self._hooks[name] = h.value

    def _guard(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        uclib.uc_emu_stop(self.handle)

    def _install_hooks(self) -> None:
        def syscall(_uc: int, _ud: int) -> None:
            try:
                self.on_syscall()
            except BaseException as e:  # noqa: BLE001 - re-raised by run()
                self._guard(e)

        def cpuid(_uc: int, _ud: int) -> int:
            try:
                if self.on_cpuid is None:
                    return 0
                self.on_cpuid()
                return 1
            except BaseException as e:  # noqa: BLE001
                self._guard(e)
                return 1

        def invalid(_uc: int, _ud: int) -> bool:
            try:
                return bool(self.on_invalid())
            except BaseException as e:  # noqa: BLE001
                self._guard(e)
                return True

        def interrupt(_uc: int, intno: int, _ud: int) -> None:
            try:
                self.on_interrupt(intno)
            except BaseException as e:  # noqa: BLE001
                self._guard(e)

        def mem_fault(_uc: int, kind: int, address: int, size: int, value: int, _ud: int) -> bool:
            try:
                self.on_mem_fault(kind, address, size)
            except BaseException as e:  # noqa: BLE001
                self._guard(e)
            return False

        self._hook_add(
            "syscall", ucc.UC_HOOK_INSN, _SYSCALL_CB(syscall), ctypes.c_int(x86.UC_X86_INS_SYSCALL)
        )
        self._hook_add(
            "cpuid", ucc.UC_HOOK_INSN, _CPUID_CB(cpuid), ctypes.c_int(x86.UC_X86_INS_CPUID)
        )
        self._hook_add("invalid", ucc.UC_HOOK_INSN_INVALID, _INVALID_CB(invalid))
        self._hook_add("interrupt", ucc.UC_HOOK_INTR, _INTR_CB(interrupt))
        self._hook_add("memfault", MEM_FAULT_HOOKS, _MEMFAULT_CB(mem_fault))

    # --- instruction counting -----------------------------------------------------------

    @property
    def counting(self) -> bool:
        return self._counter_hook is not None

    def set_counting(self, on: bool) -> None:
        """Install or remove the counter hook, and flush translated code: call rarely."""
        if on == self.counting:
            return
        if on:
            h = uc_hook_h()
            status = uclib.uc_hook_add(
                self.handle, ctypes.byref(h), ucc.UC_HOOK_CODE,
                ctypes.c_void_p(_NativeCode.get().address), ctypes.byref(self.counter),
                ctypes.c_uint64(1), ctypes.c_uint64(0),
            )  # fmt: skip
            if status != ucc.UC_ERR_OK:
                raise EngineError(f"cannot install the instruction counter: {UcError(status)}")
            self._counter_hook = h.value
            self._hook_order += 1
            self._counter_order = self._hook_order
        else:
            uclib.uc_hook_del(self.handle, self._counter_hook)
            self._counter_hook = None
        # Unicorn decides at translation time whether a block calls code hooks, and 2.1.4
        # does not flush on hook_add: without this, code translated while counting was off
        # would stay uncounted (and never reach a slice limit).
        self.uc.ctl_flush_tb()

    # --- breakpoints (used by the GDB stub only) ----------------------------------------

    @property
    def breakpoints(self) -> set[int]:
        return set(self._breakpoints)

    def add_breakpoint(self, address: int) -> None:
        """A UC_HOOK_CODE hook on this one address. Code already translated does not see a new
        hook (Unicorn 2.1.4 does not flush on uc_hook_add): its translations are dropped."""
        if address in self._breakpoints:
            return
        h = uc_hook_h()
        status = uclib.uc_hook_add(
            self.handle, ctypes.byref(h), ucc.UC_HOOK_CODE,
            ctypes.cast(self._breakpoint_cb, ctypes.c_void_p), None,
            ctypes.c_uint64(address), ctypes.c_uint64(address),
        )  # fmt: skip
        if status != ucc.UC_ERR_OK:
            raise EngineError(f"cannot set a breakpoint at {address:#x}: {UcError(status)}")
        self._hook_order += 1
        self._breakpoints[address] = (h.value, self._hook_order)
        self.invalidate_code(address, 1)

    def remove_breakpoint(self, address: int) -> None:
        entry = self._breakpoints.pop(address, None)
        if entry is not None:
            uclib.uc_hook_del(self.handle, entry[0])
            self.invalidate_code(address, 1)

    def _on_breakpoint(self, _uc: int, address: int, _size: int, _ud: int) -> None:
        try:
            if address == self.breakpoint_skip:
                self.breakpoint_skip = None
                return
            entry = self._breakpoints.get(address)
            if entry is None:
                return
            if self._counter_hook is not None and self._counter_order < entry[1]:
                self.counter.count -= 1  # counted already, but the instruction does not run now
            self.breakpoint_hit = address
            uclib.uc_emu_stop(self.handle)
        except BaseException as e:  # noqa: BLE001 - re-raised by run()
            self._guard(e)

    # --- running ------------------------------------------------------------------------

    def run(self, rip: int, limit: int | None, start: int = 0, *, steps: int = 0) -> int:
        """Run from `rip` until a hook stops the engine or `limit` instructions have run.

        Returns the number of instructions executed when counting, else 0 (`start` is a
        charge that counts as already executed). `steps` > 0 also stops after that many
        instructions (Unicorn's own count, for the debugger's single step; flushes translated
        code). Raises the exception of a failed callback, or UcError for a fault no hook
        consumed.
        """
        c = self.counter
        if limit is not None:
            c.count = start
            c.limit = limit
        self.error = None
        self.stop_requested = False
        if steps:  # Unicorn's count hook, like any hook, is not in code translated before it
            self.uc.ctl_flush_tb()
        status = uclib.uc_emu_start(self.handle, rip, 0xFFFF_FFFF_FFFF_FFFF, 0, steps)
        if self.error is not None:
            err, self.error = self.error, None
            raise err
        if status != ucc.UC_ERR_OK:
            raise UcError(status)
        return c.count if limit is not None else 0

    def stop(self) -> None:
        """Stop the engine; only ever called from inside a hook (synchronous, G14)."""
        self.stop_requested = True
        uclib.uc_emu_stop(self.handle)

    # --- registers ----------------------------------------------------------------------

    def reg_read(self, reg: int) -> int:
        uclib.uc_reg_read(self.handle, reg, self._u64_ref)
        return self._u64.value

    def reg_write(self, reg: int, value: int) -> None:
        self._u64.value = value & 0xFFFF_FFFF_FFFF_FFFF
        uclib.uc_reg_write(self.handle, reg, self._u64_ref)

    def syscall_regs(self) -> ctypes.Array[ctypes.c_uint64]:
        """RAX, RDI, RSI, RDX, R10, R8, R9, RIP in one batch call (unicorn-notes §5.2)."""
        uclib.uc_reg_read_batch(self.handle, self._sys_ids, self._sys_ptrs, len(SYSCALL_REGS))
        return self._sys_vals

    def fetch(self, address: int, size: int = 16) -> bytes:
        """Up to `size` instruction bytes at `address`, fewer if a page boundary ends the
        mapping (the decoder then sees a truncated instruction)."""
        n = size
        while n > 0:
            if uclib.uc_mem_read(self.handle, address, self._code, n) == ucc.UC_ERR_OK:
                return self._code.raw[:n]
            n = min(n - 1, PAGE - (address & (PAGE - 1)))
        return b""

    # --- contexts -----------------------------------------------------------------------

    def new_context(self) -> Any:
        return self.uc.context_save()

    def save(self, ctx: Any) -> None:
        uclib.uc_context_save(self.handle, ctx.context)

    def restore(self, ctx: Any) -> None:
        uclib.uc_context_restore(self.handle, ctx.context)

    # --- memory -------------------------------------------------------------------------

    def map_buffer(self, address: int, size: int, perms: int, buf: mmap.mmap, offset: int) -> None:
        ptr = ctypes.addressof(ctypes.c_char.from_buffer(buf)) + offset
        status = uclib.uc_mem_map_ptr(self.handle, address, size, perms, ptr)
        if status != ucc.UC_ERR_OK:
            raise EngineError(f"map {address:#x}+{size:#x}: {UcError(status)}", status)

    def unmap(self, address: int, size: int) -> None:
        status = uclib.uc_mem_unmap(self.handle, address, size)
        if status != ucc.UC_ERR_OK:
            raise EngineError(f"unmap {address:#x}+{size:#x}: {UcError(status)}")

    def protect(self, address: int, size: int, perms: int) -> None:
        status = uclib.uc_mem_protect(self.handle, address, size, perms)
        if status != ucc.UC_ERR_OK:
            raise EngineError(f"protect {address:#x}+{size:#x}: {UcError(status)}")

    def invalidate_code(self, address: int, size: int) -> None:
        """Drop translations of a range whose bytes changed behind the engine (G13)."""
        self.uc.ctl_remove_cache(address, address + size)


def _unset(*_args: Any) -> Any:
    raise RuntimeError("engine callback not set")
