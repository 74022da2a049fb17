"""Whole programs with and without the native fast path: the same output, exit status,
instruction counts per thread and per CPU, and virtual end time. The fast path is an
implementation of the model, not a different machine (docs/performance.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from uintr_emu import machine
from uintr_emu.api import Machine, Options
from uintr_emu.engine import native

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / "examples" / "bin"

pytestmark = pytest.mark.requires_native

CASES = [
    ("pingpong", ["300"], 2),
    ("pingpong", ["100"], 1),
    ("pingpong", ["200"], 4),
    ("uipi_demo", [], 2),
    ("self_ipi", [], 1),
    ("many_senders", [], 4),
    ("blocked_wait", [], 2),
    ("fork_ipc", [], 2),
    ("ipc_bench", ["40"], 2),
]


def observe(monkeypatch: pytest.MonkeyPatch, path: Path, args: list[str], cpus: int, abi: str,
            fast: bool, seed: int = 0) -> tuple[Any, ...]:  # fmt: skip
    engines = []
    new_engine = machine.Machine.new_engine

    def recording(self: machine.Machine) -> Any:
        e = new_engine(self)
        engines.append(e)
        return e

    monkeypatch.setattr(machine.Machine, "new_engine", recording)
    m = Machine(Options(cpus=cpus, uintr_abi=abi, seed=seed, fast_path=fast))
    m.load(str(path), [str(path), *args], capture_output=True)
    r = m.run()
    k = m.kernel
    assert k is not None
    native_work = sum(sum(native.stats(e.fast).values()) - native.stats(e.fast)["slow"]
                      for e in engines if e.fast is not None)  # fmt: skip
    assert (native_work > 0) == fast, "the fast path ran iff it was on"
    return (
        r.status,
        r.stdout,
        r.stderr,
        k.total_insns,
        k.clock.round_start,
        k.thread_insns,
        k.cpu_insns,
    )


@pytest.mark.parametrize("abi", ["next", "rfc"])
@pytest.mark.parametrize(("name", "args", "cpus"), CASES)
def test_fast_path_runs_programs_exactly_as_the_model(
    monkeypatch: pytest.MonkeyPatch, name: str, args: list[str], cpus: int, abi: str
) -> None:
    path = BIN / (name if abi == "next" else f"{name}-rfc")
    fast = observe(monkeypatch, path, args, cpus, abi, fast=True)
    model = observe(monkeypatch, path, args, cpus, abi, fast=False)
    assert fast[0] == 0, fast[2]
    assert fast == model


@pytest.mark.parametrize("seed", [1, 7])
def test_fast_path_is_exact_under_seeded_schedules(
    monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    path = BIN / "many_senders"
    fast = observe(monkeypatch, path, [], 4, "next", fast=True, seed=seed)
    model = observe(monkeypatch, path, [], 4, "next", fast=False, seed=seed)
    assert fast == model
