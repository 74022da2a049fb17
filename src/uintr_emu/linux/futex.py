"""Futex wait queues (the futex syscall is in syscalls/futex.py; thread exit and the scheduler
use the queues too).

A futex is keyed by the memory behind its address, not the address: the host buffer and offset
of the page, so that a MAP_SHARED futex is one queue across processes (get_futex_key).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from .mm import GuestFault

if TYPE_CHECKING:
    from .kernel import Kernel
    from .process import Process, Thread


class Futexes:
    def __init__(self, k: Kernel) -> None:
        self.k = k
        self.queues: dict[Any, deque[Thread]] = {}

    def key(self, p: Process, addr: int) -> Any:
        v = p.mem.find(addr)
        if v is None:
            raise GuestFault(addr)
        return (id(v.buf), v.offset + addr - v.start)

    def enqueue(self, key: Any, t: Thread) -> None:
        self.queues.setdefault(key, deque()).append(t)

    def forget(self, t: Thread, key: Any) -> None:
        """`t` stopped waiting on `key` (woken by a signal, a timeout, ...)."""
        q = self.queues.get(key)
        if q is not None and t in q:
            q.remove(t)

    def wake(self, p: Process, addr: int, n: int, bitset: int = 0xFFFF_FFFF) -> int:
        q = self.queues.get(self.key(p, addr))
        woken = 0
        while q and woken < n:
            cand = next((t for t in q if t.wait is not None and t.wait.bitset & bitset), None)
            if cand is None:
                break
            q.remove(cand)
            self.k.sched.wake(cand, 0)
            woken += 1
        return woken

    def requeue(self, src: Any, dst: Any, n: int) -> int:
        """Move up to `n` waiters from queue `src` to `dst` (FUTEX_CMP_REQUEUE)."""
        q = self.queues.get(src)
        moved = 0
        while q and moved < n:
            w = q.popleft()
            assert w.wait is not None
            w.wait.key = dst
            self.enqueue(dst, w)
            moved += 1
        return moved
