"""Syscall handlers, one module per family. Each handler is a plain function
`sys_name(kernel, thread, arg...)`; the dispatcher passes as many argument registers as the
handler has parameters, so `--strace` prints `name(arg, ...) = result` for free."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...options import UINTR_RFC_BASE, uintr_abi_parts


@dataclass
class Syscall:
    nr: int
    name: str
    fn: Callable[..., Any]
    argnames: tuple[str, ...]
    fmt: dict[str, str]  # argument name -> "str" (print as string), "hex", "int"


FAMILIES = (
    "mm", "thread", "futex", "paths", "open", "rw", "stat", "dirs", "pipes", "net", "eventfd",
    "attrs", "epoll", "time", "signal", "process", "misc", "fileops", "procattrs", "uintr",
)  # fmt: skip


def syscall(nr: int, **fmt: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark a handler with its x86-64 syscall number; `fmt` says how strace prints arguments
    ("str": a C string, "int": decimal, "hex")."""

    def mark(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn.__syscall__ = (nr, fmt)  # type: ignore[attr-defined]
        return fn

    return mark


def registry(uintr_abi: str = "next") -> dict[int, Syscall]:
    """Every handler by number; the UINTR calls of `uintr_abi` ("next", "rfc" or "rfc:BASE":
    the RFC v1 calls moved to BASE..BASE+5)."""
    gen, base = uintr_abi_parts(uintr_abi)
    shift = base - UINTR_RFC_BASE if gen == "rfc" else 0
    table: dict[int, Syscall] = {}
    for fam in FAMILIES:
        mod = importlib.import_module(f"{__name__}.{fam}")
        for obj in vars(mod).values():
            mark = getattr(obj, "__syscall__", None)
            if mark is not None:
                nr, fmt = mark
                name = obj.__name__.removeprefix("sys_")
            else:
                abis = getattr(obj, "__uintr_syscall__", None)
                if abis is None or abis.get(gen) is None:
                    continue
                (nr, name), fmt = abis[gen], {}
                nr += shift  # "uintr" is the last family: under rfc:BASE its calls win
            table[nr] = Syscall(nr, name, obj, _arg_names(obj), fmt)
    return table


def _arg_names(fn: Callable[..., Any]) -> tuple[str, ...]:
    """The parameters after (kernel, thread), from the code object (through functools.wraps):
    what inspect.signature says of these plain functions, without its ~2 ms per start."""
    code = getattr(fn, "__wrapped__", fn).__code__
    return code.co_varnames[2 : code.co_argcount]
