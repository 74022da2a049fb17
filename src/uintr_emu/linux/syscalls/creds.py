"""Credentials: the set*id/get*id family beyond getuid and friends (thread.py).

The guest runs with the emulator's own user and group ids and cannot change them (they are
the host process's, shared with the emulator). A call that leaves every id as it is succeeds,
as it does for any process (kernel/sys.c: an unprivileged process may set an id to its
current real, effective or saved value); one that would change an id fails with EPERM, what an
unprivileged process gets (docs/linux.md, "Behaviour worth knowing"). glibc's posix_spawn with
POSIX_SPAWN_RESETIDS (GNU make's) calls seteuid(getuid()), a no-op of this kind.
"""

from __future__ import annotations

import os
import struct
from typing import TYPE_CHECKING

from .. import errno as E
from . import syscall

if TYPE_CHECKING:
    from ..kernel import Kernel
    from ..process import Thread

UNCHANGED = 0xFFFFFFFF  # (uid_t)-1: "leave this id as it is"


def _set(current: tuple[int, int, int], *wanted: int) -> int:
    """0 if each wanted id (32 bits, -1 = unchanged) is one of the current ones, else EPERM."""
    for w in wanted:
        w &= 0xFFFFFFFF
        if w != UNCHANGED and w not in current:
            return -E.EPERM
    return 0


def _put_three(t: Thread, ids: tuple[int, int, int], *addrs: int) -> int:
    """A bad pointer is EFAULT (the dispatcher's GuestFault), the ids before it written."""
    for value, addr in zip(ids, addrs, strict=True):
        t.process.mem.write(addr, struct.pack("<I", value))
    return 0


@syscall(105)
def sys_setuid(k: Kernel, t: Thread, uid: int) -> int:
    if uid & 0xFFFFFFFF == UNCHANGED:
        return -E.EINVAL  # setuid(-1): not a valid uid (kernel/sys.c, uid_valid)
    return _set(os.getresuid(), uid)


@syscall(106)
def sys_setgid(k: Kernel, t: Thread, gid: int) -> int:
    if gid & 0xFFFFFFFF == UNCHANGED:
        return -E.EINVAL
    return _set(os.getresgid(), gid)


@syscall(113)
def sys_setreuid(k: Kernel, t: Thread, ruid: int, euid: int) -> int:
    return _set(os.getresuid(), ruid, euid)


@syscall(114)
def sys_setregid(k: Kernel, t: Thread, rgid: int, egid: int) -> int:
    return _set(os.getresgid(), rgid, egid)


@syscall(117)
def sys_setresuid(k: Kernel, t: Thread, ruid: int, euid: int, suid: int) -> int:
    return _set(os.getresuid(), ruid, euid, suid)


@syscall(118, ruid="hex", euid="hex", suid="hex")
def sys_getresuid(k: Kernel, t: Thread, ruid: int, euid: int, suid: int) -> int:
    return _put_three(t, os.getresuid(), ruid, euid, suid)


@syscall(119)
def sys_setresgid(k: Kernel, t: Thread, rgid: int, egid: int, sgid: int) -> int:
    return _set(os.getresgid(), rgid, egid, sgid)


@syscall(120, rgid="hex", egid="hex", sgid="hex")
def sys_getresgid(k: Kernel, t: Thread, rgid: int, egid: int, sgid: int) -> int:
    return _put_three(t, os.getresgid(), rgid, egid, sgid)


@syscall(122)
def sys_setfsuid(k: Kernel, t: Thread, uid: int) -> int:
    """Returns the previous fsuid whatever happens (kernel/sys.c); it never changes here, and
    it is the effective uid, as it stays unless set on its own."""
    return os.geteuid()


@syscall(123)
def sys_setfsgid(k: Kernel, t: Thread, gid: int) -> int:
    return os.getegid()


# capget(2): include/uapi/linux/capability.h
CAP_V1, CAP_V2, CAP_V3 = 0x19980330, 0x20071026, 0x20080522
CAP_HEADER = struct.Struct("<Ii")  # version, pid
CAP_DATA = struct.Struct("<III")  # effective, permitted, inheritable (32 bits of each)


def _own_caps() -> tuple[int, int, int]:
    """The emulator's capability sets (effective, permitted, inheritable): the guest has its
    credentials."""
    sets = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("CapEff", "CapPrm", "CapInh"):
                sets[key] = int(value, 16)
    return sets.get("CapEff", 0), sets.get("CapPrm", 0), sets.get("CapInh", 0)


@syscall(125, hdr="hex", data="hex")
def sys_capget(k: Kernel, t: Thread, hdr: int, data: int) -> int:
    """kernel/capability.c: an unknown version is EINVAL with the preferred one written back
    (0 when data is NULL: a probe); pid 0 or the caller's own is the caller, another must
    exist (ESRCH) and has the same credentials here. v1 fills one 32-bit data struct, v2/v3
    two."""
    version, pid = CAP_HEADER.unpack(t.process.mem.read(hdr, CAP_HEADER.size))
    if version not in (CAP_V1, CAP_V2, CAP_V3):
        t.process.mem.write(hdr, CAP_HEADER.pack(CAP_V3, pid))
        return 0 if not data else -E.EINVAL
    if pid < 0:
        return -E.EINVAL
    if pid and pid != t.process.pid and pid not in k.threads:
        return -E.ESRCH
    if data:
        sets = _own_caps()
        words = 1 if version == CAP_V1 else 2
        t.process.mem.write(data, b"".join(
            CAP_DATA.pack(*((s >> (32 * i)) & 0xFFFF_FFFF for s in sets)) for i in range(words)
        ))  # fmt: skip
    return 0
