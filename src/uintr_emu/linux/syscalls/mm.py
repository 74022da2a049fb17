"""Memory: brk, mmap, munmap, mprotect, mremap, madvise (mm/mmap.c, mm/mremap.c semantics)."""

from __future__ import annotations

import fcntl
import os
import stat
from typing import TYPE_CHECKING

from ...engine.unicorn import PAGE
from .. import errno as E
from ..afunix import UnixSocket
from ..mm import (
    _NO_PAGES,
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_FIXED_NOREPLACE,
    MAP_PRIVATE,
    MAP_SHARED,
    PROT_EXEC,
    PROT_READ,
    PROT_WRITE,
    TASK_SIZE,
    AddressSpace,
    OutOfMemory,
    Vma,
    anon_buffer,
    file_buffer,
    page_up,
)
from ..process import File, HostFile, PipeEnd
from . import syscall

if TYPE_CHECKING:
    from ..kernel import Kernel
    from ..process import Thread

MREMAP_MAYMOVE, MREMAP_FIXED, MREMAP_DONTUNMAP = 1, 2, 4
MADV_DONTNEED, MADV_FREE = 4, 8
MAP_TYPE, MAP_SHARED_VALIDATE = 0x0F, 0x03
MAX_LFS_FILESIZE = 2**63 - 1  # include/linux/fs.h, 64-bit
ULONG_MAX = 2**64 - 1
MMAP_MIN_ADDR = 0x10000  # the vm.mmap_min_addr default
READ_CHUNK = 16 << 20


def _over_limit(t: Thread, extra: int) -> bool:
    mem = t.process.mem
    return mem.max_bytes is not None and mem.mapped_bytes() + extra > mem.max_bytes


def _mapped_in(mem: AddressSpace, start: int, end: int) -> int:
    return sum(min(v.end, end) - max(v.start, start) for v in mem._overlapping(start, end))


def _munmap_invalid(start: int, length: int) -> bool:
    # do_vmi_munmap: EINVAL unless page aligned and inside the user address space
    return bool(start & (PAGE - 1)) or start > TASK_SIZE or length > TASK_SIZE - start


@syscall(12)
def sys_brk(k: Kernel, t: Thread, addr: int) -> int:
    mem = t.process.mem
    # mm/mmap.c brk: whatever fails, the result is the current break
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
        except OutOfMemory:  # do_brk_flags: ENOMEM
            return mem.brk
    elif new_end < old_end:
        mem.unmap(new_end, old_end - new_end)
    mem.brk = addr
    return addr


def _file_kind(f: File) -> tuple[int, int, str]:
    """(access mode, file_mmap_size_max, how it maps): 'file', 'zero' (/dev/zero: anonymous
    memory) or 'none' (no ->mmap: ENODEV)."""
    if isinstance(f, HostFile):
        st = os.fstat(f.fd)
        mode = fcntl.fcntl(f.fd, fcntl.F_GETFL) & os.O_ACCMODE
        if stat.S_ISREG(st.st_mode):
            return mode, MAX_LFS_FILESIZE, "file"
        if stat.S_ISCHR(st.st_mode) and (os.major(st.st_rdev), os.minor(st.st_rdev)) == (1, 5):
            return mode, ULONG_MAX, "zero"
        if stat.S_ISBLK(st.st_mode) or stat.S_ISSOCK(st.st_mode):
            return mode, MAX_LFS_FILESIZE, "none"
        return mode, ULONG_MAX, "none"
    if isinstance(f, PipeEnd):
        return (os.O_WRONLY if f.write_end else os.O_RDONLY), ULONG_MAX, "none"
    if isinstance(f, UnixSocket):
        return os.O_RDWR, MAX_LFS_FILESIZE, "none"
    return os.O_RDWR, ULONG_MAX, "none"  # eventfd, UINTR fds: anonymous inodes


def _read_into(fd: int, buf: object, n: int, offset: int) -> None:
    """Read n bytes of the file at `offset` into buf[:n] (zeros past what the file has)."""
    with memoryview(buf).cast("B") as view:  # type: ignore[arg-type]
        pos = 0
        while pos < n:
            got = os.preadv(fd, [view[pos : min(n, pos + READ_CHUNK)]], offset + pos)
            if got <= 0:
                break
            pos += got


@syscall(9, prot="hex", flags="hex", fd="int")
def sys_mmap(k: Kernel, t: Thread, addr: int, length: int, prot: int, flags: int, fd: int,
             offset: int) -> int:  # fmt: skip
    mem = t.process.mem
    # arch/x86/kernel/sys_x86_64.c sys_mmap: the offset must be page aligned
    if offset & (PAGE - 1):
        return -E.EINVAL
    f = None
    if not flags & MAP_ANONYMOUS:
        # ksys_mmap_pgoff looks the file up first (fget takes an unsigned int)
        fd &= 0xFFFF_FFFF
        f = t.process.fds.get(fd - (1 << 32) if fd >> 31 else fd)
        if f is None:
            return -E.EBADF
    # do_mmap
    if length == 0:
        return -E.EINVAL
    size = page_up(length)
    if size >> 64:  # PAGE_ALIGN(len) wrapped to 0
        return -E.ENOMEM
    # (Its pgoff + len overflow check cannot fire on 64-bit: pgoff < 2^52. A file's offset
    # is bounded by file_mmap_ok below.)
    prot &= PROT_READ | PROT_WRITE | PROT_EXEC
    # get_unmapped_area
    if size > TASK_SIZE:
        return -E.ENOMEM
    if flags & (MAP_FIXED | MAP_FIXED_NOREPLACE):
        if addr > TASK_SIZE - size:
            return -E.ENOMEM
        if addr & (PAGE - 1):
            return -E.EINVAL
        if flags & MAP_FIXED_NOREPLACE and not mem.is_free(addr, addr + size):
            return -E.EEXIST
        start = addr
        replaced = _mapped_in(mem, start, start + size)  # mmap_region: not an expansion
    else:
        hint = addr & ~(PAGE - 1)
        if hint and hint < MMAP_MIN_ADDR:  # round_hint_to_min
            hint = MMAP_MIN_ADDR
        found = None
        if hint and hint <= TASK_SIZE - size and mem.is_free(hint, hint + size):
            found = hint
        if found is None:
            found = mem.find_free(size)
        if found is None:
            return -E.ENOMEM
        start, replaced = found, 0
    mtype = flags & MAP_TYPE
    shared = mtype in (MAP_SHARED, MAP_SHARED_VALIDATE)
    how = "anon"
    mode = os.O_RDWR
    if f is None:
        if mtype not in (MAP_SHARED, MAP_PRIVATE):  # do_mmap, anonymous: no other type
            return -E.EINVAL
    else:
        try:
            mode, maxsize, how = _file_kind(f)
        except OSError as e:
            return -(e.errno or E.EACCES)
        # file_mmap_ok: offset + length within what the file can address
        if size > maxsize or offset >> 12 > (maxsize - size) >> 12:
            return -E.EOVERFLOW
        if mtype not in (MAP_SHARED, MAP_SHARED_VALIDATE, MAP_PRIVATE):
            return -E.EINVAL
        # do_mmap: a shared writable mapping needs a writable file, any mapping a readable one
        if shared and prot & PROT_WRITE and mode == os.O_RDONLY:
            return -E.EACCES
        if mode == os.O_WRONLY:
            return -E.EACCES
        if how == "none":  # no ->mmap (pipes, sockets, directories, terminals, /dev/null)
            return -E.ENODEV
    if _over_limit(t, size - replaced):  # mmap_region: may_expand_vm
        return -E.ENOMEM
    name = f"fd {fd}" if how == "file" else "[anon]"
    try:
        if how == "file":
            assert isinstance(f, HostFile)
            vmas = _file_vmas(f.fd, start, size, prot, offset, shared, mode, name)
            mem.replace(start, start + size, vmas)
        else:
            mem.map(start, size, prot, name=name, shared=shared)
    except OutOfMemory:
        return -E.ENOMEM
    except OSError as e:
        return -(e.errno or E.EACCES)
    return start


def _file_vmas(fd: int, start: int, size: int, prot: int, offset: int, shared: bool, mode: int,
               name: str) -> list[Vma]:  # fmt: skip
    """The VMAs of a file mapping: the pages holding file data, then those wholly beyond
    the end of the file, where an access is SIGBUS (mmap(2)); the part of the last file page
    past EOF reads as zeros."""
    covered = min(size, max(0, os.fstat(fd).st_size - offset))
    inside = page_up(covered)
    max_prot = 7
    if shared and mode == os.O_RDONLY:
        max_prot = PROT_READ | PROT_EXEC  # mprotect(2): EACCES for PROT_WRITE later
    out = []
    if inside:
        if shared and mode == os.O_RDWR:
            # The guest shares the file's pages with the host and other processes.
            buf = file_buffer(fd, covered, offset)
        else:
            # A private mapping, or a read-only shared one (never written by the engine):
            # a copy of the file's bytes.
            buf = anon_buffer(inside)
            _read_into(fd, buf, covered, offset)
        out.append(Vma(start, start + inside, prot, buf, 0, name, shared, max_prot, file=True))
    if inside < size:
        out.append(Vma(start + inside, start + size, prot, _NO_PAGES, 0, name, shared, max_prot,
                       beyond_eof=True, file=True))  # fmt: skip
    return out


@syscall(11)
def sys_munmap(k: Kernel, t: Thread, addr: int, length: int) -> int:
    if addr & (PAGE - 1) or length == 0 or addr + length > TASK_SIZE:
        return -E.EINVAL
    t.process.mem.unmap(addr, length)
    return 0


# Memory protection keys. The CPU model has no PKU (CPUID.(7,0):ECX[3] = 0), and Linux then
# has no key to give: pkey_alloc and pkey_free are EINVAL, and pkey_mprotect takes only the
# "no key" -1, as a plain mprotect (mm/mprotect.c; checked on Linux 6.18 on such a CPU).


@syscall(330, init_val="hex")
def sys_pkey_alloc(k: Kernel, t: Thread, flags: int, init_val: int) -> int:
    return -E.EINVAL


@syscall(331, pkey="int")
def sys_pkey_free(k: Kernel, t: Thread, pkey: int) -> int:
    return -E.EINVAL


@syscall(329, prot="hex", pkey="int")
def sys_pkey_mprotect(k: Kernel, t: Thread, addr: int, length: int, prot: int, pkey: int
                      ) -> int:  # fmt: skip
    if pkey & 0xFFFF_FFFF != 0xFFFF_FFFF:  # an int: -1 is the only key there is
        return -E.EINVAL
    return sys_mprotect(k, t, addr, length, prot)


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


# --- mremap (mm/mremap.c) --------------------------------------------------------------------


def _continuation(v: Vma, at: int, length: int) -> list[Vma]:
    """`length` more bytes of the mapping `v`, placed at `at`. Private anonymous memory grows
    with zero pages; a shared or file mapping with the next pages of its object, and past
    what the object holds (its size at mmap time) with pages that raise SIGBUS."""
    if not (v.shared or v.file):
        buf = anon_buffer(length)
        return [Vma(at, at + length, v.prot, buf, 0, v.name, max_prot=v.max_prot)]
    off = v.offset + (v.end - v.start)
    avail = 0 if v.beyond_eof else max(0, min(length, len(v.buf) - off))
    out = []
    if avail:
        out.append(Vma(at, at + avail, v.prot, v.buf, off, v.name, v.shared, v.max_prot,
                       file=v.file))  # fmt: skip
    if avail < length:
        out.append(Vma(at + avail, at + length, v.prot, _NO_PAGES, 0, v.name, v.shared,
                       v.max_prot, beyond_eof=True, file=v.file))  # fmt: skip
    return out


def _remap_is_valid(t: Thread, v: Vma, old: int, old_len: int, new_len: int) -> int:
    if old_len == 0 and not v.shared:
        return -E.EINVAL  # only a shared mapping can be duplicated (old_len 0)
    if old_len > v.end - old:
        return -E.EFAULT  # "We can't remap across vm area boundaries"
    if new_len > old_len and _over_limit(t, new_len - old_len):
        return -E.ENOMEM  # may_expand_vm
    return 0


def _move(t: Thread, v: Vma, old: int, old_len: int, new_len: int, dest: int) -> int:
    """move_vma: the same pages at `dest` (and more, growing), then the old range unmapped."""
    mem = t.process.mem
    part = v.piece(old, old + old_len)
    new = [part.moved(dest)] if old_len else []
    try:
        if new_len > old_len:
            new += _continuation(part, dest + old_len, new_len - old_len)
        mem.replace(dest, dest + new_len, new)
    except OutOfMemory:
        return -E.ENOMEM
    mem.unmap(old, old_len)
    return dest


def _mremap_to(t: Thread, v: Vma, old: int, old_len: int, new_len: int, new_addr: int) -> int:
    mem = t.process.mem
    # "Is the new length or address silly?"
    if new_len > TASK_SIZE or new_addr > TASK_SIZE - new_len:
        return -E.EINVAL
    if old + old_len > new_addr and new_addr + new_len > old:  # vrm_overlaps
        return -E.EINVAL
    mem.unmap(new_addr, new_len)  # MREMAP_FIXED: do_munmap of the destination first
    if new_len < old_len:  # shrink_vma, then move what is left
        if _munmap_invalid(old + new_len, old_len - new_len):
            return -E.EINVAL
        mem.unmap(old + new_len, old_len - new_len)
        old_len = new_len
        found = mem.find(old)
        if found is None:
            return -E.EFAULT
        v = found
    err = _remap_is_valid(t, v, old, old_len, new_len)
    if err:
        return err
    return _move(t, v, old, old_len, new_len, new_addr)


@syscall(25, flags="hex")
def sys_mremap(k: Kernel, t: Thread, old: int, old_len: int, new_len: int, flags: int,
               new_addr: int) -> int:  # fmt: skip
    mem = t.process.mem
    # check_mremap_params
    if flags & ~(MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP):
        return -E.EINVAL
    if old & (PAGE - 1):
        return -E.EINVAL
    new_len = page_up(new_len)
    if new_len == 0 or new_len >> 64:  # PAGE_ALIGN(new_len) == 0
        return -E.EINVAL
    if flags & (MREMAP_FIXED | MREMAP_DONTUNMAP):
        if new_addr & (PAGE - 1):
            return -E.EINVAL
        if not flags & MREMAP_MAYMOVE:
            return -E.EINVAL
        if flags & MREMAP_DONTUNMAP:
            # Not implemented (Linux 5.7+); EINVAL is what older kernels answer.
            return -E.EINVAL
    old_len = page_up(old_len) & (2**64 - 1)  # PAGE_ALIGN wraps
    v = mem.find(old)  # do_mremap: vma_lookup
    if v is None:
        return -E.EFAULT
    if flags & MREMAP_FIXED:
        return _mremap_to(t, v, old, old_len, new_len, new_addr)
    # mremap_at
    if new_len == old_len:
        return old
    if new_len < old_len:  # shrink_vma: unmap the tail, whatever it covers
        if _munmap_invalid(old + new_len, old_len - new_len):
            return -E.EINVAL
        mem.unmap(old + new_len, old_len - new_len)
        return old
    err = _remap_is_valid(t, v, old, old_len, new_len)  # expand_vma
    if err:
        return err
    delta = new_len - old_len
    if old + old_len == v.end and v.end + delta <= TASK_SIZE and mem.is_free(v.end, v.end + delta):
        try:  # vrm_can_expand_in_place: grow in place
            mem.replace(v.end, v.end + delta, _continuation(v, v.end, delta))
        except OutOfMemory:
            return -E.ENOMEM
        return old
    if not flags & MREMAP_MAYMOVE:
        return -E.ENOMEM
    dest = mem.find_free(new_len)  # vrm_set_new_addr: get_unmapped_area
    if dest is None:
        return -E.ENOMEM
    return _move(t, v, old, old_len, new_len, dest)


@syscall(28, advice="int")
def sys_madvise(k: Kernel, t: Thread, addr: int, length: int, advice: int) -> int:
    if addr & (PAGE - 1):
        return -E.EINVAL
    if advice in (MADV_DONTNEED, MADV_FREE):
        # Private anonymous pages read back as zero afterwards (madvise(2)).
        mem = t.process.mem
        end = addr + page_up(length)
        for v in mem._overlapping(addr, end):
            if v.shared or v.beyond_eof:
                continue
            lo, hi = max(v.start, addr), min(v.end, end)
            o = v.offset + lo - v.start
            v.buf[o : o + hi - lo] = bytes(hi - lo)
    return 0
