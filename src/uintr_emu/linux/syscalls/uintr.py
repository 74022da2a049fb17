"""Intel's UINTR system calls, both generations (docs/uintr.md §10): RFC v1 (449-454) and
uintr-next (471-479); `--uintr-abi` picks the table. The mechanism behind them (receivers, UITTs,
MSR programming) is linux/uintr.py.

Every call starts the same way (`uintr_syscall`): without the hardware feature it fails as the
kernel does without X86_FEATURE_UINTR (ENOSYS under uintr-next, EOPNOTSUPP under RFC v1), and
flag bits it does not know are EINVAL (every call takes `flags` as its last argument).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ...hw import uintr as U
from ...hw.cpu import is_canonical
from ...options import UINTR_RFC_BASE, uintr_abi_parts
from .. import errno as E
from ..control import BLOCK
from ..process import Wait
from ..uintr import (
    STACK_ADJUST,
    UITT_ENTRIES,
    WAITING_RECEIVER,
    WAITING_SENDER,
    UipiFile,
    UvecFile,
)

if TYPE_CHECKING:
    from ..kernel import Kernel
    from ..process import Thread

MAX_WAIT_USEC = 1_000_000_000  # uintr_wait(2) of uintr-next: EINVAL above
_M64 = (1 << 64) - 1
Handler = Callable[..., Any]


def uintr_syscall(
    *,
    rfc: tuple[int, str] | None = None,
    next: tuple[int, str] | None = None,
    flags: int = 0,
    next_flags: int | None = None,
) -> Callable[[Handler], Handler]:
    """Mark a UINTR syscall with its (number, name) in each generation, and add the common
    preamble: the feature check, then the flags check (`flags`, or `next_flags` under
    uintr-next: the bits each accepts)."""

    def mark(fn: Handler) -> Handler:
        @functools.wraps(fn)
        def call(k: Kernel, t: Thread, *args: int) -> Any:
            u = k.uintr
            if not u.supported:
                return u.unsupported()
            allowed = next_flags if next_flags is not None and u.abi == "next" else flags
            if args[-1] & 0xFFFF_FFFF & ~allowed:
                return -E.EINVAL
            return fn(k, t, *args)

        call.__uintr_syscall__ = {"rfc": rfc, "next": next}  # type: ignore[attr-defined]
        return call

    return mark


#: The ABIs a hint may suggest, in order: the two numberings of the RFC v1 semantics that
#: Intel's series used besides 449 are 450 (the man-page draft) and 471 (the intermediate one).
KNOWN_ABIS = ("next", "rfc", "rfc:471", "rfc:450")


def other_abi_hint(abi: str, nr: int) -> str | None:
    """For a number that `abi` does not implement: which UINTR call it is under the other
    known ABIs ("uintr_wait under --uintr-abi rfc"), or None if it is none of them."""
    claims: dict[str, list[str]] = {}
    for cand in KNOWN_ABIS:
        if cand == abi:
            continue
        gen, base = uintr_abi_parts(cand)
        shift = base - UINTR_RFC_BASE if gen == "rfc" else 0
        for fn in list(globals().values()):
            mark = getattr(fn, "__uintr_syscall__", {}).get(gen)
            if mark is not None and mark[0] + shift == nr:
                claims.setdefault(mark[1], []).append(cand)
    if not claims:
        return None
    return "; ".join(f"{name} under --uintr-abi {' or '.join(c)}" for name, c in claims.items())


def _receiver(k: Kernel, t: Thread) -> Any:
    tu = k.uintr.thread(t)
    r = tu.receiver
    return r if r is not None and r.active else None


@uintr_syscall(rfc=(449, "uintr_register_handler"), next=(471, "uintr_register_handler"),
               next_flags=WAITING_RECEIVER | WAITING_SENDER)  # fmt: skip
def sys_register_handler(k: Kernel, t: Thread, handler: int, flags: int) -> int:
    # uintr_register_handler(2), both generations: "EFAULT handler address is not valid".
    # The kernel itself only rejects 0 (its "TODO: Validate the handler address"); a
    # non-canonical one would reach its WRMSR of UIHANDLER, which faults (#GP, §3) and is
    # skipped (wrmsrl_safe), leaving a receiver whose delivery jumps to the old handler.
    # Nothing is allocated before this check.
    if handler == 0 or not is_canonical(handler):
        return -E.EFAULT
    if _receiver(k, t) is not None:
        return -E.EBUSY
    k.uintr.add_receiver(t, handler, flags & (WAITING_RECEIVER | WAITING_SENDER))
    return 0


@uintr_syscall(rfc=(450, "uintr_unregister_handler"), next=(472, "uintr_unregister_handler"))
def sys_unregister_handler(k: Kernel, t: Thread, flags: int) -> int:
    if _receiver(k, t) is None:
        return -E.EINVAL
    k.uintr.remove_receiver(t)
    return 0


@uintr_syscall(rfc=(451, "uintr_create_fd"), next=(473, "uintr_vector_fd"))
def sys_vector_fd(k: Kernel, t: Thread, vector: int, flags: int) -> int:
    r = _receiver(k, t)
    if r is None:
        return -E.EINVAL
    if vector >= U.NUM_USER_VECTORS:  # unsigned: -1 is huge (§10.2)
        return -E.ENOSPC
    if r.vectors >> vector & 1:
        return -E.EBUSY
    r.vectors |= 1 << vector
    return t.process.fds.install(UvecFile(k.uintr, r, vector), cloexec=True)


def _uvec_file(t: Thread, fd: int) -> UvecFile | int:
    """The vector fd behind `fd`: EBADF if none, EOPNOTSUPP if it is another kind (§10.2)."""
    f = t.process.fds.get(fd - (1 << 64) if fd >> 63 else fd)
    if f is None:
        return -E.EBADF
    return f if isinstance(f, UvecFile) else -E.EOPNOTSUPP


@uintr_syscall(rfc=(452, "uintr_register_sender"), next=(474, "uintr_register_sender"))
def sys_register_sender(k: Kernel, t: Thread, fd: int, flags: int) -> int:
    f = _uvec_file(t, fd)
    if isinstance(f, int):
        return f
    r = f.receiver
    if not r.active or f.disabled:
        return -E.ESHUTDOWN
    if k.uintr.abi == "rfc" and any(s is t for _u, _i, s in f.senders):
        return -E.EISCONN
    return k.uintr.add_sender(t, r, f.vector, f)


@uintr_syscall(rfc=(453, "uintr_unregister_sender"))
def sys_rfc_unregister_sender(k: Kernel, t: Thread, fd: int, flags: int) -> int:
    """RFC v1 takes the vector fd: the caller's connection through it."""
    f = _uvec_file(t, fd)
    if isinstance(f, int):
        return f
    mine = [(u, i) for u, i, s in f.senders if s is t]
    if not mine:
        return -E.EINVAL
    k.uintr.remove_sender(t, *mine[0])
    return 0


@uintr_syscall(next=(475, "uintr_unregister_sender"))
def sys_unregister_sender(k: Kernel, t: Thread, index: int, flags: int) -> int:
    """uintr-next takes the uipi_index."""
    uitt = k.uintr.uitt_for(t, create=False)
    if uitt is None or index >= UITT_ENTRIES or uitt.entries[index] is None:
        return -E.EINVAL
    k.uintr.remove_sender(t, uitt, index)
    return 0


def _wait(k: Kernel, t: Thread, deadline: int | None) -> Any:
    r = _receiver(k, t)
    if r is None:
        return -E.EOPNOTSUPP
    _low, pir = k.uintr.upid_read(r.upid)
    if pir or k.uintr.rdmsr(t, U.IA32_UINTR_RR):
        return -E.EINTR  # something is pending already: deliver it on the way out
    k.sched.block(t, Wait("uintr", deadline, on_timeout=0))
    return BLOCK


@uintr_syscall(rfc=(454, "uintr_wait"))
def sys_rfc_wait(k: Kernel, t: Thread, flags: int) -> Any:
    """RFC v1: sleep until a user interrupt arrives; always EINTR (§11.6)."""
    return _wait(k, t, None)


@uintr_syscall(next=(476, "uintr_wait"))
def sys_wait(k: Kernel, t: Thread, usec: int, flags: int) -> Any:
    """uintr-next: at most `usec` microseconds; 0 after the full time, else EINTR."""
    if usec > MAX_WAIT_USEC:
        return -E.EINVAL
    return _wait(k, t, k.clock_ns() + usec * 1000)


@uintr_syscall(next=(477, "uintr_register_self"))
def sys_register_self(k: Kernel, t: Thread, vector: int, flags: int) -> int:
    r = _receiver(k, t)
    if r is None:
        return -E.EINVAL
    if vector >= U.NUM_USER_VECTORS:
        return -E.ENOSPC
    return k.uintr.add_sender(t, r, vector, None)


@uintr_syscall(next=(478, "uintr_alt_stack"))
def sys_alt_stack(k: Kernel, t: Thread, sp: int, size: int, flags: int) -> int:
    if _receiver(k, t) is None:
        return -E.EOPNOTSUPP
    # §17 #8: load mode (bit 0) with the top of the alternate stack; NULL restores 128.
    # sp + size is u64 arithmetic, as in the kernel, which validates neither ("TODO:
    # Validate address and size") and writes the MSR with xsave_wrmsrl (wrmsrl_safe): a
    # non-canonical value faults (#GP, §3), the write is skipped and do_uintr_alt_stack
    # still returns 0. So the MSR keeps its value and the call succeeds.
    value = STACK_ADJUST if sp == 0 else ((sp + size) & _M64) | 1
    if is_canonical(value):
        k.uintr.wrmsr(t, U.IA32_UINTR_STACKADJUST, value)
    return 0


@uintr_syscall(next=(479, "uintr_ipi_fd"))
def sys_ipi_fd(k: Kernel, t: Thread, flags: int) -> int:
    uitt = k.uintr.uitt_for(t, create=True)
    assert uitt is not None
    return t.process.fds.install(UipiFile(uitt), cloexec=True)
