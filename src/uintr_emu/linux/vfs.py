"""Guest paths to host paths, confined under `--root`.

With the default root "/" a guest path is the host path. With another root, every absolute guest
path is resolved component by component inside the root: `..` stops at the root, and symbolic
links are followed by hand, an absolute target restarting at the root, so no path, however
built, reaches a host file outside it (the way a chroot resolves paths).
"""

from __future__ import annotations

import errno
import os

MAX_SYMLINKS = 40  # the kernel's limit on nested symlinks (ELOOP)


class PathError(Exception):
    def __init__(self, errno: int):
        super().__init__(os.strerror(errno))
        self.errno = errno


def resolve(root: str, path: str, *, follow_last: bool = True) -> str:
    """The host path of the absolute guest `path` under `root`."""
    if root == "/":
        return path
    todo = [p for p in path.split("/") if p and p != "."]
    done: list[str] = []
    links = 0
    while todo:
        name = todo.pop(0)
        if name == "..":
            if done:
                done.pop()
            continue
        host = os.path.join(root, *done, name)
        if (todo or follow_last) and os.path.islink(host):
            links += 1
            if links > MAX_SYMLINKS:
                raise PathError(errno.ELOOP)
            target = os.readlink(host)
            if target.startswith("/"):
                done = []
            todo = [p for p in target.split("/") if p and p != "."] + todo
            continue
        done.append(name)
    return os.path.join(root, *done)


def guest_join(base: str, rel: str) -> str:
    """Join a guest directory and a relative guest path (no resolution)."""
    return rel if rel.startswith("/") else f"{base.rstrip('/')}/{rel}"
