"""Bad input on the command line: one clear error line, exit status 2, never a traceback.

Bad programs are made at test time under tmp_path (from a real static binary where a
valid ELF is needed), so nothing has to be kept in the repository.

The helpers come from tests/conftest.py as fixtures (not imported: tests/hw has a
conftest.py of its own, and only one module can be called ``conftest``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest


@pytest.fixture(scope="session")
def assert_usage_error(describe):
    """argparse-style rejection: exit status 2, a message on stderr, no traceback."""

    def check(result) -> None:
        rc, _, err = result
        assert b"Traceback" not in err, describe(result)
        assert rc == 2, f"expected exit status 2\n{describe(result)}"
        assert err.strip(), "expected an error message on stderr"

    return check


@pytest.fixture
def run_program(run_cli):
    """run_program(path, *args): ``uintr-emu run --cpus 1 PATH ARGS...``."""

    def run(path, *args: str):
        return run_cli("run", "--cpus", "1", str(path), *args, timeout=60)

    return run


@pytest.fixture
def elf_bytes(build_program) -> bytes:
    """The bytes of a real static x86-64 program (tests/programs/spin.c), to cut or patch."""
    data = build_program("spin").read_bytes()
    assert data[:4] == b"\x7fELF" and data[4] == 2  # ELFCLASS64 to start with
    return data


def _write(tmp_path, name: str, data: bytes, mode: int = 0o755):
    path = tmp_path / name
    path.write_bytes(data)
    path.chmod(mode)
    return path


# ---------------------------------------------------------------- files that are not programs


def test_missing_file(tmp_path, run_program, assert_one_error_line):
    assert_one_error_line(run_program(tmp_path / "does-not-exist"))


def test_directory(tmp_path, run_program, assert_one_error_line):
    assert_one_error_line(run_program(tmp_path))


def test_text_file(tmp_path, run_program, assert_one_error_line):
    path = _write(tmp_path, "notes.txt", b"hello, this is not an ELF file\n")
    assert_one_error_line(run_program(path))


def test_empty_file(tmp_path, run_program, assert_one_error_line):
    assert_one_error_line(run_program(_write(tmp_path, "empty", b"")))


def test_truncated_elf_header(tmp_path, run_program, elf_bytes, assert_one_error_line):
    assert_one_error_line(run_program(_write(tmp_path, "truncated", elf_bytes[:40])))


def test_truncated_elf_segments(tmp_path, run_program, elf_bytes, assert_one_error_line):
    """A complete ELF header and program header table, but the segments are cut off."""
    phoff = int.from_bytes(elf_bytes[32:40], "little")
    phentsize = int.from_bytes(elf_bytes[54:56], "little")
    phnum = int.from_bytes(elf_bytes[56:58], "little")
    end = phoff + phentsize * phnum
    path = _write(tmp_path, "truncated-segments", elf_bytes[: end + 16])
    assert_one_error_line(run_program(path))


def test_32bit_elf(tmp_path, run_program, elf_bytes, assert_one_error_line):
    """Built with gcc -m32 -static where this machine can, else a patched EI_CLASS."""
    path = None
    gcc = shutil.which("gcc")
    if gcc is not None:
        src = tmp_path / "m32.c"
        src.write_text("int main(void) { return 0; }\n")
        out = tmp_path / "m32"
        proc = subprocess.run(
            [gcc, "-m32", "-static", "-o", str(out), str(src)], capture_output=True, check=False
        )
        if proc.returncode == 0:
            path = out
    if path is None:
        data = bytearray(elf_bytes)
        data[4] = 1  # e_ident[EI_CLASS] = ELFCLASS32
        path = _write(tmp_path, "elf32", bytes(data))
    assert_one_error_line(run_program(path))


def test_big_endian_elf(tmp_path, run_program, elf_bytes, assert_one_error_line):
    data = bytearray(elf_bytes)
    data[5] = 2  # e_ident[EI_DATA] = ELFDATA2MSB
    assert_one_error_line(run_program(_write(tmp_path, "elf-msb", bytes(data))))


def test_wrong_machine(tmp_path, run_program, elf_bytes, assert_one_error_line):
    data = bytearray(elf_bytes)
    data[18:20] = (183).to_bytes(2, "little")  # e_machine = EM_AARCH64
    assert_one_error_line(run_program(_write(tmp_path, "aarch64", bytes(data))))


def test_relocatable_object(tmp_path, run_program, assert_one_error_line):
    """An object file (ET_REL) is an x86-64 ELF but not a program."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed")
    src = tmp_path / "obj.c"
    src.write_text("int main(void) { return 0; }\n")
    obj = tmp_path / "obj.o"
    subprocess.run([gcc, "-c", "-o", str(obj), str(src)], check=True)
    obj.chmod(0o755)
    assert_one_error_line(run_program(obj))


def test_dynamically_linked_program_with_missing_interpreter(
    tmp_path, run_cli, build_program, assert_one_error_line
):
    """Dynamic programs run (tests/test_dynamic.py); one whose interpreter cannot be found
    under --root gets one clear line."""
    path = build_program("args_env", static=False)
    line = assert_one_error_line(run_cli("run", "--root", str(tmp_path), str(path)))
    assert "interpreter" in line, line


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can read a mode-000 file"
)
def test_no_read_permission(tmp_path, run_program, elf_bytes, assert_one_error_line):
    path = _write(tmp_path, "unreadable", elf_bytes, mode=0o000)
    try:
        assert_one_error_line(run_program(path))
    finally:
        path.chmod(0o644)


# ---------------------------------------------------------------- the command line itself


def test_unknown_option(run_cli, build_program, assert_usage_error):
    assert_usage_error(run_cli("run", "--bogus", str(build_program("spin")), timeout=60))


def test_unknown_command(run_cli, assert_usage_error):
    assert_usage_error(run_cli("bogus-command", timeout=60))


def test_missing_program(run_cli, assert_usage_error):
    assert_usage_error(run_cli("run", timeout=60))


@pytest.mark.parametrize("value", ["abc", "0", "-1"])
def test_bad_cpu_count(value, run_cli, build_program, assert_usage_error):
    assert_usage_error(run_cli("run", "--cpus", value, str(build_program("spin")), timeout=60))


@pytest.mark.parametrize("option", ["--max-threads", "--max-procs"])
@pytest.mark.parametrize("value", ["abc", "0", "-3"])
def test_bad_task_limit(option, value, run_cli, build_program, assert_usage_error):
    assert_usage_error(run_cli("run", option, value, str(build_program("spin")), timeout=60))


@pytest.mark.parametrize("value", ["bogus", "rfc:", "rfc:9", "rfc:x", "next:471"])
def test_bad_uintr_abi(value, run_cli, build_program, assert_usage_error):
    assert_usage_error(run_cli("run", "--uintr-abi", value, str(build_program("spin")), timeout=60))


def test_top_level_help(run_cli, describe):
    result = run_cli("--help", timeout=60)
    rc, out, err = result
    assert b"Traceback" not in err, describe(result)
    assert rc == 0, describe(result)
    assert b"run" in out, describe(result)


def test_run_help(run_cli, describe):
    result = run_cli("run", "--help", timeout=60)
    rc, out, err = result
    assert b"Traceback" not in err, describe(result)
    assert rc == 0, describe(result)
    for option in (b"--cpus", b"--strace", b"--max-insns", b"--timeout"):
        assert option in out, f"run --help does not mention {option.decode()}\n{describe(result)}"


def test_installed_entry_point():
    """The console script, where the package is installed, behaves like python -m."""
    exe = shutil.which("uintr-emu")
    if exe is None:
        pytest.skip("uintr-emu is not installed on PATH")
    proc = subprocess.run([exe, "run", "--help"], capture_output=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert b"--cpus" in proc.stdout


# ---------------------------------------------------------------- the misuse table
# Each mistake: the documented status (2: bad usage or a program that cannot be loaded; README,
# "Command line"), nothing on stdout, one `uintr-emu: error:` line and at most one more line,
# the usage of the command concerned; never a traceback or an "internal error".

PROG = "{prog}"  # replaced by a real static program
MISUSE = [
    ("timeout-nan", ["run", "--timeout", "nan", PROG], "--timeout"),
    ("timeout-zero", ["run", "--timeout", "0", PROG], "--timeout"),
    ("gdb-port-too-big", ["run", "--gdb", "99999", PROG], "--gdb"),
    ("qemu-g-port-too-big", ["-g", "70000", PROG], "--gdb"),
    ("cpus-too-many", ["run", "--cpus", "1000000", PROG], "--cpus"),
    ("max-memory-zero", ["run", "--max-memory", "0", PROG], "--max-memory"),
    ("max-memory-negative", ["run", "--max-memory=-5", PROG], "--max-memory"),
    ("max-memory-inf", ["run", "--max-memory", "infk", PROG], "--max-memory"),
    ("cpu-features-unknown", ["run", "--cpu-features", "-bogus", PROG], "bogus"),
    ("run-without-program", ["run"], "PROGRAM"),
    ("run-unknown-option", ["run", "--bogus", PROG], "--bogus"),
    ("run-option-without-value", ["run", "--cpus"], "--cpus"),
    ("unknown-command", ["bogus-command"], "bogus-command"),
    ("nothing", [], "no command"),
    ("explore-unknown-option", ["explore", "--bogus", PROG], "--bogus"),
    ("demo-unknown-option", ["demo", "--bogus"], "--bogus"),
    ("qemu-d-unknown-item", ["-d", "in_asm", PROG], "in_asm"),
    ("env-bad-cpus", ["run", PROG], "UINTR_EMU_CPUS"),
]
ENV = {"env-bad-cpus": {"UINTR_EMU_CPUS": "0"}}
USAGE_OF = {"explore-unknown-option": "explore", "demo-unknown-option": "demo",
            "unknown-command": "{run,demo,explore,system}",
            "nothing": "{run,demo,explore,system}"}  # fmt: skip


def _error_lines(result, describe) -> list[str]:
    rc, out, err = result
    assert b"Traceback" not in err and b"internal error" not in err, describe(result)
    assert rc == 2, f"expected exit status 2\n{describe(result)}"
    assert out == b"", describe(result)
    lines = err.decode(errors="replace").splitlines()
    assert 1 <= len(lines) <= 2, f"expected one error line (and a hint)\n{describe(result)}"
    assert lines[0].startswith("uintr-emu: error: "), describe(result)
    return lines


@pytest.mark.parametrize("case,args,word", MISUSE, ids=[m[0] for m in MISUSE])
def test_cli_misuse_table(case, args, word, run_cli, guest_env, build_program, describe):
    prog = str(build_program("args_env"))
    argv = [prog if a == PROG else a for a in args]
    result = run_cli(*argv, env=guest_env(**ENV.get(case, {})), timeout=60)
    lines = _error_lines(result, describe)
    assert word.lower() in lines[0].lower(), describe(result)
    assert len(lines) == 2, f"expected the usage line\n{describe(result)}"
    assert lines[1].startswith(f"usage: uintr-emu {USAGE_OF.get(case, 'run')} "), lines[1]


def test_not_executable_is_eacces(tmp_path, run_program, elf_bytes, describe):
    """execve(2) refuses a file without execute permission with EACCES (also for root)."""
    lines = _error_lines(run_program(_write(tmp_path, "noexec", elf_bytes, mode=0o644)), describe)
    assert lines == [f"uintr-emu: error: {tmp_path / 'noexec'}: permission denied (not executable)"]


def test_program_headers_at_2_to_the_60(tmp_path, run_program, elf_bytes, describe):
    data = bytearray(elf_bytes)
    data[32:40] = (1 << 60).to_bytes(8, "little")  # e_phoff
    lines = _error_lines(run_program(_write(tmp_path, "phoff", bytes(data))), describe)
    assert lines[0].endswith("malformed ELF (program headers outside the file)"), lines


@pytest.mark.parametrize(
    "args",
    [["run", "--timeout", "1e100"], ["run", "--timeout", "inf"], ["run", "--cpus", "1024"],
     ["run", "--cpu-features", "-uintr"], ["-cpu", "-uintr"], []],
    ids=["timeout-1e100", "timeout-inf", "cpus-1024", "cpu-features-minus", "qemu-cpu", "bare"],
)  # fmt: skip
def test_accepted_values_run_the_program(args, run_cli, build_program, describe):
    """Values at the edges are accepted and the program runs (args_env exits 3 on purpose)."""
    prog = str(build_program("args_env"))
    result = run_cli(*args, prog, "x", timeout=120)
    assert result[0] == 3 and b"argc=2\n" in result[1], describe(result)
    assert b"Traceback" not in result[2] and b"uintr-emu:" not in result[2], describe(result)


def test_closed_stdout_ends_quietly_with_sigpipe(build_program, guest_env):
    """A program writing to a pipe whose reader is gone dies by SIGPIPE (pipe(7)): status 141,
    nothing said, as natively; also with --strace writing to a closed stderr."""
    prog = str(build_program("sigpipe"))
    for extra in ([], ["--strace"]):
        for cmd in ([prog], [sys.executable, "-m", "uintr_emu", "run", *extra, prog]):
            r, w = os.pipe()
            os.close(r)  # the reader is gone before the first write
            proc = subprocess.run(cmd, stdout=w, stderr=w if extra else subprocess.PIPE,
                                  env=guest_env(), timeout=60, check=False)  # fmt: skip
            os.close(w)
            # Natively the process dies by the signal (-13 here, 141 in a shell); the
            # emulator reports the guest's death as 128 + 13 (README, "Command line").
            want = 141 if cmd[0] == sys.executable else -13
            assert proc.returncode == want, (cmd, proc.returncode, proc.stderr)
            assert not extra and proc.stderr == b"" or extra, (cmd, proc.stderr)
