/*
 * probes.c -- calls node (V8, libuv) makes at start to learn what it may use: capget(2)
 * (the version probe writes back _LINUX_CAPABILITY_VERSION_3; the caller's own sets, equal
 * to what pid 0 gives; ESRCH for a missing pid), and pkey_alloc(2) on a CPU without
 * protection keys (EINVAL, as Linux 6.18 answers, and for bad flags or access rights) and
 * pkey_free (EINVAL).
 */
#define _GNU_SOURCE
#include <linux/capability.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "check.h"

int main(void) {
    struct __user_cap_header_struct h = {0, 0};
    struct __user_cap_data_struct d[2], e[2];
    CHECK_ERRNO(syscall(SYS_capget, &h, NULL) == 0);
    printf("probe: version %#x\n", h.version);
    h.version = 0x12345678;
    long rc = syscall(SYS_capget, &h, d);
    printf("bad version: %ld %d, version now %#x\n", rc, errno, h.version);
    h.pid = 0;
    CHECK_ERRNO(syscall(SYS_capget, &h, d) == 0);
    h.pid = getpid();
    CHECK_ERRNO(syscall(SYS_capget, &h, e) == 0);
    printf("own pid = pid 0: %d\n", memcmp(d, e, sizeof d) == 0);
    h.pid = 0x3fffff00;
    rc = syscall(SYS_capget, &h, e);
    printf("missing pid: %ld %d\n", rc, errno);

    rc = syscall(SYS_pkey_alloc, 0, 0);
    printf("pkey_alloc: %ld %d\n", rc, rc < 0 ? errno : 0);
    rc = syscall(SYS_pkey_alloc, 1, 0);
    printf("bad flags: %ld %d\n", rc, errno);
    rc = syscall(SYS_pkey_alloc, 0, 4);
    printf("bad rights: %ld %d\n", rc, errno);
    rc = syscall(SYS_pkey_free, 5);
    printf("pkey_free: %ld %d\n", rc, errno);
    printf("OK\n");
    return 0;
}
