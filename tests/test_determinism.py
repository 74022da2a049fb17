"""Determinism: the same program, options and seed give the same output and the same event
trace, run after run and process after process.

100 runs of `examples/bin/pingpong 200` with `--cpus 4 --seed 7` (two threads interrupting each
other, a varied schedule): every run's stdout and the sha256 of its `--trace all` log must be
identical. The runs are in-process (`Machine` with a sink that hashes exactly the lines
`--trace all --trace-file` writes), spread over worker processes, so the check covers runs
that follow one another in one process as well as separate processes; two real
`uintr-emu run --trace all --trace-file F` runs must give that same hash for F.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from uintr_emu import Machine, Options
from uintr_emu.trace.text import TextLog, format_event, parse_categories

ROOT = Path(__file__).resolve().parents[1]
PINGPONG = str(ROOT / "examples" / "bin" / "pingpong")
ARGV = [PINGPONG, "200"]
RUNS = 100
CPUS, SEED = 4, 7
ALL = parse_categories("all")
# The guest's environment, the same in-process and (as the host environment) for the CLI
# runs; LC_ALL=C keeps Python from adding LC_CTYPE to the CLI's environment (PEP 538).
HOST_ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT / "src"),
            "LC_ALL": "C"}  # fmt: skip
GUEST_ENV = [f"{k}={v}" for k, v in HOST_ENV.items()]


class TraceHash:
    """A sink hashing the --trace all log: what TextLog would write, line for line."""

    def __init__(self) -> None:
        self.sha = hashlib.sha256()
        self.lines = 0

    def __call__(self, ev) -> None:
        if ev.kind in ALL:
            self.sha.update((format_event(ev) + "\n").encode())
            self.lines += 1


def one_run(seed: int = SEED) -> tuple[int, bytes, str, int]:
    """(status, stdout, trace sha256, trace lines) of one in-process run."""
    m = Machine(Options(cpus=CPUS, seed=seed))
    trace = TraceHash()
    m.subscribe(trace)
    m.load(PINGPONG, ARGV, GUEST_ENV, capture_output=True)
    r = m.run()
    return r.status, r.stdout, trace.sha.hexdigest(), trace.lines


def test_sink_hashes_what_textlog_writes(tmp_path):
    """TraceHash and TextLog(all) see the same lines (so the hash is the --trace-file hash)."""
    path = tmp_path / "trace"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    m = Machine(Options(cpus=CPUS, seed=SEED))
    trace = TraceHash()
    m.subscribe(TextLog(ALL, fd))
    m.subscribe(trace)
    m.load(PINGPONG, [PINGPONG, "20"], GUEST_ENV, capture_output=True)
    assert m.run().status == 0
    os.close(fd)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == trace.sha.hexdigest()


def test_100_runs_identical_output_and_trace(tmp_path, run_cli):
    ctx = multiprocessing.get_context("fork")  # workers need no re-import of this module
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1, mp_context=ctx) as pool:
        futures = [pool.submit(one_run) for _ in range(RUNS)]
        runs = [f.result() for f in futures]
    first = runs[0]
    status, stdout, digest, lines = first
    assert status == 0 and stdout.endswith(b"Success\n"), first[:2]
    assert lines > 1000, f"a trace of {lines} lines is too small to mean much"
    differing = [i for i, r in enumerate(runs) if r != first]
    assert not differing, f"runs {differing} differ from run 0: {[runs[i] for i in differing]}"

    # The command line: the same stdout, and the trace file hashes the same.
    for n in range(2):
        trace = tmp_path / f"trace{n}"
        rc, out, err = run_cli(
            "run", "--cpus", str(CPUS), "--seed", str(SEED), "--trace", "all", "--trace-file",
            str(trace), *ARGV, env=HOST_ENV, timeout=120,
        )  # fmt: skip
        assert (rc, out) == (0, stdout), err.decode(errors="replace")
        assert hashlib.sha256(trace.read_bytes()).hexdigest() == digest, f"CLI run {n}"


def test_another_seed_gives_another_trace():
    """The hash does see the schedule: seed 8 runs the same program differently."""
    a, b = one_run(SEED), one_run(SEED + 1)
    assert a[:2] == b[:2]  # the same output (the program is correct under every schedule)
    assert a[2] != b[2]


if __name__ == "__main__":  # python tests/test_determinism.py: the digest of one run
    print(one_run(int(sys.argv[1]) if len(sys.argv) > 1 else SEED)[2:])
