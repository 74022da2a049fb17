"""UIPI stress at full size: 8 sender threads x 10,000 acknowledged UIPIs, 50 seeds.

Runs tests/programs/stress_uipi.c (tests/test_stress.py runs it scaled down) once per seed
through `uintr-emu explore`'s worker pool, checks that every seed delivered every interrupt
exactly once, and prints the counts and the time: wall time of the whole sweep, and per run
the host CPU time and wall time inside its worker.

    python benchmarks/stress.py [--senders 8] [--sends 10000] [--receivers 1] [--seeds 1-50]
                                [--slice 10000] [--cpus 4] [--jobs N]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from uintr_emu import Options, explore

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "tests" / "programs" / "stress_uipi.c"
BUILD = ROOT / "build" / "bench"
# The flags of tests/test_stress.py (conftest's -O2 -static -pthread -Wall plus UINTR's).
CFLAGS = ["-O2", "-static", "-pthread", "-Wall", "-muintr", "-mgeneral-regs-only",
          "-I", str(ROOT / "examples")]  # fmt: skip


def build() -> Path:
    """Compile stress_uipi.c once into build/bench/, keyed by a hash of the source and flags."""
    key = SOURCE.read_bytes() + "\0".join(CFLAGS).encode()
    out = BUILD / f"stress_uipi-{hashlib.sha256(key).hexdigest()[:12]}"
    if not out.exists():
        BUILD.mkdir(parents=True, exist_ok=True)
        subprocess.run(["gcc", *CFLAGS, "-o", str(out), str(SOURCE)], check=True)
    return out


def timed_run(job: explore.Job, seed: int) -> tuple[explore.Result, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    r = explore.run_seed(job, seed)
    return r, time.perf_counter() - wall, time.process_time() - cpu


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--senders", type=int, default=8)
    ap.add_argument("--sends", type=int, default=10_000)
    ap.add_argument("--receivers", type=int, default=1)
    ap.add_argument("--seeds", default="1-50")
    ap.add_argument("--slice", type=int, default=10_000)
    ap.add_argument("--cpus", type=int, default=4)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    a = ap.parse_args()

    prog = str(build())
    seeds = explore.parse_seeds(a.seeds)
    argv = [prog, str(a.senders), str(a.sends), str(a.receivers)]
    job = explore.Job(Options(cpus=a.cpus, slice=a.slice), prog, argv, [], [])
    print(f"stress_uipi: {a.senders} senders x {a.sends} UIPIs -> {a.receivers} receiver(s), "
          f"{a.cpus} CPUs, slice {a.slice}, seeds {explore.format_seeds(seeds)}, "
          f"{a.jobs} workers", flush=True)  # fmt: skip

    from concurrent.futures import ProcessPoolExecutor, as_completed

    start = time.perf_counter()
    runs: dict[int, tuple[explore.Result, float, float]] = {}
    with ProcessPoolExecutor(max_workers=a.jobs, initializer=explore._worker_init) as pool:
        futures = {pool.submit(timed_run, job, s): s for s in seeds}
        for f in as_completed(futures):
            r, wall, cpu = f.result()
            runs[r.seed] = (r, wall, cpu)
            ok = "ok" if r.status == 0 else f"FAILED (status {r.status})"
            print(f"  seed {r.seed:>4}: {ok}, {cpu:6.1f} s cpu, {wall:6.1f} s wall "
                  f"[{len(runs)}/{len(seeds)}]", flush=True)  # fmt: skip
    elapsed = time.perf_counter() - start

    outcomes = explore.group({s: r for s, (r, _, _) in runs.items()})
    print()
    for oc in outcomes:
        print(f"{len(oc.seeds)} seed(s) ({explore.format_seeds(oc.seeds)}): exit status "
              f"{oc.status}")  # fmt: skip
        for line in oc.stdout.decode(errors="replace").splitlines():
            print(f"  | {line}")
        if oc.stderr:
            print(f"  stderr: {oc.stderr.decode(errors='replace').strip()}")
    cpus = [c for _, _, c in runs.values()]
    walls = [w for _, w, _ in runs.values()]
    print(f"\nper run: cpu mean {statistics.mean(cpus):.1f} s (min {min(cpus):.1f}, max "
          f"{max(cpus):.1f}); wall mean {statistics.mean(walls):.1f} s")  # fmt: skip
    print(f"total: {len(seeds)} runs in {elapsed:.0f} s wall ({a.jobs} workers), "
          f"{sum(cpus):.0f} s cpu")  # fmt: skip
    good = len(outcomes) == 1 and outcomes[0].status == 0
    print("RESULT:", "every seed delivered every interrupt exactly once" if good else "FAILED")
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
