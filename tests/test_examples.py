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
