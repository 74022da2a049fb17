"""Docs that must stay true: the syscall list in docs/linux.md is the dispatcher's table;
README and docs/robustness.md name the command-line options."""

import argparse
import re
from pathlib import Path

from uintr_emu.cli import build_parser
from uintr_emu.linux.syscalls import registry

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_linux_md_lists_exactly_the_implemented_syscalls():
    text = (DOCS / "linux.md").read_text()
    table = text.split("## Implemented system calls")[1].split("##")[0]
    documented = {(name, int(nr)) for name, nr in re.findall(r"(\w+) \((\d+)\)", table)}
    implemented = {(sc.name, nr) for nr, sc in registry().items()}
    # The UINTR syscalls are registered by the UINTR layer per ABI (docs/uintr-linux.md).
    assert documented == implemented


def test_readme_lists_every_run_option():
    """README's command-line table names every option of `uintr-emu run`."""
    text = (DOCS.parent / "README.md").read_text()
    table = text.split("## Command line")[1].split("\n## ")[0]
    run = next(
        a.choices["run"]
        for a in build_parser()._actions
        if isinstance(a, argparse._SubParsersAction)
    )
    options = {s for a in run._actions for s in a.option_strings if s not in ("-h", "--help")}
    missing = sorted(o for o in options if f"`{o}" not in table)
    assert not missing, f"README's command-line table lacks {missing}"


def test_robustness_md_lists_the_limit_options():
    """docs/robustness.md's limits table has a row for each limit option."""
    text = (DOCS / "robustness.md").read_text()
    table = text.split("## Limits and what they print")[1].split("\n## ")[0]
    for option in ("--max-insns", "--timeout", "--max-threads", "--max-procs"):
        assert f"`{option}" in table, option
