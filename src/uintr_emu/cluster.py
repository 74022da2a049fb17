"""`uintr-emu explore --cluster ADDRESS`: the seeds of an exploration on a Dask distributed
cluster instead of local worker processes. docs/explore.md, "On a cluster".

Dask's `distributed` rather than Ray: it is pure Python and small (a few MB against Ray's
hundreds), its scheduler and workers start from the command line (`dask scheduler`,
`dask worker ADDRESS`) or as a `LocalCluster` in a test, and a task is a plain picklable call,
which is all a seed is. Each seed runs `explore.run_seed`, so a cluster's outcome table is the
local one. Every worker needs uintr-emu installed and the program (and `--root`, if given) at the
same path; a worker that cannot read the program reports it as that seed's outcome.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .explore import Job, Progress, Result, run_seed

if TYPE_CHECKING:
    from .api import Machine

CONNECT_TIMEOUT = 10.0  # seconds to reach the scheduler

# --------------------------------------------------------------------------- on a worker

# A Dask worker runs tasks on several threads; one machine at a time per worker process keeps a
# seed's run as alone as in a local worker (`--nthreads 1` workers lose nothing by it).
_one_at_a_time = threading.Lock()
_stdin_quiet = False
POLL = 0.2  # seconds between two looks at the stop event while a seed runs


def run_seed_on_worker(job: Job, seed: int, stop: str) -> Result:
    """One seed on a worker. `stop` names the exploration's Dask Event, set when it is
    interrupted: the seed running then ends within POLL, and the seeds still queued do not run."""
    global _stdin_quiet
    from distributed import Event, get_client  # lazy: only workers and `--cluster` need Dask

    with _one_at_a_time:
        if not _stdin_quiet:  # the guest reads host fd 0: the same empty stdin as locally
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            os.close(devnull)
            _stdin_quiet = True
        event = Event(stop, client=get_client())  # made in the task: the worker's own client
        if event.is_set():
            return Result(seed, 130, b"", b"uintr-emu: interrupted\n")
        machine: list[Machine] = []
        finished = threading.Event()
        stopped = threading.Event()
        lock = threading.Lock()

        def started(m: Machine | None) -> None:
            with lock:
                if m is not None:
                    machine.append(m)
                    if stopped.is_set():
                        m.end(130, "interrupted")

        def watch() -> None:
            while not finished.wait(POLL):
                if event.is_set():
                    with lock:
                        stopped.set()
                        if machine:
                            machine[0].end(130, "interrupted")
                    return

        watcher = threading.Thread(target=watch, name=f"uintr-emu-seed-{seed}", daemon=True)
        watcher.start()
        try:
            return run_seed(job, seed, started=started)
        finally:
            finished.set()
            watcher.join()


# --------------------------------------------------------------------------- on the client


def explore_on_cluster(
    job: Job, seeds: list[int], address: str, progress: Progress, workers: Callable[[int], None]
) -> dict[int, Result]:
    """Every seed's result, computed by the cluster's workers; `workers(n)` is told how many
    there are. Interrupted, it stops the seeds running on the workers and cancels the others."""
    try:
        from distributed import Client, Event, as_completed  # lazy: an optional dependency
    except ImportError:
        raise ValueError(
            "--cluster needs Dask's distributed: pip install 'uintr-emu[cluster]'"
        ) from None

    try:
        client = Client(address, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError) as e:
        raise ValueError(f"--cluster {address}: cannot reach a Dask scheduler ({e})") from None
    with client:
        n = len(client.scheduler_info().get("workers", {}))
        if n == 0:
            raise ValueError(f"--cluster {address}: the scheduler has no workers")
        workers(n)
        stop = f"uintr-emu-explore-{uuid.uuid4().hex}"
        futures = client.map(run_seed_on_worker, [job] * len(seeds), seeds, [stop] * len(seeds),
                             pure=False)  # fmt: skip
        seed_of = dict(zip(futures, seeds, strict=True))
        results: dict[int, Result] = {}
        try:
            for f in as_completed(futures):
                try:
                    r = f.result()
                except Exception as e:  # noqa: BLE001 - e.g. KilledWorker: that seed's outcome
                    r = _lost(seed_of[f], e)
                results[r.seed] = r
                progress.step()
        except BaseException:
            Event(stop, client=client).set()
            client.cancel(futures)
            raise
    return results


def _lost(seed: int, e: Any) -> Result:
    msg = f"uintr-emu: the cluster lost seed {seed}: {type(e).__name__}: {e}\n"
    return Result(seed, 70, b"", msg.encode())
