"""--strace: each system call as `[tid] name(args) = result` on stderr, in strace's notation
(docs/tracing.md, "--strace"): flags and constants by their names (O_*, PROT_*, MAP_*, CLONE_*,
FUTEX_*, signals, ...), file descriptors, pids and other C `int`s signed (AT_FDCWD, -1), an
error as `-1 ENAME (text)`. A call that blocks prints `<unfinished ...>`, and when it returns,
`<... name resumed> = result`. The UINTR calls, which strace does not know, name their
arguments (`vector=5, flags=0`).

The numbers are Linux's x86-64 UAPI values (include/uapi/asm-generic/fcntl.h, mman-common.h,
linux/sched.h, linux/futex.h, asm/prctl.h, ...)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import errno as E
from .control import BLOCK, RESTART
from .mm import GuestFault
from .signals import SI_KERNEL, SI_TKILL, SI_USER, SIGNAL_NAMES, SigInfo, sig_name

if TYPE_CHECKING:
    from .process import Thread
    from .syscalls import Syscall

_M64 = (1 << 64) - 1
AT_FDCWD = -100


def _signed(v: int, bits: int = 64) -> int:
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def c_int(v: int) -> str:
    """A C `int` argument: the kernel uses its low 32 bits, signed (fd -1, pid -1)."""
    return str(_signed(v, 32))


def fd(v: int) -> str:
    return c_int(v)


def dirfd(v: int) -> str:
    return "AT_FDCWD" if _signed(v, 32) == AT_FDCWD else c_int(v)


def signal(v: int) -> str:
    """strace's names: SIGRTMIN is the kernel's 32, then SIGRT_1 .. SIGRT_32."""
    sig = _signed(v, 32)
    if sig in SIGNAL_NAMES:
        return SIGNAL_NAMES[sig]
    if sig == 32:
        return "SIGRTMIN"
    if 33 <= sig <= 64:
        return f"SIGRT_{sig - 32}"
    return str(sig)


def flags(names: dict[int, str], zero: str = "0") -> Callable[[int], str]:
    """Bits by name, OR-ed; bits without a name as one hex number at the end."""

    def fmt(v: int) -> str:
        out, rest = [], v
        for bit, name in names.items():
            if v & bit == bit and rest & bit:
                out.append(name)
                rest &= ~bit
        if rest:
            out.append(hex(rest))
        return "|".join(out) or zero

    return fmt


def choice(names: dict[int, str]) -> Callable[[int], str]:
    """One value by name (else as a number)."""
    return lambda v: names.get(v, str(_signed(v, 32)))


def _with_low(low_mask: int, low: Callable[[int], str], high: Callable[[int], str]):
    """A field in the low bits (an access mode, a mapping type) then flags above it."""

    def fmt(v: int) -> str:
        rest = v & ~low_mask
        return low(v & low_mask) + ("|" + high(rest) if rest else "")

    return fmt


def octal(v: int) -> str:
    return f"0{v:o}" if v else "0"


# --- the constants ------------------------------------------------------------------------

O_CREAT, O_TMPFILE = 0o100, 0o20200000
_O_FLAGS = {
    0o100: "O_CREAT", 0o200: "O_EXCL", 0o400: "O_NOCTTY", 0o1000: "O_TRUNC", 0o2000: "O_APPEND",
    0o4000: "O_NONBLOCK", 0o4010000: "O_SYNC", 0o10000: "O_DSYNC", 0o20000: "O_ASYNC",
    0o40000: "O_DIRECT", 0o100000: "O_LARGEFILE", 0o20200000: "O_TMPFILE",
    0o200000: "O_DIRECTORY", 0o400000: "O_NOFOLLOW", 0o1000000: "O_NOATIME",
    0o2000000: "O_CLOEXEC", 0o10000000: "O_PATH",
}  # fmt: skip
open_flags = _with_low(3, choice({0: "O_RDONLY", 1: "O_WRONLY", 2: "O_RDWR"}), flags(_O_FLAGS))
cloexec_flags = flags({0o2000000: "O_CLOEXEC", 0o4000: "O_NONBLOCK"})
prot = flags({1: "PROT_READ", 2: "PROT_WRITE", 4: "PROT_EXEC", 8: "PROT_SEM",
              0x1000000: "PROT_GROWSDOWN", 0x2000000: "PROT_GROWSUP"}, "PROT_NONE")  # fmt: skip
_MAP_FLAGS = {
    0x10: "MAP_FIXED", 0x20: "MAP_ANONYMOUS", 0x40: "MAP_32BIT", 0x100: "MAP_GROWSDOWN",
    0x800: "MAP_DENYWRITE", 0x1000: "MAP_EXECUTABLE", 0x2000: "MAP_LOCKED",
    0x4000: "MAP_NORESERVE", 0x8000: "MAP_POPULATE", 0x10000: "MAP_NONBLOCK",
    0x20000: "MAP_STACK", 0x40000: "MAP_HUGETLB", 0x80000: "MAP_SYNC",
    0x100000: "MAP_FIXED_NOREPLACE", 0x4000000: "MAP_UNINITIALIZED",
}  # fmt: skip
map_flags = _with_low(
    0xF, choice({1: "MAP_SHARED", 2: "MAP_PRIVATE", 3: "MAP_SHARED_VALIDATE"}), flags(_MAP_FLAGS)
)
_CLONE_FLAGS = {
    0x100: "CLONE_VM", 0x200: "CLONE_FS", 0x400: "CLONE_FILES", 0x800: "CLONE_SIGHAND",
    0x1000: "CLONE_PIDFD", 0x2000: "CLONE_PTRACE", 0x4000: "CLONE_VFORK",
    0x8000: "CLONE_PARENT", 0x10000: "CLONE_THREAD", 0x20000: "CLONE_NEWNS",
    0x40000: "CLONE_SYSVSEM", 0x80000: "CLONE_SETTLS", 0x100000: "CLONE_PARENT_SETTID",
    0x200000: "CLONE_CHILD_CLEARTID", 0x400000: "CLONE_DETACHED", 0x800000: "CLONE_UNTRACED",
    0x1000000: "CLONE_CHILD_SETTID", 0x2000000: "CLONE_NEWCGROUP", 0x4000000: "CLONE_NEWUTS",
    0x8000000: "CLONE_NEWIPC", 0x10000000: "CLONE_NEWUSER", 0x20000000: "CLONE_NEWPID",
    0x40000000: "CLONE_NEWNET", 0x80000000: "CLONE_IO",
}  # fmt: skip
clone_flag_bits = flags(_CLONE_FLAGS)


def clone_flags(v: int) -> str:
    """clone's flags: CLONE_* bits, the exit signal in the low byte (CSIGNAL)."""
    sig, rest = v & 0xFF, v & ~0xFF
    parts = [clone_flag_bits(rest)] if rest else []
    parts += [signal(sig)] if sig else []
    return "|".join(parts) or "0"


_FUTEX_OPS = {
    0: "FUTEX_WAIT", 1: "FUTEX_WAKE", 2: "FUTEX_FD", 3: "FUTEX_REQUEUE",
    4: "FUTEX_CMP_REQUEUE", 5: "FUTEX_WAKE_OP", 6: "FUTEX_LOCK_PI", 7: "FUTEX_UNLOCK_PI",
    8: "FUTEX_TRYLOCK_PI", 9: "FUTEX_WAIT_BITSET", 10: "FUTEX_WAKE_BITSET",
    11: "FUTEX_WAIT_REQUEUE_PI", 12: "FUTEX_CMP_REQUEUE_PI", 13: "FUTEX_LOCK_PI2",
}  # fmt: skip


def futex_op(v: int) -> str:
    """FUTEX_WAIT_BITSET_PRIVATE|FUTEX_CLOCK_REALTIME, as strace writes it."""
    name = _FUTEX_OPS.get(v & 0x7F, str(v & 0x7F))
    if v & 128:  # FUTEX_PRIVATE_FLAG
        name += "_PRIVATE"
    if v & 256:
        name += "|FUTEX_CLOCK_REALTIME"
    if v & ~0x1FF:
        name += f"|{v & ~0x1FF:#x}"
    return name


clock_id = choice({
    0: "CLOCK_REALTIME", 1: "CLOCK_MONOTONIC", 2: "CLOCK_PROCESS_CPUTIME_ID",
    3: "CLOCK_THREAD_CPUTIME_ID", 4: "CLOCK_MONOTONIC_RAW", 5: "CLOCK_REALTIME_COARSE",
    6: "CLOCK_MONOTONIC_COARSE", 7: "CLOCK_BOOTTIME", 8: "CLOCK_REALTIME_ALARM",
    9: "CLOCK_BOOTTIME_ALARM", 11: "CLOCK_TAI",
})  # fmt: skip
sigprocmask_how = choice({0: "SIG_BLOCK", 1: "SIG_UNBLOCK", 2: "SIG_SETMASK"})
arch_prctl_code = choice({0x1001: "ARCH_SET_GS", 0x1002: "ARCH_SET_FS", 0x1003: "ARCH_GET_FS",
                          0x1004: "ARCH_GET_GS", 0x1011: "ARCH_GET_CPUID",
                          0x1012: "ARCH_SET_CPUID"})  # fmt: skip
fcntl_cmd = choice({
    0: "F_DUPFD", 1: "F_GETFD", 2: "F_SETFD", 3: "F_GETFL", 4: "F_SETFL", 5: "F_GETLK",
    6: "F_SETLK", 7: "F_SETLKW", 8: "F_SETOWN", 9: "F_GETOWN", 10: "F_SETSIG", 11: "F_GETSIG",
    1030: "F_DUPFD_CLOEXEC", 1031: "F_SETPIPE_SZ", 1032: "F_GETPIPE_SZ", 1033: "F_ADD_SEALS",
    1034: "F_GET_SEALS",
})  # fmt: skip
wait_options = flags({1: "WNOHANG", 2: "WUNTRACED", 8: "WCONTINUED", 0x20000000: "__WNOTHREAD",
                      0x40000000: "__WALL", 0x80000000: "__WCLONE"})  # fmt: skip
whence = choice({0: "SEEK_SET", 1: "SEEK_CUR", 2: "SEEK_END", 3: "SEEK_DATA", 4: "SEEK_HOLE"})
madvise_advice = choice({
    0: "MADV_NORMAL", 1: "MADV_RANDOM", 2: "MADV_SEQUENTIAL", 3: "MADV_WILLNEED",
    4: "MADV_DONTNEED", 8: "MADV_FREE", 9: "MADV_REMOVE", 10: "MADV_DONTFORK",
    11: "MADV_DOFORK", 12: "MADV_MERGEABLE", 13: "MADV_UNMERGEABLE", 14: "MADV_HUGEPAGE",
    15: "MADV_NOHUGEPAGE", 16: "MADV_DONTDUMP", 17: "MADV_DODUMP", 18: "MADV_WIPEONFORK",
    19: "MADV_KEEPONFORK", 20: "MADV_COLD", 21: "MADV_PAGEOUT",
})  # fmt: skip
at_flags = flags({0x100: "AT_SYMLINK_NOFOLLOW", 0x400: "AT_SYMLINK_FOLLOW",
                  0x800: "AT_NO_AUTOMOUNT", 0x1000: "AT_EMPTY_PATH",
                  0x2000: "AT_STATX_FORCE_SYNC", 0x4000: "AT_STATX_DONT_SYNC"})  # fmt: skip
access_mode = flags({4: "R_OK", 2: "W_OK", 1: "X_OK"}, "F_OK")
socket_type = _with_low(
    0xF,
    choice({1: "SOCK_STREAM", 2: "SOCK_DGRAM", 3: "SOCK_RAW", 5: "SOCK_SEQPACKET"}),
    flags({0o4000: "SOCK_NONBLOCK", 0o2000000: "SOCK_CLOEXEC"}),
)
socket_domain = choice({1: "AF_UNIX", 2: "AF_INET", 10: "AF_INET6", 16: "AF_NETLINK"})
rlimit = choice({
    0: "RLIMIT_CPU", 1: "RLIMIT_FSIZE", 2: "RLIMIT_DATA", 3: "RLIMIT_STACK", 4: "RLIMIT_CORE",
    5: "RLIMIT_RSS", 6: "RLIMIT_NPROC", 7: "RLIMIT_NOFILE", 8: "RLIMIT_MEMLOCK", 9: "RLIMIT_AS",
    10: "RLIMIT_LOCKS", 11: "RLIMIT_SIGPENDING", 12: "RLIMIT_MSGQUEUE", 13: "RLIMIT_NICE",
    14: "RLIMIT_RTPRIO", 15: "RLIMIT_RTTIME",
})  # fmt: skip
ioctl_request = choice({
    0x5401: "TCGETS", 0x5402: "TCSETS", 0x5413: "TIOCGWINSZ", 0x5421: "FIONBIO",
    0x541B: "FIONREAD", 0x5450: "FIONCLEX", 0x5451: "FIOCLEX",
    # uvec fd and uipi fd ioctls (docs/uintr.md §10.3)
    0x5500: "UINTR_IS_ACTIVE", 0x5501: "UINTR_DISABLE", 0x5502: "UINTR_NOTIFY",
    0x7500: "UIPI_SET_TARGET_TABLE", 0x7501: "UIPI_CLEAR_TARGET_TABLE",
})  # fmt: skip
# The UINTR handler flags (uintr-next; docs/uintr.md §10.3).
uintr_flags = flags({0x1000: "UINTR_HANDLER_FLAG_WAITING_RECEIVER",
                     0x2000: "UINTR_HANDLER_FLAG_WAITING_SENDER"})  # fmt: skip

Decoder = Callable[[int], str]
# By argument name, for every call (the handlers' parameter names: syscalls/).
BY_ARG: dict[str, Decoder] = {
    "fd": fd, "epfd": fd, "dirfd": dirfd, "olddirfd": dirfd, "newdirfd": dirfd,
    "pid": c_int, "tid": c_int, "tgid": c_int, "pgid": c_int, "sig": signal, "clk": clock_id,
}  # fmt: skip
# By call and argument.
BY_CALL: dict[str, dict[str, Decoder]] = {
    "open": {"flags": open_flags, "mode": octal},
    "openat": {"flags": open_flags, "mode": octal},
    "mmap": {"prot": prot, "flags": map_flags},
    "mprotect": {"prot": prot},
    "clone": {"flags": clone_flags},
    "futex": {"op": futex_op},
    "rt_sigprocmask": {"how": sigprocmask_how},
    "arch_prctl": {"code": arch_prctl_code},
    "fcntl": {"cmd": fcntl_cmd},
    "wait4": {"options": wait_options},
    "lseek": {"whence": whence},
    "madvise": {"advice": madvise_advice},
    "pipe2": {"flags": cloexec_flags},
    "dup2": {"old": fd, "new": fd},
    "dup3": {"old": fd, "new": fd, "flags": cloexec_flags},
    "dup": {},
    "epoll_create1": {"flags": cloexec_flags},
    "eventfd2": {
        "flags": flags({0o2000000: "EFD_CLOEXEC", 0o4000: "EFD_NONBLOCK", 1: "EFD_SEMAPHORE"})
    },  # fmt: skip
    "epoll_ctl": {"op": choice({1: "EPOLL_CTL_ADD", 2: "EPOLL_CTL_DEL", 3: "EPOLL_CTL_MOD"})},
    "socketpair": {"domain": socket_domain, "type": socket_type},
    "unlinkat": {"flags": flags({0x200: "AT_REMOVEDIR"})},
    "newfstatat": {"flags": at_flags},
    "statx": {"flags": at_flags},
    "fchownat": {"flags": at_flags},
    "utimensat": {"flags": at_flags},
    "linkat": {"flags": at_flags},
    "faccessat": {"mode": access_mode},
    "faccessat2": {
        "mode": access_mode,
        "flags": flags(
            {0x200: "AT_EACCESS", 0x100: "AT_SYMLINK_NOFOLLOW", 0x1000: "AT_EMPTY_PATH"}
        ),
    },  # fmt: skip
    "access": {"mode": access_mode},
    "mkdir": {"mode": octal},
    "mkdirat": {"mode": octal},
    "chmod": {"mode": octal},
    "fchmod": {"mode": octal},
    "fchmodat": {"mode": octal},
    "umask": {"mask": octal},
    "mremap": {"flags": flags({1: "MREMAP_MAYMOVE", 2: "MREMAP_FIXED", 4: "MREMAP_DONTUNMAP"})},
    "clock_nanosleep": {"flags": flags({1: "TIMER_ABSTIME"})},
    "prlimit64": {"resource": rlimit},
    "getrlimit": {"resource": rlimit},
    "getrandom": {"flags": flags({1: "GRND_NONBLOCK", 2: "GRND_RANDOM", 4: "GRND_INSECURE"})},
    "ioctl": {"req": ioctl_request},
}
# The UINTR calls: every argument shown as name=value (strace has no table for them).
UINTR_ARGS: dict[str, Decoder] = {
    "handler": hex, "flags": uintr_flags, "vector": str, "fd": fd, "index": str,
    "usec": str, "sp": hex, "size": str,
}  # fmt: skip


def _clone3_args(t: Thread, addr: int) -> str | None:
    """struct clone_args (linux/sched.h): flags, exit_signal, stack, stack_size, tls."""
    try:
        raw = t.process.mem.read(addr, 64)
    except GuestFault:
        return None
    q = [int.from_bytes(raw[i : i + 8], "little") for i in range(0, 64, 8)]
    return (f"{{flags={clone_flag_bits(q[0])}, exit_signal={signal(q[4]) if q[4] else 0}, "
            f"stack={q[5]:#x}, stack_size={q[6]:#x}, tls={q[7]:#x}}}")  # fmt: skip


def format_arg(t: Thread, call: str, name: str, kind: str | None, v: int) -> str:
    if kind == "str":
        try:
            return repr(t.process.mem.read_cstr(v, 256).decode("utf-8", "replace"))
        except GuestFault:
            return hex(v)
    if call.startswith("uintr_"):
        return f"{name}={UINTR_ARGS.get(name, hex)(v)}"
    if call == "clone3" and name == "args":
        return _clone3_args(t, v) or hex(v)
    decode = BY_CALL.get(call, {}).get(name) or BY_ARG.get(name)
    if decode is not None:
        return decode(v)
    if kind == "int":
        return str(_signed(v))
    return str(v) if v < 4096 else hex(v)


def format_call(t: Thread, sc: Syscall, args: list[int]) -> str:
    names = sc.argnames
    if sc.name in ("open", "openat") and not (
        args[-2] & O_CREAT or args[-2] & O_TMPFILE == O_TMPFILE
    ):
        names = names[:-1]  # the mode means nothing without O_CREAT: strace leaves it out
    parts = [format_arg(t, sc.name, n, sc.fmt.get(n), v)
             for n, v in zip(names, args, strict=False)]  # fmt: skip
    return f"{sc.name}({', '.join(parts)})"


def format_result(result: Any) -> str:
    if result is RESTART:
        return "?"
    if isinstance(result, int) and -4096 < result < 0:
        return f"-1 {E.name(-result)} ({os.strerror(-result)})"
    return hex(result) if isinstance(result, int) and result > 0xFFFF else str(result)


class Strace:
    """The --strace printer of one kernel; remembers each thread's call that blocked."""

    def __init__(self, fd: int = 2) -> None:
        self.fd = fd
        self.unfinished: dict[int, str] = {}  # tid -> the name of its blocked call

    def _line(self, t: Thread, text: str) -> None:
        os.write(self.fd, f"[{t.tid}] {text}\n".encode())

    def report(self, t: Thread, call: str, result: Any) -> None:
        """A system call and what it returned; BLOCK: it sleeps. A call that blocked and is
        run again when woken (a pipe read: ERESTARTSYS) ends its unfinished line here."""
        name = call.partition("(")[0]
        again = self.unfinished.get(t.tid) == name
        if result is BLOCK:
            if not again:
                self.unfinished[t.tid] = name
                self._line(t, f"{call} <unfinished ...>")
            return
        if again:
            del self.unfinished[t.tid]
            self._line(t, f"<... {name} resumed> = {format_result(result)}")
            return
        self.unfinished.pop(t.tid, None)
        shown = format_result(result)
        if result is RESTART and t.interrupted == E.ERESTARTSYS:  # a host read a signal ended
            shown = "? ERESTARTSYS (To be restarted if SA_RESTART is set)"
        self._line(t, f"{call} = {shown}")

    def resumed(self, t: Thread, result: int) -> None:
        """A blocked call's result, written when the thread runs again (a futex wait, a
        sleep; -EINTR when a signal ended it)."""
        name = self.unfinished.pop(t.tid, None)
        if name is not None:
            self._line(t, f"<... {name} resumed> = {format_result(result)}")

    def report_signal(self, t: Thread, info: SigInfo) -> None:
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
        self._line(t, f"--- {name} {{si_signo={name}, si_code={code}, {rest}}} ---")
