"""The local APIC's register page (xAPIC MMIO at 0xFEE00000, SDM Vol. 3 §11.4.1): so far a
register file that answers the ID and version registers, keeps what is written and ignores
EOI. It delivers nothing: no timer, no IPIs (docs/system.md, "Missing"). Linux finds no MP
table or MADT on this machine and runs on the 8259 PIC and the PIT instead."""

from __future__ import annotations

BASE = 0xFEE0_0000
ID, VERSION, EOI, SVR, LVT_LINT0 = 0x20, 0x30, 0xB0, 0xF0, 0x350
VERSION_VALUE = 0x0005_0014  # an integrated APIC, 6 LVT entries (the SDM's Pentium 4 value)


class LocalApicPage:
    def __init__(self, apic_id: int = 0) -> None:
        self.regs: dict[int, int] = {ID: apic_id << 24, VERSION: VERSION_VALUE, SVR: 0xFF}

    def read(self, offset: int, size: int) -> int:
        value = self.regs.get(offset & ~3, 0)
        return (value >> (8 * (offset & 3))) & ((1 << (8 * size)) - 1)

    def write(self, offset: int, size: int, value: int) -> None:
        if offset & ~3 in (ID, VERSION, EOI):
            return
        self.regs[offset & ~3] = value & 0xFFFF_FFFF
