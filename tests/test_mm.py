"""mmap, mremap and brk at their edges, against Linux.

tests/programs/mm_edges.c makes the calls (raw syscalls: errors in the order do_mmap,
check_mremap_params and mremap_to check them; moves that keep what they move; SIGBUS for
file pages wholly beyond EOF) and prints one address-independent line each.  Its native
output is the reference; the expected lines below say what Linux answers, so that the test
still checks something where the two agree for a wrong reason.
"""

from __future__ import annotations

import pytest

#: Lines of the native output that the emulator used to get wrong (docs/robustness.md).
LINUX = [
    "mmap file offset 2^63: -1 EOVERFLOW",
    "mmap file offset 2^63-4096: -1 EOVERFLOW",
    "mmap anonymous offset 2^63: ok",
    "mmap bad fd offset 1: -1 EINVAL",
    "mmap length 2^47: -1 ENOMEM",
    "mmap fixed past TASK_SIZE: -1 ENOMEM",
    "mmap pipe write end: -1 EACCES",
    "mmap O_WRONLY file: -1 EACCES",
    "mremap fixed unaligned: -1 EINVAL",
    "mremap fixed non-canonical: -1 EINVAL",
    "mremap fixed past TASK_SIZE: -1 EINVAL",
    "mremap fixed overlapping: -1 EINVAL",
    'mremap fixed move: at dest, "first page", "second page", tail 0, old range unmapped',
    'mremap shared file: the file reads "via the moved mapping"',
    "grown file mapping, page past EOF: caught SIGBUS BUS_ADRERR addr=ok",
    "grown shared anonymous, new page: caught SIGBUS BUS_ADRERR addr=ok",
    'private: "file data", byte 100 0, byte 4095 0',
    "private, page past EOF, read: caught SIGBUS BUS_ADRERR addr=ok",
    'shared: file reads "shared" at 50, size 100',
    "shared, PROT_NONE page past EOF: caught SIGSEGV SEGV_ACCERR addr=ok",
    "write from a page past EOF: -1 EFAULT",
    "mapping at offset 2^63-8192: caught SIGBUS BUS_ADRERR addr=ok",
    "brk(2^64-1) keeps the break: yes",
]


@pytest.fixture(scope="module")
def emulated(build_program, run_emu):
    return run_emu(build_program("mm_edges"), [], cpus=1)


def test_mm_edges_match_linux(emulated, native_result):
    rc, out, err = emulated
    assert rc == 0 and err == b"", f"status {rc}\n{err.decode(errors='replace')[-2000:]}"
    n_rc, n_out, _ = native_result("mm_edges")
    assert n_rc == 0, f"natively: status {n_rc}"
    native, ours = n_out.decode().splitlines(), out.decode().splitlines()
    diff = [f"native: {a!r}\n   emu: {b!r}" for a, b in zip(native, ours, strict=False) if a != b]
    assert not diff and len(native) == len(ours), "\n".join(diff) or f"{native}\n!=\n{ours}"


@pytest.mark.parametrize("line", LINUX)
def test_mm_edge_is_what_linux_answers(line, emulated):
    assert line in emulated[1].decode().splitlines()
