"""The "real programs" benchmark section (benchmarks/real.py, run by `make bench`): its inputs
are reproducible, a failed or wrong run is never counted as a time, the geometric mean and the
targets are computed over exactly the workloads that ran correctly, and the workloads' commands
run. The timings themselves are `make bench`'s business, not the suite's.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("bench_real", ROOT / "benchmarks" / "real.py")
assert _spec is not None and _spec.loader is not None
real = importlib.util.module_from_spec(_spec)
sys.modules["bench_real"] = real  # dataclasses look their module up while the class is made
_spec.loader.exec_module(real)

TINY = real.Sizes(loop=1000, sha256=4096, xz=8192, python=100, sort=8192)


def test_inputs_are_reproducible_and_sized() -> None:
    assert real.random_bytes(5000) == real.random_bytes(5000)
    assert real.random_bytes(5000) != real.random_bytes(5000, seed=real.SEED + 1)
    # Pinned: SHAKE-256 is specified bit for bit, so this holds on every machine and Python.
    digest = hashlib.sha256(real.random_bytes(1000)).hexdigest()
    assert digest == "ae562c14a5d5b0fb453a91e2ee948e2f6cdb8fbe8d6896c20ae94e23a70398e9"
    t = real.text(100_000)
    assert t == real.text(100_000)
    assert 99_000 < len(t) <= 100_000 and t.endswith(b"\n")
    lines = t.decode().splitlines()
    assert len(set(lines)) > 0.9 * len(lines)  # text, not one line repeated
    assert len(set(t.split())) > 500


def test_labels() -> None:
    assert [real.count_label(n) for n in (10**8, 3_000_000, 30_000, 12_345)] == [
        "1e8",
        "3M",
        "30k",
        "12,345",
    ]
    assert real.size_label(50 * real.MB) == "50 MB" and real.size_label(real.MB // 4) == "256 KB"


def test_failure_reason_is_one_informative_line() -> None:
    warn = "uintr-emu: warning: unsupported syscall 98; returning -ENOSYS\n"
    own = warn + "uintr-emu: error: cannot load /x: not an ELF file\n"
    assert (
        real.failure_reason(own, 2)
        == "uintr-emu: error: cannot load /x: not an ELF file (exit status 2)"
    )
    trace = warn + "Traceback (most recent call last):\n  ...\nKeyError: 7\n"
    assert real.failure_reason(trace, 1) == "KeyError: 7 (exit status 1)"
    assert real.failure_reason(warn, -11) == "killed by signal 11"
    assert real.warnings_of(warn + warn + "x\n") == ["unsupported syscall 98; returning -ENOSYS"]


def test_judge_compares_stdout_and_written_file_with_native() -> None:
    nat = ("a" * 64, "f" * 64)
    assert real.judge(0, "", nat, None) == "ok"
    assert real.judge(0, "", nat, nat) == "ok"
    assert real.judge(3, "boom\n", nat, nat) == "fails: boom (exit status 3)"
    assert real.judge(0, "", ("b" * 64, nat[1]), nat).startswith("differs: stdout")
    assert real.judge(0, "", (nat[0], None), nat).startswith("differs: output file")


def _outcomes(native: float, qemu: float | None, emu: float | str) -> dict:
    o = {"native": real.Outcome("ok", native, native)}
    if qemu is not None:
        o["qemu"] = real.Outcome("ok", qemu, qemu)
    o["uintr-emu"] = real.Outcome("ok", emu, emu) if isinstance(emu, float) else real.Outcome(emu)
    return o


def test_summary_counts_only_correct_runs_and_applies_each_bound() -> None:
    work = [
        real.Workload("loop", "loop", ["x"]),
        real.Workload("a", "a", ["x"]),
        real.Workload("b", "b", ["x"]),
        real.Workload("gcc", "gcc", ["x"]),
        real.Workload("xz", "xz", ["x"], missing="xz: not installed"),
        real.Workload("c", "c", ["x"]),
    ]
    results = {
        "loop": _outcomes(0.1, 1.0, 4.5),  # 4.5x: over the loop's 4, under the others' 5
        "a": _outcomes(0.1, 1.0, 2.0),
        "b": _outcomes(0.1, 2.0, 2.0),
        "gcc": _outcomes(0.1, 1.0, "fails: uintr-emu: error: x"),
        "c": _outcomes(0.1, None, 1.0),  # qemu could not run it: no ratio to qemu
    }
    s = real.summarize(work, results)
    assert s.counted == ["loop", "a", "b"]
    assert s.geomean == pytest.approx(math.exp((math.log(4.5) + math.log(2.0)) / 3))
    assert s.above == ["loop"] and s.above_cpu == ["loop"]
    assert set(s.excluded) == {"gcc", "xz", "c"}
    assert "fails: uintr-emu: error: x" in s.excluded["gcc"]
    assert "not run" in s.excluded["xz"] and "qemu" in s.excluded["c"]
    assert real.summarize(work[3:4], {"gcc": results["gcc"]}).geomean is None


def test_workloads_run_natively(tmp_path: Path) -> None:
    """Every workload's command, at a tiny size, does what the section expects natively."""
    tools = {name: real.find_tool(name) for name in real.TOOLS}
    if not shutil.which("gcc"):
        pytest.skip("no gcc")
    loop = tmp_path / "volatile_loop"
    src = ROOT / "benchmarks" / "programs" / "volatile_loop.c"
    subprocess.run(["gcc", "-O2", "-static", "-o", str(loop), str(src)], check=True)
    work = real.workloads(TINY, tmp_path, tools, {}, None, loop, loop)
    assert [w.key for w in work] == ["loop", "sha256sum", "xz", "python", "sort", "gcc", "hello"]
    for w in work:
        if w.missing:
            continue
        r = subprocess.run(w.argv, capture_output=True, timeout=120, check=False)
        assert r.returncode == 0, (w.label, r.stderr)
        if w.key == "loop":
            assert r.stdout == b"1000\n"
        if w.key == "python":
            assert r.stdout == str(sum(i % 7 for i in range(TINY.python))).encode() + b"\n"
        if w.key == "gcc":
            assert w.out_file is not None and w.out_file.exists()


def test_qemu_runs_gcc_children_under_qemu(tmp_path: Path) -> None:
    """qemu-user does not follow exec: the -B scripts put cc1, as, collect2 and ld under it,
    and the compiler's output stays byte for byte the native one."""
    qemu, gcc = shutil.which("qemu-x86_64"), real.find_tool("gcc")
    if not qemu or not gcc:
        pytest.skip("needs qemu-x86_64 and gcc")
    loop = tmp_path / "unused"
    work = real.workloads(TINY, tmp_path, {"gcc": gcc}, {}, qemu, loop, loop)
    w = next(w for w in work if w.key == "gcc")
    assert w.qemu_argv is not None and w.out_file is not None
    for tool in ("cc1", "as", "collect2", "ld"):
        script = (tmp_path / "qemu-gcc" / tool).read_text()
        assert script.startswith("#!/bin/sh\nexec " + qemu)
    subprocess.run(w.argv, check=True, timeout=120)
    native = w.out_file.read_bytes()
    w.out_file.unlink()
    subprocess.run(w.qemu_argv, check=True, timeout=300)
    assert w.out_file.read_bytes() == native
