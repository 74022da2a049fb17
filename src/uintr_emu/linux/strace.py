"""--strace: each system call as `[tid] name(args) = result` on stderr, as strace prints it."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from . import errno as E
from .control import BLOCK, RESTART
from .mm import GuestFault

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
    os.write(2, f"[{t.tid}] {call} = {format_result(result)}\n".encode())
