"""`Engine`: one Unicorn instance, one guest address space.

One `Engine` is one address space (one guest process): one `Uc` instance whose hooks are
installed once, plus fast register access through direct ctypes calls into libunicorn (the
binding's `reg_read` costs ~2.2 µs, the direct call ~0.7 µs; docs/engine-notes.md §5.3). Parts
that live in their own modules: guest memory permissions and where faults come from (the
TLB-fill hook, engine/mmu.py, `Mmu`), what a fault's page alone does not tell (engine/probe.py),
instruction counting (engine/counting.py, `Counters`) and the UINTR fast path (engine/native.py).
Only the engine package touches Unicorn.

libunicorn is called through engine/binding.py (its own ctypes declarations, with the values
of the pinned 2.1.4: the binding's import would cost ~15 ms of every start).
"""

from __future__ import annotations

import ctypes
import functools
import mmap
from collections.abc import Callable
from typing import Any

from . import cpuid, native, probe
from .binding import Uc, UcError, uc_hook_h, ucc, uclib, x86
from .binding import register_id as register_id
from .counting import CODE_CB, MISS, NO_BLOCK, OVER, Counter, Counters, hook_order
from .errors import EngineError, RunFault
from .mmu import MEM_FETCH as MEM_FETCH
from .mmu import MEM_READ as MEM_READ
from .mmu import MEM_WRITE as MEM_WRITE
from .mmu import PAGE, PROT_R, PROT_W, PROT_X, Mmu, Refusal

U64 = 0xFFFF_FFFF_FFFF_FFFF

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
SYSCALL_RIP = 7  # its index in SYSCALL_REGS

#: Exceptions that are faults (SDM Vol. 3 Table 6-1): RIP is the faulting instruction, which
#: may be inside a block; the others (#DB traps, #BP, #OF, INT n) leave RIP after theirs.
FAULT_VECTORS = frozenset({0, 5, 6, 7, 8, 10, 11, 12, 13, 14, 16, 17, 19, 20, 21})

_SYSCALL_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)
_CPUID_CB = ctypes.CFUNCTYPE(ctypes.c_uint32, ctypes.c_void_p, ctypes.c_void_p)
_INVALID_CB = ctypes.CFUNCTYPE(ctypes.c_bool, ctypes.c_void_p, ctypes.c_void_p)
_INTR_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_void_p)


class Engine:
    """One Unicorn instance = one guest address space, with its hooks installed once.

    The owner sets the callbacks (`on_syscall`, `on_invalid`, `on_interrupt`, `on_cpuid`)
    before running. An exception raised by a callback stops the engine and is re-raised by
    `run()` (docs/engine-notes.md G6: the binding would otherwise swallow it). A memory fault
    has no callback: the run raises RunFault and `mem_fault` says which access was refused.
    """

    def __init__(self, *, python_counters: bool = False, python_mmu: bool = False,
                 attention: ctypes.c_uint32 | None = None) -> None:  # fmt: skip
        """`python_counters`, `python_mmu`: count, and fill the TLB, with the Python callbacks
        even if the native library is there (engine/counting.py, engine/mmu.py; for tests).
        `attention`: a word that, while set, stops every run at its next block boundary,
        synchronously (`Counters`; without the library only while counting)."""
        self.uc = Uc(ucc.UC_ARCH_X86, ucc.UC_MODE_64)
        # Haswell: the richest model TCG really implements, with a sane CR4
        # (docs/engine-notes.md §10). Must be the first call after Uc().
        self.uc.ctl_set_cpu_model(x86.UC_CPU_X86_HASWELL)
        self.handle = self.uc._uch
        # Guest memory: the virtual TLB and its fill hook (engine/mmu.py), before any code runs.
        self.mmu = Mmu(self.uc, python=python_mmu)
        self.error: BaseException | None = None
        self.on_syscall: Callable[[], None] = _unset
        self.on_invalid: Callable[[], bool] = _unset
        self.on_interrupt: Callable[[int], None] = _unset
        self.on_cpuid: Callable[[], None] | None = None
        # Native fast path (engine/native.py): after a SENDUIPI it executed, `on_post(upid,
        # notify, nv, ndst)` sends the IPI and does the OS's part; `on_deliver()` makes a
        # delivery after STUI/UIRET that it left to the model. Both return what the #UD hook
        # returns (False: the instruction faulted).
        self.on_post: Callable[[int, int, int, int], bool] = _unset
        self.on_deliver: Callable[[], bool] = _unset
        self.fast: native.Ctx | None = None
        self._defer_stop = False  # inside the native post callback: `stop()` is the hook's
        self._stop_deferred = False
        # Raw entry points with prepared arguments for the calls made every turn (a ctypes call
        # with argtypes costs ~0.15 us more).
        self._h = ctypes.c_void_p(self.handle.value)
        self._ctx_save = native.raw_entry(uclib.uc_context_save)
        self._ctx_restore = native.raw_entry(uclib.uc_context_restore)
        self._fast_run: Any = None
        self._fast_unit: Any = None  # what set_fast_unit last set
        self._fast_switch: Any = None

        self._u64 = ctypes.c_uint64()
        # Added to RIP as read (and taken off RIP as written) while the SYSCALL hook runs.
        self.rip_bias = 0
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
        self._counters = Counters(self.uc, self.reg_read, python=python_counters,
                                  attention=attention)  # fmt: skip
        self.counter: Counter = self._counters.counter
        self.counter.mmu = ctypes.addressof(self.mmu.state)
        self._counter_ptr = ctypes.c_void_p(ctypes.addressof(self.counter))
        with self.mmu.maintenance():
            self._counters.set(False)  # no counter yet: the block tracker (engine/counting.py)
        # Breakpoints (the GDB stub): address -> (hook handle, order). A hit stops the engine
        # before the instruction runs and is recorded in `breakpoint_hit`; a hit at
        # `breakpoint_skip` is ignored once (resuming from a breakpoint address).
        self._breakpoints: dict[int, tuple[int, int]] = {}
        self._breakpoint_cb = CODE_CB(self._on_breakpoint)
        self.breakpoint_hit: int | None = None
        self.breakpoint_skip: int | None = None
        self.stop_requested = False  # `stop()` was called during the last `run()`
        # `stop_async()` was called: `run()` starts no guest code on this engine again.
        self.ended = False
        self.fault_stop = False  # the last interrupt hook was for a fault (RIP at its insn)
        # The access the TLB fill refused, when the last `run()` ended in a memory fault (RIP
        # is then at the faulting instruction, or at a fetch's target; `fault_address`).
        self.mem_fault: Refusal | None = None
        # A run with `steps` left Unicorn's own counting hook installed (see `run`).
        self._count_hook = False

        cr4 = self.reg_read(CR4)
        # docs/engine-notes.md G11: models without OSFXSR/OSXMMEXCPT would #UD on the first SSE
        # insn.
        if cr4 == 0:
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
        self.counter.halt = 1  # (uf_run_blocks leaves the next stop to `run`)
        uclib.uc_emu_stop(self.handle)

    def _install_hooks(self) -> None:
        sys_ids, sys_ptrs, nsys = self._sys_ids, self._sys_ptrs, len(SYSCALL_REGS)
        sys_vals = self._sys_vals

        def syscall(_uc: int, _ud: int) -> None:
            # Inside the hook RIP is the SYSCALL instruction, and Unicorn adds 2 to whatever RIP
            # holds when the hook returns (docs/engine-notes.md G2). The callback sees the
            # architecture instead: while `rip_bias` is 2, RIP reads as the next instruction
            # and a RIP it writes (a signal frame, sigreturn) is where execution continues.
            # Writing RIP here only to undo it on the way out would do harm: each write makes
            # Unicorn leave the translated block, and the next exit of the run then keeps a
            # stale PC (uc.c, skip_sync_pc_on_exit), which a later fault would report.
            uclib.uc_reg_read_batch(self.handle, sys_ids, sys_ptrs, nsys)
            sys_vals[SYSCALL_RIP] += 2
            self.rip_bias = 2
            try:
                self.on_syscall()
            except BaseException as e:  # noqa: BLE001 - re-raised by run()
                self._guard(e)
            finally:
                self.rip_bias = 0

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
            self.fault_stop = intno in FAULT_VECTORS
            try:
                self.on_interrupt(intno)
            except BaseException as e:  # noqa: BLE001
                self._guard(e)

        self._hook_add(
            "syscall", ucc.UC_HOOK_INSN, _SYSCALL_CB(syscall), ctypes.c_int(x86.UC_X86_INS_SYSCALL)
        )
        self._hook_add(
            "cpuid", ucc.UC_HOOK_INSN, _CPUID_CB(cpuid), ctypes.c_int(x86.UC_X86_INS_CPUID)
        )
        invalid_cb = _INVALID_CB(invalid)
        if native.HOOK_ADDRESS is None:
            self._hook_add("invalid", ucc.UC_HOOK_INSN_INVALID, invalid_cb)
        else:
            self._install_fast_path(invalid_cb)
        self._hook_add("interrupt", ucc.UC_HOOK_INTR, _INTR_CB(interrupt))

    def _install_fast_path(self, invalid_cb: Any) -> None:
        """The native #UD hook, with the Python one as its slow path (engine/native.py)."""

        def post(upid: int, notify: int, nv: int, ndst: int) -> int:
            # A `stop()` during on_post is left to the hook (POST_STOP): a ctypes call less.
            self._stop_deferred = False
            self._defer_stop = True
            try:
                ok = self.on_post(upid, notify, nv, ndst)
            except BaseException as e:  # noqa: BLE001 - re-raised by run()
                self._guard(e)
                ok = True
            finally:
                self._defer_stop = False
            return (native.POST_OK if ok else 0) | (native.POST_STOP if self._stop_deferred else 0)

        def deliver() -> bool:
            try:
                return bool(self.on_deliver())
            except BaseException as e:  # noqa: BLE001
                self._guard(e)
                return True

        fast = native.new_ctx((RIP, RSP, RFLAGS), GPR_IDS)
        post_cb, deliver_cb = native.POST_CB(post), native.DELIVER_CB(deliver)
        fast.slow = ctypes.cast(invalid_cb, ctypes.c_void_p).value
        fast.post = ctypes.cast(post_cb, ctypes.c_void_p).value
        fast.deliver = ctypes.cast(deliver_cb, ctypes.c_void_p).value
        self._callbacks += [invalid_cb, post_cb, deliver_cb]
        h = uc_hook_h()
        status = uclib.uc_hook_add(
            self.handle, ctypes.byref(h), ucc.UC_HOOK_INSN_INVALID,
            ctypes.c_void_p(native.HOOK_ADDRESS), ctypes.byref(fast),
            ctypes.c_uint64(1), ctypes.c_uint64(0),
        )  # fmt: skip
        if status != ucc.UC_ERR_OK:
            raise EngineError(f"uc_hook_add(invalid) failed: {UcError(status)}")
        self._hooks["invalid"] = h.value
        self.fast = fast
        self._fast_ptr = ctypes.c_void_p(ctypes.addressof(fast))
        lib = native.LIB
        assert lib is not None
        self._fast_deliver = native.raw_entry(lib.uf_deliver_now)
        self._fast_run = native.raw_entry(lib.uf_run)
        self._fast_switch = native.raw_entry(lib.uf_switch)

    def set_kernel_memory(self, buf: bytearray | mmap.mmap, base: int) -> None:
        """Where the fast path finds UITTs and UPIDs (never resized once set)."""
        if self.fast is not None:
            native.set_kernel_memory(self.fast, buf, base)

    def set_fast_unit(self, unit: Any) -> None:
        """The UINTR unit (hw.uintr.UintrUnit) of the CPU about to run this engine; None
        sends every #UD to the Python callback."""
        if self.fast is not None and unit is not self._fast_unit:
            self._fast_unit = unit
            self.fast.unit = None if unit is None else unit.pointer.value

    def vouch(self, address: int, host: int, perms: int) -> None:
        """The guest page at `address` is at `host` and allows `perms` (native.PERM_R/W): the
        fast path may access it until the next map, unmap or protect."""
        if self.fast is not None:
            native.remember_page(self.fast, address >> 12, host, perms)

    def fast_deliver(self, unit: Any) -> int:
        """Native delivery for `unit` (a hw.uintr.UintrUnit) at the current boundary: 1
        delivered, 0 nothing deliverable, native.SLOW (also without the fast path): use the
        model."""
        if self.fast is None or self.rip_bias:  # (the C code reads RIP unbiased)
            return native.SLOW
        return self._fast_deliver(self._fast_ptr, self._h, unit.pointer)  # type: ignore[no-any-return]

    # --- instruction counting (engine/counting.py) -----------------------------------

    @property
    def counting(self) -> bool:
        return self._counters.hook is not None

    @property
    def precise(self) -> bool:
        """The counter in use is the per-instruction one."""
        return self._counters.precise

    def set_counting(self, on: bool, precise: bool = False) -> None:
        """Install or remove the counter: per block, or per instruction (`precise`).
        Changing it flushes translated code: call rarely. (Called every scheduling turn: the
        test for "no change" is here, not a call further.)"""
        c = self._counters
        if on == (c.hook is not None) and (not on or precise == c.precise):
            return
        with self.mmu.maintenance():  # deleting a hook drops its translations: code lookups
            c.set(on, precise)

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
        self._breakpoints[address] = (h.value, next(hook_order))
        self.invalidate_code(address, 1)

    def remove_breakpoint(self, address: int) -> None:
        entry = self._breakpoints.pop(address, None)
        if entry is not None:
            with self.mmu.maintenance():  # (as in set_counting)
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
            counters = self._counters
            if counters.hook is not None and counters.precise and counters.order < entry[1]:
                self.counter.count -= 1  # counted already, but the instruction does not run now
            self.breakpoint_hit = address
            uclib.uc_emu_stop(self.handle)
        except BaseException as e:  # noqa: BLE001 - re-raised by run()
            self._guard(e)

    # --- running ------------------------------------------------------------------------

    def run(self, rip: int | None, limit: int | None, start: int = 0, *, steps: int = 0) -> int:
        """Run from `rip` (None: from RIP) until a hook stops the engine or `limit`
        instructions have run.

        Returns the number of instructions executed when counting, else 0 (`start` is a
        charge that counts as already executed). Counting per block, a run ends at the last
        block boundary within `limit` (or after one block if even that does not fit). `steps`
        > 0 also stops after that many instructions (Unicorn's own count, for the debugger's
        single step; flushes translated code). Raises the exception of a failed callback, or
        RunFault for a fault no hook consumed. After `stop_async()` it runs nothing and
        returns as if stopped.
        """
        c = self.counter
        if limit is not None:
            c.count = start
            c.limit = limit
        self.error = None
        self.stop_requested = False
        c.halt = 0
        self.fault_stop = False
        self.mem_fault = None
        if steps:  # Unicorn's count hook, like any hook, is not in code translated before it
            self.uc.ctl_flush_tb()
            self._count_hook = True
        elif self._count_hook:
            # Unicorn deletes its count hook when a run starts without a count, inside
            # uc_emu_start, looking up the code it instrumented: let an empty run do that where
            # the fill allows it (docs/engine-notes.md §15).
            self._count_hook = False
            with self.mmu.maintenance():
                start = self.reg_read(RIP) if rip is None else rip
                uclib.uc_emu_start(self.handle, start, start, 0, 0)
        # What the block counter's stops mean (engine/counting.py). This loop runs once per
        # slice, so the usual stops (at the limit, or by a hook) cost a field read or two.
        counters = self._counters
        blocks = counters.hook is not None and not counters.precise  # (per_block, inlined)
        run_blocks = counters.run_blocks  # the loop below for a block miss, in C
        progress = c.count
        missed = NO_BLOCK
        if rip is None and (steps or self._fast_run is None):
            rip = self.reg_read(RIP)
        status = ucc.UC_ERR_OK
        # Checked before every start, restarts included: see `stop_async`.
        while not self.ended:
            if blocks and run_blocks is not None and not steps:
                # Learns and resumes at missed blocks itself; returns at any other stop, and
                # at a miss this loop must see (counter.c).
                c.learnt = missed
                if rip is None:
                    rip = self.reg_read(RIP)
                status = run_blocks(self._counter_ptr, self._h, ctypes.c_uint64(rip))
                missed = c.learnt
            elif rip is None:  # reads RIP and starts the engine, in one call
                c.stop_why = c.last_size = 0
                status = self._fast_run(self._fast_ptr, self._h)
            else:
                c.stop_why = c.last_size = 0
                status = uclib.uc_emu_start(self.handle, rip, U64, 0, steps)
            if status != ucc.UC_ERR_OK:
                self.mem_fault = self._refusal(status)
            if not blocks:
                break
            why = c.stop_why
            if why == MISS and status == ucc.UC_ERR_OK and self.error is None:
                miss: int = c.miss_pc  # a block not yet in the table: it has not run
                rip = miss
                if miss == missed:  # learnt, and still a miss: Unicorn and we disagree
                    self.set_counting(True, precise=True)
                    blocks = False
                else:
                    with self.mmu.maintenance():  # (asks Unicorn for the block: a code lookup)
                        counters.learn(miss, c.miss_size)
                    missed = miss
                continue
            if why == OVER:
                if c.count == progress and not self.stop_requested:
                    # The first block does not fit in what is left: run it anyway (progress).
                    rip = counters.fit_first_block()
                    if rip is not None:
                        continue
                break
            # Stopped inside the block entered last? Only faults, breakpoints and single steps
            # do: other stops are at the end of a block (SYSCALL, #UD, INT n end theirs).
            if c.last_size:
                if self.mem_fault is not None and self.mem_fault.fetch:
                    pass  # refused while translating the next block: the last one ran whole
                elif status != ucc.UC_ERR_OK or self.fault_stop:
                    with self.mmu.maintenance():
                        counters.recount(ran_current=True)
                elif steps or self.breakpoint_hit is not None:
                    with self.mmu.maintenance():
                        counters.recount(ran_current=False)
            break
        if self.ended:
            self.stop_requested = True  # (also when it has not run at all)
        if self.error is not None:
            err, self.error = self.error, None
            raise err
        if status != ucc.UC_ERR_OK:
            raise RunFault(str(UcError(status)), status)
        return c.count if limit is not None else 0

    def _refusal(self, status: int) -> Refusal | None:
        """The access whose refusal by the fill ended a run with `status`, if that is how it
        ended. A fetch entry the fill granted for Unicorn's own probe of a page with no mapping
        (engine/mmu.py) ends a guest fetch from that page with UC_ERR_FETCH_UNMAPPED instead:
        the same refusal (docs/engine-notes.md §15)."""
        refusal = self.mmu.take_refusal()
        if refusal is None and status == ucc.UC_ERR_FETCH_UNMAPPED:
            rip = self.reg_read(RIP)
            refusal = Refusal(MEM_FETCH, rip & ~(PAGE - 1), rip, False)
        return refusal

    def stop(self) -> None:
        """Stop the engine; only ever called from inside a hook (synchronous,
        docs/engine-notes.md G14)."""
        self.stop_requested = True
        self.counter.halt = 1
        if self._defer_stop:
            self._stop_deferred = True  # the native hook stops the engine on its way out
            return
        uclib.uc_emu_stop(self.handle)

    def pause(self) -> None:
        """Stop the run from inside a hook without recording a stop request (the debugger,
        which resumes the same turn in place)."""
        self.counter.halt = 1
        uclib.uc_emu_stop(self.handle)

    def stop_async(self) -> None:
        """Stop the engine from any host thread, for good: `run()` never starts guest code on
        it again. The instruction such a stop lands in may take effect twice
        (docs/engine-notes.md G14), so only a run that is ending may use it, and no guest
        instruction may execute afterwards to see memory in that state. A stop that arrives
        while the engine is not inside Unicorn is lost (G3), and the flag is checked before a
        start, not atomically with it: whoever calls this repeats it until the run has
        returned."""
        self.ended = True
        self.stop_requested = True
        self.counter.halt = 1  # before the stop: uf_run_blocks checks it before each start
        uclib.uc_emu_stop(self.handle)

    # --- what a refused access does not tell (engine/probe.py) --------------------------

    def fault_address(self, refusal: Refusal) -> int:
        """The linear address of the refused access: the fill saw only its page. A fetch's is
        RIP, or the page's first byte when the instruction at RIP runs into the page. A data
        access's is learnt by running the instruction at RIP (where the fault left it) once
        more, on the scratch engine of engine/probe.py; the page's first byte if that copy
        does not reach the page (docs/engine-notes.md §15)."""
        page = refusal.page
        if refusal.fetch:
            rip = self.reg_read(RIP)
            return rip if page <= rip < page + PAGE else page
        registers = [self.reg_read(r) for r in probe.REGISTERS]
        here = registers[probe.REGISTERS.index(RIP)] & ~(PAGE - 1)
        offset = probe.exact_offset(here, self._code_pages(here), registers, page, refusal.kind)
        return page if offset is None else page + offset

    def branch_before(self) -> int | None:
        """After a fetch refused at a branch's target: the address of the branch, the last
        instruction of the block the last run entered last; None if the run entered none or no
        instruction tracking was installed (the per-instruction counter notes each
        instruction, the block counter and the tracker each block; engine/counting.py)."""
        c = self.counter
        if not c.last_size:
            return None
        start, end = c.last_pc, c.last_pc + c.last_size
        if self._counters.precise and self._counters.hook is not None:
            return int(start)  # noted per instruction: the branch itself
        here = start & ~(PAGE - 1)
        registers = [self.reg_read(r) for r in probe.REGISTERS]
        return probe.last_instruction(here, self._code_pages(here), registers, start, end)

    def _code_pages(self, page: int) -> bytes:
        """The bytes of the two pages from `page` (zeros where nothing is mapped)."""
        return b"".join(bytes(self.read_memory(p, PAGE)) for p in (page, page + PAGE))

    def read_memory(self, address: int, size: int) -> bytes:
        """Guest memory as the engine holds it, whatever its permissions; zeros where no
        mapping is."""
        buf = ctypes.create_string_buffer(size)
        if uclib.uc_mem_read(self.handle, address, buf, size) != ucc.UC_ERR_OK:
            return bytes(size)
        return buf.raw

    # --- registers ----------------------------------------------------------------------

    def reg_read(self, reg: int) -> int:
        uclib.uc_reg_read(self.handle, reg, self._u64_ref)
        if reg == RIP and self.rip_bias:
            return (self._u64.value + self.rip_bias) & 0xFFFF_FFFF_FFFF_FFFF
        return self._u64.value

    def reg_write(self, reg: int, value: int) -> None:
        if reg == RIP:
            value -= self.rip_bias
        self._u64.value = value & 0xFFFF_FFFF_FFFF_FFFF
        uclib.uc_reg_write(self.handle, reg, self._u64_ref)

    def syscall_regs(self) -> ctypes.Array[ctypes.c_uint64]:
        """Inside `on_syscall`: RAX, RDI, RSI, RDX, R10, R8, R9 and RIP (the next instruction)
        as the SYSCALL found them (read in one batch call when the hook was entered)."""
        return self._sys_vals

    def read_register_bytes(self, reg: int, ctx: Any = None) -> bytes:
        """A register of any width (x87, XMM: up to 64 bytes), from the engine or from a saved
        context `ctx` (the debugger's view of a thread that is not loaded)."""
        if ctx is None and reg == RIP:
            return self.reg_read(RIP).to_bytes(8, "little").ljust(64, b"\0")
        buf = ctypes.create_string_buffer(64)
        if ctx is None:
            uclib.uc_reg_read(self.handle, reg, buf)
        else:
            uclib.uc_context_reg_read(ctx.context, reg, buf)
        return buf.raw

    def write_register_bytes(self, reg: int, data: bytes, ctx: Any = None) -> None:
        if ctx is None and reg == RIP:
            self.reg_write(RIP, int.from_bytes(data[:8].ljust(8, b"\0"), "little"))
            return
        buf = ctypes.create_string_buffer(data[:64].ljust(64, b"\0"), 64)
        if ctx is None:
            uclib.uc_reg_write(self.handle, reg, buf)
        else:
            uclib.uc_context_reg_write(ctx.context, reg, buf)

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
        ctx = self.uc.context_save()
        if self.rip_bias:
            self._unbias(ctx)
        return ctx

    def save(self, ctx: Any) -> None:
        self._ctx_save(self._h, ctx._context)
        if self.rip_bias:
            self._unbias(ctx)

    def restore(self, ctx: Any) -> None:
        self._ctx_restore(self._h, ctx._context)
        if self.rip_bias:  # the context's RIP is architectural: where to go on
            rip = ctypes.c_uint64()
            uclib.uc_context_reg_read(ctx.context, RIP, ctypes.byref(rip))
            self.reg_write(RIP, rip.value)

    def _unbias(self, ctx: Any) -> None:
        """A context saved inside the SYSCALL hook holds RIP at the SYSCALL: store the RIP the
        thread continues at (contexts are always architectural)."""
        rip = ctypes.c_uint64(self.reg_read(RIP))
        uclib.uc_context_reg_write(ctx.context, RIP, ctypes.byref(rip))

    def switch(self, out: Any, into: Any) -> None:
        """`save(out)` (unless None), then `restore(into)`: a thread switch, in one call."""
        if self._fast_switch is None:
            if out is not None:
                self.save(out)
            self.restore(into)
            return
        self._fast_switch(self._fast_ptr, self._h, None if out is None else out._context,
                          into._context)  # fmt: skip

    # --- memory -------------------------------------------------------------------------

    # Every mapping is a Unicorn region with all permissions, at its linear address: the
    # permissions that count are the region table's, which the TLB-fill hook grants
    # (engine/mmu.py). So a protection change is the table and a TLB flush, never a split
    # region (docs/engine-notes.md G4), and with every region executable Unicorn notices
    # stores to translated code in any page (its notdirty_write checks the region's
    # permissions), writable-then-executable JIT pages included.

    def map_buffer(self, address: int, size: int, perms: int, buf: mmap.mmap, offset: int) -> None:
        """Map `size` bytes of `buf` from `offset` at `address` with `perms` (UC_PROT_*)."""
        ptr = native.buffer_address(buf) + offset
        self._forget_pages()
        # (Unicorn flushes the whole TLB on every map.)
        status = uclib.uc_mem_map_ptr(self.handle, address, size, ucc.UC_PROT_ALL, ptr)
        if status != ucc.UC_ERR_OK:
            raise EngineError(f"map {address:#x}+{size:#x}: {UcError(status)}", status)
        self.mmu.assign(address, address + size, x86_perms(perms))

    def unmap(self, address: int, size: int) -> None:
        self._forget_pages()
        # Unicorn removes the translations and TLB entries of every region it unmaps (or
        # splits): it looks the code pages up, which the fill must allow.
        with self.mmu.maintenance():
            status = uclib.uc_mem_unmap(self.handle, address, size)
        if status != ucc.UC_ERR_OK:
            raise EngineError(f"unmap {address:#x}+{size:#x}: {UcError(status)}")
        self.mmu.assign(address, address + size, None)

    def protect(self, address: int, size: int, perms: int) -> None:
        """Give the mapped range [address, address + size) `perms`, effective at once."""
        end = address + size
        covered = address
        for lo, hi, _p in self.mmu.regions(address, end):
            if lo > covered:
                break
            covered = hi
        if covered < end:  # (nothing changes, as with Unicorn's own mem_protect)
            raise EngineError(f"protect {address:#x}+{size:#x}: not all mapped", ucc.UC_ERR_ARG)
        self._forget_pages()
        execs = [] if perms & PROT_X else [
            (lo, hi) for lo, hi, p in self.mmu.regions(address, end) if p & PROT_X]  # fmt: skip
        self.mmu.assign(address, end, x86_perms(perms))
        self.mmu.flush_tlb()
        # Code that lost its execute permission can no longer be looked up (the flush empties
        # the jump cache), but a block translated across a page boundary is found by its first
        # page only: drop the translations (page by page: a range may span Unicorn regions,
        # whose translations Unicorn finds by the first page's region).
        for lo, hi in execs:
            for page in range(max(lo, address), min(hi, end), PAGE):
                self.invalidate_code(page, PAGE)

    def regions(self) -> list[tuple[int, int, int]]:
        """The mapped ranges and their permissions, as the fill grants them: (start, end,
        perms) in address order, adjacent equal ones merged."""
        return self.mmu.regions()

    def _forget_pages(self) -> None:
        # Any mapping change: the pages vouched for the fast path may be gone or re-protected.
        if self.fast is not None:
            native.forget_pages(self.fast)

    def invalidate_code(self, address: int, size: int) -> None:
        """Drop translations of a range whose bytes changed behind the engine
        (docs/engine-notes.md G13), and the block counts learnt there."""
        with self.mmu.maintenance():  # Unicorn looks the first page up as code
            self.uc.ctl_remove_cache(address, address + size)
        self._counters.forget(address, size)


def x86_perms(perms: int) -> int:
    """x86 pages have no write-only or execute-only permission: either implies read."""
    return perms | PROT_R if perms & (PROT_W | PROT_X) else perms


@functools.cache
def _cpuid_engine() -> Uc:
    """A scratch instance of the same CPU model, with one CPUID instruction mapped."""
    uc = Uc(ucc.UC_ARCH_X86, ucc.UC_MODE_64)
    uc.ctl_set_cpu_model(x86.UC_CPU_X86_HASWELL)
    uc.mem_map(PAGE, PAGE)
    uc.mem_write(PAGE, b"\x0f\xa2")  # cpuid
    return uc


def model_cpuid(leaf: int, subleaf: int) -> tuple[int, int, int, int]:
    """The engine's own CPUID answer (EAX, EBX, ECX, EDX) for the CPU model every Engine uses;
    the machine adjusts it (hw/cpu.py cpuid_adjust). From the table of engine/cpuid.py when it
    has it, else asked of the engine."""
    known = cpuid.lookup(leaf, subleaf)
    return known if known is not None else ask_cpuid(leaf, subleaf)


def ask_cpuid(leaf: int, subleaf: int) -> tuple[int, int, int, int]:
    """The engine's own CPUID answer, asked of a scratch instance (created once)."""
    uc = _cpuid_engine()
    uc.reg_write(x86.UC_X86_REG_RAX, leaf)
    uc.reg_write(x86.UC_X86_REG_RCX, subleaf)
    uc.emu_start(PAGE, PAGE + 2)
    regs = (x86.UC_X86_REG_RAX, x86.UC_X86_REG_RBX, x86.UC_X86_REG_RCX, x86.UC_X86_REG_RDX)
    a, b, c, d = (uc.reg_read(r) & 0xFFFF_FFFF for r in regs)
    return a, b, c, d


def _unset(*_args: Any) -> Any:
    raise RuntimeError("engine callback not set")
