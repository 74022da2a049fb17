"""Decoder for the five UINTR instructions (docs/uintr.md §6.2), in 64-bit mode.

The engine raises #UD for every UINTR encoding; the hook hands the bytes at RIP to :func:`decode`.
It returns a :class:`Decoded` record for a UINTR instruction, None for anything else (the caller
then treats the #UD as genuine), and raises :class:`InvalidOpcode` for a UINTR encoding with a
LOCK prefix (SDM instruction pages: "#UD If the LOCK prefix is used").

Prefix rules (SDM Vol.2 §2.1.1 and §2.2.1), our choices where the manual leaves room:

- Legacy prefixes may appear in any order and number within the 15-byte limit: F0 (LOCK),
  F2/F3 (REPNE/REP), 66 (operand size), 67 (address size), segment overrides 26/2E/36/3E/64/65.
- The mandatory prefix F3 is required. When both F2 and F3 are present the last of them counts
  (so ``F2 F3 0F 01 EE`` is CLUI, ``F3 F2 0F 01 EE`` is not); 66 is ignored when F3 is the
  mandatory prefix, as for SSE encodings and as the SENDUIPI page says ("operand-size overrides
  such as the prefix 66 are ignored"). 67 and segment overrides have no effect (no memory operand).
- REX (40-4F) takes effect only as the last prefix, directly before 0F; a REX followed by a legacy
  prefix is ignored (SDM Vol.2 §2.2.1). Only REX.B matters, for SENDUIPI's register; REX.W/R/X are
  ignored (operand always 64-bit; ModRM.reg is the opcode extension /6). For ``0F 01 EC..EF`` the
  ModRM byte is part of the opcode and REX has no effect.
- ``F3 0F C7`` with ModRM.mod != 3 is not SENDUIPI (reg=6 is VMXON): None.
- An instruction that would exceed 15 bytes is not decoded (None); the engine itself faults on it.
"""

from __future__ import annotations

from dataclasses import dataclass

from uintr_emu.hw.faults import InvalidOpcode

MAX_INSTRUCTION_LENGTH = 15

UIRET = "UIRET"
TESTUI = "TESTUI"
CLUI = "CLUI"
STUI = "STUI"
SENDUIPI = "SENDUIPI"

# x86 register numbering (ModRM.rm | REX.B << 3), independent of any engine's register ids.
REGISTER_NAMES = (
    "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
    "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Decoded:
    """A decoded UINTR instruction: ``register`` is SENDUIPI's operand (0-15), else None."""

    mnemonic: str
    register: int | None
    length: int

    def __str__(self) -> str:
        if self.register is None:
            return self.mnemonic.lower()
        return f"{self.mnemonic.lower()} %{REGISTER_NAMES[self.register]}"


# Every possible result, built once, so that decoding allocates nothing.
_ZERO_OPERAND: tuple[tuple[Decoded, ...], ...] = tuple(
    tuple(Decoded(m, None, n) for n in range(MAX_INSTRUCTION_LENGTH + 1))
    for m in (UIRET, TESTUI, CLUI, STUI)  # ModRM EC, ED, EE, EF
)
_SENDUIPI: tuple[tuple[Decoded, ...], ...] = tuple(
    tuple(Decoded(SENDUIPI, r, n) for n in range(MAX_INSTRUCTION_LENGTH + 1)) for r in range(16)
)

_P_LOCK = 0xF0
_P_REPNE = 0xF2
_P_REP = 0xF3
# Legacy prefixes other than LOCK/F2/F3 (66, 67 and segment overrides) -- accepted, no effect.
_OTHER_LEGACY = frozenset((0x66, 0x67, 0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65))


def decode(code: bytes) -> Decoded | None:
    """Decode the instruction at the start of ``code`` (give at least 16 bytes if available)."""
    n = len(code)
    limit = n if n < MAX_INSTRUCTION_LENGTH else MAX_INSTRUCTION_LENGTH
    i = 0
    lock = False
    mandatory = 0  # the last of F2/F3 seen
    rex = 0
    while i < limit:
        b = code[i]
        if b == _P_REP or b == _P_REPNE:
            mandatory = b
            rex = 0
        elif 0x40 <= b <= 0x4F:
            rex = b
        elif b == _P_LOCK:
            lock = True
            rex = 0
        elif b in _OTHER_LEGACY:
            rex = 0
        else:
            break
        i += 1
    # i = offset of the 0F escape; the instruction is 0F, opcode, ModRM after the prefixes.
    length = i + 3
    if mandatory != _P_REP or length > limit or code[i] != 0x0F:
        return None
    opcode = code[i + 1]
    modrm = code[i + 2]
    if opcode == 0x01:
        # 0F 01 with ModRM EC/ED/EE/EF (mod=3, reg=5, rm=4..7).
        if modrm < 0xEC or modrm > 0xEF:
            return None
        result = _ZERO_OPERAND[modrm - 0xEC][length]
    elif opcode == 0xC7:
        # 0F C7 /6 with mod=3: ModRM 0xF0..0xF7.
        if modrm & 0xF8 != 0xF0:
            return None
        result = _SENDUIPI[(modrm & 7) | ((rex & 1) << 3)][length]
    else:
        return None
    if lock:
        raise InvalidOpcode(f"{result.mnemonic}: LOCK prefix used")
    return result
