"""Decoder for the UINTR encodings (docs/uintr.md §6.2; SDM Vol.2 §2.1-2.2 prefixes and REX)."""

from __future__ import annotations

import pytest

from uintr_emu.hw.decode import (
    CLUI,
    REGISTER_NAMES,
    SENDUIPI,
    STUI,
    TESTUI,
    UIRET,
    Decoded,
    decode,
)
from uintr_emu.hw.faults import InvalidOpcode

PAD = bytes(16)  # the engine hands over at least 16 bytes; trailing bytes must not matter


def dec(hexbytes: str) -> Decoded | None:
    return decode(bytes.fromhex(hexbytes.replace(" ", "")) + PAD)


@pytest.mark.parametrize(
    ("code", "mnemonic", "length"),
    [
        ("F3 0F 01 EC", UIRET, 4),
        ("F3 0F 01 ED", TESTUI, 4),
        ("F3 0F 01 EE", CLUI, 4),
        ("F3 0F 01 EF", STUI, 4),
    ],
)
def test_zero_operand_encodings_section_6_2(code: str, mnemonic: str, length: int) -> None:
    assert dec(code) == Decoded(mnemonic, None, length)


@pytest.mark.parametrize("reg", range(8))
def test_senduipi_r0_r7_without_rex(reg: int) -> None:
    assert dec(f"F3 0F C7 {0xF0 + reg:02X}") == Decoded(SENDUIPI, reg, 4)


@pytest.mark.parametrize(
    ("reg", "rex"),
    [
        (reg, rex)
        for reg in range(16)
        for rex in (0x40, 0x41, 0x48, 0x49, 0x44, 0x42, 0x4F)
        if (rex & 1) == reg >> 3  # REX.B selects r8-r15
    ],
)
def test_senduipi_r0_r15_with_rex_only_rex_b_matters(reg: int, rex: int) -> None:
    d = dec(f"F3 {rex:02X} 0F C7 {0xF0 + (reg & 7):02X}")
    assert d == Decoded(SENDUIPI, reg, 5)


def test_senduipi_gcc_and_gas_examples_section_6_2() -> None:
    assert str(dec("F3 0F C7 F7")) == "senduipi %rdi"
    assert str(dec("F3 0F C7 F0")) == "senduipi %rax"
    assert str(dec("F3 41 0F C7 F0")) == "senduipi %r8"
    assert str(dec("F3 41 0F C7 F7")) == "senduipi %r15"
    assert str(dec("F3 0F 01 EE")) == "clui"
    assert len(REGISTER_NAMES) == 16


@pytest.mark.parametrize(
    "code",
    [
        "F3 0F C7 30",  # mod=0 /6: VMXON m64, not SENDUIPI
        "F3 0F C7 70 08",  # mod=1
        "F3 0F C7 B0 00 00 00 00",  # mod=2
        "F3 0F C7 34 24",  # mod=0 with SIB
        "F3 0F C7 F8",  # /7 mod=3: RDSEED/RDPID family, not ours
        "F3 0F C7 C8",  # /1 mod=3
        "0F C7 F0",  # RDRAND eax: no F3
        "66 0F C7 F0",  # RDRAND ax
        "0F 01 EE",  # RDPKRU: no F3
        "0F 01 EF",  # WRPKRU
        "F3 0F 01 EB",  # neighbour of UIRET
        "F3 0F 01 F0",
        "F2 0F 01 EE",  # F2 is not the mandatory prefix
        "F3 F2 0F 01 EE",  # last of F2/F3 is F2
        "F3 0F 05",  # syscall with a stray prefix
        "90",
        "F3 90",  # PAUSE
        "C4 E2 79 00 C0",  # VEX
    ],
)
def test_not_uintr_returns_none(code: str) -> None:
    assert dec(code) is None


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("66 F3 0F 01 EE", Decoded(CLUI, None, 5)),  # 66 ignored with mandatory F3
        ("F3 66 0F 01 EF", Decoded(STUI, None, 5)),
        ("66 F3 0F C7 F1", Decoded(SENDUIPI, 1, 5)),  # SDM: operand-size overrides ignored
        ("F2 F3 0F 01 ED", Decoded(TESTUI, None, 5)),  # last of F2/F3 is F3
        ("F3 F3 0F 01 EC", Decoded(UIRET, None, 5)),
        ("2E F3 0F 01 EE", Decoded(CLUI, None, 5)),  # segment override: no effect
        ("F3 64 67 0F C7 F2", Decoded(SENDUIPI, 2, 6)),
        ("F3 48 0F C7 F3", Decoded(SENDUIPI, 3, 5)),  # REX.W ignored: always 64-bit
        ("F3 44 0F C7 F6", Decoded(SENDUIPI, 6, 5)),  # REX.R ignored: reg is /6
        ("F3 41 0F 01 EE", Decoded(CLUI, None, 5)),  # REX has no effect on 0F 01 Ex
    ],
)
def test_prefix_combinations_emulator_choice(code: str, expected: Decoded) -> None:
    assert dec(code) == expected


def test_rex_counts_only_directly_before_opcode_sdm_2_2_1() -> None:
    # REX followed by a legacy prefix is ignored: register is rax, not r8.
    assert dec("F3 41 66 0F C7 F0") == Decoded(SENDUIPI, 0, 6)
    # REX before the mandatory prefix is ignored too.
    assert dec("41 F3 0F C7 F0") == Decoded(SENDUIPI, 0, 5)
    # Two REX prefixes: the last one counts.
    assert dec("F3 40 41 0F C7 F0") == Decoded(SENDUIPI, 8, 6)
    assert dec("F3 41 40 0F C7 F0") == Decoded(SENDUIPI, 0, 6)


@pytest.mark.parametrize(
    "code",
    [
        "F0 F3 0F 01 EE",
        "F3 F0 0F 01 EF",
        "F0 F3 0F 01 EC",
        "F3 F0 0F 01 ED",
        "F0 F3 0F C7 F0",
        "F3 F0 41 0F C7 F7",
        "66 F0 F3 0F C7 F1",
        "F0 F0 F3 0F 01 EE",
    ],
)
def test_lock_prefix_on_uintr_instruction_is_ud_section_6_1(code: str) -> None:
    with pytest.raises(InvalidOpcode, match="LOCK prefix"):
        dec(code)


def test_lock_prefix_on_other_instruction_is_not_ours() -> None:
    assert dec("F0 0F 01 EE") is None  # LOCK RDPKRU: a genuine #UD, not a UINTR one
    assert dec("F0 F3 0F C7 30") is None


def test_truncated_input_returns_none() -> None:
    full = bytes.fromhex("F3410FC7F0")
    for n in range(len(full)):
        assert decode(full[:n]) is None
    assert decode(full) == Decoded(SENDUIPI, 8, 5)


def test_fifteen_byte_limit_sdm_2_3_11() -> None:
    ok = bytes.fromhex("66" * 11 + "F30F01EE")  # 15 bytes
    assert decode(ok + PAD) == Decoded(CLUI, None, 15)
    too_long = bytes.fromhex("66" * 12 + "F30F01EE")  # 16 bytes
    assert decode(too_long + PAD) is None


def test_accepts_bytearray_and_memoryview() -> None:
    raw = bytes.fromhex("F30FC7F1") + PAD
    assert decode(bytearray(raw)) == Decoded(SENDUIPI, 1, 4)
    assert decode(memoryview(raw)) == Decoded(SENDUIPI, 1, 4)


def test_decoded_records_are_shared_not_allocated() -> None:
    assert dec("F3 0F 01 EE") is dec("F3 0F 01 EE")
