"""Loading a Linux kernel as a boot loader does (the Linux x86 boot protocol,
Documentation/arch/x86/boot.rst; docs/system.md, "Booting"): the bzImage setup header, the
boot_params "zero page" with the e820 map, the command line and the initrd, and the CPU state
of the 64-bit entry (long mode, identity-mapped page tables, a flat GDT with __BOOT_CS = 0x10
and __BOOT_DS = 0x18, interrupts off, RSI = the zero page).

A bzImage carries the kernel proper as a compressed ELF (`vmlinux`) run by its own
decompressor; `extract_vmlinux` unpacks it on the host instead, which skips the guest's
decompression (tens of seconds of emulation), and the ELF is entered at its physical entry
point with the same 64-bit protocol, as Firecracker and QEMU's PVH boot enter a vmlinux."""

from __future__ import annotations

import lzma
import struct
from dataclasses import dataclass

# Guest physical layout of what the loader writes (all below 1 MiB except the kernel and initrd).
GDT_ADDR = 0x1000
STACK_TOP = 0x7000  # the kernel switches to its own stack at once
ZERO_PAGE = 0x7000
PML4 = 0x9000  # then one PDPT page and four page directories: the first 4 GiB, 2 MiB pages
CMDLINE = 0x20000
CMDLINE_MAX = 0x10000
KERNEL_ADDR = 0x100_0000  # LOAD_PHYSICAL_ADDR of x86-64 kernels (the header's pref_address)
EBDA = 0x9FC00  # RAM below it; the EBDA and the BIOS area up to 1 MiB are reserved
BIOS = 0xF0000  # where firmware tables (MP table, ACPI RSDP) go, in the reserved range

E820_RAM, E820_RESERVED = 1, 2

# Setup header fields (offsets in the bzImage and in boot_params alike).
HDR_START = 0x1F1
SETUP_SECTS, BOOT_FLAG, HEADER, VERSION = 0x1F1, 0x1FE, 0x202, 0x206
TYPE_OF_LOADER, LOADFLAGS = 0x210, 0x211
RAMDISK_IMAGE, RAMDISK_SIZE, CMD_LINE_PTR, INITRD_ADDR_MAX = 0x218, 0x21C, 0x228, 0x22C
XLOADFLAGS, CMDLINE_SIZE = 0x236, 0x238
PAYLOAD_OFFSET, PAYLOAD_LENGTH, PREF_ADDRESS, INIT_SIZE = 0x248, 0x24C, 0x258, 0x260
# boot_params fields outside the header.
ACPI_RSDP_ADDR = 0x070
EXT_RAMDISK_IMAGE, EXT_RAMDISK_SIZE, EXT_CMD_LINE_PTR = 0x0C0, 0x0C4, 0x0C8
E820_ENTRIES, E820_TABLE = 0x1E8, 0x2D0
LOADED_HIGH, CAN_USE_HEAP, XLF_KERNEL_64 = 0x01, 0x80, 0x01
MIN_VERSION = 0x020C  # 2.12: xloadflags, the 64-bit entry


class BootError(ValueError):
    """The kernel or initrd cannot be booted (one line for the user)."""


@dataclass
class Kernel:
    header: bytes  # the setup header, HDR_START up to its end
    segments: list[tuple[int, bytes, int]]  # (physical address, bytes, memory size)
    entry: int
    end: int  # first byte after everything the kernel occupies at boot (init_size)


def parse_bzimage(image: bytes) -> tuple[bytes, bytes]:
    """(setup header, protected-mode kernel) of a bzImage, checked for the 64-bit entry."""
    if len(image) < 0x270 or image[HEADER : HEADER + 4] != b"HdrS":
        raise BootError("not a Linux bzImage (no 'HdrS' setup header)")
    (version,) = struct.unpack_from("<H", image, VERSION)
    if version < MIN_VERSION:
        raise BootError(f"boot protocol {version >> 8}.{version & 0xFF} too old (need 2.12)")
    if not struct.unpack_from("<H", image, XLOADFLAGS)[0] & XLF_KERNEL_64:
        raise BootError("this bzImage has no 64-bit entry point (XLF_KERNEL_64)")
    setup_sects = image[SETUP_SECTS] or 4
    header_end = 0x202 + image[0x201]  # the jump at 0x200 skips the header: its length
    return image[HDR_START:header_end], image[(setup_sects + 1) * 512 :]


def extract_vmlinux(image: bytes) -> bytes:
    """The ELF kernel inside a bzImage's payload (XZ-compressed in Debian's kernels)."""
    _, pm = parse_bzimage(image)
    off, length = struct.unpack_from("<II", image, PAYLOAD_OFFSET)
    payload = pm[off : off + length]
    if not payload.startswith(b"\xfd7zXZ\x00"):
        raise BootError("the bzImage payload is not XZ-compressed (only XZ is supported)")
    d = lzma.LZMADecompressor(lzma.FORMAT_XZ)
    elf = d.decompress(payload)  # the payload ends with the uncompressed size: unused_data
    if not elf.startswith(b"\x7fELF"):
        raise BootError("the decompressed bzImage payload is not an ELF kernel")
    return elf


def load_elf(elf: bytes) -> tuple[list[tuple[int, bytes, int]], int]:
    """PT_LOAD segments at their physical addresses, and the physical entry point."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2 or struct.unpack_from("<H", elf, 18)[0] != 62:
        raise BootError("not an x86-64 ELF kernel")
    entry, phoff = struct.unpack_from("<QQ", elf, 24)
    phentsize, phnum = struct.unpack_from("<HH", elf, 54)
    segments = []
    for i in range(phnum):
        p_type, _, off, _vaddr, paddr, filesz, memsz = struct.unpack_from(
            "<IIQQQQQ", elf, phoff + i * phentsize
        )
        if p_type == 1:
            segments.append((paddr, elf[off : off + filesz], memsz))
    if not segments:
        raise BootError("the ELF kernel has no loadable segment")
    return segments, entry


def kernel_from_image(image: bytes, *, decompress_in_guest: bool = False) -> Kernel:
    """A bzImage (its extracted vmlinux, or the image itself with `decompress_in_guest`)."""
    header, pm = parse_bzimage(image)
    (init_size,) = struct.unpack_from("<I", image, INIT_SIZE)
    if decompress_in_guest:
        return Kernel(header, [(KERNEL_ADDR, pm, len(pm))], KERNEL_ADDR + 0x200,
                      KERNEL_ADDR + init_size)  # fmt: skip
    segments, entry = load_elf(extract_vmlinux(image))
    end = max(a + m for a, _, m in segments)
    return Kernel(header, segments, entry, max(end, KERNEL_ADDR + init_size))


def e820_map(ram_size: int) -> list[tuple[int, int, int]]:
    return [
        (0, EBDA, E820_RAM),
        (EBDA, 0x10_0000 - EBDA, E820_RESERVED),
        (0x10_0000, ram_size - 0x10_0000, E820_RAM),
    ]


def zero_page(
    header: bytes,
    ram_size: int,
    cmdline_addr: int,
    initrd: tuple[int, int] | None,
    rsdp: int | None = None,
) -> bytes:
    """boot_params for the 64-bit entry: the kernel's own setup header with the loader's
    fields filled in, and the e820 map."""
    bp = bytearray(4096)
    bp[HDR_START : HDR_START + len(header)] = header
    bp[TYPE_OF_LOADER] = 0xFF  # "undefined" loader
    bp[LOADFLAGS] |= LOADED_HIGH | CAN_USE_HEAP
    struct.pack_into("<I", bp, CMD_LINE_PTR, cmdline_addr)
    if initrd is not None:
        addr, size = initrd
        struct.pack_into("<II", bp, RAMDISK_IMAGE, addr & 0xFFFF_FFFF, size & 0xFFFF_FFFF)
        struct.pack_into("<I", bp, EXT_RAMDISK_IMAGE, addr >> 32)
        struct.pack_into("<I", bp, EXT_RAMDISK_SIZE, size >> 32)
    if rsdp is not None:
        struct.pack_into("<Q", bp, ACPI_RSDP_ADDR, rsdp)
    table = e820_map(ram_size)
    bp[E820_ENTRIES] = len(table)
    for i, (addr, size, kind) in enumerate(table):
        struct.pack_into("<QQI", bp, E820_TABLE + 20 * i, addr, size, kind)
    return bytes(bp)


def gdt() -> bytes:
    """Null, null, __BOOT_CS (0x10: 64-bit code), __BOOT_DS (0x18: data), all flat, DPL 0."""
    return struct.pack("<4Q", 0, 0, 0x00AF_9B00_0000_FFFF, 0x00CF_9300_0000_FFFF)


def identity_page_tables() -> bytes:
    """PML4, PDPT and four page directories at PML4..: the first 4 GiB, 2 MiB pages, RW."""
    pml4 = struct.pack("<Q", (PML4 + 0x1000) | 3).ljust(4096, b"\0")
    pdpt = b"".join(struct.pack("<Q", (PML4 + 0x2000 + 0x1000 * i) | 3) for i in range(4))
    pds = b"".join(struct.pack("<Q", (i << 21) | 0x83) for i in range(4 * 512))
    return pml4 + pdpt.ljust(4096, b"\0") + pds


def initrd_address(ram_size: int, size: int, kernel_end: int, header: bytes) -> int:
    """As high as the kernel allows (initrd_addr_max), page-aligned, above the kernel."""
    addr_max: int = struct.unpack_from("<I", header, INITRD_ADDR_MAX - HDR_START)[0]
    addr = (min(ram_size, addr_max + 1) - size) & ~0xFFF
    if addr < kernel_end:
        raise BootError(f"the initrd ({size} bytes) does not fit in memory above the kernel")
    return addr
