"""Host signals forwarded to the guest (docs/linux.md, "Host signals"): a signal to the emulator
process reaches the guest's first process as a kill(2) from outside would. Each test runs
tests/programs/hostsig.c (or spin.c) natively and under the emulator with the same schedule
-- start, wait for its "ready" line, signal, and for modes that read stdin write a byte once
the handler has said so -- and compares stdout and the exit status.

The emulator's side of it: the signal stops the engine at its next block boundary from inside
a hook (the machine's attention word; never the asynchronous stop, docs/engine-notes.md G14),
even while a lone thread spins without system calls.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from engine_harness import CODE, RAX, Asm, Bare
from uintr_emu import Machine, Options

TIMEOUT = 60.0  # a hang fails the test
SETTLE_S = 0.3  # after "ready": the guest is inside its wait (or spin) when the signal comes
PROMPT_S = 0.5  # a default action that ends the process ends the run this soon


@pytest.fixture(scope="module")
def hostsig(build_program) -> Path:
    return build_program("hostsig")


@pytest.fixture(scope="module")
def spin(build_program) -> Path:
    return build_program("spin")


def scheduled(cmd: list[str], env: dict[str, str], signum: int, *, feed: bytes | None = None,
              ready: bytes = b"ready\n") -> tuple[int, bytes, bytes, float]:  # fmt: skip
    """Run `cmd` in a session of its own: once it printed `ready`, wait SETTLE_S and send
    `signum`; if `feed`, write a byte to its stdin once it printed `feed` (or, for b"",
    SETTLE_S after the signal). (status, stdout, stderr, seconds from the signal to the end)."""
    r, w = os.pipe()
    proc = subprocess.Popen(cmd, env=env, stdin=r, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)  # fmt: skip
    os.close(r)
    try:
        out = _read_until(proc, ready)
        time.sleep(SETTLE_S)
        t0 = time.monotonic()
        proc.send_signal(signum)
        if feed is not None:
            if feed:
                out = _read_until(proc, feed, out)
            else:
                time.sleep(SETTLE_S)
            try:
                os.write(w, b"x")
            except BrokenPipeError:
                pass  # it did not wait for the byte (EINTR): it may have ended
        try:
            rest, err = proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            rest, err = proc.communicate()
            pytest.fail(f"{cmd[-3:]} did not end within {TIMEOUT:.0f} s: {out + rest!r} {err!r}")
        return proc.returncode, out + rest, err, time.monotonic() - t0
    finally:
        os.close(w)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _read_until(proc: subprocess.Popen[bytes], text: bytes, seen: bytes = b"") -> bytes:
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + TIMEOUT
    while text not in seen:
        left = deadline - time.monotonic()
        if left <= 0 or not sel.select(left):
            proc.kill()
            pytest.fail(f"no {text!r} within {TIMEOUT:.0f} s: {seen!r}")
        chunk = os.read(proc.stdout.fileno(), 4096)
        if not chunk:
            err = proc.stderr.read() if proc.stderr else b""
            pytest.fail(f"ended before {text!r}: {seen!r} {err!r}")
        seen += chunk
    return seen


def emulated(program: Path, args: list[str], *extra: str) -> list[str]:
    return [sys.executable, "-m", "uintr_emu", "run", "--cpus", "2", *extra, str(program), *args]


def compare(program: Path, args: list[str], signum: int, guest_env, *, feed: bytes | None = None,
            native_lib: str = "1") -> None:  # fmt: skip
    native = scheduled([str(program), *args], guest_env(), signum, feed=feed)
    emu = scheduled(emulated(program, args), guest_env(UINTR_EMU_NATIVE=native_lib), signum,
                    feed=feed)  # fmt: skip
    what = f"{args}: native {native[:3]!r}\nemulated {emu[:3]!r}"
    assert native[0] == 0 and native[1].endswith(b"OK\n"), what
    assert (emu[0], emu[1]) == (native[0], native[1]), what
    assert emu[2] == b"", what  # no line of the emulator's own


US1, US2, INT, TERM = signal.SIGUSR1, signal.SIGUSR2, signal.SIGINT, signal.SIGTERM

# (mode, signal, SA_RESTART, what to feed stdin): what Linux does, signal(7) "Interruption of
# system calls and library functions by signal handlers".
CASES = [
    pytest.param("spin", US1, False, None, id="handler-interrupts-a-lone-spinning-thread"),
    pytest.param("spin", INT, True, None, id="SIGINT-handler-instead-of-the-end"),
    pytest.param("spin", signal.SIGHUP, False, None, id="SIGHUP-handler"),
    pytest.param("spin", signal.SIGQUIT, False, None, id="SIGQUIT-handler"),
    pytest.param("read", INT, False, b"handler", id="host-read-EINTR-without-SA_RESTART"),
    pytest.param("read", INT, True, b"handler", id="host-read-restarted-under-SA_RESTART"),
    pytest.param("pipe", US1, False, None, id="pipe-read-EINTR-without-SA_RESTART"),
    pytest.param("pipe", US1, True, None, id="pipe-read-restarted-under-SA_RESTART"),
    pytest.param("pause", TERM, True, None, id="pause-EINTR-even-under-SA_RESTART"),
    pytest.param("sigwait", US1, False, None, id="sigwaitinfo-takes-it-no-handler"),
    pytest.param("ignore", INT, False, b"", id="SIG_IGN-changes-nothing"),
    pytest.param("thread", US2, False, None, id="process-directed-to-the-unblocking-thread"),
]


@pytest.mark.parametrize(("mode", "signum", "restart", "feed"), CASES)
def test_forwarded_like_native(mode, signum, restart, feed, hostsig, guest_env) -> None:
    args = [mode, str(int(signum))] + (["restart"] if restart else [])
    compare(hostsig, args, signum, guest_env, feed=feed)


def test_forwarded_without_the_native_uintr_path(hostsig, guest_env) -> None:
    """UINTR_EMU_NATIVE=0 turns off the UINTR fast path only: the counters and the tracker
    that notice the signal are still the library's."""
    compare(hostsig, ["spin", str(int(US1))], US1, guest_env, native_lib="0")


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGQUIT, US1, signal.SIGALRM],
                         ids=lambda s: signal.Signals(s).name)  # fmt: skip
def test_a_default_action_that_ends_the_process_ends_the_run(signum, spin, guest_env) -> None:
    """No handler: 128+N (SIGQUIT's core dump too, as a shell reports it) and one line, as
    for SIGINT and SIGTERM (tests/test_stopping.py), while the lone thread spins."""
    native = scheduled([str(spin)], guest_env(), signum, ready=b"spinning\n")
    assert native[0] == -signum
    rc, out, err, took = scheduled(emulated(spin, []), guest_env(), signum, ready=b"spinning\n")
    lines = {signal.SIGHUP: b"hangup", signal.SIGQUIT: b"quit", US1: b"user signal 1",
             signal.SIGALRM: b"alarm clock"}  # fmt: skip
    assert (rc, out, err) == (128 + signum, native[1], b"uintr-emu: " + lines[signum] + b"\n")
    assert took < PROMPT_S, took


def test_a_signal_ignored_by_default_changes_nothing(spin, guest_env) -> None:
    """SIGWINCH's default action is to ignore it: the guest's read(0) goes on."""
    native = scheduled([str(spin), "read"], guest_env(), signal.SIGWINCH, feed=b"",
                       ready=b"reading\n")  # fmt: skip
    emu = scheduled(emulated(spin, ["read"]), guest_env(), signal.SIGWINCH, feed=b"",
                    ready=b"reading\n")  # fmt: skip
    assert native[:2] == (1, b"reading\n")
    assert emu[:3] == (*native[:2], b""), emu


def test_strace_and_trace_show_the_signal(hostsig, guest_env, tmp_path) -> None:
    trace = tmp_path / "trace.txt"
    rc, out, err, _ = scheduled(
        emulated(hostsig, ["spin", str(int(US1))], "--strace", "--trace", "signal",
                 "--trace-file", str(trace)),
        guest_env(), US1,
    )  # fmt: skip
    assert rc == 0, (out, err)
    line = f"--- SIGUSR1 {{si_signo=SIGUSR1, si_code=SI_USER, si_pid=0, si_uid={os.getuid()}}} ---"
    assert line.encode() in err, err
    log = trace.read_text()
    assert "action=host" in log and "action=handler" in log, log


def test_strace_shows_a_host_read_ended_by_the_signal(hostsig, guest_env) -> None:
    rc, out, err, _ = scheduled(emulated(hostsig, ["read", str(int(INT))], "--strace"),
                                guest_env(), INT, feed=b"handler")  # fmt: skip
    assert rc == 0, (out, err)
    reads = [line for line in err.splitlines() if b"] read(0, " in line]
    restarted = b"= ? ERESTARTSYS (To be restarted if SA_RESTART is set)"
    assert reads and reads[0].endswith(restarted), err


# --------------------------------------------------------------------------- in process


def test_api_signal_runs_the_handler(hostsig) -> None:
    m = Machine(Options(cpus=2))
    m.load(str(hostsig), [str(hostsig), "spin", str(int(US2))], capture_output=True)
    sent: list[bool] = []

    def send() -> None:
        ticket = m.signal(US2)
        sent.append(m.signal_taken(ticket, TIMEOUT))

    timer = threading.Timer(SETTLE_S, send)
    timer.start()
    try:
        result = m.run()
    finally:
        timer.cancel()
        timer.join()
    assert sent == [True]
    assert (result.status, result.stderr) == (0, b""), result
    assert result.stdout == (b"ready\nhandler\nhandler ran: signal 12, si_code SI_USER\nOK\n")


def test_api_a_guest_waiting_for_a_signal_is_not_deadlocked(hostsig) -> None:
    """sigwaitinfo with nothing else to run: without forwarding that is a deadlock (124);
    with it the run waits for the signal."""
    args = [str(hostsig), "sigwait", str(int(US1))]
    m = Machine(Options(cpus=1))
    m.load(str(hostsig), args, capture_output=True)
    assert m.run().status == 124  # the deadlock report

    m = Machine(Options(cpus=1))
    m.load(str(hostsig), args, capture_output=True)
    m.forward_signals([US1])
    timer = threading.Timer(SETTLE_S, m.signal, (US1,))
    timer.start()
    try:
        result = m.run()
    finally:
        timer.join()
    assert result.status == 0, result
    assert result.stdout == b"ready\nsigwaitinfo = 10, si_code SI_USER, handler did not run\nOK\n"


@pytest.mark.parametrize("python_counters", [False, True], ids=["native", "python"])
@pytest.mark.parametrize("limit", [None, 10**9], ids=["unsliced", "counted"])
def test_attention_stops_a_spinning_engine_synchronously(limit, python_counters) -> None:
    """`Machine.call_attention` from another thread stops the run at a block boundary from
    inside the tracker or counter hook: the engine is not ended (unlike `stop_async`) and
    runs on from where it stopped, and the attention stays until taken."""
    if limit is None and python_counters:
        pytest.skip("without the library nothing watches an uncounted run (documented)")
    bare = Bare(python_counters=python_counters)
    bare.load(Asm().inc(RAX).emit(b"\xeb\xfb"))  # inc rax; jmp back to it
    timer = threading.Timer(SETTLE_S, bare.machine.call_attention)
    timer.start()
    try:
        rip = bare.run(CODE, limit)
    finally:
        timer.join()
    first = bare.reg(RAX)
    assert first > 0 and not bare.engine.ended and rip in (CODE, CODE + 3)  # at a boundary
    assert bare.run(CODE, limit) == CODE and bare.reg(RAX) == first  # still set: stops at once
    assert bare.machine.take_attention() and not bare.machine.take_attention()
    stopper = threading.Timer(0.05, bare.machine.call_attention)
    stopper.start()
    try:
        bare.run(CODE, limit)
    finally:
        stopper.join()
    assert bare.reg(RAX) > first  # it ran on
