"""The UINTR examples (examples/bin, prebuilt) print their golden output under both ABIs and
1, 2 and 4 CPUs, deterministically; the demo command explains the UIPI demo."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / "examples" / "bin"
PROGRAMS = ["uipi_demo", "self_ipi", "pingpong", "many_senders", "blocked_wait", "fork_ipc"]


def emu(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "uintr_emu", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.mark.parametrize("cpus", [1, 2, 4])
@pytest.mark.parametrize("abi", ["next", "rfc"])
@pytest.mark.parametrize("name", PROGRAMS)
def test_example_golden_output(name: str, abi: str, cpus: int, golden) -> None:
    binary = BIN / (name if abi == "next" else f"{name}-rfc")
    r = emu("run", "--uintr-abi", abi, "--cpus", str(cpus), str(binary))
    assert r.returncode == 0, r.stderr
    golden.check(f"examples/{name}.out", r.stdout)


def test_example_without_uintr_reports_unsupported() -> None:
    r = emu("run", "--cpu-features=-uintr", str(BIN / "uipi_demo"))
    assert r.returncode == 1
    assert "UINTR not supported: ENOSYS" in r.stdout + r.stderr
    r = emu("run", "--cpu-features=-uintr", "--uintr-abi", "rfc", str(BIN / "uipi_demo-rfc"))
    assert "UINTR not supported: EOPNOTSUPP" in r.stdout + r.stderr


def test_ipc_bench_is_deterministic_and_ranks_uintr_first() -> None:
    runs = [emu("run", "--cpus", "2", str(BIN / "ipc_bench"), "300") for _ in range(2)]
    assert runs[0].returncode == 0, runs[0].stderr
    assert runs[0].stdout == runs[1].stdout
    last = runs[0].stdout.strip().splitlines()[-2]  # "uintr 1.0 : eventfd x : pipe y : signal z"
    ratios = [float(part.split()[1]) for part in last.split(":")]
    assert ratios[0] == 1.0 and all(r > 1.0 for r in ratios[1:]), last


def test_demo_explains_the_user_interrupt(golden) -> None:
    r = emu("demo")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    # A prefix, not the whole output: --update-golden leaves it to test_example_golden_output.
    assert out.startswith(golden.read("examples/uipi_demo.out"))
    assert "executed SENDUIPI with UITT index 0" in out
    assert "delivered vector 0 to thread" in out
    assert "guest instructions (virtual ns) after the SENDUIPI" in out


def test_prebuilt_examples_are_their_sources(tmp_path: Path) -> None:
    """examples/bin is committed (and setup.py ships the demo from it): each binary must be what
    examples/Makefile builds from the sources next to it (gcc's static builds are reproducible)."""
    src = tmp_path / "examples"
    src.mkdir()
    for f in (ROOT / "examples").iterdir():
        if f.is_file() and f.suffix in (".c", ".h") or f.name == "Makefile":
            (src / f.name).write_bytes(f.read_bytes())
    subprocess.run(["make", "-s", "-C", str(src)], check=True, capture_output=True, timeout=300)
    built = sorted(p.name for p in (src / "bin").iterdir())
    assert built == sorted(p.name for p in BIN.iterdir()), "examples/bin and the Makefile disagree"
    stale = [n for n in built if (src / "bin" / n).read_bytes() != (BIN / n).read_bytes()]
    assert not stale, f"rebuild with 'make -C examples': {stale}"


def test_an_installed_package_runs_the_demo_of_each_abi(tmp_path: Path) -> None:
    """`pip install .` alone (no make, no source tree) gives a working `uintr-emu demo`, for both
    bundled builds; an ABI without a bundled build is one error line."""
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "-w", str(tmp_path / "wheel"), str(ROOT)],
                   check=True, capture_output=True, timeout=600)  # fmt: skip
    (wheel,) = (tmp_path / "wheel").iterdir()
    target = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)  # fmt: skip
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(target)}  # unicorn: this venv's
    for abi in ("next", "rfc"):
        cmd = [sys.executable, "-m", "uintr_emu", "demo", "--uintr-abi", abi]
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
        assert r.returncode == 0, r.stderr
        assert "delivered vector 0 to thread" in r.stdout, (abi, r.stdout)
    probe = [sys.executable, "-c", "import uintr_emu.demo as d; print(d.demo_program())"]
    where = subprocess.run(probe, capture_output=True, text=True, env=env, check=True).stdout
    assert where.startswith(str(target)), where
    r = subprocess.run([sys.executable, "-m", "uintr_emu", "demo", "--uintr-abi", "rfc:471"],
                       capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "built for --uintr-abi next and rfc" in r.stderr
