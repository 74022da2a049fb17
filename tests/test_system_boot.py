"""Full-system mode's boot loader (system/boot.py, the Linux x86 boot protocol), initramfs
writer and devices (system/devices/), each against its specification."""

from __future__ import annotations

import shutil
import struct
import subprocess

import pytest

from uintr_emu.system import boot
from uintr_emu.system.devices.pic8259 import DualPic
from uintr_emu.system.devices.pit8254 import Pit8254
from uintr_emu.system.devices.uart8250 import Uart8250
from uintr_emu.system.initramfs import Cpio, busybox_initramfs


def fake_bzimage(version: int = 0x020F, xloadflags: int = 1, setup_sects: int = 2) -> bytes:
    img = bytearray(0x2000)
    img[boot.SETUP_SECTS] = setup_sects
    img[0x201] = 0x6A  # the jump over the header: header ends at 0x26C
    img[boot.HEADER : boot.HEADER + 4] = b"HdrS"
    struct.pack_into("<H", img, boot.VERSION, version)
    struct.pack_into("<H", img, boot.XLOADFLAGS, xloadflags)
    struct.pack_into("<I", img, boot.INITRD_ADDR_MAX, 0x7FFF_FFFF)
    img[(setup_sects + 1) * 512] = 0xAA  # first byte of the protected-mode kernel
    return bytes(img)


def test_parse_bzimage_splits_the_header_and_the_protected_mode_kernel() -> None:
    header, pm = boot.parse_bzimage(fake_bzimage())
    assert (
        len(header) == 0x26C - boot.HDR_START
        and header[boot.HEADER - boot.HDR_START :][:4] == b"HdrS"
    )
    assert pm[0] == 0xAA  # at (setup_sects + 1) * 512 (boot.rst, "Loading the rest")


@pytest.mark.parametrize(
    ("image", "words"),
    [
        (b"MZ" + bytes(0x300), "not a Linux bzImage"),
        (fake_bzimage(version=0x020B), "too old"),
        (fake_bzimage(xloadflags=0), "64-bit entry"),
    ],
)
def test_unbootable_images_get_one_clear_error(image: bytes, words: str) -> None:
    with pytest.raises(boot.BootError, match=words):
        boot.parse_bzimage(image)


def test_the_zero_page_has_the_loader_fields_and_the_e820_map() -> None:
    header, _ = boot.parse_bzimage(fake_bzimage())
    bp = boot.zero_page(header, 512 << 20, 0x20000, (0x1F00_0000, 0x1234))
    assert bp[boot.HEADER : boot.HEADER + 4] == b"HdrS"
    assert bp[boot.TYPE_OF_LOADER] == 0xFF
    assert bp[boot.LOADFLAGS] & (boot.LOADED_HIGH | boot.CAN_USE_HEAP) == 0x81
    assert struct.unpack_from("<I", bp, boot.CMD_LINE_PTR)[0] == 0x20000
    assert struct.unpack_from("<II", bp, boot.RAMDISK_IMAGE) == (0x1F00_0000, 0x1234)
    n = bp[boot.E820_ENTRIES]
    table = [struct.unpack_from("<QQI", bp, boot.E820_TABLE + 20 * i) for i in range(n)]
    assert table == [
        (0, 0x9FC00, boot.E820_RAM),
        (0x9FC00, 0x100000 - 0x9FC00, boot.E820_RESERVED),
        (0x100000, (512 << 20) - 0x100000, boot.E820_RAM),
    ]


def test_the_initrd_goes_high_and_page_aligned_but_never_over_the_kernel() -> None:
    header, _ = boot.parse_bzimage(fake_bzimage())
    addr = boot.initrd_address(512 << 20, 0x1801, 0x300_0000, header)
    assert addr % 4096 == 0 and addr + 0x1801 <= 512 << 20 and addr > (512 << 20) - 0x3000
    with pytest.raises(boot.BootError, match="does not fit"):
        boot.initrd_address(64 << 20, 40 << 20, 0x300_0000, header)


def test_the_boot_gdt_has_the_protocols_selectors() -> None:
    _, _, cs, ds = struct.unpack("<4Q", boot.gdt())
    assert (cs >> 40) & 0xFF == 0x9B and cs & (1 << 53)  # 0x10: present code, L = 1
    assert (ds >> 40) & 0xFF == 0x93  # 0x18: present writable data


def test_elf_segments_load_at_their_physical_addresses() -> None:
    phoff = 64
    elf = bytearray(0x200)
    elf[:5] = b"\x7fELF\x02"
    struct.pack_into("<HH", elf, 16, 2, 62)
    struct.pack_into("<QQ", elf, 24, 0x100_0000, phoff)
    struct.pack_into("<HH", elf, 54, 56, 1)
    struct.pack_into("<IIQQQQQ", elf, phoff, 1, 5, 0x100, 0xFFFF_FFFF_8100_0000, 0x100_0000, 4, 8)
    elf[0x100:0x104] = b"\x90\x90\xf4\x00"
    segments, entry = boot.load_elf(bytes(elf))
    assert entry == 0x100_0000 and segments == [(0x100_0000, b"\x90\x90\xf4\x00", 8)]


@pytest.mark.skipif(
    shutil.which("cpio") is None, reason="needs the cpio tool to read the archive back"
)
def test_the_initramfs_is_a_newc_archive_cpio_reads(tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = busybox_initramfs(b"\x7fELF-not-really", "echo hi\n")
    listing = subprocess.run(
        ["cpio", "-itv"], input=data, capture_output=True, check=True
    ).stdout.decode()
    names = [line.split()[-1] for line in listing.splitlines()]
    assert names[:6] == ["bin", "dev", "proc", "sys", "tmp", "dev/console"]
    assert "bin/sh -> busybox" in listing and listing.splitlines()[5].startswith("crw")
    subprocess.run(["cpio", "-id", "--quiet"], input=data, cwd=tmp_path, check=True)
    assert (tmp_path / "init").read_text() == "#!/bin/sh\necho hi\n"


def test_cpio_entries_are_4_byte_aligned() -> None:
    c = Cpio()
    c.file("a", b"xyz")
    out = c.finish()
    assert out.startswith(b"070701") and len(out) % 4 == 0
    assert out.index(b"070701", 6) % 4 == 0  # the trailer's header


# ---- devices


def test_uart_passes_linux_8250_probes_and_transmits() -> None:
    """Scratch register, loopback (MCR.LOOP routes RTS/OUT2 to CTS/DCD: MSR 0x90 for MCR
    0x1A), FIFO enabled reads IIR bits 7:6 = 11 (16550A datasheet)."""
    out: list[bytes] = []
    u = Uart8250(out.append, lambda level: None)
    u.write(7, 0x5A)
    assert u.read(7) == 0x5A
    u.write(4, 0x1A)
    assert u.read(6) & 0xF0 == 0x90
    u.write(4, 0)
    u.write(2, 0x07)
    assert u.read(2) & 0xC0 == 0xC0
    u.write(0, ord("A"))
    assert out == [b"A"] and u.read(5) & 0x60 == 0x60


def test_uart_interrupts_for_thr_empty_and_received_data_behind_out2() -> None:
    lines: list[bool] = []
    u = Uart8250(lambda b: None, lines.append)
    u.write(4, 0x08)  # OUT2
    u.write(1, 0x02)  # THRE interrupt enable: THR is empty, so at once
    assert lines[-1] and u.read(2) & 0x0F == 0x02
    assert not lines[-1]  # reading IIR cleared it
    u.write(1, 0x01)
    u.feed(b"x")
    assert lines[-1] and u.read(2) & 0x0F == 0x04 and u.read(5) & 1
    assert u.read(0) == ord("x") and not lines[-1]


def init_pics(p: DualPic) -> None:
    """Linux's init_8259A sequence: ICW1..ICW4, vectors 0x30 / 0x38, cascade on IRQ 2."""
    for port, icw in ((0x20, 0x11), (0x21, 0x30), (0x21, 0x04), (0x21, 0x01),
                      (0xA0, 0x11), (0xA1, 0x38), (0xA1, 0x02), (0xA1, 0x01)):  # fmt: skip
        p.port_write(port, icw)
    p.port_write(0x21, 0x00)
    p.port_write(0xA1, 0x00)


def test_pic_priority_edge_latching_and_eoi() -> None:
    p = DualPic()
    init_pics(p)
    p.irq(4, True)
    p.irq(0, True)
    assert p.acknowledge() == 0x30  # IRQ 0 first (fixed priority)
    assert p.acknowledge() is None  # IRQ 4 waits behind IRQ 0 in service
    p.port_write(0x20, 0x20)  # non-specific EOI
    assert p.acknowledge() == 0x34
    p.port_write(0x20, 0x20)
    p.irq(4, True)  # still high: no new edge, no new request
    assert p.acknowledge() is None
    p.irq(9, True)  # the slave, through IRQ 2
    assert p.acknowledge() == 0x39


def test_pic_mask_and_the_probe_linux_makes() -> None:
    p = DualPic()
    init_pics(p)
    p.port_write(0x21, 0xFF)
    assert p.port_read(0x21) == 0xFF  # Linux's probe_8259A reads back the mask
    p.irq(3, True)
    assert p.acknowledge() is None
    p.port_write(0x21, 0xF7)
    assert p.acknowledge() == 0x33


def test_pit_periodic_mode_ticks_at_the_programmed_rate() -> None:
    """Mode 2 with a count of 1193 (LATCH for HZ=1000): one IRQ 0 edge per ~1 ms."""
    now = [0]
    edges: list[bool] = []
    pit = Pit8254(lambda: now[0], edges.append)
    pit.port_write(0x43, 0x34)
    pit.port_write(0x40, 1193 & 0xFF)
    pit.port_write(0x40, 1193 >> 8)
    ticks = 0
    for t in range(0, 10_000_000, 100_000):
        now[0] = t
        before = len(edges)
        pit.advance(t)
        ticks += len(edges) > before
    assert ticks == 9  # 10 ms at 999.85 us per period: at 1.0, 2.0, ... 9.0 ms
    now[0] = 0
    pit.port_write(0x43, 0x00)  # latch channel 0
    assert pit.port_read(0x40) | pit.port_read(0x40) << 8 == 1193


def test_pit_one_shot_fires_once() -> None:
    now = [0]
    edges: list[bool] = []
    pit = Pit8254(lambda: now[0], edges.append)
    pit.port_write(0x43, 0x38)  # mode 4, LSB then MSB (Linux's one-shot clockevent)
    pit.port_write(0x40, 0x00)
    pit.port_write(0x40, 0x10)  # 4096 ticks = 3.43 ms
    for t in (1_000_000, 3_000_000, 4_000_000, 8_000_000):
        pit.advance(t)
    assert edges == [True, False]


# ---- the command line: bad input gets one clear error line


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--cpus", "2"], ("only --cpus 1",)),
        (["--memory", "8G"], ("--memory",)),
        (["--kernel-is-missing"], ()),
    ],
)
def test_system_command_rejects_bad_options(run_cli, assert_one_error_line, tmp_path, args, words):  # type: ignore[no-untyped-def]
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(fake_bzimage())
    if args == ["--kernel-is-missing"]:
        r = run_cli("system", "--kernel", str(tmp_path / "nothing"))
        assert_one_error_line(r, "nothing", "no such file")
        return
    assert_one_error_line(run_cli("system", "--kernel", str(kernel), *args), *words)


def test_system_command_rejects_a_file_that_is_no_kernel(run_cli, assert_one_error_line, tmp_path):  # type: ignore[no-untyped-def]
    kernel = tmp_path / "notes.txt"
    kernel.write_bytes(b"hello\n" * 200)
    assert_one_error_line(run_cli("system", "--kernel", str(kernel)), "not a Linux bzImage")
