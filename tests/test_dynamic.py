"""Dynamically linked programs (gcc's default output) run with the system's ld.so and libc and
give the same output as their static builds; --root confines the interpreter and libraries."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROGRAMS = ["threads", "malloc", "compute", "signals", "time", "strings_stdio", "sigsegv_longjmp"]
EXAMPLES = ["uipi_demo", "self_ipi", "pingpong", "many_senders", "blocked_wait", "fork_ipc"]


def emu(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    cmd = [sys.executable, "-m", "uintr_emu", "run", *args]
    return subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)


@pytest.mark.parametrize("cpus", [1, 4])
@pytest.mark.parametrize("name", PROGRAMS)
def test_dynamic_build_matches_static_build(name: str, cpus: int, build_program) -> None:
    static = emu("--cpus", str(cpus), str(build_program(name)))
    dynamic = emu("--cpus", str(cpus), str(build_program(name, static=False)))
    assert static.returncode == 0, static.stderr
    assert (dynamic.returncode, dynamic.stdout) == (static.returncode, static.stdout)


@pytest.mark.parametrize("static", [True, False], ids=["static", "dynamic"])
def test_shared_mappings(static: bool, build_program, tmp_path: Path) -> None:
    r = emu("--cpus", "2", str(build_program("shared_mmap", static=static)), str(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.decode().splitlines() == [
        "after fork: shared=42 private=1",
        "file: written through MAP_SHARED",
        "private file mapping: writes stay private",
        "read-only file: no writable shared mapping",
        "OK",
    ]


@pytest.mark.parametrize("name", EXAMPLES)
def test_dynamic_uintr_examples_match_golden(name: str, tmp_path: Path, golden) -> None:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed")
    out = tmp_path / name
    flags = ["-O2", "-muintr", "-mgeneral-regs-only", "-pthread", "-I", str(ROOT / "examples")]
    subprocess.run([gcc, *flags, "-o", str(out), str(ROOT / "examples" / f"{name}.c")],
                   check=True)  # fmt: skip
    r = emu("--cpus", "2", str(out))
    assert r.returncode == 0, r.stderr
    golden.check(f"examples/{name}.out", r.stdout.decode())


def test_missing_interpreter_under_root(build_program, tmp_path: Path) -> None:
    r = emu("--root", str(tmp_path), str(build_program("args_env", static=False)))
    assert r.returncode == 2
    lines = r.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("uintr-emu: error: "), lines
    assert "interpreter" in lines[0] and "missing" in lines[0] and str(tmp_path) in lines[0]


def _sysroot(tmp_path: Path, program: Path) -> Path:
    """A minimal root with the program's interpreter and libraries, where the host has them."""
    out = subprocess.run(["ldd", str(program)], capture_output=True, text=True, check=True)
    root = tmp_path / "root"
    for line in out.stdout.splitlines():
        parts = line.split()
        path = next((p for p in parts if p.startswith("/")), None)
        if path is None:
            continue
        dest = root / path.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(Path(path).resolve(), dest)
    return root


def test_dynamic_program_under_a_sysroot(build_program, tmp_path: Path) -> None:
    program = build_program("strings_stdio", static=False)
    if shutil.which("ldd") is None:
        pytest.skip("ldd is not installed")
    root = _sysroot(tmp_path, program)
    native = emu(str(build_program("strings_stdio")))
    r = emu("--root", str(root), str(program))
    assert r.returncode == 0, r.stderr
    assert r.stdout == native.stdout
