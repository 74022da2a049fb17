"""Docs that must stay true: the syscall list in docs/linux.md is the dispatcher's table."""

import re
from pathlib import Path

from uintr_emu.linux.syscalls import registry

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_linux_md_lists_exactly_the_implemented_syscalls():
    text = (DOCS / "linux.md").read_text()
    table = text.split("## Implemented system calls")[1].split("##")[0]
    documented = {(name, int(nr)) for name, nr in re.findall(r"(\w+) \((\d+)\)", table)}
    implemented = {(sc.name, nr) for nr, sc in registry().items()}
    # The UINTR syscalls are registered by the UINTR layer per ABI (docs/uintr-linux.md).
    assert documented == implemented
