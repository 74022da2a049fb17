"""`make corpus-deps`: install the programs the corpus runs, where they are missing and this
machine can (root and apt-get, as on a fresh Debian CI machine). Where it cannot, it says so in
one line per program and succeeds: those workloads are then skipped with the same reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from corpus.runner import PATH  # noqa: E402
from corpus.workloads import CORPUS  # noqa: E402

#: The Debian package of each program a workload needs.
PACKAGES = {
    "bash": "bash", "sh": "dash", "make": "make", "gcc": "gcc", "python3": "python3",
    "perl": "perl", "sqlite3": "sqlite3", "git": "git", "tar": "tar", "gzip": "gzip",
    "xz": "xz-utils", "zstd": "zstd", "bzip2": "bzip2", "pigz": "pigz", "cpio": "cpio",
    "node": "nodejs", "busybox": "busybox-static", "bc": "bc", "rev": "util-linux",
}  # fmt: skip


def needed() -> set[str]:
    return {t for w in CORPUS for t in w.needs}


def missing() -> list[str]:
    return sorted(t for t in needed() if not shutil.which(t, path=PATH))


def install(packages: list[str]) -> bool:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "-qq", *packages]
    # The package lists may be stale or absent: update once, only if the first try fails.
    for steps in ([install], [["apt-get", "update", "-qq"], install]):
        ok = all(subprocess.run(c, env=env, check=False).returncode == 0 for c in steps)
        if ok:
            return True
    return False


def main() -> int:
    gone = missing()
    if not gone:
        return 0
    packages = sorted({PACKAGES[t] for t in gone})
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        for t in gone:
            print(
                f"corpus: {t} not installed and cannot be (needs root and apt-get: "
                f"apt-get install {PACKAGES[t]}); its workloads will be skipped"
            )
        return 0
    print(f"corpus: installing {' '.join(packages)} (apt-get) for {' '.join(gone)}")
    if not install(packages):
        print("corpus: apt-get failed; the workloads of what is still missing will be skipped")
    for t in missing():
        print(f"corpus: {t} still not installed; its workloads will be skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
