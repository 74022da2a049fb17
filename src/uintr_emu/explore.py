"""`uintr-emu explore`: run one program under many schedule seeds and group the outcomes.

Each seed is one `uintr-emu run --seed N` of the program, done in-process (through `Machine`,
output captured) by a pool of worker processes: a run costs the emulation only, not a Python
start-up and import (about 0.4 s each). A seed whose worker died (a crash of the engine itself)
is run again in a subprocess. An outcome is the guest's stdout and the exit status; the report
lists the distinct outcomes, most frequent first, with their seeds. docs/explore.md.
"""

from __future__ import annotations

import argparse
import gc
import os
import shlex
import signal
import sys
import textwrap
import threading
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from .cliopts import (
    add_run_options,
    guest_environment,
    options_from,
    plural,
    positive,
    run_args,
)
from .hostsignals import reset_in_child
from .options import Options

if TYPE_CHECKING:
    import subprocess
    from collections.abc import Callable
    from concurrent.futures import Future

    from .api import Machine

DEFAULT_SEEDS = "1-100"
MAX_SEEDS = 1_000_000
SHOW_LINES = 20  # stdout lines shown per outcome
SHOW_STDERR_LINES = 5

EPILOG = """\
exit status: 0 if every seed gave the same outcome (stdout and exit status), 1 if they differ,
2 for bad usage or a program that cannot be loaded. The guest's stdin is empty.
"""


# --------------------------------------------------------------------------- seeds


def parse_seeds(spec: str) -> list[int]:
    """'1-500', '1,5,9', '1-10,20-30' -> the sorted distinct seeds (ValueError if bad)."""
    seeds: set[int] = set()
    parts = [p.strip() for p in spec.split(",")]
    if not spec.strip() or any(not p for p in parts):
        raise ValueError(f"--seeds {spec!r}: expected e.g. 1-500, 1,5,9 or 1-10,20-30")
    for part in parts:
        lo_s, sep, hi_s = part.partition("-")
        try:
            lo = _seed_number(lo_s)
            hi = _seed_number(hi_s) if sep else lo
        except ValueError:
            raise ValueError(
                f"--seeds {spec!r}: {part!r} is not a seed (N) or a range (N-M) of "
                "non-negative integers"
            ) from None
        if hi < lo:
            raise ValueError(f"--seeds {spec!r}: empty range {part!r}")
        if hi - lo + 1 + len(seeds) > MAX_SEEDS:
            raise ValueError(f"--seeds {spec!r}: more than {MAX_SEEDS} seeds")
        seeds.update(range(lo, hi + 1))
    return sorted(seeds)


def _seed_number(s: str) -> int:
    s = s.strip()
    if not s.isdigit():  # no sign, no spaces inside, no underscores
        raise ValueError(s)
    return int(s)


def format_seeds(seeds: list[int]) -> str:
    """[1, 2, 3, 4, 7, 9, 10] -> '1-4, 7, 9-10' (the input sorted)."""
    out: list[str] = []
    ordered = sorted(seeds)
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        out.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ", ".join(out)


# --------------------------------------------------------------------------- the command line


# Options of `run` (cliopts.py) that explore does not take, beyond the "tracing" group (per-run
# output, which N runs in parallel would interleave: use them on a replay command): the seed is
# what explore varies, and the host clock would make an outcome depend on more than its seed.
# docs/explore.md, "Options"; tests/test_explore.py checks that nothing else is missing.
NOT_EXPLORED = ("--seed", "--realtime")
EXPLORED_GROUPS = ("machine", "guest", "limits")


def add_parser(sub) -> argparse.ArgumentParser:  # type: ignore[no-untyped-def]
    """The `explore` subcommand: --seeds, --jobs and the run options of EXPLORED_GROUPS but
    NOT_EXPLORED, spelled, checked and explained as for `run`."""
    p = sub.add_parser(
        "explore",
        help="run a program under many schedule seeds and compare the outcomes",
        description="Run PROGRAM once per seed (as 'uintr-emu run --seed N' would), in parallel,\n"
        "and report the distinct outcomes (stdout and exit status) with their seeds.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    e = p.add_argument_group("exploration")
    e.add_argument(
        "--seeds",
        default=DEFAULT_SEEDS,
        metavar="SPEC",
        help=f"seeds to run: 1-500, 1,5,9 or 1-10,20-30 (default {DEFAULT_SEEDS})",
    )
    e.add_argument(
        "--jobs",
        "-j",
        type=positive(),
        default=None,
        metavar="N",
        help="worker processes (default: the host's CPU count)",
    )
    e.add_argument(
        "--cluster",
        default=None,
        metavar="ADDRESS",
        help="run the seeds on the Dask scheduler at ADDRESS (e.g. tcp://host:8786) instead of "
        "local workers; needs `pip install uintr-emu[cluster]` (docs/explore.md)",
    )
    add_run_options(p, groups=EXPLORED_GROUPS, exclude=NOT_EXPLORED)
    p.add_argument("program", metavar="PROGRAM", help="the program to run")
    p.add_argument(
        "args", nargs=argparse.REMAINDER, metavar="ARGS", help="arguments passed to the program"
    )
    return p


@dataclass(frozen=True)
class Job:
    """Everything one seed's run needs (picklable: it goes to the workers)."""

    options: Options
    program: str
    argv: list[str]
    env: list[str]
    run_args: list[str]  # the `uintr-emu run` options that reproduce `options` (but --seed)


def _job_from(ns: argparse.Namespace) -> Job:
    env = guest_environment(ns.setenv, ns.unsetenv)
    return Job(options_from(ns), ns.program, [ns.program, *ns.args], env, run_args(ns))


def main(ns: argparse.Namespace) -> int:
    """`uintr-emu explore`; returns the exit status. Bad usage and a program that cannot be
    loaded raise ValueError or ProgramError (cli.main prints them as one error line)."""
    from .api import Machine  # lazy: the engine takes ~0.5 s to import (see cli.main)

    seeds = parse_seeds(ns.seeds)
    if ns.cluster is not None and ns.jobs is not None:
        raise ValueError("--jobs and --cluster: the cluster's workers are the jobs")
    job = _job_from(ns)
    # Load once here, so that a missing or bad program is one error line, not N outcomes.
    probe = Machine(job.options)
    probe.load(job.program, job.argv, job.env, capture_output=True)
    del probe
    gc.collect()
    jobs = ns.jobs or os.cpu_count() or 1
    progress = Progress(len(seeds), enabled=sys.stderr.isatty())
    start = time.monotonic()
    try:
        if ns.cluster:
            from .cluster import explore_on_cluster  # lazy: Dask, an optional dependency

            def workers(n: int) -> None:
                nonlocal jobs
                jobs = n

            results = explore_on_cluster(job, seeds, ns.cluster, progress, workers)
        else:
            results = explore(job, seeds, jobs, progress)
    finally:
        progress.done()  # also before cli.py's line for SIGINT/SIGTERM (HostSignal)
    outcomes = group(results)
    sys.stdout.write(report(job, seeds, outcomes))
    sys.stdout.flush()
    sys.stderr.write(
        f"uintr-emu explore: {plural(len(seeds), 'run')} in {time.monotonic() - start:.1f} s "
        f"({plural(min(jobs, len(seeds)), ('cluster ' if ns.cluster else '') + 'worker')})\n"
    )
    return 0 if len(outcomes) <= 1 else 1


# --------------------------------------------------------------------------- running the seeds


@dataclass(frozen=True)
class Result:
    seed: int
    status: int
    stdout: bytes
    stderr: bytes


def _worker_init() -> None:
    # Forked inside cli.py's HostSignals: a terminal's Ctrl-C reaches the workers too, but the
    # parent ends them (`explore`), so that none outlives it.
    reset_in_child(ignore_interrupt=True)
    # The guest reads host fd 0: give every run the same, empty stdin.
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)


def run_seed(
    job: Job, seed: int, started: Callable[[Machine | None], None] | None = None
) -> Result:
    """One run, in this process, as `uintr-emu run --seed SEED` would do it. `started` is told
    the machine before it runs and None after (cluster.py ends a run through it)."""
    from .api import Machine, ProgramError  # lazy: the engine takes ~0.5 s to import (see cli.main)

    m = None
    try:
        m = Machine(replace(job.options, seed=seed))
        m.load(job.program, job.argv, job.env, capture_output=True)
        if started is not None:
            started(m)
        r = m.run()
        result = Result(seed, r.status, r.stdout or b"", r.stderr or b"")
    except (ProgramError, FileNotFoundError) as e:  # on a cluster's worker, not in `main`'s probe
        result = Result(seed, 2, b"", f"uintr-emu: error: {e}\n".encode())
    except Exception as e:  # noqa: BLE001 - reported as the CLI would (status 70)
        msg = f"uintr-emu: internal error: {type(e).__name__}: {e}\n"
        result = Result(seed, 70, b"", msg.encode())
    finally:
        if started is not None:
            started(None)
    del m
    gc.collect()  # the engine's hooks make cycles; free each run's guest memory now
    return result


def run_seed_subprocess(job: Job, seed: int, children: Subprocesses) -> Result:
    """The same run in a fresh `python -m uintr_emu run` (after a worker died)."""
    cmd = [sys.executable, "-m", "uintr_emu", "run", "--seed", str(seed), *job.run_args, *job.argv]
    status, out, err = children.run(cmd)
    return Result(seed, status if status >= 0 else 128 - status, out, err)


class Subprocesses:
    """The subprocesses of `run_seed_subprocess`, so that an interrupted explore can end them
    (`end`), and those about to start."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: set[subprocess.Popen[bytes]] = set()  # (an annotation: never evaluated)
        self._ended = False

    def run(self, cmd: list[str]) -> tuple[int, bytes, bytes]:
        import subprocess  # lazy: see explore()

        with self._lock:
            if self._ended:
                return -signal.SIGTERM, b"", b""  # (nobody reads it)
            p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)  # fmt: skip
            self._live.add(p)
        try:
            out, err = p.communicate()
        finally:
            with self._lock:
                self._live.discard(p)
        return p.returncode, out, err

    def end(self) -> None:
        """SIGTERM each (a `uintr-emu run` ends at once, docs/robustness.md), SIGKILL one still
        there a second later; start no more."""
        import subprocess  # lazy: see explore()

        with self._lock:
            self._ended = True
            live = list(self._live)
        for p in live:
            p.terminate()
        deadline = time.monotonic() + 1.0
        for p in live:
            try:
                p.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()


def explore(job: Job, seeds: list[int], jobs: int, progress: Progress) -> dict[int, Result]:
    """Every seed's result. Interrupted (cli.py's HostSignal, or any exception), it ends its
    worker processes and subprocesses before it returns: none outlives the command."""
    # cli.py imports this module for its parser; the pools are imported lazy, here: a plain
    # `uintr-emu run` has no use for them (nor for subprocess)
    import multiprocessing  # lazy, as the pools
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, ThreadPoolExecutor
    from concurrent.futures import wait as wait_futures  # lazy, as the pools

    results: dict[int, Result] = {}
    with ProcessPoolExecutor(max_workers=min(jobs, len(seeds)), initializer=_worker_init) as pool:
        pending: set[Future[Result]] = {pool.submit(run_seed, job, s) for s in seeds}
        try:
            while pending:
                finished, pending = wait_futures(pending, return_when=FIRST_COMPLETED)
                for f in finished:
                    if f.exception() is None:
                        r = f.result()
                        results[r.seed] = r
                        progress.step()
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            # The pool's exit waits for the workers, and one busy with a spinning guest would
            # never finish its seed: kill them, their results are not wanted (they ignored the
            # SIGINT of a terminal's Ctrl-C: `_worker_init`). The pool's thread reaps them.
            for worker in multiprocessing.active_children():
                worker.kill()
            raise
    missing = [s for s in seeds if s not in results]
    if missing:
        # A worker died (BrokenProcessPool fails every seed it had not finished).
        sys.stderr.write(
            f"\nuintr-emu explore: a worker process died; running {len(missing)} "
            "seed(s) in subprocesses\n"
        )
        children = Subprocesses()
        with ThreadPoolExecutor(max_workers=jobs) as threads:
            try:
                for r in threads.map(lambda s: run_seed_subprocess(job, s, children), missing):
                    results[r.seed] = r
                    progress.step()
            except BaseException:
                threads.shutdown(wait=False, cancel_futures=True)
                children.end()
                raise
    return results


class Progress:
    """`[#####.....] 123/500` on stderr, redrawn in place (only on a terminal)."""

    WIDTH = 30

    def __init__(self, total: int, enabled: bool):
        self.total = total
        self.count = 0
        self.enabled = enabled
        self.last = 0.0

    def step(self) -> None:
        self.count += 1
        now = time.monotonic()
        if self.enabled and (now - self.last >= 0.1 or self.count == self.total):
            self.last = now
            filled = self.WIDTH * self.count // max(1, self.total)
            bar = "#" * filled + "." * (self.WIDTH - filled)
            sys.stderr.write(f"\r[{bar}] {self.count}/{self.total}")
            sys.stderr.flush()

    def done(self) -> None:
        if self.enabled and self.count:
            sys.stderr.write("\n")
            sys.stderr.flush()


# --------------------------------------------------------------------------- the report


@dataclass
class Outcome:
    status: int
    stdout: bytes
    seeds: list[int] = field(default_factory=list)
    stderr: bytes = b""  # the first seed's


def group(results: dict[int, Result]) -> list[Outcome]:
    """Distinct (stdout, status), most seeds first (ties: the lowest seed first)."""
    by_key: dict[tuple[int, bytes], Outcome] = {}
    for seed in sorted(results):
        r = results[seed]
        key = (r.status, r.stdout)
        if key not in by_key:
            by_key[key] = Outcome(r.status, r.stdout, stderr=r.stderr)
        by_key[key].seeds.append(seed)
    return sorted(by_key.values(), key=lambda o: (-len(o.seeds), o.seeds[0]))


def report(job: Job, seeds: list[int], outcomes: list[Outcome]) -> str:
    o = job.options
    cmd = shlex.join(job.argv)
    lines = [
        f"uintr-emu explore: {cmd}",
        f"{plural(len(seeds), 'seed')} ({format_seeds(seeds)}), {plural(o.cpus, 'CPU')}, "
        f"slice {o.slice} "
        f"(0.5x-1.5x per seed)",
    ]
    if len(outcomes) == 1:
        lines.append("1 outcome: every seed agrees")
    else:
        lines.append(f"{len(outcomes)} distinct outcomes")
    majority = outcomes[0] if outcomes else None
    for n, oc in enumerate(outcomes, 1):
        lines.append("")
        lines.append(
            f"outcome {n}: {len(oc.seeds)} seed{'s' if len(oc.seeds) != 1 else ''}, "
            f"exit status {oc.status}"
        )
        lines += textwrap.wrap(
            format_seeds(oc.seeds),
            width=96,
            initial_indent="  seeds: ",
            subsequent_indent="         ",
            break_on_hyphens=False,
        )
        lines += _show("stdout", oc.stdout, majority.stdout if oc is not majority else None)
        if oc.stderr:
            lines += _show(f"stderr (seed {oc.seeds[0]})", oc.stderr, None, tail=True)
        if oc is not majority:
            replay = ["uintr-emu", "run", "--seed", str(oc.seeds[0]), *job.run_args, *job.argv]
            lines.append(f"  replay: {shlex.join(replay)}")
    return "\n".join(lines) + "\n"


def _show(what: str, data: bytes, majority: bytes | None, tail: bool = False) -> list[str]:
    text = data.decode("utf-8", "replace")
    all_lines = text.splitlines()
    if not all_lines:
        return [f"  {what}: (empty)"]
    limit = SHOW_STDERR_LINES if tail else SHOW_LINES
    shown = all_lines[-limit:] if tail else all_lines[:limit]
    head = f"  {what}:"
    if len(shown) < len(all_lines):
        which = "last" if tail else "first"
        head = f"  {what} ({which} {len(shown)} of {plural(len(all_lines), 'line')}):"
    out = [head, *(f"    | {line}" for line in shown)]
    if not text.endswith("\n"):
        out.append("    (no newline at the end)")
    if majority is not None and len(shown) < len(all_lines):
        # The difference from the most frequent outcome may lie beyond the lines shown.
        other = majority.decode("utf-8", "replace").splitlines()
        diff = next(
            (i for i, (a, b) in enumerate(zip(all_lines, other, strict=False)) if a != b),
            len(other),
        )
        if len(shown) <= diff < len(all_lines):
            out.append(f"    first difference from outcome 1, line {diff + 1}:")
            out.append(f"    | {all_lines[diff]}")
    return out
