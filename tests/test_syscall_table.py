"""Every call of the x86-64 table is decided (docs/linux.md, "Calls not implemented"): a
handler in the registry, a deliberate errno (`REFUSED`) or a known gap (`GAPS`), and the docs
render the two tables."""

import re
from pathlib import Path

from uintr_emu.linux import errno as E
from uintr_emu.linux.syscall_names import NAMES
from uintr_emu.linux.syscalls import registry
from uintr_emu.linux.syscalls.refused import GAPS, REFUSED, errno_for, groups

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_every_x86_64_call_is_decided():
    implemented = set(registry("next"))
    decided = implemented | set(REFUSED) | set(GAPS)
    undecided = sorted(f"{nr} {NAMES[nr]}" for nr in NAMES if nr not in decided)
    assert not undecided, f"neither implemented nor in refused.py: {undecided}"


def test_decisions_do_not_overlap():
    implemented = set(registry("next"))
    assert not implemented & set(REFUSED), sorted(NAMES[n] for n in implemented & set(REFUSED))
    assert not implemented & set(GAPS), sorted(NAMES[n] for n in implemented & set(GAPS))
    assert not set(REFUSED) & set(GAPS)


def test_only_the_unassigned_numbers_have_no_name():
    """0..466 are named, except 335..423, which x86-64 never assigned (the numbers the other
    architectures' new calls took are from 424 on, the same everywhere)."""
    assert set(range(467)) - set(NAMES) == set(range(335, 424))


def test_the_errnos():
    assert errno_for(NAMES_TO["mount"]) == E.EPERM
    assert errno_for(NAMES_TO["io_uring_setup"]) == E.ENOSYS
    assert errno_for(NAMES_TO["restart_syscall"]) == E.EINTR
    assert errno_for(NAMES_TO["timer_create"]) == E.ENOSYS  # a gap
    assert errno_for(400) == E.ENOSYS  # no call at all
    for nr, (errno, reason) in REFUSED.items():
        assert errno > 0 and reason, NAMES[nr]


NAMES_TO = {name: nr for nr, name in NAMES.items()}


def test_linux_md_renders_both_tables():
    text = (DOCS / "linux.md").read_text()
    section = text.split("## Calls not implemented")[1].split("\n## ")[0]
    refused, gaps = section.split("Not emulated yet")
    documented = {int(n) for n in re.findall(r"\((\d+)\)", refused)}
    assert documented == set(REFUSED)
    assert {int(n) for n in re.findall(r"\((\d+)\)", gaps)} == set(GAPS)
    for errno, reason, _names in groups()[0]:
        assert f"{E.name(errno)}" in refused and reason.split(" (")[0][:40] in refused.replace(
            "\n", " "
        ), reason
