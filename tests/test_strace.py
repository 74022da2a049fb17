"""--strace in strace's notation (src/uintr_emu/linux/strace.py, docs/tracing.md): constants and
flags by name, C ints signed, errors with their text, a blocking call as `<unfinished ...>` and
`<... name resumed> = result`, the UINTR calls' arguments named. The programs check themselves
and their stdout is compared with a native run (or, for UINTR, the golden output)."""

from __future__ import annotations

import re

import pytest

from uintr_emu.linux import strace as S

EXAMPLES_FLAGS = ("-O0", "-g", "-muintr", "-mgeneral-regs-only", "-I", "examples")


def _lines(result) -> list[str]:
    return result[2].decode(errors="replace").splitlines()


def test_strace_decodes_constants_flags_and_errors(native_result, build_program, run_emu, describe):
    emu = run_emu(build_program("strace_calls"), cpus=2, extra=["--strace"])
    native = native_result("strace_calls")
    assert (emu[0], emu[1]) == (native[0], native[1]) == (0, b"OK\n"), describe(emu)
    assert "Traceback" not in emu[2].decode(), describe(emu)
    err = emu[2].decode()
    for line in (
        "openat(AT_FDCWD, '/nonexistent-strace-calls', O_RDONLY|O_CLOEXEC) = -1 ENOENT "
        "(No such file or directory)",
        "openat(AT_FDCWD, '/', O_RDONLY|O_DIRECTORY) = 3",  # no mode without O_CREAT
        "close(-1) = -1 EBADF (Bad file descriptor)",
        "mmap(0, 0x1000, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x",
        ", 0x1000, PROT_NONE) = 0",
        "rt_sigaction(SIGUSR2, ",
        "] kill(1001, SIGUSR2) = 0",
        "] pipe2(0x",
        "clone3({flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|",
    ):
        assert line in err, f"{line!r} not in the strace output\n{describe(emu)}"
    assert re.search(r"\] pipe2\(0x[0-9a-f]+, O_CLOEXEC\) = 0\n", err), describe(emu)
    assert re.search(r"\] rt_sigprocmask\(SIG_(BLOCK|SETMASK|UNBLOCK), ", err), describe(emu)
    assert re.search(r"\] futex\(0x[0-9a-f]+, FUTEX_WAIT_BITSET(_PRIVATE)?", err), describe(emu)


def test_a_blocking_call_is_unfinished_then_resumed(build_program, run_emu, describe):
    """The reader blocks in read until the main thread writes: strace's two lines, the same
    tid on both, and nothing of the call in between (a restarted read is not a new call)."""
    emu = run_emu(build_program("strace_calls"), cpus=2, extra=["--strace"])
    lines = _lines(emu)
    start = [
        i
        for i, ln in enumerate(lines)
        if re.match(r"\[\d+\] read\(3, 0x[0-9a-f]+, 1\) <unfinished \.\.\.>$", ln)
    ]  # noqa: E501
    assert len(start) == 1, describe(emu)
    tid = lines[start[0]].split("]")[0] + "]"
    end = [i for i, ln in enumerate(lines) if ln == f"{tid} <... read resumed> = 1"]
    assert len(end) == 1 and end[0] > start[0], describe(emu)
    between = lines[start[0] + 1 : end[0]]
    assert any(ln.startswith("[") and "write(4, " in ln for ln in between), describe(emu)
    assert not any(ln.startswith(tid) for ln in between), describe(emu)
    # The main thread's sleep and join block too, each resumed with its result.
    assert any(re.match(r"\[1001\] <\.\.\. (clock_)?nanosleep resumed> = 0$", ln) for ln in lines)
    joined = [ln for ln in lines if ln.startswith("[1001] futex(") and ln.endswith(" = 0")]
    assert "[1001] <... futex resumed> = 0" in lines or joined, describe(emu)


@pytest.mark.requires_native
def test_the_uintr_calls_name_their_arguments(build_program, run_emu, golden, describe):
    emu = run_emu(build_program("gdb_uintr_state", EXAMPLES_FLAGS), cpus=1, extra=["--strace"])
    assert emu[0] == 0 and emu[1] == b"handler saw vector 9\n", describe(emu)
    err = emu[2].decode()
    assert re.search(r"\] uintr_register_handler\(handler=0x[0-9a-f]+, flags=0\) = 0\n", err), err
    assert "] uintr_register_self(vector=5, flags=0) = 0\n" in err, err
    assert "] uintr_register_self(vector=9, flags=0) = 1\n" in err, err


@pytest.mark.parametrize(
    "decoder,value,text",
    [
        (S.open_flags, 0o2000000 | 0o100 | 0o1000 | 1, "O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC"),
        (S.open_flags, 0o4010000 | 2, "O_RDWR|O_SYNC"),  # O_SYNC includes O_DSYNC's bit
        (S.open_flags, 0o20200000 | 2, "O_RDWR|O_TMPFILE"),
        (S.prot, 0, "PROT_NONE"),
        (S.prot, 7, "PROT_READ|PROT_WRITE|PROT_EXEC"),
        (S.map_flags, 0x22 | 0x10, "MAP_PRIVATE|MAP_FIXED|MAP_ANONYMOUS"),
        (S.map_flags, 0x1 | 0x80000000, "MAP_SHARED|0x80000000"),
        (S.clone_flags, 0x100 | 0x200 | 17, "CLONE_VM|CLONE_FS|SIGCHLD"),
        (S.clone_flags, 0, "0"),
        (S.futex_op, 9 | 128 | 256, "FUTEX_WAIT_BITSET_PRIVATE|FUTEX_CLOCK_REALTIME"),
        (S.futex_op, 1 | 128, "FUTEX_WAKE_PRIVATE"),
        (S.signal, 10, "SIGUSR1"),
        (S.signal, 32, "SIGRTMIN"),
        (S.signal, 33, "SIGRT_1"),
        (S.signal, 64, "SIGRT_32"),
        (S.dirfd, (1 << 64) - 100, "AT_FDCWD"),
        (S.dirfd, (1 << 32) - 100, "AT_FDCWD"),  # an int: the low 32 bits
        (S.fd, (1 << 32) - 1, "-1"),
        (S.fd, 5, "5"),
        (S.access_mode, 0, "F_OK"),
        (S.access_mode, 6, "R_OK|W_OK"),
        (S.uintr_flags, 0x3000,
         "UINTR_HANDLER_FLAG_WAITING_RECEIVER|UINTR_HANDLER_FLAG_WAITING_SENDER"),
        (S.ioctl_request, 0x7500, "UIPI_SET_TARGET_TABLE"),
        (S.socket_type, 1 | 0o2000000, "SOCK_STREAM|SOCK_CLOEXEC"),
        (S.octal, 0o644, "0644"),
    ],
)  # fmt: skip
def test_decoders(decoder, value, text):
    assert decoder(value) == text


def test_errors_are_signed_with_their_text():
    assert S.format_result(-2) == "-1 ENOENT (No such file or directory)"
    assert S.format_result(0x7FFFF7FFD000) == "0x7ffff7ffd000" and S.format_result(3) == "3"
