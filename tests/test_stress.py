"""Stress: 8 sender threads x many acknowledged UIPIs, under many schedule seeds, never lose
or duplicate an interrupt (tests/programs/stress_uipi.c).

Each sender waits for the receiver's count of its vector to go up before sending again, so
every SENDUIPI must be delivered exactly once whatever the schedule: one receiver for all
eight senders, or one receiver per sender; the default slice and a short one (more preemption
inside the spin loops). The runs go through `uintr-emu explore`'s worker pool, so every seed is
a complete `uintr-emu run --seed N`.

The issue's size (8 x 10,000 over 50 seeds) takes minutes: benchmarks/stress.py runs it.
Here: 8 x 500 over 10 seeds (default slice) or 5 seeds (slice 2000) per configuration.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from uintr_emu import Options, explore

SENDERS = 8
SENDS = 500
SEEDS = {10_000: list(range(10)), 2_000: list(range(10, 15))}  # per slice; 0 is the plain one
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"  # uintr.h
UINTR_CFLAGS = ("-muintr", "-mgeneral-regs-only", "-I", str(EXAMPLES))


def expected_output(senders: int, sends: int, receivers: int) -> str:
    lines = [
        f"stress: {senders} senders x {sends} acknowledged UIPIs to {receivers} "
        f"receiver{'' if receivers == 1 else 's'}"
    ]
    lines += [f"sender {v}: {sends} sent, {sends} received" for v in range(senders)]
    lines += [f"total: {senders * sends} sent, {senders * sends} received, 0 duplicated", "OK"]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def stress_program(build_program):
    return build_program("stress_uipi", UINTR_CFLAGS)


@pytest.mark.parametrize(
    ("receivers", "slice_"),
    [(1, 10_000), (SENDERS, 10_000), (1, 2_000), (SENDERS, 2_000)],
    ids=["1-receiver", "8-receivers", "1-receiver-slice2000", "8-receivers-slice2000"],
)
def test_no_interrupt_lost_or_duplicated(stress_program, receivers, slice_):
    path = str(stress_program)
    argv = [path, str(SENDERS), str(SENDS), str(receivers)]
    job = explore.Job(Options(cpus=4, slice=slice_, timeout=120), path, argv, [], [])
    seeds = SEEDS[slice_]
    results = explore.explore(job, seeds, os.cpu_count() or 1, explore.Progress(0, False))
    expected = expected_output(SENDERS, SENDS, receivers)
    bad = {
        seed: (r.status, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace"))
        for seed, r in sorted(results.items())
        if (r.status, r.stdout.decode(errors="replace")) != (0, expected)
    }
    assert sorted(results) == seeds
    assert not bad, f"seeds with lost, duplicated or stray interrupts (or errors): {bad}"
