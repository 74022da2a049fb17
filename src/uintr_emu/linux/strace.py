"""--strace: each system call as `[tid] name(args) = result` on stderr, as strace prints it."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from . import errno as E
from .control import BLOCK, RESTART
from .mm import GuestFault
from .signals import SI_KERNEL, SI_TKILL, SI_USER, SigInfo, sig_name

if TYPE_CHECKING:
    from .process import Thread
    from .syscalls import Syscall


def format_call(t: Thread, sc: Syscall, args: list[int]) -> str:
    parts = []
    for name, v in zip(sc.argnames, args, strict=False):
        kind = sc.fmt.get(name)
        if kind == "str":
            try:
                parts.append(repr(t.process.mem.read_cstr(v, 256).decode("utf-8", "replace")))
                continue
            except GuestFault:
                pass
        if kind == "int" or (kind is None and v < 4096):
            parts.append(str(v if v < 2**63 else v - 2**64))
        else:
            parts.append(hex(v))
    return f"{sc.name}({', '.join(parts)})"


def format_result(result: Any) -> str:
    if result is BLOCK:
        return "? <blocks>"
    if result is RESTART:
        return "?"
    if isinstance(result, int) and -4096 < result < 0:
        return f"-1 {E.name(-result)}"
    return hex(result) if isinstance(result, int) and result > 0xFFFF else str(result)


def report(t: Thread, call: str, result: Any) -> None:
    shown = format_result(result)
    if result is RESTART and t.interrupted == E.ERESTARTSYS:  # a host read a signal ended
        shown = "? ERESTARTSYS (To be restarted if SA_RESTART is set)"
    os.write(2, f"[{t.tid}] {call} = {shown}\n".encode())


def report_signal(t: Thread, info: SigInfo) -> None:
    """A signal delivered (a handler runs, or it ends the process), as strace shows it:
    `[tid] --- SIGINT {si_signo=SIGINT, si_code=SI_USER, si_pid=0, si_uid=1000} ---`."""
    name = sig_name(info.signo)
    code = {SI_USER: "SI_USER", SI_KERNEL: "SI_KERNEL", SI_TKILL: "SI_TKILL"}.get(
        info.code, str(info.code)
    )
    if info.is_fault and info.code != SI_KERNEL:
        rest = f"si_addr={info.addr:#x}"
    else:
        rest = f"si_pid={info.pid}, si_uid={info.uid}"
    os.write(2, f"[{t.tid}] --- {name} {{si_signo={name}, si_code={code}, {rest}}} ---\n"
             .encode())  # fmt: skip
