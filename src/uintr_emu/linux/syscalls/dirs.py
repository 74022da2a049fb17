"""Reading a directory: getdents64, from a listing taken at the first call and kept on the
open file (its position is the entry index)."""

from __future__ import annotations

import os
import stat as st
from typing import TYPE_CHECKING

from .. import errno as E
from ..abi import DIRENT64
from ..process import HostFile
from . import syscall
from .paths import oserr, s32

if TYPE_CHECKING:
    from ..kernel import Kernel
    from ..process import Thread

# d_type of each file type (DT_FIFO, DT_CHR, DT_DIR, DT_BLK, DT_REG, DT_LNK, DT_SOCK); anything
# else is DT_UNKNOWN (0)
DT_TYPES = {st.S_IFIFO: 1, st.S_IFCHR: 2, st.S_IFDIR: 4, st.S_IFBLK: 6, st.S_IFREG: 8,
            st.S_IFLNK: 10, st.S_IFSOCK: 12}  # fmt: skip


def _listing(path: str) -> list[tuple[bytes, int, int]] | int:
    """(name, inode, d_type) of each entry, "." and ".." first, the rest in the host's readdir
    order (what `ls -U` or `find` show natively), or -errno; an entry that vanishes before its
    lstat is left out."""
    try:
        names = [".", "..", *os.listdir(path)]
    except OSError as e:
        return oserr(e)
    ents = []
    for n in names:
        try:
            s = os.lstat(os.path.join(path, n))
        except OSError:
            continue
        ents.append((os.fsencode(n), s.st_ino, DT_TYPES.get(st.S_IFMT(s.st_mode), 0)))
    return ents


@syscall(217, fd="int", count="int")
def sys_getdents64(k: Kernel, t: Thread, fd: int, dirp: int, count: int) -> int:
    f = t.process.fds.get(s32(fd))
    if not isinstance(f, HostFile):
        return -E.EBADF if f is None else -E.ENOTDIR
    if f.dir_entries is None:
        ents = _listing(f.path)
        if isinstance(ents, int):
            return ents
        f.dir_entries = ents
    out = bytearray()
    while f.dir_pos < len(f.dir_entries):
        name, ino, dtype = f.dir_entries[f.dir_pos]
        reclen = (DIRENT64.size + len(name) + 1 + 7) & ~7  # the name's NUL, 8-byte aligned
        if len(out) + reclen > count:
            if not out:
                return -E.EINVAL
            break
        rec = DIRENT64.pack(ino, f.dir_pos + 1, reclen, dtype) + name + b"\0"
        out += rec.ljust(reclen, b"\0")
        f.dir_pos += 1
    t.process.mem.write(dirp, bytes(out))
    return len(out)
