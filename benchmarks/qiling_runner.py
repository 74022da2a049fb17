"""Run a static x86-64 Linux program under Qiling, for comparison with uintr-emu.

Qiling pins its own Unicorn, so it lives in a separate venv (benchmarks/run.py creates it):

    python3 -m venv build/qiling-venv && build/qiling-venv/bin/pip install qiling==1.4.6
    build/qiling-venv/bin/python benchmarks/qiling_runner.py PROGRAM [ARGS...]

Qiling needs a root file system directory, and it resolves /proc/self/exe (which glibc's
static start-up reads) inside it, so the program is copied into `build/qiling-rootfs/` first.
The guest's stdout and stderr pass through; on stderr a last line `qiling: <seconds> s` gives
the emulation time (Qiling's set-up included, Python start-up excluded). If Qiling fails, the
line is `qiling: error: <first line of the exception>` and the exit status is 1; otherwise the
status is the guest's.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

ROOTFS = Path(__file__).resolve().parents[1] / "build" / "qiling-rootfs"


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    ROOTFS.mkdir(parents=True, exist_ok=True)
    guest = ROOTFS / Path(argv[0]).name
    if not guest.exists() or guest.stat().st_mtime < Path(argv[0]).stat().st_mtime:
        shutil.copy2(argv[0], guest)
    t0 = time.perf_counter()
    try:
        from qiling import Qiling
        from qiling.const import QL_VERBOSE

        ql = Qiling([str(guest), *argv[1:]], str(ROOTFS), verbose=QL_VERBOSE.DISABLED)
        ql.run()
        status = getattr(ql.os, "exit_code", 0) or 0
    except BaseException as e:  # noqa: BLE001 - reported, not raised
        first = (str(e).strip().splitlines() or [""])[0]
        sys.stdout.flush()
        print(f"qiling: error: {type(e).__name__}: {first}", file=sys.stderr)
        return 1
    sys.stdout.flush()
    print(f"qiling: {time.perf_counter() - t0:.3f} s", file=sys.stderr)
    return int(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
