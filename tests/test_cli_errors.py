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
