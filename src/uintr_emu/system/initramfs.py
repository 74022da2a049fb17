"""Writing an initramfs: a cpio archive in the "newc" format the kernel unpacks into its root
file system (Documentation/driver-api/early-userspace/buffer-format.rst: a 110-byte ASCII
header of 13 hex fields, the name, the data, each padded to 4 bytes; "TRAILER!!!" ends it)."""

from __future__ import annotations

import stat

MAGIC = b"070701"


def _pad(n: int) -> bytes:
    return b"\0" * (-n % 4)


class Cpio:
    def __init__(self) -> None:
        self.out = bytearray()
        self.ino = 1

    def _entry(
        self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)
    ) -> None:
        raw = name.encode() + b"\0"
        fields = (self.ino, mode, 0, 0, 2 if stat.S_ISDIR(mode) else 1, 0, len(data), 0, 0,
                  rdev[0], rdev[1], len(raw), 0)  # fmt: skip
        header = MAGIC + b"".join(b"%08X" % f for f in fields)
        self.out += header + raw + _pad(len(header) + len(raw)) + data + _pad(len(data))
        self.ino += 1

    def directory(self, name: str) -> None:
        self._entry(name, stat.S_IFDIR | 0o755)

    def file(self, name: str, data: bytes, mode: int = 0o755) -> None:
        self._entry(name, stat.S_IFREG | mode, data)

    def symlink(self, name: str, target: str) -> None:
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def char_device(self, name: str, major: int, minor: int, mode: int = 0o600) -> None:
        self._entry(name, stat.S_IFCHR | mode, rdev=(major, minor))

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return bytes(self.out)


def busybox_initramfs(busybox: bytes, script: str) -> bytes:
    """A root with a static busybox and `script` as /init (run by busybox's sh), /dev/console
    (the kernel opens it for init's stdin, stdout and stderr before any devtmpfs exists), and
    empty /proc and /sys to mount."""
    c = Cpio()
    for d in ("bin", "dev", "proc", "sys", "tmp"):
        c.directory(d)
    c.char_device("dev/console", 5, 1)
    c.file("bin/busybox", busybox)
    c.symlink("bin/sh", "busybox")
    c.file("init", ("#!/bin/sh\n" + script).encode())
    return c.finish()
