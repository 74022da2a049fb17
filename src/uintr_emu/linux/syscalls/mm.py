"""Memory: brk, mmap, munmap, mprotect, mremap, madvise (mm/mmap.c, mm/mremap.c semantics)."""

from __future__ import annotations

import fcntl
import mmap as _mmap
import os
from typing import TYPE_CHECKING

from ...engine.unicorn import PAGE
from .. import errno as E
from ..mm import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_FIXED_NOREPLACE,
    MAP_PRIVATE,
    MAP_SHARED,
    PROT_EXEC,
    PROT_READ,
    PROT_WRITE,
    TASK_SIZE,
    OutOfMemory,
    anon_buffer,
    page_up,
)
from ..process import HostFile
from . import syscall

if TYPE_CHECKING:
    from ..kernel import Kernel
    from ..process import Thread

MREMAP_MAYMOVE, MREMAP_FIXED = 1, 2
MADV_DONTNEED, MADV_FREE = 4, 8


def _over_limit(t: Thread, extra: int) -> bool:
    mem = t.process.mem
    return mem.max_bytes is not None and mem.mapped_bytes() + extra > mem.max_bytes


@syscall(12)
def sys_brk(k: Kernel, t: Thread, addr: int) -> int:
    mem = t.process.mem
    if addr < mem.brk_start:
        return mem.brk
    old_end, new_end = page_up(mem.brk), page_up(addr)
    if new_end > old_end:
        # check_brk_limits -> get_unmapped_area(MAP_FIXED): the heap stays in user space;
        # and one free page must remain before the next mapping (brk's vma_find)
        if new_end > TASK_SIZE or not mem.is_free(old_end, new_end + PAGE):
            return mem.brk
        if _over_limit(t, new_end - old_end):
            return mem.brk
        try:
            mem.map(old_end, new_end - old_end, PROT_READ | PROT_WRITE, name="[heap]")
        except OutOfMemory:  # do_brk_flags: ENOMEM; brk returns the current break
            return mem.brk
    elif new_end < old_end:
        mem.unmap(new_end, old_end - new_end)
    mem.brk = addr
    return addr


@syscall(9, prot="hex", flags="hex", fd="int")
def sys_mmap(k: Kernel, t: Thread, addr: int, length: int, prot: int, flags: int, fd: int,
             offset: int) -> int:  # fmt: skip
    mem = t.process.mem
    fd = fd if fd < 2**31 else fd - 2**32
    if length == 0 or length > TASK_SIZE or offset & (PAGE - 1):
        return -E.EINVAL
    if not flags & (MAP_SHARED | MAP_PRIVATE):
        return -E.EINVAL
    size = page_up(length)
    if _over_limit(t, size):
        return -E.ENOMEM
    fixed = flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)
    if fixed:
        if addr & (PAGE - 1) or addr + size > TASK_SIZE:
            return -E.EINVAL
        if flags & MAP_FIXED_NOREPLACE and not mem.is_free(addr, addr + size):
            return -E.EEXIST
        start = addr
    else:
        start = None
        hint = addr & ~(PAGE - 1)
        if hint and hint + size <= TASK_SIZE and mem.is_free(hint, hint + size):
            start = hint
        if start is None:
            start = mem.find_free(size)
        if start is None:
            return -E.ENOMEM
    data = b""
    shared = bool(flags & MAP_SHARED)
    host_map = None
    max_prot = 7
    if not flags & MAP_ANONYMOUS:
        f = t.process.fds.get(fd)
        if f is None:
            return -E.EBADF
        if not isinstance(f, HostFile):
            return -E.ENODEV
        try:
            mode = fcntl.fcntl(f.fd, fcntl.F_GETFL) & os.O_ACCMODE
            if shared:
                if mode == os.O_RDONLY:
                    max_prot = PROT_READ | PROT_EXEC  # mmap(2): EACCES for a writable mapping
                    if prot & PROT_WRITE:
                        return -E.EACCES
                if offset + size <= os.fstat(f.fd).st_size:
                    # The guest shares the file's pages with the host and other processes.
                    access = _mmap.ACCESS_READ if mode == os.O_RDONLY else _mmap.ACCESS_WRITE
                    host_map = _mmap.mmap(f.fd, size, access=access, offset=offset)
            if host_map is None:
                data = os.pread(f.fd, size, offset)
        except OSError as e:
            return -(e.errno or E.EACCES)
    name = "[anon]" if flags & MAP_ANONYMOUS else f"fd {fd}"
    if host_map is not None and max_prot & PROT_WRITE == 0:
        # A read-only host mapping must never be written by the engine: give the guest a
        # private copy (it can neither write it nor mprotect it writable, see max_prot).
        data, host_map = host_map[:], None
    try:
        v = mem.map(start, size, prot, name=name, shared=shared, buf=host_map)
    except OutOfMemory:  # the host cannot back it (mmap(2): ENOMEM); nothing changed
        return -E.ENOMEM
    v.max_prot = max_prot
    if data:
        v.buf[: len(data)] = data
    return start


@syscall(11)
def sys_munmap(k: Kernel, t: Thread, addr: int, length: int) -> int:
    if addr & (PAGE - 1) or length == 0 or addr + length > TASK_SIZE:
        return -E.EINVAL
    t.process.mem.unmap(addr, length)
    return 0


@syscall(10, prot="hex")
def sys_mprotect(k: Kernel, t: Thread, addr: int, length: int, prot: int) -> int:
    if addr & (PAGE - 1) or prot & ~7:
        return -E.EINVAL
    if length == 0:
        return 0
    mem = t.process.mem
    if any(prot & ~v.max_prot for v in mem._overlapping(addr, addr + length)):
        return -E.EACCES  # beyond what the mapped file allows (mprotect(2))
    return 0 if mem.protect(addr, length, prot) else -E.ENOMEM


@syscall(25, flags="hex")
def sys_mremap(k: Kernel, t: Thread, old: int, old_size: int, new_size: int, flags: int,
               new_addr: int) -> int:  # fmt: skip
    mem = t.process.mem
    if old & (PAGE - 1) or new_size == 0 or flags & ~3 or (flags & MREMAP_FIXED and not
                                                           flags & MREMAP_MAYMOVE):  # fmt: skip
        return -E.EINVAL
    old_size, new_size = page_up(old_size), page_up(new_size)
    v = mem.find(old)
    if v is None or old + old_size > v.end:
        return -E.EFAULT
    if new_size <= old_size and not flags & MREMAP_FIXED:
        if new_size < old_size:
            mem.unmap(old + new_size, old_size - new_size)
        return old
    if _over_limit(t, new_size - old_size):
        return -E.ENOMEM
    if not flags & MREMAP_FIXED and mem.is_free(old + old_size, old + new_size):
        try:
            mem.map(old + old_size, new_size - old_size, v.prot, name=v.name)
        except OutOfMemory:
            return -E.ENOMEM
        return old
    if not flags & MREMAP_MAYMOVE:
        return -E.ENOMEM
    dest = new_addr if flags & MREMAP_FIXED else mem.find_free(new_size)
    if dest is None:
        return -E.ENOMEM
    content = mem.read(old, old_size) if v.prot & PROT_READ or v.prot else bytes(old_size)
    prot = v.prot
    try:
        buf = anon_buffer(new_size)
    except OutOfMemory:
        return -E.ENOMEM
    buf[:old_size] = content
    mem.unmap(old, old_size)
    mem.map(dest, new_size, prot, name=v.name, buf=buf)
    return dest


@syscall(28, advice="int")
def sys_madvise(k: Kernel, t: Thread, addr: int, length: int, advice: int) -> int:
    if addr & (PAGE - 1):
        return -E.EINVAL
    if advice in (MADV_DONTNEED, MADV_FREE):
        # Private anonymous pages read back as zero afterwards (madvise(2)).
        mem = t.process.mem
        end = addr + page_up(length)
        for v in mem._overlapping(addr, end):
            if v.shared:
                continue
            lo, hi = max(v.start, addr), min(v.end, end)
            o = v.offset + lo - v.start
            v.buf[o : o + hi - lo] = bytes(hi - lo)
    return 0
