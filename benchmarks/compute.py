"""Compute benchmark: one static program, every runner, ratios from one run.

Runs `benchmarks/programs/compute_bench.c` natively, under qemu-x86_64 (if installed), under the
bare Unicorn runner (the engine's ceiling, `bare_unicorn.py`) and under uintr-emu, single-
threaded and with 4 busy threads; then a static hello world's start-up time. Each figure is the
best of `--repeat` runs; ratios are taken against runs made in the same invocation.

    python benchmarks/compute.py [--scale N] [--repeat N]
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build" / "bench"
PY = sys.executable
HELLO = '#include <stdio.h>\nint main(void) { puts("hello"); return 0; }\n'


def build(name: str, source: Path | str, static: bool = True) -> Path:
    text = source.read_text() if isinstance(source, Path) else source
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    out = BUILD / f"{name}-{'static' if static else 'dynamic'}-{digest}"
    if not out.exists():
        BUILD.mkdir(parents=True, exist_ok=True)
        src = BUILD / f"{name}.c"
        src.write_text(text)
        link = ["-static"] if static else []
        cmd = ["gcc", "-O2", *link, "-pthread", "-o", str(out), str(src)]
        subprocess.run(cmd, check=True)
    return out


def timed(cmd: list[str], repeat: int) -> tuple[float, str]:
    best, out = float("inf"), ""
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True, check=False)
        dt = time.perf_counter() - t0
        if r.returncode != 0:
            raise SystemExit(f"failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr}")
        best, out = min(best, dt), r.stdout
    return best, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=int, default=10, help="work per thread (default 10)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per figure, best kept")
    args = ap.parse_args()
    prog = str(build("compute_bench", ROOT / "benchmarks" / "programs" / "compute_bench.c"))
    hello = str(build("hello", HELLO))
    emu = [PY, "-m", "uintr_emu", "run"]
    s = str(args.scale)
    runs: list[tuple[str, list[str]]] = [("native", [prog, s])]
    if shutil.which("qemu-x86_64"):
        runs.append(("qemu-x86_64", ["qemu-x86_64", prog, s]))
    runs += [
        ("bare unicorn", [PY, str(ROOT / "benchmarks" / "bare_unicorn.py"), prog, s]),
        ("uintr-emu", [*emu, prog, s]),
        ("native, 4 threads", [prog, s, "4"]),
        ("uintr-emu, 4 threads", [*emu, prog, s, "4"]),
    ]
    results: dict[str, float] = {}
    outputs: dict[str, str] = {}
    for name, cmd in runs:
        sys.stderr.write(f"running {name} ...\n")
        results[name], outputs[name] = timed(cmd, args.repeat)
    single = {n: o for n, o in outputs.items() if "4 threads" not in n}
    if len(set(single.values())) != 1:
        raise SystemExit(f"runners disagree on the output: {single}")
    bare = results["bare unicorn"]
    print(f"compute_bench scale {args.scale} (best of {args.repeat})")
    print(f"{'runner':<24}{'seconds':>10}{'x native':>10}{'x bare':>10}")
    for name, dt in results.items():
        nat = results["native, 4 threads" if "4 threads" in name else "native"]
        print(f"{name:<24}{dt:>10.3f}{dt / nat:>10.1f}{dt / bare:>10.2f}")
    # With 4 threads the work is 4x the single-threaded run's: compare per unit of work.
    four = results["uintr-emu, 4 threads"] / (4 * bare)
    print(f"uintr-emu / bare, single thread: {results['uintr-emu'] / bare:.3f}")
    print(f"uintr-emu 4 threads / (4 x bare single): {four:.3f}")
    t_hello, _ = timed([*emu, hello], max(args.repeat, 5))
    t_dyn, _ = timed([*emu, str(build("hello", HELLO, static=False))], max(args.repeat, 5))
    t_py, _ = timed([PY, "-c", "pass"], max(args.repeat, 5))
    print(f"hello world under uintr-emu: static {t_hello:.3f} s, dynamic {t_dyn:.3f} s wall "
          f"(python start-up alone: {t_py:.3f} s)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
