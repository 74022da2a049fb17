"""Linux signals on x86-64: numbers, default actions and the rt_sigframe layout.

Frame layout (arch/x86/include/asm/sigframe.h, uapi/asm/sigcontext.h, uapi/asm/ucontext.h):

    rt_sigframe: pretcode (8) | ucontext (uc_flags 8, uc_link 8, uc_stack 24, sigcontext 256,
                 uc_sigmask 8) | siginfo (128)

The sigcontext holds r8-r15, rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp, rip, eflags, cs/gs/fs/ss,
err, trapno, oldmask, cr2, fpstate, reserved. FPU/SSE state is not written to the frame; the
emulator keeps the interrupted thread's full register context on the host, keyed by the frame's
address, and rt_sigreturn restores it with the general registers taken from the (possibly
modified) frame.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

SIGNAL_NAMES = {
    1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT",
    7: "SIGBUS", 8: "SIGFPE", 9: "SIGKILL", 10: "SIGUSR1", 11: "SIGSEGV", 12: "SIGUSR2",
    13: "SIGPIPE", 14: "SIGALRM", 15: "SIGTERM", 16: "SIGSTKFLT", 17: "SIGCHLD", 18: "SIGCONT",
    19: "SIGSTOP", 20: "SIGTSTP", 21: "SIGTTIN", 22: "SIGTTOU", 23: "SIGURG", 24: "SIGXCPU",
    25: "SIGXFSZ", 26: "SIGVTALRM", 27: "SIGPROF", 28: "SIGWINCH", 29: "SIGIO", 30: "SIGPWR",
    31: "SIGSYS",
}  # fmt: skip
SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE, SIGKILL = 4, 5, 6, 7, 8, 9
SIGSEGV, SIGPIPE, SIGALRM, SIGCHLD, SIGSTOP = 11, 13, 14, 17, 19
NSIG = 64
# Signals whose default action is to do nothing (signal(7)); SIGCONT/stop signals are not
# modelled as job control and are ignored too.
IGNORED_BY_DEFAULT = {17, 18, 19, 20, 21, 22, 23, 28}
UNBLOCKABLE = (1 << (SIGKILL - 1)) | (1 << (SIGSTOP - 1))

SIG_DFL, SIG_IGN = 0, 1
SA_SIGINFO, SA_ONSTACK, SA_RESTART = 0x4, 0x0800_0000, 0x1000_0000
SA_NODEFER, SA_RESETHAND, SA_RESTORER = 0x4000_0000, 0x8000_0000, 0x0400_0000
SS_ONSTACK, SS_DISABLE = 1, 2

# si_code values
SI_USER, SI_KERNEL, SI_TKILL = 0, 0x80, -6
ILL_ILLOPN, ILL_ILLOPC = 2, 1
SEGV_MAPERR, SEGV_ACCERR = 1, 2
FPE_INTDIV = 1
TRAP_BRKPT = 1
BUS_ADRERR = 2

FRAME_SIZE = 8 + 8 + 8 + 24 + 256 + 8 + 128  # pretcode + ucontext + siginfo
UC_OFFSET = 8
MCONTEXT_OFFSET = UC_OFFSET + 40
SIGMASK_OFFSET = MCONTEXT_OFFSET + 256
SIGINFO_OFFSET = SIGMASK_OFFSET + 8
# Order of the general registers in struct sigcontext.
SIGCONTEXT_GPRS = (
    "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
    "rdi", "rsi", "rbp", "rbx", "rdx", "rax", "rcx", "rsp", "rip", "eflags",
)  # fmt: skip


def sig_name(sig: int) -> str:
    if 34 <= sig <= 64:
        return f"SIGRT{sig - 34}" if sig != 34 else "SIGRTMIN"
    return SIGNAL_NAMES.get(sig, f"signal {sig}")


def bit(sig: int) -> int:
    return 1 << (sig - 1)


@dataclass
class SigAction:
    handler: int = SIG_DFL
    flags: int = 0
    restorer: int = 0
    mask: int = 0

    def pack(self) -> bytes:
        return struct.pack("<QQQQ", self.handler, self.flags, self.restorer, self.mask)

    @classmethod
    def unpack(cls, data: bytes) -> SigAction:
        return cls(*struct.unpack("<QQQQ", data))


@dataclass
class SigInfo:
    signo: int
    code: int = SI_USER
    errno: int = 0
    addr: int = 0  # for SIGSEGV/SIGBUS/SIGILL/SIGFPE/SIGTRAP
    pid: int = 0  # for kill/tgkill
    uid: int = 0
    rip: int = 0  # where a synchronous fault happened (for the termination message)
    trapno: int = 0
    message: str = ""  # a host signal's line, printed instead if it ends the run (forwarded.py)

    @property
    def is_fault(self) -> bool:
        return (
            self.signo in (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP)
            and self.code > 0
            or (self.code == SI_KERNEL)
        )

    def pack(self) -> bytes:
        head = struct.pack("<iii", self.signo, self.errno, self.code) + b"\0" * 4
        if (
            self.signo in (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP)
            and self.code >= 0
            and (self.code > 0 or self.code == SI_KERNEL)
        ):
            body = struct.pack("<Q", self.addr)
        else:
            body = struct.pack("<iI", self.pid, self.uid)
        return (head + body).ljust(128, b"\0")


def default_is_fatal(sig: int) -> bool:
    return sig not in IGNORED_BY_DEFAULT
