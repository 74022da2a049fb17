"""qemu-user habits (README, "Command line"): qemu-x86_64's spellings of the options that mean
the same, UINTR_EMU_* variables for the options, and `uintr-emu PROGRAM`. Parsing only, but
for one run that uses them all."""

from __future__ import annotations

import os
import sys

import pytest

from uintr_emu import cli
from uintr_emu.hw.cpu import CpuFeatures

PROG = sys.executable  # an existing file: enough for parsing


def parse(*argv: str):
    return cli.parse(cli.build_parser(), list(argv))


def test_qemu_spellings_mean_the_long_options():
    ns = parse("-strace", "-g", "1234", "-L", "/", "-E", "A=1", "-U", "B", "-cpu", "-uintr",
               "-d", "uintr,strace", PROG, "x")  # fmt: skip
    cli.apply_log_items(ns)
    assert (ns.command, ns.program, ns.args) == ("run", PROG, ["x"])
    assert ns.strace and ns.gdb == 1234 and ns.root == "/"
    assert ns.setenv == ["A=1"] and ns.unsetenv == ["B"]
    assert ns.cpu_features == CpuFeatures(uintr=False)
    assert ns.trace == "uintr"


def test_a_program_as_the_first_word_is_run():
    ns = parse(PROG, "--cpus", "3")
    assert (ns.command, ns.program, ns.args, ns.cpus) == ("run", PROG, ["--cpus", "3"], 4)


@pytest.mark.parametrize("spelling", [["--cpu-features", "-uintr"], ["--cpu-features=-uintr"],
                                      ["-cpu", "-uintr"], ["-cpu=-uintr"]])  # fmt: skip
def test_a_value_starting_with_a_dash(spelling):
    ns = parse("run", *spelling, PROG)
    assert ns.cpu_features == CpuFeatures(uintr=False) and ns.program == PROG


def test_the_programs_arguments_are_left_alone():
    ns = parse("run", PROG, "--cpu-features", "-uintr", "-strace")
    assert ns.args == ["--cpu-features", "-uintr", "-strace"] and not ns.strace


def test_environment_variables_set_options(monkeypatch):
    monkeypatch.setenv("UINTR_EMU_CPUS", "2")
    monkeypatch.setenv("UINTR_EMU_STRACE", "1")
    monkeypatch.setenv("UINTR_EMU_CPU_FEATURES", "-uintr")
    monkeypatch.setenv("UINTR_EMU_MAX_INSNS", "1000")
    ns = parse("run", PROG)
    assert (ns.cpus, ns.strace, ns.cpu_features.uintr, ns.max_insns) == (2, True, False, 1000)
    assert "UINTR_EMU_CPUS" not in os.environ  # consumed: not the guest's, nor explore's runs


def test_the_command_line_wins_over_the_environment(monkeypatch):
    monkeypatch.setenv("UINTR_EMU_CPUS", "2")
    monkeypatch.setenv("UINTR_EMU_STRACE", "0")
    ns = parse("run", "--cpus", "3", PROG)
    assert (ns.cpus, ns.strace) == (3, False)


@pytest.mark.parametrize("var,value", [("UINTR_EMU_CPUS", "x"), ("UINTR_EMU_STRACE", "maybe"),
                                       ("UINTR_EMU_GDB", "99999")])  # fmt: skip
def test_a_bad_environment_value_is_a_usage_error(monkeypatch, var, value):
    monkeypatch.setenv(var, value)
    with pytest.raises(cli.UsageError, match=var):
        parse("run", PROG)


def test_a_run_with_qemu_spellings(run_cli, build_program, guest_env, describe):
    """args_env prints its arguments and UEMU_TEST_VAR, exits 3; -strace adds the calls."""
    prog = str(build_program("args_env"))
    env = guest_env(UEMU_UNSET_ME="1", UINTR_EMU_CPUS="1")
    result = run_cli("-strace", "-E", "UEMU_TEST_VAR=hello", "-U", "UEMU_UNSET_ME", prog, "a",
                     env=env, timeout=120)  # fmt: skip
    rc, out, err = result
    assert rc == 3 and b"argv[1]=[a]" in out and b"hello" in out, describe(result)
    assert b"UINTR_EMU_CPUS" not in out, describe(result)
    assert b"] exit_group(3) = ?" in err, describe(result)
