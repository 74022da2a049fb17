"""What tracing costs when it is off: the tree as it is against a copy in which every tracing
check (`if self.tracer.sinks:` and the like) is replaced by `if False:`, which Python compiles
away. Both run the same event-heavy workloads, alternating, and the medians are compared.

    python benchmarks/trace_cost.py [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHECK = re.compile(r"if (self\.tracer|self\.k\.tracer|tr)\.sinks:")


def strip_tracing(dest: Path) -> int:
    shutil.copytree(ROOT / "src", dest / "src")
    n = 0
    for path in (dest / "src").rglob("*.py"):
        text = path.read_text()
        new, k = CHECK.subn("if False:", text)
        if k:
            path.write_text(new)
            n += k
    return n


def timed(src: Path, args: list[str]) -> float:
    env = dict(os.environ, PYTHONPATH=str(src))
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "uintr_emu", "run", *args], env=env, check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    workloads = {
        "pingpong 20000 (UIPIs)": ["--cpus", "2", str(ROOT / "examples/bin/pingpong"), "20000"],
        "ipc_bench (syscalls, signals)": ["--cpus", "2", str(ROOT / "examples/bin/ipc_bench")],
    }
    with tempfile.TemporaryDirectory() as tmp:
        n = strip_tracing(Path(tmp))
        print(f"tracing checks compiled away in the copy: {n}")
        for name, wl in workloads.items():
            on, off = [], []
            for _ in range(args.repeat):
                off.append(timed(Path(tmp) / "src", wl))
                on.append(timed(ROOT / "src", wl))
            m_on, m_off = statistics.median(on), statistics.median(off)
            print(f"{name}: with checks {m_on:.3f} s, without {m_off:.3f} s, "
                  f"ratio {m_on / m_off:.3f} (target <= 1.02)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
