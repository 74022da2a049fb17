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
from typing import Any, NamedTuple

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


class _TlbEntry(ctypes.Structure):
    _fields_ = [("paddr", ctypes.c_uint64), ("perms", ctypes.c_uint32)]


_TLB_FILL_CB = ctypes.CFUNCTYPE(
    ctypes.c_bool,
    ctypes.c_void_p,
    ctypes.c_uint64,
    ctypes.c_int,
    ctypes.POINTER(_TlbEntry),
    ctypes.c_void_p,
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
# Access types of a TLB fill (FaultReplay.kind of a non-canonical access).
MEM_READ, MEM_WRITE, MEM_FETCH = ucc.UC_MEM_READ, ucc.UC_MEM_WRITE, ucc.UC_MEM_FETCH
_ACCESS_PERMS = {MEM_READ: PROT_R, MEM_WRITE: PROT_W, MEM_FETCH: PROT_X}


class FaultReplay(NamedTuple):
    """The first faulting access seen by `Engine.replay_fault`.

    ``noncanonical``: the access's linear page ``address`` was refused as non-canonical, and
    ``kind`` is UC_MEM_READ, UC_MEM_WRITE or UC_MEM_FETCH. Otherwise a canonical access faulted
    as it did in the run: ``kind`` is the UC_MEM_*_UNMAPPED/_PROT kind and ``address`` the full
    64-bit address.
    """

    kind: int
    address: int
    noncanonical: bool


class EngineError(Exception):
    """Unicorn refused an operation (bad mapping, corrupt state); a bug or bad guest input."""


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
        # The first memory fault of the last `run()` as the engine reported it (the only one
        # passed to `on_mem_fault`): (kind, address, size, RIP of the faulting instruction),
        # the address cut to 52 bits (see `replay_fault`). After a faulting store inside some
        # helpers (fxsave, fnstenv) the engine runs on to the end of the block, so RIP at the
        # stop can be past the instruction; the RIP here is the instruction's.
        self.mem_fault: tuple[int, int, int, int] | None = None
        # `replay_fault`: its callback (made once: Unicorn keeps a deleted hook in its list until
        # the next emu_start ends) and the state of the replay under way.
        self._replay: _Replay | None = None
        self._replay_fill_cb = _TLB_FILL_CB(self._replay_fill)
        self._replay_ctx: Any = None

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
            # A faulting store does not end the instruction at once (cputlb.c store_helper
            # returns): its later stores report again. The first fault is the one that counts.
            if self.mem_fault is not None:
                return False
            self.mem_fault = (kind, address, size, self.reg_read(RIP))
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
        self.mem_fault = None
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

    # --- fault replay -------------------------------------------------------------------

    def replay_fault(self, canonical: Callable[[int], bool]) -> FaultReplay | None:
        """Run the instruction at RIP, which has just faulted on a data access, once more to
        learn the full linear address of its first faulting access; restore every register.

        Why: with paging off Unicorn 2.1.4 takes the low 52 bits of a linear address as the
        physical address (target/i386 excp_helper.c, handle_mmu_fault: ``pte & PG_ADDRESS_MASK``)
        and every memory hook, MEM_READ/MEM_WRITE included, gets that physical address
        (accel/tcg/cputlb.c load_helper/store_helper): 0x8000000000000000 is reported as 0, and
        a non-canonical address whose low 52 bits fall on a mapped page is even accessed. Only
        the TLB-fill hook of the virtual TLB mode (softmmu/unicorn_vtlb.c) sees the linear page,
        all 64 bits. So the replay switches to UC_TLB_VIRTUAL with a fill hook that maps every
        page `canonical` accepts to the physical address it names (the normal mode's mapping
        for user addresses; kernel-half ones now reach the unmapped hook whole) and refuses the
        others, which stops the instruction before that access is made.

        The replay is deterministic: the addresses an instruction accesses follow from its
        registers, which are the same, so it makes the same accesses in the same order up to
        the first one that faults, non-canonical or not. Accesses before that one are made again
        (reads, and writes of the bytes the first run already wrote). It runs the translation
        the engine already has: no retranslation, nothing added to the translation cache. Safety
        net for an instruction that would not fault again: the fill hook refuses any access by
        another instruction (after the TLB flush, and with each entry granting only the access
        it was filled for, another instruction's first store or access to a new page comes back
        to the hook), and syscall/#UD/interrupt/CPUID callbacks stop the engine (only a loop of
        register-only instructions would escape both). Registers, the
        instruction counter, breakpoints and callbacks are restored. Returns None when nothing
        faulted.
        """
        rip = self.reg_read(RIP)
        if self._replay_ctx is None:
            self._replay_ctx = self.new_context()
        ctx = self._replay_ctx
        self.save(ctx)
        c = self.counter
        saved = (c.count, c.limit, self.breakpoint_skip, self.breakpoint_hit, self.mem_fault,
                 self.on_syscall, self.on_invalid, self.on_interrupt, self.on_mem_fault,
                 self.on_cpuid, self.error, self.stop_requested)  # fmt: skip
        r = self._replay = _Replay(rip, canonical)
        self.mem_fault = None
        halt = self._replay_halt
        self.on_syscall, self.on_invalid, self.on_interrupt = halt, halt, halt
        self.on_cpuid, self.on_mem_fault = halt, self._replay_mem_fault
        c.limit = 0xFFFF_FFFF_FFFF_FFFF  # the counter hook must not stop before the instruction
        self.breakpoint_skip = rip
        hook = uc_hook_h()
        status = uclib.uc_hook_add(
            self.handle, ctypes.byref(hook), ucc.UC_HOOK_TLB_FILL,
            ctypes.cast(self._replay_fill_cb, ctypes.c_void_p), None,
            ctypes.c_uint64(1), ctypes.c_uint64(0),
        )  # fmt: skip
        try:
            if status == ucc.UC_ERR_OK:
                self.uc.ctl_set_tlb_mode(ucc.UC_TLB_VIRTUAL)
                self._flush_tlb()  # every access of the replay goes through the fill hook
                uclib.uc_emu_start(self.handle, rip, 0xFFFF_FFFF_FFFF_FFFF, 0, 0)
        finally:
            self.uc.ctl_set_tlb_mode(ucc.UC_TLB_CPU)
            self._flush_tlb()
            if status == ucc.UC_ERR_OK:
                uclib.uc_hook_del(self.handle, hook.value)
            self._replay = None
            self.restore(ctx)
            (c.count, c.limit, self.breakpoint_skip, self.breakpoint_hit, self.mem_fault,
             self.on_syscall, self.on_invalid, self.on_interrupt, self.on_mem_fault,
             self.on_cpuid, self.error, self.stop_requested) = saved  # fmt: skip
        return r.first

    def _flush_tlb(self) -> None:
        self.uc.ctl(ucc.UC_CTL_TLB_FLUSH, ucc.UC_CTL_IO_WRITE)

    def _replay_fill(self, _uc: int, vaddr: int, access: int, entry: Any, _ud: int) -> bool:
        r = self._replay
        if r is None:
            return False
        if r.first is not None:  # after the fault (Unicorn invalidating its exit address)
            return False
        if self.reg_read(RIP) != r.rip:  # (the fill syncs RIP to the accessing instruction)
            return False  # another instruction: this one did not fault again, run no further
        if not r.canonical(vaddr):  # a page is canonical or not as a whole (2^47 is aligned)
            r.first = FaultReplay(access, vaddr, True)
            return False
        entry.contents.paddr = vaddr
        # Only the permission this access needs (the region's own permissions still apply), so
        # that a store by a later instruction to a page read here comes back to this hook.
        entry.contents.perms = _ACCESS_PERMS.get(access, 0)
        return True

    def _replay_mem_fault(self, kind: int, address: int, _size: int) -> None:
        r = self._replay
        if r is not None and r.first is None:
            r.first = FaultReplay(kind, address, False)

    def _replay_halt(self, *_args: Any) -> bool:
        uclib.uc_emu_stop(self.handle)
        return False

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
            raise EngineError(f"map {address:#x}+{size:#x}: {UcError(status)}")

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


class _Replay:
    """State of one `Engine.replay_fault`."""

    __slots__ = ("rip", "canonical", "first")

    def __init__(self, rip: int, canonical: Callable[[int], bool]) -> None:
        self.rip = rip
        self.canonical = canonical
        self.first: FaultReplay | None = None
