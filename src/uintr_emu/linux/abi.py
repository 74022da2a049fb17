"""The byte layouts of the x86-64 Linux user ABI that the syscall handlers read and write.

A leaf module: each layout is one `struct.Struct` (little-endian, x86-64 sizes and padding),
named after the kernel's struct, so a handler says which structure it copies rather than
spelling out a format string.
"""

from __future__ import annotations

import struct

# --- scalars --------------------------------------------------------------------------------

INT = struct.Struct("<i")  # int: a file descriptor, a wait status, FIONREAD's count
U32 = struct.Struct("<I")  # u32: a futex word, a thread id stored by clone
U64 = struct.Struct("<Q")  # u64: an eventfd counter, a sigset_t (_NSIG = 64)
FD_PAIR = struct.Struct("<ii")  # int[2]: pipe2's and socketpair's two descriptors

# --- time -----------------------------------------------------------------------------------

TIMESPEC = struct.Struct("<qq")  # struct __kernel_timespec, include/uapi/linux/time_types.h
TIMEVAL = struct.Struct("<qq")  # struct __kernel_old_timeval, include/uapi/linux/time_types.h
# struct __kernel_old_itimerval, include/uapi/linux/time_types.h: it_interval, then it_value
ITIMERVAL = struct.Struct("<qqqq")

# --- files ----------------------------------------------------------------------------------

# struct stat, arch/x86/include/uapi/asm/stat.h: st_dev, st_ino, st_nlink, st_mode, st_uid,
# st_gid, __pad0, st_rdev, st_size, st_blksize, st_blocks, three (sec, nsec) times, __unused[3]
STAT = struct.Struct("<QQQIIIiQqqq6q24x")
# struct linux_dirent64, include/linux/dirent.h, up to d_name: d_ino, d_off, d_reclen, d_type
DIRENT64 = struct.Struct("<QqHB")
IOVEC = struct.Struct("<QQ")  # struct iovec, include/uapi/linux/uio.h: iov_base, iov_len
POLLFD = struct.Struct("<ihh")  # struct pollfd, include/uapi/asm-generic/poll.h
# pollfd.events and revents bits, include/uapi/asm-generic/poll.h
POLLIN, POLLPRI, POLLOUT, POLLERR, POLLHUP, POLLNVAL = 1, 2, 4, 8, 16, 32

# --- sockets --------------------------------------------------------------------------------

# struct user_msghdr, include/linux/socket.h: msg_name, msg_namelen, msg_iov, msg_iovlen,
# msg_control, msg_controllen, msg_flags
MSGHDR = struct.Struct("<QI4xQQQQi4x")
MSG_CONTROLLEN = 40  # offsetof(struct user_msghdr, msg_controllen)
CMSGHDR = struct.Struct("<Qii")  # struct cmsghdr, include/linux/socket.h: len, level, type

# --- processes and signals ------------------------------------------------------------------

# struct clone_args, include/uapi/linux/sched.h, its first version (CLONE_ARGS_SIZE_VER0):
# flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls
CLONE_ARGS = struct.Struct("<8Q")
# siginfo_t of a SIGCHLD, include/uapi/asm-generic/siginfo.h: si_signo, si_errno, si_code, the
# union's padding, si_pid, si_uid, si_status, then the rest of the 128-byte siginfo
SIGINFO_CHLD = struct.Struct("<iii4xiIi100x")
SIGINFO_SIZE = 128  # SI_MAX_SIZE
# struct rusage, include/uapi/linux/resource.h: ru_utime, ru_stime (timevals), 14 longs
RUSAGE = struct.Struct("<4q14q")
TMS = struct.Struct("<4q")  # struct tms, include/uapi/linux/times.h: four clock_t
STACK_T = struct.Struct("<QiiQ")  # stack_t, include/uapi/asm-generic/signal.h (sigaltstack)

# --- system ---------------------------------------------------------------------------------

RLIMIT64 = struct.Struct("<QQ")  # struct rlimit64, include/uapi/linux/resource.h
# struct new_utsname, include/uapi/linux/utsname.h: six NUL-padded 65-byte strings
UTSNAME = struct.Struct("<" + "65s" * 6)
# struct sysinfo, include/uapi/linux/sysinfo.h: uptime, loads[3], totalram, freeram,
# sharedram, bufferram, totalswap, freeswap, procs, pad, totalhigh, freehigh, mem_unit, _f
SYSINFO = struct.Struct("<q3Q6QHH4xQQI4x")
