"""The x86-64 system calls the emulator does not implement, each decided: `REFUSED` are
deliberate answers (the errno of a kernel that has no such thing, or of a guest that may not
do it), `GAPS` the calls not emulated yet, which real programs may meet. Every named number of
the x86-64 table (linux/syscall_names.py) is a handler in the registry, or in one of the two
(tests/test_syscall_table.py); both answer with one warning line per number, as any unknown
number does, and docs/linux.md renders both tables."""

from __future__ import annotations

from .. import errno as E
from ..syscall_names import NAMES

_NUMBER = {name: nr for nr, name in NAMES.items()}

#: (errno, reason, the calls it answers)
_REFUSED_GROUPS: tuple[tuple[int, str, str], ...] = (
    (E.EPERM, "administration of the machine (mounts, modules, reboot, clocks, I/O ports, "
     "namespaces, the kernel log): the guest has no capability for it",
     "syslog vhangup pivot_root adjtimex chroot acct settimeofday mount umount2 swapon "
     "swapoff reboot sethostname setdomainname iopl ioperm init_module delete_module "
     "finit_module quotactl quotactl_fd clock_settime clock_adjtime unshare setns open_tree "
     "move_mount fsopen fsconfig fsmount fspick mount_setattr"),
    (E.EPERM, "guest processes cannot be traced (gdb attaches to the emulator: --gdb)",
     "ptrace"),
    (E.ENOSYS, "not in Linux itself (sys_ni_syscall) or long removed",
     "create_module get_kernel_syms query_module nfsservctl getpmsg putpmsg afs_syscall "
     "tuxcall security vserver epoll_ctl_old epoll_wait_old _sysctl uselib lookup_dcookie"),
    (E.ENOSYS, "obsolete or 32-bit-only interfaces x86-64 glibc does not use (a kernel built "
     "without them: no LDT, no GDT TLS slots, getdents64 not getdents)",
     "getdents ustat sysfs modify_ldt set_thread_area get_thread_area remap_file_pages"),
    (E.ENOSYS, "System V IPC (a kernel without CONFIG_SYSVIPC)",
     "shmget shmat shmctl shmdt semget semop semctl semtimedop msgget msgsnd msgrcv msgctl"),
    (E.ENOSYS, "POSIX message queues (without CONFIG_POSIX_MQUEUE)",
     "mq_open mq_unlink mq_timedsend mq_timedreceive mq_notify mq_getsetattr"),
    (E.ENOSYS, "asynchronous I/O, native and io_uring (without CONFIG_AIO, CONFIG_IO_URING; "
     "glibc's POSIX AIO uses threads)",
     "io_setup io_destroy io_getevents io_submit io_cancel io_pgetevents io_uring_setup "
     "io_uring_enter io_uring_register"),
    (E.ENOSYS, "NUMA memory policies (without CONFIG_NUMA: the machine has one node)",
     "mbind set_mempolicy get_mempolicy migrate_pages move_pages set_mempolicy_home_node"),
    (E.ENOSYS, "kernel key management (without CONFIG_KEYS)", "add_key request_key keyctl"),
    (E.ENOSYS, "file change notification (without CONFIG_INOTIFY_USER, CONFIG_FANOTIFY; "
     "tail -f and others poll instead)",
     "inotify_init inotify_init1 inotify_add_watch inotify_rm_watch fanotify_init "
     "fanotify_mark"),
    (E.ENOSYS, "tracing, sandboxing and introspection facilities (without CONFIG_BPF_SYSCALL, "
     "CONFIG_PERF_EVENTS, CONFIG_SECCOMP, CONFIG_USERFAULTFD, Landlock, CONFIG_KCMP, "
     "CONFIG_CROSS_MEMORY_ATTACH, CONFIG_FHANDLE, secretmem, kexec)",
     "bpf perf_event_open seccomp userfaultfd landlock_create_ruleset landlock_add_rule "
     "landlock_restrict_self kcmp process_vm_readv process_vm_writev name_to_handle_at "
     "open_by_handle_at memfd_secret kexec_load kexec_file_load"),
    (E.ENOSYS, "I/O priorities (the emulated machine has no block layer)",
     "ioprio_set ioprio_get"),
    (E.ENOSYS, "newer than Linux 6.0, the release uname reports (glibc and programs fall "
     "back)",
     "cachestat fchmodat2 map_shadow_stack futex_wake futex_wait futex_requeue statmount "
     "listmount lsm_get_self_attr lsm_set_self_attr lsm_list_modules mseal setxattrat "
     "getxattrat listxattrat removexattrat"),
    (E.EINTR, "no restart block is ever set up: a call interrupted with "
     "ERESTART_RESTARTBLOCK (nanosleep, timed futex waits) returns EINTR instead",
     "restart_syscall"),
)  # fmt: skip

#: number -> (errno, reason): what the emulated kernel answers on purpose.
REFUSED: dict[int, tuple[int, str]] = {
    _NUMBER[name]: (errno, reason)
    for errno, reason, names in _REFUSED_GROUPS
    for name in names.split()
}

#: reason -> the calls: real calls not emulated yet (ENOSYS), the known gaps.
_GAP_GROUPS: tuple[tuple[str, str], ...] = (
    ("queueing a signal with a value", "rt_sigqueueinfo rt_tgsigqueueinfo"),
    ("file descriptors for timers and signals, POSIX timers",
     "timerfd_create timerfd_settime timerfd_gettime signalfd signalfd4 timer_create "
     "timer_settime timer_gettime timer_getoverrun timer_delete"),
    ("moving data through pipes in the kernel", "splice tee vmsplice"),
    ("process descriptors", "pidfd_open pidfd_send_signal pidfd_getfd process_mrelease "
     "process_madvise"),
    ("scheduling policies",
     "sched_setparam sched_setscheduler sched_rr_get_interval sched_setattr "
     "sched_getattr"),
    ("the rest", "openat2 futex_waitv"),
)  # fmt: skip

GAPS: dict[int, str] = {
    _NUMBER[name]: reason for reason, names in _GAP_GROUPS for name in names.split()
}


def errno_for(nr: int) -> int:
    """The errno an unimplemented call `nr` fails with (ENOSYS unless decided otherwise)."""
    refused = REFUSED.get(nr)
    return refused[0] if refused is not None else E.ENOSYS


def groups() -> tuple[tuple[tuple[int, str, str], ...], tuple[tuple[str, str], ...]]:
    """Both tables as written above, grouped by reason (for docs and tests)."""
    return _REFUSED_GROUPS, _GAP_GROUPS
