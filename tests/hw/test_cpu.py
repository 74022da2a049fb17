"""CPU model: feature switches, CPUID answers, CR4.UINTR and canonical addresses (docs/uintr.md §1,
§2)."""

from __future__ import annotations

import pytest
from hwmachine import make_machine

from uintr_emu.hw.cpu import CR4_PKE, CR4_UINTR, XSS_UINTR, CpuFeatures, cpuid_adjust, is_canonical
from uintr_emu.hw.faults import GeneralProtection

ON = CpuFeatures()
OFF = CpuFeatures(uintr=False)
FLEX = CpuFeatures(flexible_uiret=True)
ALL = 0xFFFF_FFFF


def test_cpu_constants_sdm_cr4_bits() -> None:
    assert CR4_UINTR == 1 << 25
    assert CR4_PKE == 1 << 22
    assert XSS_UINTR == 1 << 14


def test_features_defaults_emulator_choice_section_1() -> None:
    assert ON.uintr is True
    assert ON.flexible_uiret is False
    assert CpuFeatures.known() == ("uintr", "flexible-uiret")
    assert str(FLEX) == "+uintr,+flexible-uiret"


@pytest.mark.parametrize(
    ("spec", "base", "expected"),
    [
        ("", None, ON),
        ("  ", OFF, OFF),
        ("+uintr", OFF, ON),
        ("uintr", OFF, ON),
        ("-uintr", None, OFF),
        ("+flexible-uiret", None, FLEX),
        ("flexible_uiret", None, FLEX),
        ("+FLEXIBLE_UIRET", None, FLEX),
        (" -uintr , +flexible-uiret ", None, CpuFeatures(False, True)),
        ("-uintr,+uintr", None, ON),
        ("-flexible-uiret", FLEX, ON),
    ],
)
def test_features_parse(spec: str, base: CpuFeatures | None, expected: CpuFeatures) -> None:
    assert CpuFeatures.parse(spec, base) == expected


@pytest.mark.parametrize("spec", ["avx", "+uintr,,", "+", "-", "+-uintr", "uintr flexible", "u!"])
def test_features_parse_errors_name_the_known_features(spec: str) -> None:
    with pytest.raises(ValueError) as exc:
        CpuFeatures.parse(spec)
    message = str(exc.value)
    assert "\n" not in message
    assert "known: uintr, flexible-uiret" in message


# -- CPUID -----------------------------------------------------------------------------------


def test_cpuid_7_0_edx5_uintr_follows_feature_sdm_cpuid() -> None:
    assert cpuid_adjust(ON, 7, 0, 0, 0, 0, 0)[3] == 1 << 5
    assert cpuid_adjust(OFF, 7, 0, 0, 0, 0, 1 << 5)[3] == 0
    # Other EDX bits are kept.
    assert cpuid_adjust(ON, 7, 0, 0, 0, 0, 1 << 10)[3] == (1 << 10) | (1 << 5)


def test_cpuid_7_1_edx17_flexible_uiret() -> None:
    assert cpuid_adjust(FLEX, 7, 1, 0, 0, 0, 0)[3] == 1 << 17
    assert cpuid_adjust(ON, 7, 1, 0, 0, 0, 1 << 17)[3] == 0
    # Only advertised together with UINTR.
    assert cpuid_adjust(CpuFeatures(False, True), 7, 1, 0, 0, 0, 0)[3] == 0
    # (7,0).EAX (highest subleaf) raised to 1 so that the guest looks at (7,1).
    assert cpuid_adjust(FLEX, 7, 0, 0, 0, 0, 0)[0] == 1
    assert cpuid_adjust(ON, 7, 0, 0, 0, 0, 0)[0] == 0


def test_cpuid_d_1_ecx14_xss_uintr_component() -> None:
    assert cpuid_adjust(ON, 0xD, 1, 0xF, 0, 0, 0) == (0xF, 0, 1 << 14, 0)
    assert cpuid_adjust(OFF, 0xD, 1, 0xF, 0, 1 << 14, 0) == (0xF, 0, 0, 0)


def test_cpuid_d_e_component_14_size_48_supervisor_section_4() -> None:
    assert cpuid_adjust(ON, 0xD, 0xE, 0, 0, 0, 0) == (48, 0, 1, 0)
    assert cpuid_adjust(OFF, 0xD, 0xE, 48, 0, 1, 0) == (0, 0, 0, 0)


@pytest.mark.parametrize("features", [ON, OFF, FLEX])
def test_cpuid_never_advertises_avx_unicorn_notes_10(features: CpuFeatures) -> None:
    _, _, ecx, _ = cpuid_adjust(features, 1, 0, ALL, ALL, ALL, ALL)
    for bit in (12, 28, 29):  # FMA, AVX, F16C
        assert not ecx & (1 << bit)
    assert ecx & (1 << 27)  # OSXSAVE untouched
    _, ebx, ecx, edx = cpuid_adjust(features, 7, 0, 0, ALL, ALL, ALL)
    for bit in (5, 16, 17, 21, 26, 27, 28, 30, 31):  # AVX2, AVX-512 family
        assert not ebx & (1 << bit)
    assert ebx & (1 << 3)  # BMI1 untouched
    for bit in (1, 6, 11, 12, 14):
        assert not ecx & (1 << bit)
    for bit in (2, 3, 8, 23):
        assert not edx & (1 << bit)
    eax, _, _, _ = cpuid_adjust(features, 0xD, 0, ALL, 0, 0, 0)
    for bit in (2, 5, 6, 7):  # XCR0 components AVX, opmask, ZMM_Hi256, Hi16_ZMM
        assert not eax & (1 << bit)
    assert eax & 0b11  # x87, SSE kept
    for component in (2, 5, 6, 7):
        assert cpuid_adjust(features, 0xD, component, 256, 576, 0, 0) == (0, 0, 0, 0)


def test_cpuid_other_leaves_pass_through() -> None:
    regs = (0x12345678, 0x9ABCDEF0, 0x0F0F0F0F, 0xF0F0F0F0)
    assert cpuid_adjust(ON, 0, 0, *regs) == regs
    assert cpuid_adjust(ON, 0x8000_0001, 0, *regs) == regs
    assert cpuid_adjust(ON, 0xD, 3, *regs) == regs


# -- CR4 and canonical addresses -------------------------------------------------------------


def test_cr4_uintr_cannot_be_set_without_cpuid_uintr_gp_sdm_2_5() -> None:
    m = make_machine(1, features=OFF, enable=False)
    with pytest.raises(GeneralProtection, match="CR4.UINTR"):
        m.cpus[0].cr4 = CR4_UINTR
    assert m.cpus[0].cr4 == 0
    m.cpus[0].cr4 = 0x50200  # other bits are the engine's business
    assert m.cpus[0].cr4 == 0x50200


def test_cr4_uintr_enables_the_unit() -> None:
    m = make_machine(1, enable=False)
    cpu = m.cpus[0]
    assert not cpu.enabled
    cpu.cr4 = 0x50200 | CR4_UINTR
    assert cpu.enabled and cpu.cr4 == 0x50200 | CR4_UINTR
    cpu.cr4 = 0x50200
    assert not cpu.enabled


@pytest.mark.parametrize(
    ("addr", "canonical"),
    [
        (0, True),
        (0x0000_7FFF_FFFF_FFFF, True),
        (0x0000_8000_0000_0000, False),
        (0x00FF_0000_0000_0000, False),
        (0x7FFF_FFFF_FFFF_FFFF, False),
        (0x8000_0000_0000_0000, False),
        (0xFFFF_7FFF_FFFF_FFFF, False),
        (0xFFFF_8000_0000_0000, True),
        (0xFFFF_FFFF_FFFF_FFFF, True),
        (0x0100_0000_0000_0000, False),  # canonical with 57 bits, not with 48 (§2)
    ],
)
def test_canonical_is_48_bit_emulator_choice_section_2(addr: int, canonical: bool) -> None:
    assert is_canonical(addr) is canonical
