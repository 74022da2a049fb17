"""A long fuzz campaign: tests/test_fuzz.py with more examples, repeated with new seeds.

    .venv/bin/python benchmarks/fuzz_long.py                     # 20x the CI examples, once
    .venv/bin/python benchmarks/fuzz_long.py --scale 50 --minutes 60
    .venv/bin/python benchmarks/fuzz_long.py -k syscall --minutes 30

Each round runs ``pytest tests/test_fuzz.py`` with ``UINTR_FUZZ_EXAMPLES=<scale>`` (every
``max_examples`` is multiplied by it) and a fresh ``--hypothesis-seed``; rounds repeat until
``--minutes`` have passed (at least one round).  A failing round prints pytest's report, with
the falsifying example and the seed to reproduce it:

    UINTR_FUZZ_EXAMPLES=<scale> .venv/bin/pytest tests/test_fuzz.py --hypothesis-seed=<seed>

Exit status: 0 if every round passed, 1 otherwise.  The test-suite's known bugs (strict
xfails, docs/robustness.md) are tolerated exactly as in CI.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", type=int, default=20, help="multiplier of max_examples (20)")
    p.add_argument("--minutes", type=float, default=0, help="repeat rounds for this long (0)")
    p.add_argument("-k", dest="select", default=None, help="pytest -k expression")
    p.add_argument("--seed", type=int, default=None, help="first hypothesis seed (random)")
    ns = p.parse_args()

    env = {**os.environ, "UINTR_FUZZ_EXAMPLES": str(ns.scale)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), env.get("PYTHONPATH")]))
    seed = ns.seed if ns.seed is not None else random.randrange(2**32)
    deadline = time.monotonic() + ns.minutes * 60
    rounds = failed = 0
    while True:
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            "tests/test_fuzz.py",
            "-p",
            "no:cacheprovider",
            f"--hypothesis-seed={seed}",
            "-m",
            "not slow",
            "--hypothesis-show-statistics",
        ]
        if ns.select:
            cmd += ["-k", ns.select]
        start = time.monotonic()
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
        took = time.monotonic() - start
        rounds += 1
        summary = (
            re.findall(r"^=*\s*(\d+ (?:passed|failed).*?)\s*=*$", proc.stdout, re.M) or ["?"]
        )[-1]
        cases = sum(int(n) for n in re.findall(r"(\d+) passing examples", proc.stdout))
        print(
            f"round {rounds}: seed {seed}, scale {ns.scale}: {cases} hypothesis cases, "
            f"{summary} ({took:.0f} s)",
            flush=True,
        )
        if proc.returncode != 0:
            failed += 1
            print(proc.stdout[-20000:], proc.stderr[-5000:], sep="\n", flush=True)
            print(
                f"reproduce: UINTR_FUZZ_EXAMPLES={ns.scale} .venv/bin/pytest "
                f"tests/test_fuzz.py --hypothesis-seed={seed}",
                flush=True,
            )
        seed = (seed + 1) % 2**32
        if time.monotonic() >= deadline:
            break
    print(f"{rounds} round(s), {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
