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
    # The UINTR syscalls, one set per ABI, are in docs/uintr-linux.md (the next test).
    implemented = {
        (sc.name, nr) for nr, sc in registry().items() if not sc.name.startswith("uintr_")
    }
    assert documented == implemented


def test_uintr_linux_md_lists_both_abis_syscalls():
    text = (DOCS / "uintr-linux.md").read_text()
    table = text.split("## The two ABIs")[1].split("##")[0]
    rows = re.findall(r"^\| (\d+|—) \| (\d+) \| `(uintr_\w+)", table, re.M)
    documented = {"rfc": {int(r) for r, _n, _c in rows if r != "—"},
                  "next": {int(n) for _r, n, _c in rows}}  # fmt: skip
    for abi, numbers in documented.items():
        uintr = {nr for nr, sc in registry(abi).items() if sc.name.startswith("uintr_")}
        assert numbers == uintr, abi


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
