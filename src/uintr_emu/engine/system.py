"""`SystemEngine`: one Unicorn instance as a whole x86-64 processor with physical memory, for
full-system mode (docs/system.md).

In system mode the engine does guest paging itself (CR3, the page tables in guest memory), but
it delivers no exception or interrupt through the guest IDT, does not jump to LSTAR on SYSCALL
and cannot change the privilege level through its register API (docs/system.md, "Engine
facts"). This module reports each of those events as a `Stop` and offers the primitives the
architectural delivery needs (system/cpu.py): registers, physical memory, loading CS/SS with
their hidden parts and CPL, the pending exception's error code. Those last two live only in
the engine's private CPU state, reached through the saved context blob at offsets pinned
here and checked by tests/test_system_engine.py.
"""

from __future__ import annotations

import ctypes
import struct
from collections.abc import Callable
from dataclasses import dataclass

from unicorn import (
    UC_ARCH_X86,
    UC_HOOK_INSN,
    UC_HOOK_INSN_INVALID,
    UC_HOOK_INTR,
    UC_MODE_64,
    Uc,
    UcError,
)
from unicorn import x86_const as x86
from unicorn.unicorn_py3.unicorn import uc_hook_h, uclib

from .counting import Counters
from .errors import EngineError

_INSN_CB = ctypes.CFUNCTYPE(ctypes.c_uint32, ctypes.c_void_p, ctypes.c_void_p)

# Offsets into the context blob of the PyPI unicorn 2.1.4 build (a 40-byte header, then
# QEMU's CPUX86State): measured, and checked by tests/test_system_engine.py.
CTX_SIZE = 5608
CTX_HFLAGS = 216  # env->hflags: CPL in bits 0-1, CS32 bit 4, SS32 bit 5, CS64 bit 15
CTX_SEGS = 224  # env->segs[6]: {u32 selector, pad, u64 base, u32 limit, u32 flags} each
SEG_SIZE = 24
CTX_ERROR_CODE = 5424  # env->error_code of the exception being raised
CTX_IS_INT = 5428  # env->exception_is_int: raised by INT n / INT3 / INTO
CTX_OLD_EXCEPTION = 5536  # env->old_exception: -1 when no delivery is in progress

HF_CPL_MASK = 3
HF_CS32 = 1 << 4
HF_SS32 = 1 << 5
HF_CS64 = 1 << 15
DESC_B = 1 << 22
DESC_L = 1 << 21

ES, CS, SS, DS, FS, GS = range(6)

#: Registers by name for the delivery code (system/cpu.py) and the boot loader.
REGS = {
    "rax": x86.UC_X86_REG_RAX, "rbx": x86.UC_X86_REG_RBX, "rcx": x86.UC_X86_REG_RCX,
    "rdx": x86.UC_X86_REG_RDX, "rsi": x86.UC_X86_REG_RSI, "rdi": x86.UC_X86_REG_RDI,
    "rsp": x86.UC_X86_REG_RSP, "rbp": x86.UC_X86_REG_RBP, "r11": x86.UC_X86_REG_R11,
    "rip": x86.UC_X86_REG_RIP, "rflags": x86.UC_X86_REG_RFLAGS, "cr0": x86.UC_X86_REG_CR0,
    "cr2": x86.UC_X86_REG_CR2, "cr3": x86.UC_X86_REG_CR3, "cr4": x86.UC_X86_REG_CR4,
    "cs": x86.UC_X86_REG_CS, "ss": x86.UC_X86_REG_SS, "ds": x86.UC_X86_REG_DS,
    "es": x86.UC_X86_REG_ES, "fs": x86.UC_X86_REG_FS, "gs": x86.UC_X86_REG_GS,
}  # fmt: skip
MSR_TSC_AUX = 0xC000_0103
_CPUID_OUT = (x86.UC_X86_REG_RAX, x86.UC_X86_REG_RBX, x86.UC_X86_REG_RCX, x86.UC_X86_REG_RDX)
_TABLES = {"gdtr": x86.UC_X86_REG_GDTR, "idtr": x86.UC_X86_REG_IDTR, "tr": x86.UC_X86_REG_TR}

U64 = 0xFFFF_FFFF_FFFF_FFFF

# Why a run ended.
COUNT = "count"  # the instruction budget ran out
HALT = "halt"  # HLT ended the run, RIP after it
EXCEPTION = "exception"  # a CPU exception or INT n, not yet delivered
SYSCALL = "syscall"  # a SYSCALL, not yet carried out (RIP after it)
INVALID = "invalid"  # #UD (the engine reports it apart from other exceptions)
DEVICE = "device"  # a device callback asked for the run to end (`stop()`)


@dataclass(frozen=True)
class Stop:
    kind: str
    vector: int = 0
    error_code: int = 0
    software: bool = False  # INT n / INT3: delivered with the gate's DPL check, no error code


PortRead = Callable[[int, int], int]  # (port, size) -> value
PortWrite = Callable[[int, int, int], None]  # (port, size, value)


class SystemEngine:
    """A processor and its physical memory (RAM from 0 to `ram_size`, plus MMIO windows)."""

    def __init__(
        self,
        ram_size: int,
        port_read: PortRead,
        port_write: PortWrite,
        cpuid: Callable[[int, int], tuple[int, int, int, int] | None],
        rdtsc: Callable[[], int],
    ) -> None:
        self.uc = Uc(UC_ARCH_X86, UC_MODE_64)
        # The CPU model of user mode (engine/cpuid.py); must be the first call after Uc().
        self.uc.ctl_set_cpu_model(x86.UC_CPU_X86_HASWELL)
        self._cpuid = cpuid
        self._rdtsc = rdtsc
        try:
            self.uc.mem_map(0, ram_size)
        except UcError as e:
            raise EngineError(f"cannot map {ram_size} bytes of guest RAM: {e}", e.errno) from e
        self._stop: Stop | None = None
        # One context buffer, saved into and restored from in place: the private fields are
        # read and written at their offsets in it (`_field`).
        self._ctx = self.uc.context_save()
        self._ctx_addr: int = self._ctx._context.value
        self._error: BaseException | None = None
        self._port_read = port_read
        self._port_write = port_write
        self.uc.hook_add(UC_HOOK_INTR, self._on_intr)
        self.uc.hook_add(UC_HOOK_INSN_INVALID, self._on_invalid)
        self.uc.hook_add(UC_HOOK_INSN, self._on_syscall, None, 1, 0, x86.UC_X86_INS_SYSCALL)
        self.uc.hook_add(UC_HOOK_INSN, self._on_in, None, 1, 0, x86.UC_X86_INS_IN)
        self.uc.hook_add(UC_HOOK_INSN, self._on_out, None, 1, 0, x86.UC_X86_INS_OUT)
        self.uc.hook_add(UC_HOOK_INSN, self._on_cpuid, None, 1, 0, x86.UC_X86_INS_CPUID)
        # The native block tracker of user mode (engine/counting.py) notes the block entered
        # last: how a run that HLT ended is told from one the count ended (`run`).
        # (the binding's Uc: Counters needs only its handle, the same in engine/binding.py's)
        self._counters = Counters(self.uc, lambda reg: int(self.uc.reg_read(reg)))  # type: ignore[arg-type]
        self._counters.set(False)
        self.counter = self._counters.counter
        # The binding refuses RDTSC and RDTSCP hooks; libunicorn takes them (CPUID-style
        # callbacks). Both must be hooked: Linux reads the TSC with RDTSCP where it exists.
        self._tsc_cbs = [
            _INSN_CB(lambda _uc, _data: self._on_rdtsc(self.uc, None)),
            _INSN_CB(lambda _uc, _data: self._on_rdtscp(self.uc)),
        ]
        for cb, insn in zip(self._tsc_cbs, (x86.UC_X86_INS_RDTSC, x86.UC_X86_INS_RDTSCP),
                            strict=True):  # fmt: skip
            h = uc_hook_h()
            status = uclib.uc_hook_add(
                self.uc._uch, ctypes.byref(h), UC_HOOK_INSN, ctypes.cast(cb, ctypes.c_void_p),
                None, ctypes.c_uint64(1), ctypes.c_uint64(0), ctypes.c_int(insn),
            )  # fmt: skip
            if status:
                raise EngineError(f"uc_hook_add(RDTSC/RDTSCP) failed: {UcError(status)}", status)

    # ---- hooks: record the event and stop; system/cpu.py carries it out between runs
    def _guard(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except BaseException as e:  # noqa: BLE001 - re-raised by run() (the binding would eat it)
            self._error = e
            self.uc.emu_stop()

    def _on_intr(self, uc: Uc, vector: int, _data: object) -> None:
        self._save()
        code, is_int = self._field(CTX_ERROR_CODE), self._field(CTX_IS_INT)
        self._stop = Stop(EXCEPTION, vector, code & 0xFFFF_FFFF, bool(is_int))
        uc.emu_stop()

    def _on_invalid(self, uc: Uc, _data: object) -> bool:
        self._stop = Stop(INVALID, 6)
        uc.emu_stop()
        return True

    def _on_syscall(self, uc: Uc, _data: object) -> None:
        # The engine leaves RIP after the SYSCALL when the run returns (docs/system.md).
        self._stop = Stop(SYSCALL)
        uc.emu_stop()

    def _on_cpuid(self, uc: Uc, _data: object) -> int:
        """CPUID: the machine's answer where it has one, else the engine's (return 0)."""
        leaf = uc.reg_read(x86.UC_X86_REG_RAX) & 0xFFFF_FFFF
        answer = self._cpuid(leaf, uc.reg_read(x86.UC_X86_REG_RCX) & 0xFFFF_FFFF)
        if answer is None:
            return 0
        for reg, value in zip(_CPUID_OUT, answer, strict=True):
            uc.reg_write(reg, value)
        return 1  # the hook carried the instruction out

    def _on_rdtsc(self, uc: Uc, _data: object) -> int:
        tsc = self._rdtsc()
        uc.reg_write(x86.UC_X86_REG_RAX, tsc & 0xFFFF_FFFF)
        uc.reg_write(x86.UC_X86_REG_RDX, (tsc >> 32) & 0xFFFF_FFFF)
        return 1

    def _on_rdtscp(self, uc: Uc) -> int:
        """RDTSCP: RDTSC's value and ECX := IA32_TSC_AUX (SDM Vol. 2B, RDTSCP)."""
        self._on_rdtsc(uc, None)
        uc.reg_write(x86.UC_X86_REG_RCX, uc.msr_read(MSR_TSC_AUX) & 0xFFFF_FFFF)
        return 1

    def _on_in(self, uc: Uc, port: int, size: int, _data: object) -> int:
        value = 0
        try:
            value = self._port_read(port, size)
        except BaseException as e:  # noqa: BLE001 - re-raised by run()
            self._error = e
            uc.emu_stop()
        return value

    def _on_out(self, uc: Uc, port: int, size: int, value: int, _data: object) -> None:
        self._guard(lambda: self._port_write(port, size, value))

    def map_mmio(
        self,
        base: int,
        size: int,
        read: Callable[[int, int], int],
        write: Callable[[int, int, int], None],
    ) -> None:
        """A device register window: `read(offset, size)`, `write(offset, size, value)`."""

        def on_read(_uc: Uc, offset: int, size: int, _data: object) -> int:
            try:
                return read(offset, size)
            except BaseException as e:  # noqa: BLE001 - re-raised by run()
                self._error = e
                self.uc.emu_stop()
                return 0

        def on_write(_uc: Uc, offset: int, size: int, value: int, _data: object) -> None:
            self._guard(lambda: write(offset, size, value))

        self.uc.mmio_map(base, size, on_read, None, on_write, None)

    # ---- running
    def run(self, count: int) -> Stop:
        """Run from RIP for at most `count` instructions (the engine's own count)."""
        self._stop = None
        self.reset_old_exception()
        c = self.counter
        c.last_size = 0
        status = uclib.uc_emu_start(self.uc._uch, self.reg("rip"), 0, 0, count)
        if self._error is not None:
            err, self._error = self._error, None
            raise err
        if status:
            raise EngineError(
                f"the engine stopped at {self.reg('rip'):#x}: {UcError(status)}", status
            )
        if self._stop is not None:
            return self._stop
        # The count stops a run before an instruction, inside the block entered last (its
        # hook has run); HLT ends its block and the run, so RIP is where that block ends.
        if c.last_size and self.reg("rip") == c.last_pc + c.last_size:
            return Stop(HALT)
        return Stop(COUNT)

    def reset_old_exception(self) -> None:
        """The engine never clears env->old_exception (its delivery code never runs), so a
        later exception would become #DF: clear it, as a completed delivery does."""
        self._save()
        if self._field(CTX_OLD_EXCEPTION) != -1:
            self._field(CTX_OLD_EXCEPTION, -1)
            self._restore()

    # ---- the private CPU state, in the context buffer
    def _save(self) -> None:
        status = uclib.uc_context_save(self.uc._uch, self._ctx._context)
        if status:
            raise EngineError(f"uc_context_save failed: {UcError(status)}", status)

    def _restore(self) -> None:
        status = uclib.uc_context_restore(self.uc._uch, self._ctx._context)
        if status:
            raise EngineError(f"uc_context_restore failed: {UcError(status)}", status)

    def _field(
        self,
        offset: int,
        value: int | None = None,
        ctype: type[ctypes.c_int32] | type[ctypes.c_uint32] = ctypes.c_int32,
    ) -> int:
        """Read (or, with `value`, write) the field at `offset` of the saved context."""
        field = ctype.from_address(self._ctx_addr + offset)
        if value is not None:
            field.value = value
        return int(field.value)

    def stop(self) -> None:
        """From a device callback: end the current run after this instruction."""
        if self._stop is None:
            self._stop = Stop(DEVICE)
        self.uc.emu_stop()

    # ---- registers and memory
    def reg(self, name: str) -> int:
        return int(self.uc.reg_read(REGS[name]))

    def set_reg(self, name: str, value: int) -> None:
        self.uc.reg_write(REGS[name], value)

    def table(self, name: str) -> tuple[int, int, int, int]:
        """GDTR / IDTR / TR as (selector, base, limit, flags)."""
        sel, base, limit, flags = self.uc.reg_read(_TABLES[name])
        return int(sel), int(base), int(limit), int(flags)

    def set_table(
        self, name: str, base: int, limit: int, selector: int = 0, flags: int = 0
    ) -> None:
        self.uc.reg_write(_TABLES[name], (selector, base, limit, flags))

    def msr(self, index: int) -> int:
        return int(self.uc.msr_read(index))

    def set_msr(self, index: int, value: int) -> None:
        self.uc.msr_write(index, value)

    def read(self, paddr: int, size: int) -> bytes:
        return bytes(self.uc.mem_read(paddr, size))

    def write(self, paddr: int, data: bytes) -> None:
        self.uc.mem_write(paddr, data)

    def cpl(self) -> int:
        self._save()
        return self._field(CTX_HFLAGS) & HF_CPL_MASK

    def segment(self, seg: int) -> tuple[int, int, int, int]:
        """Segment register `seg` (CS, SS, ...) with its hidden parts: (selector, base, limit,
        descriptor high dword)."""
        self._save()
        raw = ctypes.string_at(self._ctx_addr + CTX_SEGS + seg * SEG_SIZE, SEG_SIZE)
        sel, _, base, limit, flags = struct.unpack("<IIQII", raw)
        return sel, base, limit, flags

    def load_code_stack(
        self,
        cs: tuple[int, int, int, int],
        ss: tuple[int, int, int, int],
    ) -> None:
        """Load CS and SS, each (selector, base, limit, descriptor high dword), with their
        hidden parts, and the CPL from SS's DPL, as the engine's own segment loads do; the
        register API would store only the selectors (docs/system.md, "Engine facts")."""
        self._save()
        for seg, (sel, base, limit, flags) in ((CS, cs), (SS, ss)):
            raw = struct.pack("<IIQII", sel, 0, base, limit, flags)
            ctypes.memmove(self._ctx_addr + CTX_SEGS + seg * SEG_SIZE, raw, SEG_SIZE)
        hflags = self._field(CTX_HFLAGS, ctype=ctypes.c_uint32)
        hflags &= ~(HF_CPL_MASK | HF_CS32 | HF_SS32 | HF_CS64)
        hflags |= (ss[3] >> 13) & 3
        if cs[3] & DESC_L:
            hflags |= HF_CS32 | HF_SS32 | HF_CS64
        else:
            hflags |= (HF_CS32 if cs[3] & DESC_B else 0) | (HF_SS32 if ss[3] & DESC_B else 0)
        self._field(CTX_HFLAGS, hflags, ctypes.c_uint32)
        self._field(CTX_OLD_EXCEPTION, -1)
        self._restore()
