"""Property tests (hypothesis): the model only ever raises architectural faults, and its
encodings round-trip."""

from __future__ import annotations

import struct

from hwmachine import USER_STACK_TOP, make_machine
from hypothesis import given, settings
from hypothesis import strategies as st

from uintr_emu.hw.cpu import is_canonical
from uintr_emu.hw.decode import MAX_INSTRUCTION_LENGTH, Decoded, decode
from uintr_emu.hw.faults import GeneralProtection, InvalidOpcode
from uintr_emu.hw.uintr import (
    IA32_UINTR_HANDLER,
    IA32_UINTR_RR,
    UINTR_MSRS,
    UIRET_RFLAGS_MASK,
    UintrState,
)

u64 = st.integers(min_value=0, max_value=2**64 - 1)
# Values that hit the interesting edges more often than uniform 64-bit integers would.
msr_values = st.one_of(
    u64,
    st.integers(min_value=0, max_value=2**48),
    st.integers(min_value=2**64 - 2**48, max_value=2**64 - 1),
    st.sampled_from([0, 1, 0x3F, 0x40, 0xE, 0xF, 2**40, 2**47, 2**63, 2**64 - 1]),
)


@settings(max_examples=400)
@given(msr=st.sampled_from(UINTR_MSRS), value=msr_values)
def test_wrmsr_random_values_only_raise_gp_and_round_trip(msr: int, value: int) -> None:
    cpu = make_machine(1).cpus[0]
    try:
        cpu.wrmsr(msr, value)
    except GeneralProtection:
        assert cpu.rdmsr(msr) == 0  # a refused write changes nothing
        return
    assert cpu.rdmsr(msr) == value


@settings(max_examples=400)
@given(value=u64)
def test_wrmsr_handler_accepts_exactly_canonical_values(value: int) -> None:
    cpu = make_machine(1).cpus[0]
    try:
        cpu.wrmsr(IA32_UINTR_HANDLER, value)
        accepted = True
    except GeneralProtection:
        accepted = False
    assert accepted == is_canonical(value)


uintr_prefixes = st.lists(
    st.sampled_from([0xF0, 0xF2, 0xF3, 0x66, 0x67, 0x2E, 0x64, 0x40, 0x41, 0x48, 0x4F]),
    max_size=14,
)
uintr_tails = st.sampled_from(
    [bytes([0x0F, 0x01, b]) for b in range(0xE8, 0xF0)]
    + [bytes([0x0F, 0xC7, b]) for b in range(0xC0, 0x100, 3)]
)


@settings(max_examples=1000)
@given(
    code=st.one_of(
        st.binary(max_size=20),
        st.builds(
            lambda p, t, r: bytes(p) + t + r, uintr_prefixes, uintr_tails, st.binary(max_size=4)
        ),
    )
)
def test_decode_random_bytes_only_none_decoded_or_ud(code: bytes) -> None:
    try:
        result = decode(code)
    except InvalidOpcode as e:
        assert "LOCK" in e.rule and 0xF0 in code
        return
    if result is not None:
        assert isinstance(result, Decoded)
        assert 4 <= result.length <= min(len(code), MAX_INSTRUCTION_LENGTH)
        assert result.register is None or 0 <= result.register < 16
        assert code[: result.length].count(0xF3) >= 1


states = st.builds(
    UintrState,
    uirr=u64,
    uif=st.booleans(),
    handler=u64,
    stack_adjust=u64,
    uinv=st.integers(0, 255),
    uitt_size=st.integers(0, 2**32 - 1),
    uitt_addr=u64.map(lambda v: v & ~0xF),
    senduipi_enabled=st.booleans(),
    upid_addr=u64,
)


@given(state=states)
def test_xsave_image_round_trips_any_state(state: UintrState) -> None:
    image = state.to_xsave()
    assert len(image) == 48
    assert UintrState.from_xsave(image) == state
    assert bool(image[23] & 0x80) == state.uif


@given(state=states)
def test_xrstors_random_images_only_raise_gp(state: UintrState) -> None:
    cpu = make_machine(1).cpus[0]
    image = state.to_xsave()
    try:
        cpu.xrstors(image)
    except GeneralProtection:
        assert cpu.state == UintrState()
        return
    assert cpu.state == state
    assert is_canonical(state.handler) and is_canonical(state.upid_addr)


@given(current=u64, popped=u64)
def test_uiret_rflags_merge_property(current: int, popped: int) -> None:
    cpu = make_machine(1).cpus[0]
    rsp = USER_STACK_TOP - 0x100
    cpu.mem.write(rsp, struct.pack("<QQQ", 0x40_0000, popped, rsp), supervisor=False)
    _, rflags, _ = cpu.uiret(rsp, current)
    assert rflags & UIRET_RFLAGS_MASK == popped & UIRET_RFLAGS_MASK
    assert rflags & ~UIRET_RFLAGS_MASK & ~2 == current & ~UIRET_RFLAGS_MASK & ~2
    assert rflags & 2


@given(uirr=u64.filter(bool))
def test_delivery_always_takes_the_highest_vector(uirr: int) -> None:
    cpu = make_machine(1).cpus[0]
    cpu.state.uif = True
    cpu.wrmsr(IA32_UINTR_RR, uirr)
    result = cpu.deliver(0x40_0000, USER_STACK_TOP - 0x100, 0x202)
    assert result is not None
    vector = struct.unpack("<Q", cpu.mem.read(result[1], 8, supervisor=False))[0]
    assert vector == uirr.bit_length() - 1
    assert cpu.state.uirr == uirr & ~(1 << vector)
