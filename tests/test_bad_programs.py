"""A corpus of malformed programs: each gets one ``uintr-emu: error: ...`` line and status 2.

The corpus is generated at test time from a real static binary (tests/programs/args_env.c):
copies of it are cut or patched (ELF header fields, program headers, a PT_INTERP added), and
a few paths are not regular files at all.  For every case the emulator must exit with status
2, print nothing on stdout and exactly one stderr line starting ``uintr-emu: error: ``, and
never a Python traceback or an ``internal error``.

Cases the emulator gets wrong today are strict xfails with the reason (docs/robustness.md);
they turn into failures once the loader is fixed, so that the mark is removed.

The helpers come from tests/conftest.py as fixtures (not imported: tests/hw has a conftest.py
of its own, and only one module can be called ``conftest``).
"""

from __future__ import annotations

import os
import resource
import struct
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

#: A malformed program must be rejected quickly; a hang is a failure, not a stuck CI job.
TIMEOUT = 30

# ELF64 layout (System V gABI): header fields and program header fields.
E_TYPE, E_MACHINE, E_PHOFF, E_PHENTSIZE, E_PHNUM = 16, 18, 32, 54, 56
PH_FIELDS = {
    "type": (0, "<I"),
    "flags": (4, "<I"),
    "offset": (8, "<Q"),
    "vaddr": (16, "<Q"),
    "paddr": (24, "<Q"),
    "filesz": (32, "<Q"),
    "memsz": (40, "<Q"),
    "align": (48, "<Q"),
}
PT_NULL, PT_LOAD, PT_INTERP, PT_NOTE = 0, 1, 3, 4
ET_REL, ET_DYN, ET_CORE = 1, 3, 4
EM_386, EM_AARCH64 = 3, 183


# --------------------------------------------------------------------------- the corpus


class Elf:
    """A mutable copy of an ELF64 image with helpers to patch header and program headers."""

    def __init__(self, data: bytes):
        self.data = bytearray(data)
        self.phoff = struct.unpack_from("<Q", data, E_PHOFF)[0]
        self.phentsize, self.phnum = struct.unpack_from("<HH", data, E_PHENTSIZE)

    def set(self, offset: int, fmt: str, value: int) -> Elf:
        struct.pack_into(fmt, self.data, offset, value)
        return self

    def ph(self, i: int, field: str) -> int:
        off, fmt = PH_FIELDS[field]
        return struct.unpack_from(fmt, self.data, self.phoff + i * self.phentsize + off)[0]

    def set_ph(self, i: int, field: str, value: int) -> Elf:
        off, fmt = PH_FIELDS[field]
        return self.set(self.phoff + i * self.phentsize + off, fmt, value)

    def index(self, ptype: int, nth: int = 0) -> int:
        found = [i for i in range(self.phnum) if self.ph(i, "type") == ptype]
        return found[nth]

    def with_interp(self, path: bytes) -> Elf:
        """Turn the last PT_NOTE into a PT_INTERP naming `path` (appended to the file)."""
        note = max(i for i in range(self.phnum) if self.ph(i, "type") == PT_NOTE)
        off = len(self.data)
        self.data += path + b"\0"
        self.set_ph(note, "type", PT_INTERP).set_ph(note, "offset", off)
        return self.set_ph(note, "filesz", len(path) + 1).set_ph(note, "memsz", len(path) + 1)

    def bytes(self) -> bytes:
        return bytes(self.data)


@dataclass(frozen=True)
class Case:
    make: Callable[[bytes, Path], Path | str]  # (the valid program, tmp dir) -> path to run
    must_contain: tuple[str, ...] = ()
    xfail: str | None = None
    timeout: float = TIMEOUT


def _file(tmp: Path, name: str, data: bytes, mode: int = 0o755) -> Path:
    path = tmp / name
    path.write_bytes(data)
    path.chmod(mode)
    return path


def patched(fn: Callable[[Elf], Elf | bytes]) -> Callable[[bytes, Path], Path]:
    """A case made by patching a copy of the valid program."""

    def make(good: bytes, tmp: Path) -> Path:
        out = fn(Elf(good))
        return _file(tmp, "prog", out.bytes() if isinstance(out, Elf) else out)

    return make


def cut(n: int | Callable[[Elf], int]) -> Callable[[bytes, Path], Path]:
    return patched(lambda e: e.bytes()[: n if isinstance(n, int) else n(e)])


def _mid_phdrs(e: Elf) -> int:
    return e.phoff + e.phentsize * (e.phnum // 2) + 20


def _mid_segment(e: Elf) -> int:
    text = e.index(PT_LOAD, 1)  # the second PT_LOAD: the code
    return e.ph(text, "offset") + e.ph(text, "filesz") // 2


def _overlap(e: Elf) -> Elf:
    """The writable PT_LOAD moved onto the code, congruent modulo the page size (so that only
    the overlap is wrong): it would replace the code's first pages (Linux: SIGSEGV)."""
    data, text = e.index(PT_LOAD, 3), e.index(PT_LOAD, 1)
    return e.set_ph(data, "vaddr", e.ph(text, "vaddr") + e.ph(data, "offset") % 4096)


def _overlap_ascending(e: Elf) -> Elf:
    """The read-only data PT_LOAD grown over the writable one, two pages past it: still in
    p_vaddr order, but they overlap by more than a shared page."""
    rodata, data = e.index(PT_LOAD, 2), e.index(PT_LOAD, 3)
    return e.set_ph(rodata, "memsz", e.ph(data, "vaddr") - e.ph(rodata, "vaddr") + 0x2000)


def _shared_page(e: Elf) -> Elf:
    """The read-only data PT_LOAD grown up to the writable one's first byte: they share a page
    at most, which is allowed (text end / data start)."""
    rodata, data = e.index(PT_LOAD, 2), e.index(PT_LOAD, 3)
    return e.set_ph(rodata, "memsz", e.ph(data, "vaddr") - e.ph(rodata, "vaddr"))


def _misaligned(e: Elf) -> Elf:
    text = e.index(PT_LOAD, 1)
    return e.set_ph(text, "offset", e.ph(text, "offset") + 8)


def _last_load(e: Elf, field: str, value: int) -> Elf:
    return e.set_ph(e.index(PT_LOAD, 3), field, value)


def with_interp(target: Callable[[bytes, Path], Path | str]) -> Callable[[bytes, Path], Path]:
    """The valid program with a PT_INTERP naming the path that `target` creates."""

    def make(good: bytes, tmp: Path) -> Path:
        interp = os.fsencode(str(target(good, tmp)))
        return _file(tmp, "prog", Elf(good).with_interp(interp).bytes())

    return make


def _dynamic_interp(good: bytes, tmp: Path) -> Path:
    """An ET_DYN 'interpreter' that itself has a PT_INTERP."""
    e = Elf(good).with_interp(b"/lib64/ld-linux-x86-64.so.2").set(E_TYPE, "<H", ET_DYN)
    return _file(tmp, "dyn-ld.so", e.bytes())


def _interp_without_loads(good: bytes, tmp: Path) -> Path:
    e = Elf(good).set(E_TYPE, "<H", ET_DYN)
    for i in range(e.phnum):
        if e.ph(i, "type") == PT_LOAD:
            e.set_ph(i, "type", PT_NULL)
    return _file(tmp, "noload-ld.so", e.bytes())


def _fifo(good: bytes, tmp: Path) -> Path:
    path = tmp / "fifo"
    os.mkfifo(path)
    return path


CASES: dict[str, Case] = {
    # --- not ELF, or cut short
    "empty-file": Case(cut(0), ("not an ELF",)),
    "cut-at-4": Case(cut(4), ("truncated",)),
    "cut-at-16": Case(cut(16), ("truncated",)),
    "cut-at-52": Case(cut(52), ("truncated",)),
    "cut-at-63": Case(cut(63), ("truncated",)),
    "cut-mid-program-headers": Case(cut(_mid_phdrs), ("malformed",)),
    "cut-mid-segment-data": Case(cut(_mid_segment), ("malformed",)),
    # --- ELF header fields
    "phoff-past-end": Case(patched(lambda e: e.set(E_PHOFF, "<Q", len(e.data) + 4096))),
    "phoff-2^63": Case(patched(lambda e: e.set(E_PHOFF, "<Q", 1 << 63))),
    "phnum-65535": Case(patched(lambda e: e.set(E_PHNUM, "<H", 0xFFFF))),
    "phnum-32768": Case(patched(lambda e: e.set(E_PHNUM, "<H", 0x8000))),
    "phnum-0": Case(patched(lambda e: e.set(E_PHNUM, "<H", 0)), ("no loadable segments",)),
    "phentsize-0": Case(patched(lambda e: e.set(E_PHENTSIZE, "<H", 0))),
    "phentsize-57": Case(patched(lambda e: e.set(E_PHENTSIZE, "<H", 57))),
    "machine-aarch64": Case(patched(lambda e: e.set(E_MACHINE, "<H", EM_AARCH64)), ("machine",)),
    "machine-i386": Case(patched(lambda e: e.set(E_MACHINE, "<H", EM_386)), ("machine",)),
    "class-elf32": Case(patched(lambda e: e.set(4, "<B", 1)), ("32-bit",)),
    "big-endian": Case(patched(lambda e: e.set(5, "<B", 2)), ("big-endian",)),
    "type-rel": Case(patched(lambda e: e.set(E_TYPE, "<H", ET_REL)), ("type",)),
    "type-core": Case(patched(lambda e: e.set(E_TYPE, "<H", ET_CORE)), ("type",)),
    # --- PT_LOAD segments
    "overlapping-loads": Case(patched(_overlap), ("PT_LOAD", "p_vaddr order")),
    "overlapping-loads-ascending": Case(patched(_overlap_ascending), ("overlapping PT_LOAD",)),
    "memsz-2^40": Case(patched(lambda e: _last_load(e, "memsz", 1 << 40)), ("malformed",)),
    "memsz-2^63": Case(patched(lambda e: _last_load(e, "memsz", 1 << 63)), ("malformed",)),
    "memsz-2^64-1": Case(patched(lambda e: _last_load(e, "memsz", 2**64 - 1)), ("malformed",)),
    "vaddr-noncanonical": Case(patched(lambda e: _last_load(e, "vaddr", 1 << 47)), ("malformed",)),
    "filesz-above-memsz": Case(patched(lambda e: _last_load(e, "filesz", 1 << 20)), ("malformed",)),
    "offset-past-end": Case(
        patched(lambda e: _last_load(e, "offset", len(e.data) + 0x10000)), ("malformed",)
    ),
    "offset-2^64-8": Case(patched(lambda e: _last_load(e, "offset", 2**64 - 8)), ("malformed",)),
    "offset-vaddr-misaligned": Case(patched(_misaligned)),
    # --- PT_INTERP
    "interp-missing": Case(
        with_interp(lambda g, tmp: tmp / "no-such-ld.so"), ("interpreter", "missing")
    ),
    "interp-not-elf": Case(
        with_interp(lambda g, tmp: _file(tmp, "text-ld.so", b"#!/bin/sh\n")),
        ("interpreter", "not an ELF"),
    ),
    "interp-is-dynamic": Case(with_interp(_dynamic_interp), ("interpreter", "shared object")),
    "interp-is-executable": Case(
        with_interp(lambda g, tmp: _file(tmp, "exec-ld.so", g)), ("interpreter", "shared object")
    ),
    "interp-is-directory": Case(with_interp(lambda g, tmp: tmp), ("interpreter", "directory")),
    "interp-empty-name": Case(with_interp(lambda g, tmp: ""), ("interpreter", "1 bytes")),
    "interp-without-loads": Case(with_interp(_interp_without_loads), ("interpreter",)),
    # --- not regular files
    "directory": Case(lambda g, tmp: tmp, ("directory",)),
    "dev-null": Case(lambda g, tmp: "/dev/null", ("not a regular file",)),
    "fifo": Case(_fifo, timeout=10),
}


def _params():
    for name, case in CASES.items():
        marks = [pytest.mark.xfail(strict=True, reason=case.xfail)] if case.xfail else []
        yield pytest.param(name, marks=marks, id=name)


@pytest.fixture(scope="module")
def good_program(build_program) -> bytes:
    data = build_program("args_env").read_bytes()
    e = Elf(data)
    assert data[:4] == b"\x7fELF" and data[4] == 2 and e.phentsize == 56
    assert [e.ph(i, "type") for i in range(e.phnum)].count(PT_LOAD) == 4  # the layout we patch
    return data


@pytest.mark.parametrize("name", list(_params()))
def test_malformed_program(name, tmp_path, good_program, run_cli, assert_one_error_line):
    case = CASES[name]
    path = case.make(good_program, tmp_path)
    result = run_cli("run", "--cpus", "1", str(path), timeout=case.timeout)
    assert_one_error_line(result, *case.must_contain)


def test_the_unpatched_program_runs(tmp_path, good_program, run_cli):
    """The corpus is made from a program that works: what fails is the patch."""
    path = _file(tmp_path, "prog", good_program)
    rc, out, err = run_cli("run", "--cpus", "1", str(path), "x", timeout=TIMEOUT)
    assert rc == 3 and b"args_env: a line on stderr" in err and b"Traceback" not in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read a mode-000 file")
def test_no_read_permission(tmp_path, good_program, run_cli, assert_one_error_line):
    path = _file(tmp_path, "unreadable", good_program, mode=0o000)
    try:
        assert_one_error_line(
            run_cli("run", "--cpus", "1", str(path), timeout=TIMEOUT), "permission"
        )
    finally:
        path.chmod(0o644)


def test_interpreter_missing_under_root(tmp_path, build_program, run_cli, assert_one_error_line):
    """A real dynamic program whose interpreter is not under --root."""
    path = build_program("args_env", static=False)
    line = assert_one_error_line(
        run_cli("run", "--root", str(tmp_path), str(path), timeout=TIMEOUT)
    )
    assert "interpreter" in line, line


def test_loads_sharing_a_page_run(tmp_path, good_program, run_cli, describe):
    """PT_LOADs that meet inside a page are not 'overlapping': the program runs."""
    path = patched(_shared_page)(good_program, tmp_path)
    rc, out, err = run_cli("run", "--cpus", "1", str(path), "x", timeout=TIMEOUT)
    assert rc == 3 and b"args_env: a line on stderr" in err, describe((rc, out, err))


def test_large_sparse_tail(tmp_path, good_program, describe):
    """A valid program followed by an 8 GiB hole (the file is sparse: no disk space) runs
    natively at once; so it does under the emulator, limited to a 4 GiB address space: only
    the headers and the segments are read (it used to read the whole file: MemoryError)."""
    path = _file(tmp_path, "big", good_program)
    os.truncate(path, 8 << 30)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent / "src")}
    proc = subprocess.run(
        [sys.executable, "-m", "uintr_emu", "run", "--cpus", "1", str(path), "x"],
        capture_output=True,
        timeout=TIMEOUT,
        preexec_fn=limit,
        env=env,
        check=False,
    )
    result = (proc.returncode, proc.stdout, proc.stderr)
    assert b"Traceback" not in proc.stderr and b"internal error" not in proc.stderr, describe(
        result
    )
    # args_env's own output: it exits 3 after a line on stderr, as natively
    assert proc.returncode == 3 and b"args_env: a line on stderr" in proc.stderr, describe(result)
