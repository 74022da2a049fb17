"""UINTR MSRs (docs/uintr.md §3, SDM "User-Interrupt MSRs") and XSAVE state component 14 (§4,
SDM Vol.1 §13.5.11)."""

from __future__ import annotations

import struct

import pytest
from hwmachine import HANDLER, USER_RFLAGS, make_machine

from uintr_emu.hw.cpu import CpuFeatures
from uintr_emu.hw.faults import GeneralProtection
from uintr_emu.hw.uintr import (
    IA32_UINTR_HANDLER,
    IA32_UINTR_MISC,
    IA32_UINTR_PD,
    IA32_UINTR_RR,
    IA32_UINTR_STACKADJUST,
    IA32_UINTR_TT,
    UINTR_MSRS,
    XSAVE_IMAGE_SIZE,
    UintrState,
    UintrUnit,
)

NON_CANONICAL = [0x0000_8000_0000_0000, 0x1234_5678_9ABC_DEC0, 0xFFFF_7FFF_FFFF_FFC0]
CANONICAL = [0, 0x7FFF_FFFF_FFC0, 0xFFFF_8000_0000_0000, 0xFFFF_FFFF_FFFF_FFC0]


def cpu(enable: bool = True, features: CpuFeatures | None = None) -> UintrUnit:
    return make_machine(1, enable=enable, features=features).cpus[0]


# -- MSRs ------------------------------------------------------------------------------------


def test_msr_numbers_sdm_uintr_msrs() -> None:
    assert UINTR_MSRS == (0x985, 0x986, 0x987, 0x988, 0x989, 0x98A)


@pytest.mark.parametrize("msr", UINTR_MSRS)
def test_rdmsr_wrmsr_gp_without_cpuid_uintr_section_3(msr: int) -> None:
    c = cpu(enable=False, features=CpuFeatures(uintr=False))
    with pytest.raises(GeneralProtection, match="CPUID"):
        c.rdmsr(msr)
    with pytest.raises(GeneralProtection, match="CPUID"):
        c.wrmsr(msr, 0)


@pytest.mark.parametrize("msr", UINTR_MSRS)
def test_msrs_not_gated_by_cr4_uintr_section_3(msr: int) -> None:
    c = cpu(enable=False)
    c.wrmsr(msr, 0x40)
    assert c.rdmsr(msr) == 0x40


@pytest.mark.parametrize("msr", [0x984, 0x98B, 0x1B00, 0x10])
def test_non_uintr_msr_number_gp(msr: int) -> None:
    c = cpu()
    with pytest.raises(GeneralProtection, match="not a UINTR MSR"):
        c.rdmsr(msr)
    with pytest.raises(GeneralProtection, match="not a UINTR MSR"):
        c.wrmsr(msr, 0)


@pytest.mark.parametrize(
    ("msr", "value", "field", "expected"),
    [
        (IA32_UINTR_RR, 0xFFFF_FFFF_FFFF_FFFF, "uirr", 0xFFFF_FFFF_FFFF_FFFF),
        (IA32_UINTR_HANDLER, 0xFFFF_8000_0000_1234, "handler", 0xFFFF_8000_0000_1234),
        (IA32_UINTR_STACKADJUST, 0x7FFF_0000_0001, "stack_adjust", 0x7FFF_0000_0001),
        (IA32_UINTR_PD, 0xFFFF_8880_0000_1040, "upid_addr", 0xFFFF_8880_0000_1040),
        (IA32_UINTR_TT, 0xFFFF_8880_0000_0000, "uitt_addr", 0xFFFF_8880_0000_0000),
    ],
)
def test_wrmsr_rdmsr_round_trip_sdm_uintr_msrs(
    msr: int, value: int, field: str, expected: int
) -> None:
    c = cpu()
    c.wrmsr(msr, value)
    assert c.rdmsr(msr) == value
    assert getattr(c.state, field) == expected


def test_wrmsr_misc_splits_uittsz_and_uinv() -> None:
    c = cpu()
    c.wrmsr(IA32_UINTR_MISC, 0xEC_FFFF_FFFF)
    assert (c.state.uitt_size, c.state.uinv) == (0xFFFF_FFFF, 0xEC)
    assert c.rdmsr(IA32_UINTR_MISC) == 0xEC_FFFF_FFFF


def test_rdmsr_misc_does_not_show_uif() -> None:
    c = cpu()
    c.stui()
    assert c.rdmsr(IA32_UINTR_MISC) == 0


def test_wrmsr_tt_bit0_is_senduipi_enable() -> None:
    c = cpu()
    c.wrmsr(IA32_UINTR_TT, 0xFFFF_8880_0000_0010 | 1)
    assert c.state.senduipi_enabled and c.state.uitt_addr == 0xFFFF_8880_0000_0010
    assert c.rdmsr(IA32_UINTR_TT) == 0xFFFF_8880_0000_0011
    c.wrmsr(IA32_UINTR_TT, 0xFFFF_8880_0000_0010)
    assert not c.state.senduipi_enabled


@pytest.mark.parametrize("msr", [IA32_UINTR_HANDLER, IA32_UINTR_STACKADJUST, IA32_UINTR_PD])
@pytest.mark.parametrize("value", NON_CANONICAL)
def test_wrmsr_non_canonical_gp_sdm_uintr_msrs(msr: int, value: int) -> None:
    c = cpu()
    c.wrmsr(msr, 0x1000)
    with pytest.raises(GeneralProtection, match="not canonical"):
        c.wrmsr(msr, value)
    assert c.rdmsr(msr) == 0x1000  # a faulting WRMSR changes nothing


@pytest.mark.parametrize("value", NON_CANONICAL)
def test_wrmsr_tt_non_canonical_gp_sdm_uintr_msrs(value: int) -> None:
    c = cpu()
    with pytest.raises(GeneralProtection, match="UITTADDR .* not canonical"):
        c.wrmsr(IA32_UINTR_TT, (value & ~0xF) | 1)


@pytest.mark.parametrize("msr", [IA32_UINTR_HANDLER, IA32_UINTR_STACKADJUST, IA32_UINTR_PD])
@pytest.mark.parametrize("value", CANONICAL)
def test_wrmsr_canonical_accepted(msr: int, value: int) -> None:
    c = cpu()
    c.wrmsr(msr, value)
    assert c.rdmsr(msr) == value


@pytest.mark.parametrize("bit", range(40, 64))
def test_wrmsr_misc_reserved_bits_63_40_gp_sdm_uintr_msrs(bit: int) -> None:
    c = cpu()
    with pytest.raises(GeneralProtection, match="IA32_UINTR_MISC: reserved bits 63:40"):
        c.wrmsr(IA32_UINTR_MISC, 1 << bit)
    assert c.rdmsr(IA32_UINTR_MISC) == 0


@pytest.mark.parametrize("bit", range(0, 40))
def test_wrmsr_misc_bits_39_0_accepted(bit: int) -> None:
    c = cpu()
    c.wrmsr(IA32_UINTR_MISC, 1 << bit)
    assert c.rdmsr(IA32_UINTR_MISC) == 1 << bit


@pytest.mark.parametrize("bit", range(0, 6))
def test_wrmsr_pd_reserved_bits_gp_sdm_uintr_msrs(bit: int) -> None:
    c = cpu()
    with pytest.raises(GeneralProtection, match="IA32_UINTR_PD: reserved bits 5:0"):
        c.wrmsr(IA32_UINTR_PD, 0xFFFF_8880_0000_1000 | (1 << bit))


@pytest.mark.parametrize("bit", range(1, 4))
def test_wrmsr_tt_reserved_bits_3_1_gp_sdm_uintr_msrs(bit: int) -> None:
    c = cpu()
    with pytest.raises(GeneralProtection, match="IA32_UINTR_TT: reserved bits 3:1"):
        c.wrmsr(IA32_UINTR_TT, 0xFFFF_8880_0000_0000 | 1 | (1 << bit))


def test_wrmsr_value_out_of_64_bits_is_a_programming_error() -> None:
    c = cpu()
    with pytest.raises(ValueError):
        c.wrmsr(IA32_UINTR_RR, 1 << 64)
    with pytest.raises(ValueError):
        c.wrmsr(IA32_UINTR_RR, -1)


def test_wrmsr_rr_recognition_and_delivery_section_3_and_8() -> None:
    m = make_machine(1)
    c = m.cpus[0]
    c.wrmsr(IA32_UINTR_HANDLER, HANDLER)
    c.wrmsr(IA32_UINTR_STACKADJUST, 128)
    c.stui()
    assert not c.pending()
    c.wrmsr(IA32_UINTR_RR, 1 << 7)
    assert c.pending() and c.deliverable(USER_RFLAGS)
    rip, _, _ = c.deliver(0x40_2000, 0x7FFF_FFEF_F000, USER_RFLAGS) or (None, 0, 0)
    assert rip == HANDLER
    c.stui()
    c.wrmsr(IA32_UINTR_RR, 0)  # writing 0 withdraws the request
    assert not c.pending() and c.deliver(0x40_2000, 0x7FFF_FFEF_F000, USER_RFLAGS) is None


def test_wrmsr_emits_event() -> None:
    c = cpu()
    seen: list[tuple[str, dict[str, int]]] = []
    c.events = lambda kind, **f: seen.append((kind, f))
    c.wrmsr(IA32_UINTR_RR, 5)
    assert seen == [("wrmsr", {"msr": IA32_UINTR_RR, "value": 5})]


# -- XSAVE component 14 ----------------------------------------------------------------------

STATE = UintrState(
    uirr=0x8000_0000_0000_0009,
    uif=True,
    handler=0x0000_0000_0040_1000,
    stack_adjust=0x80,
    uinv=0xEC,
    uitt_size=255,
    uitt_addr=0xFFFF_8880_0000_0000,
    senduipi_enabled=True,
    upid_addr=0xFFFF_8880_0000_1040,
)


def expected_image() -> bytes:
    return b"".join(
        [
            bytes.fromhex("00 10 40 00 00 00 00 00"),  # HANDLER
            bytes.fromhex("80 00 00 00 00 00 00 00"),  # STACKADJUST
            bytes.fromhex("ff 00 00 00 ec 00 00 80"),  # UITTSZ=255, UINV=0xEC, UIF -> bit 63
            bytes.fromhex("40 10 00 00 80 88 ff ff"),  # PD
            bytes.fromhex("09 00 00 00 00 00 00 80"),  # RR
            bytes.fromhex("01 00 00 00 80 88 ff ff"),  # TT with bit 0
        ]
    )


def loaded_cpu(state: UintrState = STATE) -> UintrUnit:
    c = cpu()
    c.wrmsr(IA32_UINTR_HANDLER, state.handler)
    c.wrmsr(IA32_UINTR_STACKADJUST, state.stack_adjust)
    c.wrmsr(IA32_UINTR_MISC, state.uitt_size | (state.uinv << 32))
    c.wrmsr(IA32_UINTR_PD, state.upid_addr)
    c.wrmsr(IA32_UINTR_RR, state.uirr)
    c.wrmsr(IA32_UINTR_TT, state.uitt_addr | int(state.senduipi_enabled))
    if state.uif:
        c.stui()
    return c


def test_xsave_image_layout_byte_by_byte_section_4() -> None:
    image = STATE.to_xsave()
    assert len(image) == XSAVE_IMAGE_SIZE == 48
    assert image == expected_image()
    assert image[23] == 0x80  # UIF is bit 7 of byte 23 (bit 63 of the MISC qword)
    assert image[21:23] == b"\0\0"  # reserved bytes stored as 0


def test_xsave_image_uif_clear() -> None:
    image = UintrState(uif=False, uinv=0xEC).to_xsave()
    assert struct.unpack_from("<Q", image, 16)[0] == 0xEC << 32


def test_xsave_image_round_trip() -> None:
    assert UintrState.from_xsave(STATE.to_xsave()) == STATE
    assert UintrState.from_xsave(bytes(48)) == UintrState()
    with pytest.raises(ValueError):
        UintrState.from_xsave(bytes(47))


def test_xsaves_stores_image_then_clears_uinv_only_section_4() -> None:
    c = loaded_cpu()
    image = c.xsaves()
    assert image == expected_image()
    assert c.state.uinv == 0
    after = UintrState.from_xsave(image)
    after.uinv = 0
    assert c.state == after  # everything else unchanged, UIF included


def test_xrstors_after_xsaves_loads_everything_section_4() -> None:
    c = loaded_cpu()
    image = c.xsaves()
    c.xrstors(image)
    assert c.state == STATE


def test_xrstors_with_uinv_set_gp_and_loads_nothing_section_4_rule_1() -> None:
    c = loaded_cpu()
    before = UintrState.from_xsave(c.state.to_xsave())
    with pytest.raises(GeneralProtection, match="UINV 0xec != 0"):
        c.xrstors(bytes(48))
    assert c.state == before


def test_second_xrstors_without_xsaves_gp_section_4_rule_1() -> None:
    c = loaded_cpu()
    image = c.xsaves()
    c.xrstors(image)  # loads UINV = 0xEC
    with pytest.raises(GeneralProtection, match="XRSTORS"):
        c.xrstors(image)


def test_xrstors_loads_uif_from_bit_63_section_4_rule_3() -> None:
    c = cpu()
    c.xrstors(UintrState(uif=True).to_xsave())
    assert c.state.uif is True
    c.xsaves()
    c.xrstors(UintrState(uif=False).to_xsave())
    assert c.state.uif is False


def image_with(offset: int, value: int) -> bytes:
    image = bytearray(48)
    struct.pack_into("<Q", image, offset, value)
    return bytes(image)


@pytest.mark.parametrize(
    ("offset", "value", "rule"),
    [
        (0, 0x0000_8000_0000_0000, "IA32_UINTR_HANDLER: value .* not canonical"),
        (8, 0x1234_0000_0000_0000, "IA32_UINTR_STACKADJUST: value .* not canonical"),
        (16, 1 << 40, "IA32_UINTR_MISC: reserved bits 63:40"),
        (16, 1 << 62, "IA32_UINTR_MISC: reserved bits 63:40"),
        (24, 0x1001, "IA32_UINTR_PD: reserved bits 5:0"),
        (24, 0x0000_8000_0000_0000, "IA32_UINTR_PD: UPIDADDR .* not canonical"),
        (40, 0x1002, "IA32_UINTR_TT: reserved bits 3:1"),
        (40, 0x0000_8000_0000_0001, "IA32_UINTR_TT: UITTADDR .* not canonical"),
    ],
)
def test_xrstors_validates_like_wrmsr_section_4_rule_2(offset: int, value: int, rule: str) -> None:
    c = cpu()
    c.wrmsr(IA32_UINTR_HANDLER, HANDLER)
    c.stui()
    with pytest.raises(GeneralProtection, match="XRSTORS: UINTR image field " + rule):
        c.xrstors(image_with(offset, value))
    # Validation precedes loading: nothing changed, and UINV is (still) 0 (rule 4).
    assert c.state == UintrState(handler=HANDLER, uif=True)


def test_xrstors_accepts_any_uirr_and_uif_bit() -> None:
    c = cpu()
    c.xrstors(image_with(32, 0xFFFF_FFFF_FFFF_FFFF))
    assert c.state.uirr == 0xFFFF_FFFF_FFFF_FFFF and c.pending()
    c.xsaves()
    c.xrstors(image_with(16, 1 << 63))
    assert c.state.uif and c.state.uirr == 0


def test_xsaves_xrstors_not_gated_by_cr4_but_by_cpuid_section_4() -> None:
    c = cpu(enable=False)
    c.xrstors(c.xsaves())
    off = cpu(enable=False, features=CpuFeatures(uintr=False))
    with pytest.raises(GeneralProtection, match="XSAVES"):
        off.xsaves()
    with pytest.raises(GeneralProtection, match="XRSTORS"):
        off.xrstors(bytes(48))


def test_xrstors_wrong_length_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        cpu().xrstors(bytes(40))


def test_reset_state_is_all_zero_section_2() -> None:
    c = loaded_cpu()
    c.reset_state()
    assert c.state == UintrState()


def test_xsaves_of_the_initial_configuration_stores_no_image_init_optimization() -> None:
    """SDM Vol.1 §13.6/§13.11: XSAVES may use the init optimization. A component in its initial
    configuration (every field 0, UIF too) is written as XSTATE_BV[14] = 0, with no image (None
    here); XRSTORS of such an area (None) initializes the component."""
    c = cpu()
    assert c.xsaves() is None
    c.wrmsr(IA32_UINTR_HANDLER, HANDLER)
    c.stui()
    image = c.xsaves()
    assert image is not None and UintrState.from_xsave(image).uif
    c.xrstors(None)
    assert c.state == UintrState()
    c.xrstors(image)
    assert c.state == UintrState.from_xsave(image)
    # A loaded UINV still makes XRSTORS of the init configuration fault (§4 rule 1).
    c.wrmsr(IA32_UINTR_MISC, 0xEC << 32)
    with pytest.raises(GeneralProtection, match="UINV"):
        c.xrstors(None)
