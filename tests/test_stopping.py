"""Runs stop when asked (docs/robustness.md, "Signals and exit statuses"): SIGINT, SIGTERM and
--timeout end a run within PROMPT_S even while a lone guest thread spins without system calls,
with status 130, 143 or 124, one line on stderr, and the guest's output so far kept; `explore`
ends its worker processes too. An asynchronous stop is allowed only because the run ends: the
engine and the machine run no guest code after one (docs/engine-notes.md G14).

The guest is tests/programs/spin.c. Every emulator runs in a session of its own (signals go to
it alone, or to its process group as a terminal's Ctrl-C does), and is signalled once it has
printed its line, so that its guest is running.
"""

from __future__ import annotations

import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from engine_harness import CODE, RAX, Asm, Bare
from uintr_emu import Machine, Options, explore
from uintr_emu.cli import build_parser

#: How soon after the signal the emulator process must have exited.
PROMPT_S = 0.5
SPIN_S = 0.3  # how long the guest spins before the signal (past the first counted slices)
TIMEOUT = 60.0  # a hang fails the test
NATIVE = [pytest.param("1", id="native"), pytest.param("0", id="model")]
SIGNALS = [
    pytest.param(signal.SIGINT, b"uintr-emu: interrupted\n", id="SIGINT"),
    pytest.param(signal.SIGTERM, b"uintr-emu: terminated\n", id="SIGTERM"),
]


@pytest.fixture(scope="module")
def spin(build_program) -> Path:
    return build_program("spin")


def start(args: Sequence[str], env: dict[str, str], stdin: int = subprocess.DEVNULL
          ) -> subprocess.Popen[bytes]:  # fmt: skip
    return subprocess.Popen([sys.executable, "-m", "uintr_emu", *args], env=env, stdin=stdin,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)  # fmt: skip


def read_until(proc: subprocess.Popen[bytes], stream: str, text: bytes) -> bytes:
    """What `proc` wrote on `stream` up to and including `text` (the test fails after TIMEOUT)."""
    f = getattr(proc, stream)
    sel = selectors.DefaultSelector()
    sel.register(f, selectors.EVENT_READ)
    seen = b""
    deadline = time.monotonic() + TIMEOUT
    while text not in seen:
        left = deadline - time.monotonic()
        if left <= 0 or not sel.select(left):
            proc.kill()
            pytest.fail(f"no {text!r} on the emulator's {stream} within {TIMEOUT:.0f} s: {seen!r}")
        chunk = os.read(f.fileno(), 4096)
        if not chunk:
            pytest.fail(f"the emulator ended before {text!r} on its {stream}: {seen!r}")
        seen += chunk
    return seen


def finish(proc: subprocess.Popen[bytes], out: bytes = b"", err: bytes = b""
           ) -> tuple[int, bytes, bytes, float]:  # fmt: skip
    """Wait for `proc`: (status, all of its stdout and stderr, seconds it took from now)."""
    t0 = time.monotonic()
    try:
        rest_out, rest_err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        rest_out, rest_err = proc.communicate()
        pytest.fail(f"the emulator did not end within {TIMEOUT:.0f} s: {err + rest_err!r}")
    return proc.returncode, out + rest_out, err + rest_err, time.monotonic() - t0


def signal_run(args: Sequence[str], env: dict[str, str], signum: int, *,
               stdin: int = subprocess.DEVNULL, line: bytes = b"spinning\n",
               ) -> tuple[int, bytes, bytes, float]:  # fmt: skip
    """Start the emulator, wait for its guest's `line`, spin a while, send `signum`."""
    proc = start(args, env, stdin)
    out = read_until(proc, "stdout", line)
    time.sleep(SPIN_S)
    proc.send_signal(signum)
    return finish(proc, out)


def check(result: tuple[int, bytes, bytes, float], status: int, stdout: bytes,
          line: bytes) -> None:  # fmt: skip
    rc, out, err, took = result
    what = f"status {rc}, {took:.3f} s\nstdout: {out!r}\nstderr: {err.decode(errors='replace')}"
    assert rc == status, what
    assert out == stdout, what  # nothing the guest wrote is lost
    assert err == line, what  # one line, no traceback
    assert took < PROMPT_S, what


# --------------------------------------------------------------------------- run


@pytest.mark.parametrize("native", NATIVE)
@pytest.mark.parametrize("threads", [1, 2], ids=["unsliced", "sliced"])
@pytest.mark.parametrize(("signum", "line"), SIGNALS)
def test_a_signal_ends_a_spinning_run(signum, line, threads, native, spin, guest_env) -> None:
    """One thread runs unsliced (the engine never returns to Python by itself), two in slices."""
    env = guest_env(UINTR_EMU_NATIVE=native)
    result = signal_run(["run", "--cpus", "2", str(spin), str(threads)], env, signum)
    check(result, 128 + signum, b"spinning\n", line)


@pytest.mark.parametrize("native", NATIVE)
@pytest.mark.parametrize("threads", [1, 2], ids=["unsliced", "sliced"])
def test_timeout_ends_a_spinning_run(threads, native, spin, guest_env) -> None:
    proc = start(["run", "--cpus", "2", "--timeout", "0.5", str(spin), str(threads)],
                 guest_env(UINTR_EMU_NATIVE=native))  # fmt: skip
    out = read_until(proc, "stdout", b"spinning\n")  # the timeout started before this line
    rc, out, err, took = finish(proc, out)
    assert (rc, out) == (124, b"spinning\n"), (rc, out, err)
    assert err == b"uintr-emu: timeout: stopped after 0.5 s (--timeout)\n", err
    assert took < 0.5 + PROMPT_S, took


def test_a_signal_ends_a_guest_blocked_in_a_host_read(spin, guest_env) -> None:
    """The guest's read(0) is the emulator's own, blocking: the signal interrupts it."""
    r, w = os.pipe()  # nothing is ever written
    try:
        result = signal_run(["run", str(spin), "read"], guest_env(), signal.SIGINT, stdin=r,
                            line=b"reading\n")  # fmt: skip
    finally:
        os.close(r)
        os.close(w)
    check(result, 130, b"reading\n", b"uintr-emu: interrupted\n")


def test_a_signal_ends_a_run_waiting_for_gdb(spin, guest_env) -> None:
    port = free_port()
    proc = start(["run", "--gdb", str(port), str(spin)], guest_env())
    err = read_until(proc, "stderr", b"waiting for gdb")
    proc.send_signal(signal.SIGTERM)
    waiting = f"uintr-emu: waiting for gdb on 127.0.0.1:{port}\n".encode()
    check(finish(proc, err=err), 143, b"", waiting + b"uintr-emu: terminated\n")


def test_a_signal_ends_a_run_under_gdb(spin, guest_env) -> None:
    """gdb's own Ctrl-C is a packet to the stub (tests/test_gdbstub.py); a SIGINT to the
    emulator ends the run, and gdb is told the exit status (W82: 130)."""
    port = free_port()
    proc = start(["run", "--gdb", str(port), str(spin)], guest_env())
    read_until(proc, "stderr", b"waiting for gdb")
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as gdb:
        gdb.sendall(b"$c#63")  # continue
        out = read_until(proc, "stdout", b"spinning\n")
        time.sleep(SPIN_S)
        proc.send_signal(signal.SIGINT)
        seen = b""
        while b"$W82#" not in seen:
            data = gdb.recv(4096)
            assert data, f"the stub hung up without an exit packet: {seen!r}"
            seen += data
    rc, out, err, _took = finish(proc, out)
    assert (rc, out, err.splitlines()[-1]) == (130, b"spinning\n", b"uintr-emu: interrupted")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- explore


def group_members(pgid: int) -> list[int]:
    """The live processes of process group `pgid` (zombies are dead)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(entry))
    return found


@pytest.mark.parametrize(("signum", "line"), SIGNALS)
@pytest.mark.parametrize("to_group", [True, False], ids=["terminal", "kill"])
def test_explore_ends_its_workers(to_group, signum, line, spin, guest_env) -> None:
    """A terminal's Ctrl-C signals the whole process group; `kill` the explore process
    alone. Either way nothing of the group is left a few seconds later."""
    proc = start(["explore", "--jobs", "2", "--seeds", "1-4", str(spin)], guest_env())
    deadline = time.monotonic() + TIMEOUT
    while len(group_members(proc.pid)) < 3:  # explore and its two workers
        assert time.monotonic() < deadline, "explore did not start its workers"
        time.sleep(0.05)
    time.sleep(SPIN_S)  # their seeds' guests spin
    try:
        if to_group:
            os.killpg(proc.pid, signum)
        else:
            proc.send_signal(signum)
        rc, out, err, took = finish(proc)
        left = group_members(proc.pid)
        deadline = time.monotonic() + 5
        while left and time.monotonic() < deadline:
            time.sleep(0.05)
            left = group_members(proc.pid)
        assert not left, f"processes left behind: {left}"
    finally:
        for pid in group_members(proc.pid):
            os.kill(pid, signal.SIGKILL)
    assert (rc, out, err) == (128 + signum, b"", line), (rc, out, err, took)


def _dies(job, seed):
    os._exit(9)  # a worker crash: explore runs the seed in a subprocess instead


class Interrupt(BaseException):
    pass


def emulator_children() -> list[int]:
    """This process's children that run `python -m uintr_emu run` (zombies are dead)."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except (OSError, ValueError):
            continue  # not a process, or gone meanwhile
        if int(fields[1]) == os.getpid() and fields[0] != "Z" and b"uintr_emu\0run" in cmdline:
            found.append(int(entry))
    return found


def test_explore_ends_the_subprocesses_of_dead_workers(monkeypatch, spin) -> None:
    """Interrupted (as cli.py's HostSignal would), explore ends the `uintr-emu run`
    subprocesses it runs a dead worker's seeds in, and starts no more."""
    monkeypatch.setattr(explore, "run_seed", _dies)
    job = explore._job_from(build_parser().parse_args(["explore", str(spin)]))
    main = threading.get_ident()
    returned = threading.Event()
    left: list[int] = []

    def interrupt() -> None:
        deadline = time.monotonic() + TIMEOUT
        while len(emulator_children()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(SPIN_S)
        signal.pthread_kill(main, signal.SIGUSR1)
        if not returned.wait(10):  # explore waits for them: fail, not hang
            left.extend(emulator_children())
            for pid in left:
                os.kill(pid, signal.SIGKILL)

    def handler(signum: int, frame: object) -> None:
        raise Interrupt

    old = signal.signal(signal.SIGUSR1, handler)
    interrupter = threading.Thread(target=interrupt)
    interrupter.start()
    try:
        with pytest.raises(Interrupt):
            explore.explore(job, [1, 2, 3], 2, explore.Progress(3, enabled=False))
    finally:
        returned.set()
        interrupter.join()
        signal.signal(signal.SIGUSR1, old)
    assert not left and not emulator_children()


# --------------------------------------------------------------------------- in process


def test_end_from_another_thread(spin) -> None:
    """`Machine.end` (what the signal handling calls) from a thread: the captured output so far,
    the status and the line."""
    m = Machine(Options(cpus=2))
    m.load(str(spin), [str(spin)], capture_output=True)
    timer = threading.Timer(SPIN_S, m.end, (130, "interrupted"))
    timer.start()
    try:
        result = m.run()
    finally:
        timer.cancel()
    assert (result.status, result.stdout, result.stderr) == (
        130, b"spinning\n", b"uintr-emu: interrupted\n")  # fmt: skip
    assert m.kernel is not None and m.kernel.machine.ended


def test_end_before_the_run_runs_nothing(spin) -> None:
    m = Machine(Options(cpus=1))
    m.end(143, "terminated")
    m.load(str(spin), [str(spin)], capture_output=True)
    result = m.run()
    assert (result.status, result.stdout, result.stderr) == (143, b"", b"uintr-emu: terminated\n")
    assert m.kernel is not None and m.kernel.total_insns == 0


def spin_forever() -> Asm:
    """inc rax; jmp back to it: never returns to Python."""
    return Asm().inc(RAX).emit(b"\xeb\xfb")  # jmp -5


@pytest.mark.parametrize("limit", [None, 1000], ids=["unsliced", "sliced"])
def test_an_engine_stopped_asynchronously_never_runs_again(limit) -> None:
    """A stop before a start is lost in Unicorn (docs/engine-notes.md G3); `stop_async` is not:
    the engine runs nothing afterwards, so no guest code can see the double effect of the
    instruction the stop landed in (G14)."""
    bare = Bare()
    bare.load(spin_forever())
    bare.engine.stop_async()
    assert bare.run(CODE, limit) == CODE
    assert bare.reg(RAX) == 0 and bare.engine.stop_requested


def test_machine_stop_async_ends_a_spinning_run() -> None:
    """From another thread, as the kernel's watchdog does: repeated until the run returns (a
    stop that arrives before the engine starts is lost, G3); then no CPU runs guest code."""
    bare = Bare(ncpus=2)
    bare.load(spin_forever())
    done = threading.Event()

    def stopper() -> None:
        done.wait(SPIN_S)
        while not done.is_set():
            bare.machine.stop_async()
            done.wait(0.01)

    t = threading.Thread(target=stopper)
    t.start()
    try:
        rip = bare.run(CODE)
    finally:
        done.set()
        t.join()
    ran = bare.reg(RAX)
    assert ran > 0 and bare.engine.ended
    bare.cpu = bare.machine.cpus[1]
    assert bare.run() == rip and bare.reg(RAX) == ran  # nothing ran


def test_explore_on_a_cluster_stops_the_seeds_running_there(spin, guest_env) -> None:
    """Interrupted, `explore --cluster` ends the seeds its workers are running (their guests
    spin forever) and cancels the queued ones: the cluster is idle again, not busy for ever."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:  # fmt: skip
        args = ["explore", "--cluster", cluster.scheduler_address, "--seeds", "1-6", str(spin)]
        proc = start(args, guest_env())
        deadline = time.monotonic() + TIMEOUT
        while sum(map(len, client.processing().values())) < 2:  # a seed on each worker
            assert time.monotonic() < deadline, "the cluster did not start the seeds"
            time.sleep(0.05)
        time.sleep(2.0)  # a worker's first seed imports the engine first (~0.5 s)
        proc.send_signal(signal.SIGINT)
        rc, out, err, took = finish(proc)
        assert (rc, out, err) == (130, b"", b"uintr-emu: interrupted\n"), (rc, out, err, took)
        # Each worker has one thread: a seed still spinning there would hold this task back.
        for worker in client.scheduler_info()["workers"]:
            task = client.submit(os.getpid, workers=[worker], pure=False)
            assert task.result(timeout=5) > 0, worker
