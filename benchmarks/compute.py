"""Compute benchmark: one static program, every runner, ratios from one run.

Runs `benchmarks/programs/compute_bench.c` natively, under qemu-x86_64 (if installed), under the
bare Unicorn runner (`bare_unicorn.py`) and under uintr-emu, single-threaded and with 4 busy
threads; then a static hello world's start-up time. Each figure is the best of `--repeat` runs;
ratios are taken against runs made in the same invocation. `benchmarks/run.py` is the whole
suite; it reuses the helpers of this module (`build`, `measure`, `best_of`, `compute_runs`).

    python benchmarks/compute.py [--scale N] [--repeat N]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build" / "bench"
PROGRAMS = ROOT / "benchmarks" / "programs"
PY = sys.executable
EMU = [PY, "-m", "uintr_emu", "run"]
HELLO = '#include <stdio.h>\nint main(void) { puts("hello"); return 0; }\n'
# What examples/Makefile uses for UINTR programs (uintr-next ABI).
UINTR_CFLAGS = ("-muintr", "-mgeneral-regs-only", f"-I{ROOT / 'examples'}")


def build(name: str, source: Path | str, static: bool = True, cflags: Sequence[str] = ()) -> Path:
    """Compile a C source (a path or the text itself) once into build/bench/, keyed by a hash
    of the text and the flags."""
    text = source.read_text() if isinstance(source, Path) else source
    key = text + "\0" + " ".join(cflags) + ("" if static else "\0dynamic")
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    out = BUILD / f"{name}-{'static' if static else 'dynamic'}-{digest}"
    if not out.exists():
        BUILD.mkdir(parents=True, exist_ok=True)
        src = BUILD / f"{name}.c"
        src.write_text(text)
        link = ["-static"] if static else []
        cmd = ["gcc", "-O2", *link, "-pthread", *cflags, "-o", str(out), str(src)]
        subprocess.run(cmd, check=True)
    return out


@dataclass
class Measurement:
    """One run of a command: host wall time, the child's CPU time and peak RSS (wait4)."""

    cmd: list[str]
    wall: float
    cpu: float  # user + system seconds of the child
    maxrss_kb: int  # wait4's ru_maxrss: includes the forked parent's pages, prefer peak_rss_kb
    returncode: int
    stdout: str
    stderr: str
    stdout_sha256: str = ""  # of the raw bytes: binary output (xz) does not survive decoding

    def ok(self) -> bool:
        return self.returncode == 0


def measure(
    cmd: Sequence[str], timeout: float | None = None, env: dict | None = None
) -> Measurement:
    """Run `cmd` once with its output captured in temporary files; the wall time around the
    child and that child's own rusage (os.wait4). A timeout kills it (returncode -9)."""
    cmd = [str(c) for c in cmd]
    with tempfile.TemporaryFile() as fout, tempfile.TemporaryFile() as ferr:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=fout, stderr=ferr, env=env)
        timer = threading.Timer(timeout, p.kill) if timeout else None
        if timer is not None:
            timer.start()
        _, status, ru = os.wait4(p.pid, 0)
        dt = time.perf_counter() - t0
        if timer is not None:
            timer.cancel()
        p.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        fout.seek(0)
        ferr.seek(0)
        raw = fout.read()
        err = ferr.read().decode(errors="replace")
    cpu = ru.ru_utime + ru.ru_stime
    digest = hashlib.sha256(raw).hexdigest()
    out = raw.decode(errors="replace")
    return Measurement(cmd, dt, cpu, ru.ru_maxrss, p.returncode, out, err, digest)


def best_of(
    cmd: Sequence[str],
    repeat: int,
    check: bool = True,
    timeout: float | None = None,
    on_run: Callable[[Measurement], None] | None = None,
    env: dict | None = None,
) -> tuple[Measurement, list[Measurement]]:
    """Run `repeat` times; the fastest run (wall) and all runs. A failed run stops it (and
    raises SystemExit when `check`)."""
    runs: list[Measurement] = []
    for _ in range(max(repeat, 1)):
        m = measure(cmd, timeout=timeout, env=env)
        runs.append(m)
        if on_run is not None:
            on_run(m)
        if not m.ok():
            if check:
                raise SystemExit(f"failed ({m.returncode}): {' '.join(m.cmd)}\n{m.stderr}")
            return m, runs
    return min(runs, key=lambda m: m.wall), runs


def timed(cmd: list[str], repeat: int) -> tuple[float, str]:
    best, _ = best_of(cmd, repeat)
    return best.wall, best.stdout


def compute_program() -> Path:
    return build("compute_bench", PROGRAMS / "compute_bench.c")


def compute_runs(prog: Path, scale: int, qemu: str | None) -> list[tuple[str, list[str]]]:
    """(name, command) of every compute runner; names with "4 threads" do 4x the work."""
    s = str(scale)
    runs: list[tuple[str, list[str]]] = [("native", [str(prog), s])]
    if qemu:
        runs.append(("qemu-x86_64", [qemu, str(prog), s]))
    runs += [
        ("bare unicorn", [PY, str(ROOT / "benchmarks" / "bare_unicorn.py"), str(prog), s]),
        ("uintr-emu", [*EMU, str(prog), s]),
        ("native, 4 threads", [str(prog), s, "4"]),
        ("uintr-emu, 4 threads", [*EMU, str(prog), s, "4"]),
    ]
    return runs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=int, default=10, help="work per thread (default 10)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per figure, best kept")
    args = ap.parse_args()
    prog = compute_program()
    hello = str(build("hello", HELLO))
    results: dict[str, float] = {}
    outputs: dict[str, str] = {}
    for name, cmd in compute_runs(prog, args.scale, shutil.which("qemu-x86_64")):
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
    t_hello, _ = timed([*EMU, hello], max(args.repeat, 5))
    t_dyn, _ = timed([*EMU, str(build("hello", HELLO, static=False))], max(args.repeat, 5))
    t_py, _ = timed([PY, "-c", "pass"], max(args.repeat, 5))
    print(f"hello world under uintr-emu: static {t_hello:.3f} s, dynamic {t_dyn:.3f} s wall "
          f"(python start-up alone: {t_py:.3f} s)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
