"""Linux errno values (x86-64): the host's `errno` module has the same numbers on Linux."""

import errno as _errno
from errno import *  # noqa: F403

ERESTARTSYS = 512  # never seen by user space


def name(n: int) -> str:
    return _errno.errorcode.get(n, f"E{n}")
