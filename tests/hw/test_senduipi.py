"""SENDUIPI (docs/uintr.md §6.5, SDM SENDUIPI Operation; UITT entry §5.1, UPID §5.2)."""

from __future__ import annotations

import pytest
from hwmachine import (
    UINV,
    UITT_ADDR,
    UPID_BASE,
    Machine,
    make_machine,
    ndst_for,
    read_upid,
    setup_receiver,
    setup_sender,
    upid_addr,
    write_uitte,
    write_upid,
)

from uintr_emu.hw.faults import GeneralProtection, InvalidOpcode, PageFault
from uintr_emu.hw.uintr import IA32_UINTR_TT, UITTE_RESERVED, UPID_RESERVED


@pytest.fixture
def m() -> Machine:
    """CPU 0 sends, CPU 1 receives; UITT entry 0 -> CPU 1's UPID, vector 3."""
    m = make_machine(2)
    setup_sender(m, 0)
    setup_receiver(m, 1)
    write_uitte(m.mem, 0, vector=3, upid=upid_addr(1))
    return m


def test_senduipi_posts_pir_sets_on_and_sends_notification_ipi(m: Machine) -> None:
    seen: list[tuple[str, dict[str, object]]] = []
    m.cpus[0].events = lambda kind, **f: seen.append((kind, f))
    m.cpus[0].senduipi(0)
    lo, pir = read_upid(m.mem, upid_addr(1))
    assert pir == 1 << 3
    assert lo & 1  # ON
    assert m.cpus[1].apic.irr == 1 << UINV
    assert m.ipis == [(0, 1, UINV)]
    assert seen == [
        (
            "senduipi",
            {
                "index": 0,
                "vector": 3,
                "upid": upid_addr(1),
                "sn": False,
                "on": False,
                "notify": True,
                "nv": UINV,
                "ndst": 1,
                "target": 1,
            },
        )
    ]


def test_senduipi_tt_enable_clear_ud_sdm_senduipi(m: Machine) -> None:
    m.cpus[0].wrmsr(IA32_UINTR_TT, UITT_ADDR)  # bit 0 = 0
    with pytest.raises(InvalidOpcode, match=r"IA32_UINTR_TT\[0\]"):
        m.cpus[0].senduipi(0)
    assert read_upid(m.mem, upid_addr(1))[1] == 0


@pytest.mark.parametrize(
    ("uitt_size", "index", "message"),
    [
        (255, 256, "UITT index 256 > UITTSZ 255"),  # kvm-unit-tests check, §17 #5
        (0, 1, "UITT index 1 > UITTSZ 0"),
        (255, 2**64 - 1, "UITT index 18446744073709551615 > UITTSZ 255"),
        (0xFFFF_FFFF, 2**32, "UITT index 4294967296 > UITTSZ 4294967295"),
        (255, -1, "UITT index 18446744073709551615 > UITTSZ 255"),  # register is unsigned
    ],
)
def test_senduipi_index_above_uittsz_gp_unsigned_sdm_senduipi(
    m: Machine, uitt_size: int, index: int, message: str
) -> None:
    setup_sender(m, 0, uitt_size=uitt_size)
    with pytest.raises(GeneralProtection) as exc:
        m.cpus[0].senduipi(index)
    assert str(exc.value) == f"#GP(0): SENDUIPI: {message}"


def test_senduipi_index_equal_uittsz_is_valid_uittsz_is_highest_index(m: Machine) -> None:
    write_uitte(m.mem, 255, vector=9, upid=upid_addr(1))
    m.cpus[0].senduipi(255)
    assert read_upid(m.mem, upid_addr(1))[1] == 1 << 9


def test_senduipi_invalid_entry_gp(m: Machine) -> None:
    write_uitte(m.mem, 1, vector=3, upid=upid_addr(1), valid=False)
    with pytest.raises(GeneralProtection, match=r"UITT entry 1 not valid \(V = 0\)"):
        m.cpus[0].senduipi(1)
    assert read_upid(m.mem, upid_addr(1)) == (UINV << 16 | 1 << 32, 0)


@pytest.mark.parametrize("bit", [b for b in range(64) if (1 << b) & UITTE_RESERVED])
def test_senduipi_uitt_entry_reserved_bits_gp_sdm_5_1(m: Machine, bit: int) -> None:
    group = "7:1" if bit < 8 else "63:16"
    write_uitte(m.mem, 2, low=1 | (3 << 8) | (1 << bit), upid=upid_addr(1))
    with pytest.raises(GeneralProtection, match=f"UITT entry 2 reserved bits {group} set"):
        m.cpus[0].senduipi(2)
    assert read_upid(m.mem, upid_addr(1))[1] == 0


def test_uitt_entry_reserved_mask_section_5_1() -> None:
    assert UITTE_RESERVED == 0xFFFF_FFFF_FFFF_00FE


@pytest.mark.parametrize("vector", [64, 65, 127, 128, 255])
def test_senduipi_user_vector_64_or_more_gp_sdm_5_1(m: Machine, vector: int) -> None:
    write_uitte(m.mem, 3, vector=vector, upid=upid_addr(1))
    with pytest.raises(GeneralProtection, match=f"user vector {vector} >= 64"):
        m.cpus[0].senduipi(3)


@pytest.mark.parametrize("vector", [0, 31, 32, 63])
def test_senduipi_all_64_vectors_no_overflow(m: Machine, vector: int) -> None:
    # The QEMU-prototype pitfall: 1 << vector overflowing for vectors >= 32 (§14).
    write_uitte(m.mem, 3, vector=vector, upid=upid_addr(1))
    m.cpus[0].senduipi(3)
    assert read_upid(m.mem, upid_addr(1))[1] == 1 << vector


@pytest.mark.parametrize("bit", range(6))
def test_senduipi_misaligned_upid_address_gp_sdm_5_1(m: Machine, bit: int) -> None:
    write_uitte(m.mem, 4, vector=3, upid=upid_addr(1) | (1 << bit))
    with pytest.raises(GeneralProtection, match="UPIDADDR .* not 64-byte aligned"):
        m.cpus[0].senduipi(4)


def test_senduipi_non_canonical_upid_address_gp_sdm_senduipi(m: Machine) -> None:
    write_uitte(m.mem, 4, vector=3, upid=0x0000_8000_0000_0000)
    with pytest.raises(GeneralProtection, match="UPID address .* not canonical"):
        m.cpus[0].senduipi(4)


@pytest.mark.parametrize("bit", [b for b in range(32) if (1 << b) & UPID_RESERVED])
def test_senduipi_upid_reserved_bits_gp_and_upid_unchanged_sdm_5_2(m: Machine, bit: int) -> None:
    write_upid(m.mem, upid_addr(1), ndst=1, extra_low=1 << bit)
    before = read_upid(m.mem, upid_addr(1))
    with pytest.raises(GeneralProtection, match="UPID at .* reserved bits set"):
        m.cpus[0].senduipi(0)
    assert read_upid(m.mem, upid_addr(1)) == before  # the locked RMW is abandoned: no PIR bit
    assert m.ipis == []


def test_upid_reserved_mask_section_5_2() -> None:
    assert UPID_RESERVED == 0xFF00_FFFC


def test_senduipi_ndst_is_not_checked(m: Machine) -> None:
    write_upid(m.mem, upid_addr(1), ndst=0xFFFF_FFF0)  # no such APIC: the IPI is lost
    m.cpus[0].senduipi(0)
    lo, pir = read_upid(m.mem, upid_addr(1))
    assert pir == 1 << 3 and lo & 1
    assert m.ipis == [] and m.cpus[1].apic.irr == 0


def test_senduipi_uses_supervisor_accesses_to_kernel_memory_section_6_5(m: Machine) -> None:
    # UITT and UPID live in supervisor-only pages: a user access would fault...
    with pytest.raises(PageFault) as exc:
        m.mem.read(UITT_ADDR, 16, supervisor=False)
    assert exc.value.protection
    with pytest.raises(PageFault):
        m.mem.read(UPID_BASE, 16, supervisor=False)
    # ...yet SENDUIPI at CPL3 works.
    assert m.cpus[0].user_mode
    m.cpus[0].senduipi(0)
    assert read_upid(m.mem, upid_addr(1))[1] == 1 << 3


def test_senduipi_uitt_not_mapped_page_fault(m: Machine) -> None:
    m.mem.unmap(UITT_ADDR, 0x1000)
    with pytest.raises(PageFault) as exc:
        m.cpus[0].senduipi(5)
    f = exc.value
    assert (f.address, f.write, f.protection, f.user) == (UITT_ADDR + 5 * 16, False, False, False)


def test_senduipi_upid_read_only_page_fault_and_nothing_posted(m: Machine) -> None:
    m.mem.map(UPID_BASE, 0x1000, user=False, writable=False)
    with pytest.raises(PageFault) as exc:
        m.cpus[0].senduipi(0)
    assert exc.value.write and exc.value.protection and not exc.value.user
    assert read_upid(m.mem, upid_addr(1))[1] == 0
    assert m.ipis == []


def test_senduipi_entry_address_uses_uittaddr_bits_63_4(m: Machine) -> None:
    # UITTADDR = UITT_ADDR + 0x10: index 0 reads entry 1 of our table.
    m.cpus[0].wrmsr(IA32_UINTR_TT, (UITT_ADDR + 0x10) | 1)
    write_uitte(m.mem, 1, vector=7, upid=upid_addr(1))
    m.cpus[0].senduipi(0)
    assert read_upid(m.mem, upid_addr(1))[1] == 1 << 7


def test_senduipi_sn_set_posts_without_ipi_section_6_5(m: Machine) -> None:
    write_upid(m.mem, upid_addr(1), ndst=1, sn=True)
    m.cpus[0].senduipi(0)
    lo, pir = read_upid(m.mem, upid_addr(1))
    assert pir == 1 << 3
    assert lo & 3 == 2  # SN kept, ON not set
    assert m.ipis == [] and m.cpus[1].apic.irr == 0


def test_senduipi_on_set_sends_no_second_ipi_section_6_5(m: Machine) -> None:
    write_uitte(m.mem, 1, vector=5, upid=upid_addr(1))
    m.cpus[0].senduipi(0)
    m.cpus[0].senduipi(1)
    lo, pir = read_upid(m.mem, upid_addr(1))
    assert pir == (1 << 3) | (1 << 5)
    assert m.ipis == [(0, 1, UINV)]


def test_senduipi_repeated_posts_coalesce_in_pir(m: Machine) -> None:
    for _ in range(3):
        m.cpus[0].senduipi(0)
    assert read_upid(m.mem, upid_addr(1))[1] == 1 << 3
    assert len(m.ipis) == 1


def test_senduipi_keeps_other_upid_fields(m: Machine) -> None:
    write_upid(m.mem, upid_addr(1), nv=0xEB, ndst=1, pir=1 << 60)
    m.cpus[0].senduipi(0)
    lo, pir = read_upid(m.mem, upid_addr(1))
    assert lo == 1 | (0xEB << 16) | (1 << 32)
    assert pir == (1 << 60) | (1 << 3)
    assert m.ipis == [(0, 1, 0xEB)]  # the notification uses UPID.NV, whatever it is


@pytest.mark.parametrize("apic_id", [1, 7, 200])
def test_senduipi_xapic_ndst_bits_15_8_section_5_2(apic_id: int) -> None:
    m = make_machine(2, x2apic=False, apic_ids=[0, apic_id])
    setup_sender(m, 0)
    write_uitte(m.mem, 0, vector=1, upid=upid_addr(1))
    ndst = ndst_for(m.cpus[1].apic)
    assert ndst == apic_id << 8
    write_upid(m.mem, upid_addr(1), ndst=ndst | 0xFFFF_0000)  # bits 31:16 ignored
    m.cpus[0].senduipi(0)
    assert m.cpus[1].apic.irr == 1 << UINV
    assert m.ipis == [(0, apic_id, UINV)]


def test_senduipi_xapic_ignores_ndst_bits_7_0() -> None:
    m = make_machine(2, x2apic=False)
    setup_sender(m, 0)
    write_uitte(m.mem, 0, vector=1, upid=upid_addr(1))
    write_upid(m.mem, upid_addr(1), ndst=0x0001)  # x2APIC-style encoding: means APIC 0 in xAPIC
    m.cpus[0].senduipi(0)
    assert m.ipis == [(0, 0, UINV)]


@pytest.mark.parametrize("apic_id", [1, 0x100, 0x1_0000, 0xFFFF_FFFE])
def test_senduipi_x2apic_ndst_full_32_bits_section_5_2(apic_id: int) -> None:
    m = make_machine(2, apic_ids=[0, apic_id])
    setup_sender(m, 0)
    write_uitte(m.mem, 0, vector=1, upid=upid_addr(1))
    write_upid(m.mem, upid_addr(1), ndst=apic_id)
    m.cpus[0].senduipi(0)
    assert m.ipis == [(0, apic_id, UINV)]


def test_senduipi_self_ipi_lands_in_own_apic() -> None:
    m = make_machine(1)
    setup_sender(m, 0)
    setup_receiver(m, 0)
    write_uitte(m.mem, 0, vector=2, upid=upid_addr(0))
    m.cpus[0].senduipi(0)
    assert m.cpus[0].apic.irr == 1 << UINV
    assert m.ipis == [(0, 0, UINV)]


def test_senduipi_entry_check_order_follows_bochs_valid_first(m: Machine) -> None:
    # V = 0 and reserved bits and UV >= 64 all at once: Bochs reports V first (all are #GP(0)).
    write_uitte(m.mem, 6, low=(0xFF << 8) | 0xFE | (1 << 40), upid=upid_addr(1) | 1)
    with pytest.raises(GeneralProtection, match="not valid"):
        m.cpus[0].senduipi(6)
    write_uitte(m.mem, 6, low=(0xFF << 8) | 0xFF, upid=upid_addr(1) | 1)
    with pytest.raises(GeneralProtection, match="reserved bits 7:1"):
        m.cpus[0].senduipi(6)
    write_uitte(m.mem, 6, low=(0xFF << 8) | 0x01, upid=upid_addr(1) | 1)
    with pytest.raises(GeneralProtection, match="user vector 255"):
        m.cpus[0].senduipi(6)
