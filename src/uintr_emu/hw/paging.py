"""4-level paging (SDM Vol. 3 §4.5): the linear-to-physical translation the processor makes, for
the accesses full-system mode makes on the CPU's behalf (IDT and TSS reads, the pushes of an
interrupt frame). Reads the page tables through a callback; sets no accessed or dirty bits."""

from __future__ import annotations

from collections.abc import Callable

P, RW, US, PS = 1, 2, 4, 0x80
ADDR = 0x000F_FFFF_FFFF_F000  # bits 51:12 of an entry


class PageFault(Exception):
    """A translation failed: `code` is the #PF error code (SDM Vol. 3 §4.7)."""

    def __init__(self, address: int, code: int) -> None:
        super().__init__(f"#PF at {address:#x} (error {code:#x})")
        self.address = address
        self.code = code


def translate(
    cr3: int,
    linear: int,
    read_u64: Callable[[int], int],
    *,
    write: bool = False,
    user: bool = False,
) -> int:
    """The physical address of `linear`, or PageFault. Supervisor accesses ignore U/S, and
    writes are checked against R/W at every level (CR0.WP = 1, as Linux runs)."""
    table = cr3 & ADDR
    code = (2 if write else 0) | (4 if user else 0)
    for level, shift in enumerate((39, 30, 21, 12)):
        entry = read_u64(table + ((linear >> shift) & 0x1FF) * 8)
        if not entry & P:
            raise PageFault(linear, code)
        if (write and not entry & RW) or (user and not entry & US):
            raise PageFault(linear, code | 1)
        if level in (1, 2) and entry & PS:  # a 1 GiB or 2 MiB page
            size = 1 << shift
            return (entry & ADDR & ~(size - 1)) | (linear & (size - 1))
        table = entry & ADDR
    return table | (linear & 0xFFF)
