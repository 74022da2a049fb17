"""Local APIC and IPI bus (SDM Vol.3 APIC chapter: IRR/ISR, priority, EOI, x2APIC/xAPIC IDs)."""

from __future__ import annotations

import pytest

from uintr_emu.hw.apic import (
    ESR_RECEIVE_ILLEGAL_VECTOR,
    ESR_SEND_ILLEGAL_VECTOR,
    ApicBus,
    LocalApic,
)


def test_post_acknowledge_eoi_moves_irr_to_isr_sdm_apic() -> None:
    apic = LocalApic(0)
    assert not apic.has_pending() and apic.acknowledge() is None
    apic.post(0xEC)
    apic.post(0xEC)  # fixed interrupts coalesce in IRR
    assert apic.irr == 1 << 0xEC and apic.has_pending()
    assert apic.acknowledge() == 0xEC
    assert (apic.irr, apic.isr) == (0, 1 << 0xEC)
    apic.eoi()
    assert apic.isr == 0
    apic.eoi()  # EOI with nothing in service is harmless
    assert apic.isr == 0


def test_highest_vector_first() -> None:
    apic = LocalApic(0)
    for v in (0x31, 0xEC, 0x80):
        apic.post(v)
    assert apic.acknowledge() == 0xEC


def test_in_service_class_blocks_same_or_lower_class_sdm_processor_priority() -> None:
    apic = LocalApic(0)
    apic.post(0xEB)
    assert apic.acknowledge() == 0xEB  # class 0xE in service
    apic.post(0xEC)  # same class 0xE: not accepted until EOI
    apic.post(0x40)  # lower class
    assert not apic.has_pending()
    assert apic.acknowledge() is None
    apic.post(0xF1)  # higher class preempts
    assert apic.has_pending()
    assert apic.acknowledge() == 0xF1
    apic.eoi()  # clears 0xF1, the highest in service
    assert apic.isr == 1 << 0xEB
    apic.eoi()
    assert apic.acknowledge() == 0xEC


def test_tpr_masks_lower_classes() -> None:
    apic = LocalApic(0)
    apic.tpr = 0xE0
    apic.post(0xEC)
    assert not apic.has_pending() and apic.acknowledge() is None
    apic.tpr = 0
    assert apic.acknowledge() == 0xEC


@pytest.mark.parametrize("vector", [0, 1, 15])
def test_illegal_vectors_are_not_posted_sdm_apic_error_handling(vector: int) -> None:
    bus = ApicBus()
    a, b = LocalApic(0), LocalApic(1)
    bus.attach(a)
    bus.attach(b)
    b.post(vector)
    assert b.irr == 0 and b.esr & ESR_RECEIVE_ILLEGAL_VECTOR
    assert bus.send_ipi(vector, 1, source=a) is None
    assert a.esr & ESR_SEND_ILLEGAL_VECTOR and b.irr == 0


def test_x2apic_destination_is_32_bit_apic_id() -> None:
    bus = ApicBus()
    src, far = LocalApic(0), LocalApic(0x1_0005)
    near = LocalApic(5)
    for a in (src, far, near):
        bus.attach(a)
    seen: list[tuple[int, int, int]] = []
    bus.on_ipi = lambda s, t, v: seen.append((s.apic_id, t.apic_id, v))
    assert bus.send_ipi(0xEC, 0x1_0005, source=src) is far
    assert far.irr == 1 << 0xEC and near.irr == 0
    assert seen == [(0, 0x1_0005, 0xEC)]


def test_xapic_destination_is_8_bit_apic_id() -> None:
    bus = ApicBus()
    src, dst = LocalApic(0, x2apic=False), LocalApic(5, x2apic=False)
    bus.attach(src)
    bus.attach(dst)
    assert bus.send_ipi(0xEC, 0x305, source=src) is dst  # bits above 7:0 are not part of the ID
    assert dst.irr == 1 << 0xEC


def test_ipi_to_missing_apic_is_lost() -> None:
    bus = ApicBus()
    src = LocalApic(0)
    bus.attach(src)
    seen: list[object] = []
    bus.on_ipi = lambda s, t, v: seen.append(t)
    assert bus.send_ipi(0xEC, 7, source=src) is None
    assert seen == [] and src.irr == 0


def test_self_ipi_and_lookup() -> None:
    bus = ApicBus()
    a = LocalApic(3)
    bus.attach(a)
    assert bus.apic(3) is a and bus.apic(4) is None
    assert bus.send_ipi(0xEC, 3, source=a) is a
    assert a.irr == 1 << 0xEC


def test_attach_duplicate_id_rejected() -> None:
    bus = ApicBus()
    bus.attach(LocalApic(1))
    with pytest.raises(ValueError, match="APIC ID 1"):
        bus.attach(LocalApic(1))
