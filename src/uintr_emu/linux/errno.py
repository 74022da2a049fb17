"""Linux errno values (x86-64): the host's `errno` module has the same numbers on Linux."""

import errno as _errno
from errno import *  # noqa: F403

# A system call a signal interrupted ends with one of these (include/linux/errno.h); user
# space never sees them: delivery turns them into EINTR or a restart (Signals.restart).
ERESTARTSYS = 512  # restarted if the handler has SA_RESTART
ERESTARTNOINTR = 513  # always restarted
ERESTARTNOHAND = 514  # restarted only if no handler runs
ERESTART_RESTARTBLOCK = 516  # EINTR when a handler runs (nanosleep, timed futex waits)


def name(n: int) -> str:
    return _errno.errorcode.get(n, f"E{n}")
