"""The files of /proc and /sys that describe the machine: the guest sees the emulated machine
(`--cpus`, the UINTR feature), not the host. glibc's get_nprocs_conf reads
/sys/devices/system/cpu/possible (get_nprocs asks sched_getaffinity), and programs read
/proc/cpuinfo and /proc/stat for the processor count and the CPU's features.

Each file's contents are made when it is opened and served from an anonymous host file
(memfd), so reads, seeks, fstat and mmap work as on any file; writing to them is EACCES, as
for a normal user.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .kernel import Kernel


def _cpu_list(k: Kernel) -> bytes:
    n = k.opt.cpus
    return b"0\n" if n == 1 else f"0-{n - 1}\n".encode()


def _cpuinfo(k: Kernel) -> bytes:
    """One block per processor, as arch/x86/kernel/cpu/proc.c prints it (the fields programs
    parse: processor, vendor, model name, siblings and cores, flags)."""
    n = k.opt.cpus
    flags = "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx "
    flags += "fxsr sse sse2 ht syscall nx lm constant_tsc rep_good nopl pni pclmulqdq ssse3 cx16 "
    flags += "sse4_1 sse4_2 movbe popcnt aes xsave rdrand lahf_lm abm bmi1 bmi2 erms xsaves"
    if k.opt.features.uintr:
        flags += " uintr"  # X86_FEATURE_UINTR's name in /proc/cpuinfo (docs/uintr.md §1)
    out = []
    for i in range(n):
        out.append(
            f"processor\t: {i}\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 143\n"
            "model name\t: uintr-emu virtual CPU\nstepping\t: 8\ncpu MHz\t\t: 1000.000\n"
            f"physical id\t: 0\nsiblings\t: {n}\ncore id\t\t: {i}\ncpu cores\t: {n}\n"
            f"apicid\t\t: {i}\ninitial apicid\t: {i}\nfpu\t\t: yes\nfpu_exception\t: yes\n"
            f"cpuid level\t: 13\nwp\t\t: yes\nflags\t\t: {flags}\nbogomips\t: 2000.00\n"
            "clflush size\t: 64\ncache_alignment\t: 64\n"
            "address sizes\t: 46 bits physical, 48 bits virtual\npower management:\n\n"
        )
    return "".join(out).encode()


def _stat(k: Kernel) -> bytes:
    """/proc/stat with a line per CPU (times in USER_HZ ticks of the virtual clock, all user
    time), the counters programs look for, and the boot time."""
    n = k.opt.cpus
    ticks = [k.cpu_insns.get(i, 0) // 10_000_000 for i in range(n)]  # 1 tick = 10 ms
    lines = [f"cpu  {sum(ticks)} 0 0 0 0 0 0 0 0 0"]
    lines += [f"cpu{i} {ticks[i]} 0 0 0 0 0 0 0 0 0" for i in range(n)]
    boot = (k.clock.realtime_ns() - k.clock.monotonic_ns()) // 1_000_000_000
    running = sum(1 for t in k.threads.values() if t.runnable)
    lines += ["intr 0", "ctxt 0", f"btime {boot}", f"processes {len(k.processes)}",
              f"procs_running {running}", "procs_blocked 0", "softirq 0"]  # fmt: skip
    return ("\n".join(lines) + "\n").encode()


FILES: dict[str, Callable[[Kernel], bytes]] = {
    "/sys/devices/system/cpu/online": _cpu_list,
    "/sys/devices/system/cpu/possible": _cpu_list,
    "/sys/devices/system/cpu/present": _cpu_list,
    "/proc/cpuinfo": _cpuinfo,
    "/proc/stat": _stat,
}


def open_machine_file(k: Kernel, path: str) -> int:
    """A host fd with the contents of the machine file at guest `path` (a key of FILES)."""
    make = FILES[path]
    fd = os.memfd_create("uintr-emu" + path.replace("/", "-"), os.MFD_CLOEXEC)
    os.write(fd, make(k))
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
