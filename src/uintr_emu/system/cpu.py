"""What the processor does that the engine leaves undone in system mode (docs/system.md,
"Engine facts"): delivery of exceptions, INT n and external interrupts through the guest IDT
with the privilege and stack switches (SDM Vol. 3 §6.14), and SYSCALL (SDM Vol. 2B, SYSCALL)."""

from __future__ import annotations

import struct

from ..engine.system import SS, SystemEngine
from ..hw.paging import PageFault, translate

#: Exceptions that push an error code (SDM Vol. 3 Table 6-1) when raised by the processor.
ERROR_CODE_VECTORS = frozenset({8, 10, 11, 12, 13, 14, 17, 21, 29, 30})
DF, GP = 8, 13
#: A fault while delivering one of these is a double fault (SDM Vol. 3 Table 6-5: #PF and
#: the contributory exceptions #DE, #TS, #NP, #SS, #GP).
DOUBLE_FAULT_CLASS = frozenset({0, 10, 11, 12, 13, 14})
IF, TF, NT, RF, VM = 1 << 9, 1 << 8, 1 << 14, 1 << 16, 1 << 17

MSR_EFER, MSR_STAR, MSR_LSTAR, MSR_FMASK = 0xC0000080, 0xC0000081, 0xC0000082, 0xC0000084
EFER_SCE = 1
# SYSCALL's fixed CS and SS (SDM Vol. 2B, SYSCALL): flat, DPL 0, 64-bit code / writable data.
SYSCALL_CS_FLAGS = (1 << 23) | (1 << 21) | (1 << 15) | (1 << 12) | (0xB << 8)
SYSCALL_SS_FLAGS = (1 << 23) | (1 << 22) | (1 << 15) | (1 << 12) | (0x3 << 8)


class TripleFault(Exception):
    """A fault while delivering #DF: the processor shuts down (SDM Vol. 3 §6.15, #DF)."""


class _GateFault(Exception):
    """The gate or its code segment may not be used: #GP or #NP with `code`."""

    def __init__(self, vector: int, code: int) -> None:
        super().__init__(vector, code)
        self.vector, self.code = vector, code


class SystemCpu:
    """One processor: its engine and the architectural steps around it."""

    def __init__(self, engine: SystemEngine, index: int = 0) -> None:
        self.engine = engine
        self.index = index
        self.exceptions = 0  # delivered through the IDT (for the summary)
        self.interrupts = 0
        self.syscalls = 0

    # ---- linear memory, as the CPU itself reaches it (supervisor accesses)
    def _u64(self, paddr: int) -> int:
        return int.from_bytes(self.engine.read(paddr, 8), "little")

    def _phys(self, linear: int, write: bool) -> int:
        if not self.engine.reg("cr0") & (1 << 31):
            return linear
        return translate(self.engine.reg("cr3"), linear, self._u64, write=write)

    def read_linear(self, linear: int, size: int) -> bytes:
        out = b""
        while size:
            n = min(size, 0x1000 - (linear & 0xFFF))
            out += self.engine.read(self._phys(linear, False), n)
            linear, size = linear + n, size - n
        return out

    def write_linear(self, linear: int, data: bytes) -> None:
        while data:
            n = min(len(data), 0x1000 - (linear & 0xFFF))
            self.engine.write(self._phys(linear, True), data[:n])
            linear, data = linear + n, data[n:]

    def descriptor(self, selector: int) -> tuple[int, int, int, int]:
        """The GDT descriptor of `selector` as (selector, base, limit, high dword)."""
        _, gdt, limit, _ = self.engine.table("gdtr")
        index = selector & ~7
        if selector & 4 or index + 7 > limit or index == 0:
            raise _GateFault(GP, selector & 0xFFFC)
        lo, hi = struct.unpack("<II", self.read_linear(gdt + index, 8))
        base = (lo >> 16) | ((hi & 0xFF) << 16) | (hi & 0xFF00_0000)
        seg_limit = (lo & 0xFFFF) | (hi & 0xF_0000)
        if hi & (1 << 23):
            seg_limit = (seg_limit << 12) | 0xFFF
        return selector, base, seg_limit, hi

    # ---- delivery (SDM Vol. 3 §6.14.1-§6.14.5, 64-bit mode)
    def deliver(self, vector: int, code: int | None = None, software: bool = False) -> None:
        """Deliver `vector` through the IDT (SDM Vol. 3 §6.14). A fault while doing so is
        classified as SDM Vol. 3 Table 6-5 says: during #PF or a contributory exception it
        becomes #DF, during #DF a shutdown (triple fault); otherwise (an interrupt, INT n, a
        benign exception) the new fault is delivered, for INT n as the instruction's fault."""
        try:
            self._deliver(vector, code, software)
        except (_GateFault, PageFault) as e:
            if vector == DF:
                raise TripleFault(f"triple fault: {e} while delivering #DF") from None
            if vector in DOUBLE_FAULT_CLASS and not software:
                self.deliver(DF, 0)
                return
            if software:  # the fault is the INT instruction's: RIP back to it
                rip = self.engine.reg("rip")
                back = 2 if self.read_linear(rip - 2, 1) == b"\xcd" else 1
                self.engine.set_reg("rip", rip - back)
            if isinstance(e, PageFault):
                self.engine.set_reg("cr2", e.address)
                self.deliver(14, e.code)
            else:
                self.deliver(e.vector, e.code)

    def _deliver(self, vector: int, code: int | None, software: bool) -> None:
        eng = self.engine
        # The error code of a fault on the gate: its IDT index, IDT = 1, EXT = 1 unless an INT
        # instruction asked for the gate (SDM Vol. 3 §6.13).
        gate_error = vector * 8 + 2 + (0 if software else 1)
        _, idt, idt_limit, _ = eng.table("idtr")
        if vector * 16 + 15 > idt_limit:
            raise _GateFault(GP, gate_error)
        lo, hi = struct.unpack("<QQ", self.read_linear(idt + vector * 16, 16))
        gate_type, dpl, present = (lo >> 40) & 0xF, (lo >> 45) & 3, (lo >> 47) & 1
        if gate_type not in (0xE, 0xF):
            raise _GateFault(GP, gate_error)
        cpl = eng.cpl()
        if software and dpl < cpl:  # INT n may only reach gates at its privilege or above
            raise _GateFault(GP, gate_error)
        if not present:
            raise _GateFault(11, gate_error)
        target = (lo & 0xFFFF) | ((lo >> 32) & 0xFFFF_0000) | ((hi & 0xFFFF_FFFF) << 32)
        cs = self.descriptor((lo >> 16) & 0xFFFF)
        new_cpl = (cs[3] >> 13) & 3
        ist = (lo >> 32) & 7
        old_ss, old_rsp = eng.segment(SS), eng.reg("rsp")
        if ist or new_cpl < cpl:
            _, tss, _, _ = eng.table("tr")
            rsp = self._u64(self._phys(tss + (0x24 + 8 * (ist - 1) if ist else 4), False))
        else:
            rsp = old_rsp
        rsp &= ~0xF  # 64-bit mode aligns the new stack (SDM Vol. 3 §6.14.2)
        rflags = eng.reg("rflags")
        frame = [old_ss[0], old_rsp, rflags, eng.reg("cs"), eng.reg("rip")]
        if code is not None:
            frame.append(code)
        rsp -= 8 * len(frame)
        self.write_linear(rsp, struct.pack(f"<{len(frame)}Q", *reversed(frame)))
        if new_cpl != cpl:
            ss = (new_cpl, 0, 0, new_cpl << 13)  # a null SS with RPL = the new CPL
        else:
            ss = old_ss
        eng.load_code_stack(((cs[0] & ~3) | new_cpl, cs[1], cs[2], cs[3]), ss)
        eng.set_reg("rsp", rsp)
        eng.set_reg("rip", target)
        rflags &= ~(TF | NT | RF | VM)
        if gate_type == 0xE:  # an interrupt gate, unlike a trap gate, masks interrupts
            rflags &= ~IF
        eng.set_reg("rflags", rflags)

    def exception(self, vector: int, code: int, software: bool) -> None:
        self.exceptions += 1
        has_code = not software and vector in ERROR_CODE_VECTORS
        self.deliver(vector, code if has_code else None, software)

    def interrupt(self, vector: int) -> None:
        """An external interrupt (the caller checked RFLAGS.IF)."""
        self.interrupts += 1
        self.deliver(vector)

    def syscall(self) -> None:
        """SYSCALL (SDM Vol. 2B): the engine only advanced RIP past it."""
        eng = self.engine
        if not eng.msr(MSR_EFER) & EFER_SCE:
            self.exception(6, 0, False)
            return
        self.syscalls += 1
        star = eng.msr(MSR_STAR)
        sel = (star >> 32) & 0xFFFC
        rflags = eng.reg("rflags")
        eng.set_reg("rcx", eng.reg("rip"))
        eng.set_reg("r11", rflags)
        eng.load_code_stack((sel, 0, 0xFFFF_FFFF, SYSCALL_CS_FLAGS),
                            (sel + 8, 0, 0xFFFF_FFFF, SYSCALL_SS_FLAGS))  # fmt: skip
        eng.set_reg("rflags", rflags & ~(eng.msr(MSR_FMASK) | RF) | 2)
        eng.set_reg("rip", eng.msr(MSR_LSTAR))
