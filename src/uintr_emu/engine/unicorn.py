"""The only module that touches Unicorn.

One `Engine` is one address space (one guest process): one `Uc` instance whose hooks are
installed once, plus fast register access through direct ctypes calls into libunicorn (the
binding's `reg_read` costs ~2.2 µs, the direct call ~0.7 µs; unicorn-notes §5.3).

Two private details of the Python binding are used, hence the `unicorn==2.1.4` pin:
`unicorn.unicorn_py3.unicorn.uclib` (the loaded library) and `Uc._uch` (the engine handle).

Instruction counting. Slicing needs an instruction limit, and the virtual clock needs to know how
many instructions a slice really ran, also when a hook stopped it early. Unicorn's own `count=`
cannot say that, and any `UC_HOOK_CODE` hook makes the translator sync RIP and the lazy flags
before every instruction (28% of a 4-thread run, docs/performance.md). So counting is done per
translation block: a native callback (machine code in an executable page, `_BLOCK_COUNTER_CODE`)
installed as a `UC_HOOK_BLOCK` hook looks the block's instruction count up in a direct-mapped
table and adds it on entry. Counts stay exact:
- a block whose count is not in the table stops the engine before it runs (the hook is called
  before the block's first instruction); `run` asks Unicorn for the block's `icount`
  (`ctl_request_cache`), fills the entry and resumes;
- a block that would pass the limit stops the engine before it runs, so a slice ends at a block
  boundary at or below its limit (a block longer than a whole slice runs anyway: progress);
- SYSCALL, a trapped #UD, INT n and HLT end their translation block, so a hook that stops the
  engine never leaves a block half counted; a memory fault does, and `run` recounts the faulting
  block up to and including the faulting instruction, as per-instruction counting would.
The exact per-instruction callback (`_COUNTER_CODE`, a `UC_HOOK_CODE` hook) is kept for the
debugger (breakpoints and single steps land inside blocks) and the last stretch of `--max-insns`.
Both stop the engine synchronously with `uc_emu_stop` tail-called from the hook (unicorn-notes G14:
never stop asynchronously). Changing hooks flushes translated code (G8), so callers switch rarely.
"""

from __future__ import annotations

import ctypes
import functools
import mmap
from collections.abc import Callable
from typing import Any, NamedTuple

from unicorn import UC_ARCH_X86, UC_MODE_64, Uc, UcError
from unicorn import unicorn_const as ucc
from unicorn import x86_const as x86
from unicorn.unicorn_py3.unicorn import uc_hook_h, uclib

from . import native

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
SYSCALL_RIP = 7  # its index in SYSCALL_REGS

# void counter(uc_engine *uc, uint64_t addr, uint32_t size, struct Counter *c)   [UC_HOOK_CODE]
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

# void block_counter(uc_engine *uc, uint64_t pc, uint32_t size, struct Counter *c) [UC_HOOK_BLOCK]
#   struct Entry *e = &c->table[(pc ^ pc >> 12) & c->mask];
#   if (e->pc != pc || e->size != size) { c->stop_why = MISS; c->miss_size = size;
#                                         c->miss_pc = pc; return uc_emu_stop(uc); }
#   if (c->count + e->n > c->limit) { c->stop_why = OVER; return uc_emu_stop(uc); }
#   c->count += e->n; c->last_pc = pc; c->last_size = size; c->last_n = e->n;
# (assembled with GNU as 2.40 from that source; offsets are those of `_Counter`)
_BLOCK_COUNTER_CODE = bytes.fromhex(
    "4889f0"  # mov rax, rsi
    "48c1e80c"  # shr rax, 12
    "4831f0"  # xor rax, rsi
    "48234138"  # and rax, [rcx+56]        mask
    "48c1e004"  # shl rax, 4
    "48034140"  # add rax, [rcx+64]        table
    "483b30"  # cmp rsi, [rax]            entry pc
    "752c"  # jne miss
    "3b5008"  # cmp edx, [rax+8]          entry size
    "7527"  # jne miss
    "8b400c"  # mov eax, [rax+12]         entry n
    "4c8b01"  # mov r8, [rcx]             count
    "4901c0"  # add r8, rax
    "4c3b4108"  # cmp r8, [rcx+8]          limit
    "770e"  # ja over
    "4c8901"  # mov [rcx], r8
    "48897118"  # mov [rcx+24], rsi        last_pc
    "895120"  # mov [rcx+32], edx         last_size
    "894124"  # mov [rcx+36], eax         last_n
    "c3"  # ret
    "c7412802000000"  # over: mov dword [rcx+40], OVER
    "ff6110"  # jmp [rcx+16]              uc_emu_stop(uc)
    "c7412801000000"  # miss: mov dword [rcx+40], MISS
    "89512c"  # mov [rcx+44], edx         miss_size
    "48897130"  # mov [rcx+48], rsi        miss_pc
    "ff6110"  # jmp [rcx+16]              uc_emu_stop(uc)
)
#: Exceptions that are faults (SDM Vol. 3 Table 6-1): RIP is the faulting instruction, which
#: may be inside a block; the others (#DB traps, #BP, #OF, INT n) leave RIP after theirs.
FAULT_VECTORS = frozenset({0, 5, 6, 7, 8, 10, 11, 12, 13, 14, 16, 17, 19, 20, 21})
MISS, OVER = 1, 2  # why the block counter stopped the engine (`_Counter.stop_why`)

#: Entries of the block table (a power of two); 16 bytes each, one table per address space.
BLOCK_TABLE_SIZE = 1 << 15
NO_BLOCK = 0xFFFF_FFFF_FFFF_FFFF  # the pc of an emptied entry: no block starts there


class _Entry(ctypes.Structure):
    _fields_ = [("pc", ctypes.c_uint64), ("size", ctypes.c_uint32), ("n", ctypes.c_uint32)]


class _Counter(ctypes.Structure):
    """Shared by both callbacks: `count`, `limit` and `stop` are all the exact one uses."""

    _fields_ = [
        ("count", ctypes.c_uint64),
        ("limit", ctypes.c_uint64),
        ("stop", ctypes.c_void_p),
        ("last_pc", ctypes.c_uint64),
        ("last_size", ctypes.c_uint32),
        ("last_n", ctypes.c_uint32),
        ("stop_why", ctypes.c_uint32),
        ("miss_size", ctypes.c_uint32),
        ("miss_pc", ctypes.c_uint64),
        ("mask", ctypes.c_uint64),
        ("table", ctypes.c_void_p),
    ]


class _NativeCode:
    """The two counter callbacks, placed once per host process in an executable page."""

    _instance: _NativeCode | None = None

    def __init__(self) -> None:
        self.page = mmap.mmap(-1, PAGE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        self.page.write(_COUNTER_CODE)
        self.page.seek(64)
        self.page.write(_BLOCK_COUNTER_CODE)
        self.address = native.buffer_address(self.page)
        self.block_address = self.address + 64
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
        self.counter = _Counter(0, 0, _NativeCode.get().emu_stop)
        self._counter_hook: int | None = None
        self.precise = False  # the counter in use is the per-instruction one
        self._table: ctypes.Array[_Entry] | None = None  # block pc -> instruction count
        self._learned: dict[int, set[int]] = {}  # page -> block pcs in the table
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
        self.fault_stop = False  # the last interrupt hook was for a fault (RIP at its insn)
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
        invalid_cb = _INVALID_CB(invalid)
        if native.HOOK_ADDRESS is None:
            self._hook_add("invalid", ucc.UC_HOOK_INSN_INVALID, invalid_cb)
        else:
            self._install_fast_path(invalid_cb)
        self._hook_add("interrupt", ucc.UC_HOOK_INTR, _INTR_CB(interrupt))
        self._hook_add("memfault", MEM_FAULT_HOOKS, _MEMFAULT_CB(mem_fault))

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

    def set_kernel_memory(self, buf: bytearray, base: int) -> None:
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

    # --- instruction counting -----------------------------------------------------------

    @property
    def counting(self) -> bool:
        return self._counter_hook is not None

    def set_counting(self, on: bool, precise: bool = False) -> None:
        """Install or remove the counter: per block, or per instruction (`precise`).
        Changing it flushes translated code: call rarely."""
        if on == self.counting and (not on or precise == self.precise):
            return
        if self._counter_hook is not None:
            uclib.uc_hook_del(self.handle, self._counter_hook)
            self._counter_hook = None
        if on:
            native = _NativeCode.get()
            if precise:
                htype, code = ucc.UC_HOOK_CODE, native.address
            else:
                htype, code = ucc.UC_HOOK_BLOCK, native.block_address
                if self._table is None:
                    self._table = (_Entry * BLOCK_TABLE_SIZE)()
                    self.counter.table = ctypes.addressof(self._table)
                    self.counter.mask = BLOCK_TABLE_SIZE - 1
            h = uc_hook_h()
            status = uclib.uc_hook_add(
                self.handle, ctypes.byref(h), htype, ctypes.c_void_p(code),
                ctypes.byref(self.counter), ctypes.c_uint64(1), ctypes.c_uint64(0),
            )  # fmt: skip
            if status != ucc.UC_ERR_OK:
                raise EngineError(f"cannot install the instruction counter: {UcError(status)}")
            self._counter_hook = h.value
            self.precise = precise
            self._hook_order += 1
            self._counter_order = self._hook_order
        # Unicorn decides at translation time whether a block calls code hooks, and 2.1.4
        # does not flush on hook_add: without this, code translated while counting was off
        # would stay uncounted (and never reach a slice limit).
        self.uc.ctl_flush_tb()

    def _learn(self, pc: int, size: int) -> None:
        """Put the instruction count of the block at `pc` (as Unicorn translated it) in the
        table; the slot's previous block, if any, is forgotten (it misses again next time)."""
        assert self._table is not None
        _pc, icount, _size = self.uc.ctl_request_cache(pc)
        slot = self._table[_slot(pc)]
        if slot.size:
            self._learned.get(slot.pc >> 12, set()).discard(slot.pc)
        slot.pc, slot.size, slot.n = pc, size, icount
        self._learned.setdefault(pc >> 12, set()).add(pc)

    def _block_count(self, pc: int) -> int | None:
        assert self._table is not None
        slot = self._table[_slot(pc)]
        return slot.n if slot.pc == pc and slot.size else None

    def _recount(self, ran_current: bool) -> None:
        """The engine stopped inside the block entered last, whose whole count was added on
        entry: count it up to the instruction at RIP, and that one too if it began (a fault:
        the per-instruction counter counts an instruction before it runs; a breakpoint or a
        single step: it has not run). The block from RIP on ends where the entered block ends
        (same code), unless the translator cut the entered one at its size limit: then the
        whole block stays counted (deterministic, a few instructions high)."""
        c = self.counter
        rip = self.reg_read(RIP)
        if not c.last_pc <= rip < c.last_pc + c.last_size:
            return  # e.g. a fetch fault: the block that jumped there ran to its end
        try:
            _pc, rest, size = self.uc.ctl_request_cache(rip)
        except UcError:
            return
        if rip + size == c.last_pc + c.last_size and rest <= c.last_n:
            c.count -= rest - 1 if ran_current else rest

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
            if self.precise and self._counter_hook is not None and self._counter_order < entry[1]:
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
        UcError for a fault no hook consumed.
        """
        c = self.counter
        if limit is not None:
            c.count = start
            c.limit = limit
        self.error = None
        self.stop_requested = False
        self.fault_stop = False
        self.mem_fault = None
        if steps:  # Unicorn's count hook, like any hook, is not in code translated before it
            self.uc.ctl_flush_tb()
        blocks = self._counter_hook is not None and not self.precise
        progress = c.count
        missed = NO_BLOCK
        if rip is None and (steps or self._fast_run is None):
            rip = self.reg_read(RIP)
        while True:
            c.stop_why = 0
            c.last_size = 0
            if rip is None:  # reads RIP and starts the engine, in one call
                status = self._fast_run(self._fast_ptr, self._h)
            else:
                status = uclib.uc_emu_start(self.handle, rip, 0xFFFF_FFFF_FFFF_FFFF, 0, steps)
            if not blocks:
                break
            why = c.stop_why
            if why == MISS and status == ucc.UC_ERR_OK and self.error is None:
                rip = c.miss_pc  # a block not yet in the table: it has not run
                if rip == missed:  # learnt, and still a miss: Unicorn and we disagree
                    self.set_counting(True, precise=True)
                    blocks = False
                else:
                    self._learn(rip, c.miss_size)
                    missed = rip
                continue
            if why == OVER:
                if c.count == progress and not self.stop_requested:
                    # The first block does not fit in what is left: run it anyway (progress).
                    rip = self.reg_read(RIP)
                    n = self._block_count(rip)
                    if n is not None:
                        c.limit = c.count + n
                        continue
                break
            # Stopped inside the block entered last? Only faults, breakpoints and single steps
            # do: other stops are at the end of a block (SYSCALL, #UD, INT n end theirs).
            if c.last_size:
                if status != ucc.UC_ERR_OK or self.fault_stop:
                    self._recount(ran_current=True)
                elif steps or self.breakpoint_hit is not None:
                    self._recount(ran_current=False)
            break
        if self.error is not None:
            err, self.error = self.error, None
            raise err
        if status != ucc.UC_ERR_OK:
            raise UcError(status)
        return c.count if limit is not None else 0

    def stop(self) -> None:
        """Stop the engine; only ever called from inside a hook (synchronous, G14)."""
        self.stop_requested = True
        if self._defer_stop:
            self._stop_deferred = True  # the native hook stops the engine on its way out
            return
        uclib.uc_emu_stop(self.handle)

    def pause(self) -> None:
        """Stop the run from inside a hook without recording a stop request (the debugger,
        which resumes the same turn in place)."""
        uclib.uc_emu_stop(self.handle)

    def stop_async(self) -> None:
        """Stop the engine from another host thread (the watchdog; unicorn-notes G14)."""
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
        (reads, and writes of the bytes the first run already wrote). No hook that instruments
        code is added, so nothing is retranslated; at most the block starting at the instruction
        is translated once. Safety net for an instruction that would not fault again: the fill
        hook refuses any access by another instruction (after the TLB flush, and with each entry
        granting only the access it was filled for, another instruction's first store or access
        to a new page comes back to the hook), and syscall/#UD/interrupt/CPUID callbacks stop
        the engine (only a loop of register-only instructions would escape both). Registers,
        the instruction counters, breakpoints and callbacks are restored. Returns None when
        nothing faulted.
        """
        rip = self.reg_read(RIP)
        if self._replay_ctx is None:
            self._replay_ctx = self.new_context()
        ctx = self._replay_ctx
        self.save(ctx)
        c = self.counter
        counter = bytes(c)  # every field: count, limit, the block counter's last/miss/table
        saved = (self.breakpoint_skip, self.breakpoint_hit, self.mem_fault, self.fault_stop,
                 self.on_syscall, self.on_invalid, self.on_interrupt, self.on_mem_fault,
                 self.on_cpuid, self.error, self.stop_requested)  # fmt: skip
        r = self._replay = _Replay(rip, canonical)
        self.mem_fault = None
        fast_unit = self._fast_unit
        self.set_fast_unit(None)  # a #UD must reach the halting callback
        halt = self._replay_halt
        self.on_syscall, self.on_invalid, self.on_interrupt = halt, halt, halt
        self.on_cpuid, self.on_mem_fault = halt, self._replay_mem_fault
        # Neither counter may stop the replay before the instruction: no limit, and for the
        # block counter a one-entry table in which the block at RIP counts 0 (it stops at a
        # block it has no entry for).
        c.limit = 0xFFFF_FFFF_FFFF_FFFF
        one = (_Entry * 1)()
        if self.counting and not self.precise:
            try:
                _pc, _n, size = self.uc.ctl_request_cache(rip)
            except UcError:
                size = 0
            one[0].pc, one[0].size, one[0].n = rip, size, 0
            c.table, c.mask = ctypes.addressof(one), 0
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
            self.set_fast_unit(fast_unit)
            ctypes.memmove(ctypes.addressof(c), counter, len(counter))
            (self.breakpoint_skip, self.breakpoint_hit, self.mem_fault, self.fault_stop,
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

    def map_buffer(self, address: int, size: int, perms: int, buf: mmap.mmap, offset: int) -> None:
        ptr = native.buffer_address(buf) + offset
        self._forget_pages()
        status = uclib.uc_mem_map_ptr(self.handle, address, size, perms, ptr)
        if status != ucc.UC_ERR_OK:
            raise EngineError(f"map {address:#x}+{size:#x}: {UcError(status)}", status)

    def unmap(self, address: int, size: int) -> None:
        self._forget_pages()
        status = uclib.uc_mem_unmap(self.handle, address, size)
        if status != ucc.UC_ERR_OK:
            raise EngineError(f"unmap {address:#x}+{size:#x}: {UcError(status)}")

    def protect(self, address: int, size: int, perms: int) -> None:
        self._forget_pages()
        status = uclib.uc_mem_protect(self.handle, address, size, perms)
        if status != ucc.UC_ERR_OK:
            raise EngineError(f"protect {address:#x}+{size:#x}: {UcError(status)}")

    def _forget_pages(self) -> None:
        # Any mapping change: the pages vouched for the fast path may be gone or re-protected.
        if self.fast is not None:
            native.forget_pages(self.fast)

    def invalidate_code(self, address: int, size: int) -> None:
        """Drop translations of a range whose bytes changed behind the engine (G13), and the
        block counts learnt there."""
        self.uc.ctl_remove_cache(address, address + size)
        if self._learned and self._table is not None:
            first, last = address >> 12, (address + size - 1) >> 12
            if last - first < len(self._learned):
                pages = [p for p in range(first, last + 1) if p in self._learned]
            else:
                pages = [p for p in self._learned if first <= p <= last]
            for page in pages:
                for pc in self._learned.pop(page):
                    slot = self._table[_slot(pc)]
                    if slot.pc == pc:
                        slot.pc, slot.size = NO_BLOCK, 0


@functools.cache
def _cpuid_engine() -> Uc:
    """A scratch instance of the same CPU model, with one CPUID instruction mapped."""
    uc = Uc(UC_ARCH_X86, UC_MODE_64)
    uc.ctl_set_cpu_model(x86.UC_CPU_X86_HASWELL)
    uc.mem_map(PAGE, PAGE)
    uc.mem_write(PAGE, b"\x0f\xa2")  # cpuid
    return uc


def model_cpuid(leaf: int, subleaf: int) -> tuple[int, int, int, int]:
    """The engine's own CPUID answer (EAX, EBX, ECX, EDX) for the CPU model every Engine uses;
    the machine adjusts it (hw/cpu.py cpuid_adjust)."""
    uc = _cpuid_engine()
    uc.reg_write(x86.UC_X86_REG_RAX, leaf)
    uc.reg_write(x86.UC_X86_REG_RCX, subleaf)
    uc.emu_start(PAGE, PAGE + 2)
    regs = (x86.UC_X86_REG_RAX, x86.UC_X86_REG_RBX, x86.UC_X86_REG_RCX, x86.UC_X86_REG_RDX)
    a, b, c, d = (uc.reg_read(r) & 0xFFFF_FFFF for r in regs)
    return a, b, c, d


def _slot(pc: int) -> int:
    """The block table entry of `pc`: the native callback's hash, `(pc ^ pc >> 12) & mask`."""
    return (pc ^ (pc >> 12)) & (BLOCK_TABLE_SIZE - 1)


def _unset(*_args: Any) -> Any:
    raise RuntimeError("engine callback not set")


class _Replay:
    """State of one `Engine.replay_fault`."""

    __slots__ = ("rip", "canonical", "first")

    def __init__(self, rip: int, canonical: Callable[[int], bool]) -> None:
        self.rip = rip
        self.canonical = canonical
        self.first: FaultReplay | None = None
