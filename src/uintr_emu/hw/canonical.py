"""Non-canonical linear addresses: which exception an access to one raises.

SDM Vol.1 §3.3.7.1 "Canonical Addressing": in 64-bit mode a memory reference to a linear address
that is not canonical (bits 63:47 not all equal, :func:`uintr_emu.hw.cpu.is_canonical`) raises an
exception -- "in most cases, a general-protection exception (#GP) ... However, in the case of
explicit or implied stack references, a stack fault (#SS) is generated". Both push error code 0
(Vol.3 §6.15, "Interrupt 12—Stack Fault Exception (#SS)" and "Interrupt 13—General Protection
Exception (#GP)"). An instruction fetch from a non-canonical address is a #GP(0) of the branch
that would go there (JMP/CALL/RET pages, "64-Bit Mode Exceptions": "#GP(0) If the target offset
is non-canonical"); :func:`branch_stack_delta` undoes what the branch did to RSP (traps.py).

Which references are stack references is the default-segment rule (SDM Vol.1 §3.7.4, Table 3-5
"Default Segment Selection Rules"): "all stack pushes and pops" and "any memory reference which
uses the ESP or EBP register as a base register" (RSP/RBP, or ESP/EBP with the 67 prefix). In
64-bit mode the CS, DS, ES and SS override prefixes have no effect (Vol.1 §3.4.2.1); FS and GS
select their segment. Measured natively (x86-64 Linux): ``mov (%rbp)``, ``mov (%rsp,%rbx)``,
``push``/``pop``/``leave`` and ``ds: mov (%rbp)`` give #SS; ``ss: mov (%rbx)``,
``mov (,%rbp,1)``, ``mov (%r13)``, ``fs: mov (%rbp)``, ``movs`` give #GP.

:func:`stack_reference` finds this out from the instruction bytes: it decodes prefixes, the
opcode and the ModRM/SIB base register only -- never operand values or lengths. The caller
knows which access faulted (a read or a write) from the engine.
"""

from __future__ import annotations

from uintr_emu.hw.faults import ArchFault, GeneralProtection, StackFault

MAX_INSTRUCTION_LENGTH = 15

_RSP, _RBP = 4, 5  # register numbers (ModRM.rm / SIB.base | REX.B << 3)

_LEGACY_PREFIXES = frozenset((0xF0, 0xF2, 0xF3, 0x66, 0x67, 0x26, 0x2E, 0x36, 0x3E))
_FS, _GS = 0x64, 0x65


def _table(*spans: tuple[int, int]) -> frozenset[int]:
    return frozenset(b for lo, hi in spans for b in range(lo, hi + 1))


# One-byte opcodes (64-bit mode) that have a ModRM byte (SDM Vol.2 Appendix A, Table A-2).
_MODRM_1 = _table(
    *((row, row + 3) for row in range(0x00, 0x40, 8)),  # ALU Eb,Gb .. Gv,Ev
    (0x63, 0x63), (0x69, 0x69), (0x6B, 0x6B), (0x80, 0x8F),
    (0xC0, 0xC1), (0xC6, 0xC7), (0xD0, 0xD3), (0xD8, 0xDF), (0xF6, 0xF7), (0xFE, 0xFF),
)  # fmt: skip
# Two-byte opcodes 0F xx WITHOUT a ModRM byte (Table A-3); every other 0F xx has one, and so
# do the three-byte maps 0F 38 and 0F 3A and all VEX/EVEX encodings.
_NO_MODRM_0F = _table(
    (0x04, 0x09), (0x0A, 0x0C), (0x0E, 0x0E), (0x24, 0x27), (0x30, 0x37), (0x39, 0x39),
    (0x3B, 0x3F), (0x77, 0x77), (0x80, 0x8F), (0xA0, 0xA2), (0xA8, 0xAA), (0xC8, 0xCF),
)  # fmt: skip

# Instructions whose every memory access is a stack push or pop (64-bit mode): push/pop reg,
# push imm, pushf/popf, ret/lret/iret, enter/leave (leave pops through RBP, enter reads the
# frame through RBP), call rel32, int n.
_STACK_ONLY_1 = _table(
    (0x50, 0x5F), (0x68, 0x68), (0x6A, 0x6A), (0x9C, 0x9D), (0xC2, 0xC3), (0xC8, 0xCF),
    (0xE8, 0xE8), (0xF1, 0xF1),
)  # fmt: skip
_STACK_ONLY_0F = frozenset((0xA0, 0xA1, 0xA8, 0xA9))  # push/pop fs/gs


def stack_reference(code: bytes, *, write: bool) -> bool:
    """Whether the read (``write`` False) or write access of the instruction at the start of
    ``code`` that faulted references the SS segment. Unknown or truncated encodings count as
    not (a #GP, the common case)."""
    n = min(len(code), MAX_INSTRUCTION_LENGTH)
    i = 0
    rex = 0
    fs_gs = False
    while i < n:
        b = code[i]
        if b in _LEGACY_PREFIXES:
            rex = 0  # a REX prefix counts only directly before the opcode
        elif b == _FS or b == _GS:
            fs_gs = True
            rex = 0
        elif 0x40 <= b <= 0x4F:
            rex = b
        else:
            break
        i += 1
    if i >= n:
        return False
    b = code[i]
    i += 1
    rex_b = (rex & 1) << 3
    two_byte = False
    if b in (0xC4, 0xC5, 0x62):  # VEX3, VEX2, EVEX (always so in 64-bit mode): ModRM follows
        payload = {0xC4: 2, 0xC5: 1, 0x62: 3}[b]
        if i + payload >= n:
            return False
        # VEX3/EVEX keep an inverted B bit in bit 5 of the first payload byte; VEX2 has none.
        rex_b = 0 if b == 0xC5 else (0 if code[i] & 0x20 else 8)
        i += payload + 1  # the payload and the opcode
        has_modrm = True
        opcode = -1
    elif b == 0x0F:
        if i >= n:
            return False
        opcode = code[i]
        i += 1
        two_byte = True
        if opcode in (0x38, 0x3A):  # three-byte maps: opcode byte, then ModRM
            i += 1
            has_modrm = True
            opcode = -1
        elif opcode == 0x0F:  # 3DNow!: ModRM, then the opcode as an immediate
            has_modrm = True
        else:
            has_modrm = opcode not in _NO_MODRM_0F
    else:
        opcode = b
        has_modrm = b in _MODRM_1
    stack_only = opcode in (_STACK_ONLY_0F if two_byte else _STACK_ONLY_1)
    if not has_modrm:
        # The implicit memory operands left (movs/cmps/stos/lods/scas/ins/outs, xlat, mov moffs)
        # are DS/ES references.
        return stack_only
    if i >= n:
        return False
    modrm = code[i]
    mod, reg, rm = modrm >> 6, (modrm >> 3) & 7, modrm & 7
    if not two_byte:
        # The r/m operand is read and the stack written (call Ev, call far Mp, push Ev), or the
        # stack read and the r/m operand written (pop Ev): the access kind tells which.
        if opcode == 0xFF and reg in (2, 3, 6) and (write or mod == 3):
            return True
        if opcode == 0x8F and reg == 0 and (not write or mod == 3):
            return True
    if mod == 3 or fs_gs:
        return False  # no memory operand (the access was implicit, not a stack one), or FS/GS
    if rm == 4:  # SIB
        if i + 1 >= n:
            return False
        base = code[i + 1] & 7
        if base == _RBP and mod == 0:
            return False  # no base register: disp32 (+ index)
        return (base | rex_b) in (_RSP, _RBP)
    if rm == _RBP and mod == 0:
        return False  # RIP-relative
    return (rm | rex_b) == _RBP


def branch_stack_delta(code: bytes) -> int | None:
    """For a near branch at the start of ``code`` (JMP, Jcc, LOOP/JRCXZ, CALL, RET): what it
    adds to RSP when it executes, so that its #GP(0) for a non-canonical target can be reported
    with RSP as it was (the SDM's JMP/CALL/RET pages: the target is checked before anything is
    pushed or popped). None for anything else. Operand-size prefixes count as 64-bit (Intel
    ignores 66 on near branches in 64-bit mode)."""
    n = min(len(code), MAX_INSTRUCTION_LENGTH)
    i = 0
    while i < n and (code[i] in _LEGACY_PREFIXES or code[i] in (_FS, _GS) or code[i] >> 4 == 4):
        i += 1  # prefixes, REX
    if i >= n:
        return None
    b = code[i]
    if 0x70 <= b <= 0x7F or 0xE0 <= b <= 0xE3 or b in (0xE9, 0xEB):
        return 0
    if b == 0xE8:
        return -8
    if b == 0xC3:
        return 8
    if b == 0xC2:
        return 8 + int.from_bytes(code[i + 1 : i + 3], "little") if i + 2 < n else None
    if b == 0x0F:
        return 0 if i + 1 < n and 0x80 <= code[i + 1] <= 0x8F else None
    if b == 0xFF and i + 1 < n:
        reg = (code[i + 1] >> 3) & 7
        return {2: -8, 4: 0}.get(reg)
    return None


def noncanonical_fault(code: bytes, *, write: bool, fetch: bool = False) -> ArchFault:
    """The exception of an access to a non-canonical linear address by the instruction at the
    start of ``code``: #SS(0) for a stack reference, #GP(0) otherwise (an instruction fetch is
    always #GP(0))."""
    if not fetch and stack_reference(code, write=write):
        return StackFault("stack reference to a non-canonical address")
    kind = "instruction fetch from" if fetch else ("write to" if write else "read of")
    return GeneralProtection(f"{kind} a non-canonical address")
