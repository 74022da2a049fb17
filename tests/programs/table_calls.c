/*
 * table_calls.c DIR -- calls the x86-64 table audit added, each with its errors: creat,
 * mknod (a FIFO, mode less the umask; a directory EPERM; EEXIST), utimes/utime/futimesat,
 * sync/syncfs/sync_file_range, fallocate, readahead, preadv/pwritev/preadv2/pwritev2,
 * renameat2 (RENAME_NOREPLACE, RENAME_EXCHANGE), memfd_create, close_range, getresuid and
 * the set*id calls to the ids a process has, capget/capset, getpriority/setpriority, the
 * priority ranges, personality, getcpu, get_robust_list, membarrier, mlock/mlockall/msync/mincore.  Then OK.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/membarrier.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>
#include <utime.h>

#include "check.h"
#include "workdir.h"

static void files(void)
{
    umask(022);
    int fd = creat(at("c"), 0666);
    CHECK_ERRNO(fd >= 0);
    CHECK(write(fd, "hello", 5) == 5);
    CHECK(read(fd, (char[1]){0}, 1) == -1 && errno == EBADF); /* O_WRONLY */
    close(fd);
    struct stat sb;
    CHECK_ERRNO(stat(at("c"), &sb) == 0 && (sb.st_mode & 0777) == 0644 && sb.st_size == 5);
    CHECK_ERRNO(mknod(at("fifo"), S_IFIFO | 0666, 0) == 0);
    CHECK_ERRNO(stat(at("fifo"), &sb) == 0 && S_ISFIFO(sb.st_mode) && (sb.st_mode & 0777) == 0644);
    CHECK(mknod(at("fifo"), S_IFIFO | 0666, 0) == -1 && errno == EEXIST);
    CHECK(mknod(at("dir"), S_IFDIR | 0755, 0) == -1 && errno == EPERM);
    CHECK_ERRNO(mknodat(AT_FDCWD, at("reg"), 0600, 0) == 0);
    CHECK_ERRNO(stat(at("reg"), &sb) == 0 && S_ISREG(sb.st_mode));
    printf("creat, mknod: modes less the umask, EEXIST, EPERM\n");

    struct timeval tv[2] = {{1000000, 5}, {2000000, 7}};
    CHECK_ERRNO(utimes(at("c"), tv) == 0);
    CHECK_ERRNO(stat(at("c"), &sb) == 0 && sb.st_atime == 1000000 && sb.st_mtime == 2000000);
    CHECK(sb.st_mtim.tv_nsec == 7000);
    struct utimbuf ub = {3000000, 4000000};
    CHECK_ERRNO(utime(at("c"), &ub) == 0);
    CHECK_ERRNO(stat(at("c"), &sb) == 0 && sb.st_mtime == 4000000 && sb.st_mtim.tv_nsec == 0);
    tv[0].tv_usec = 1000000;
    CHECK(futimesat(AT_FDCWD, at("c"), tv) == -1 && errno == EINVAL);
    printf("utimes, utime, futimesat\n");

    fd = open(at("c"), O_RDWR);
    CHECK_ERRNO(fd >= 0);
    sync();
    CHECK_ERRNO(syncfs(fd) == 0);
    CHECK_ERRNO(sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE) == 0);
    CHECK(sync_file_range(fd, 0, 0, 8) == -1 && errno == EINVAL);
    CHECK_ERRNO(fallocate(fd, 0, 0, 8192) == 0);
    CHECK_ERRNO(fstat(fd, &sb) == 0 && sb.st_size == 8192);
    CHECK(fallocate(fd, 0, 0, 0) == -1 && errno == EINVAL);
    CHECK_ERRNO(readahead(fd, 0, 4096) == 0);
    int p[2];
    CHECK_ERRNO(pipe(p) == 0);
    CHECK(fallocate(p[1], 0, 0, 10) == -1 && errno == ESPIPE);
    CHECK(readahead(p[0], 0, 10) == -1 && errno == EINVAL);
    CHECK(syncfs(999) == -1 && errno == EBADF);
    printf("sync, syncfs, sync_file_range, fallocate, readahead\n");

    char a[3] = "xyz", b[4] = "1234";
    struct iovec wv[2] = {{a, 3}, {b, 4}};
    CHECK(pwritev(fd, wv, 2, 100) == 7);
    char r1[2], r2[5];
    struct iovec rv[2] = {{r1, 2}, {r2, 5}};
    CHECK(preadv(fd, rv, 2, 100) == 7 && memcmp(r1, "xy", 2) == 0 && memcmp(r2, "z1234", 5) == 0);
    CHECK(lseek(fd, 1, SEEK_SET) == 1);
    CHECK(preadv2(fd, rv, 1, -1, 0) == 2 && memcmp(r1, "el", 2) == 0);
    CHECK(lseek(fd, 0, SEEK_CUR) == 3);
    CHECK(preadv2(fd, rv, 1, 0, 0x10000000) == -1 && errno == EOPNOTSUPP);
    CHECK(preadv(fd, rv, 1, -1) == -1 && errno == EINVAL);
    CHECK(pwritev2(p[1], wv, 1, 0, 0) == -1 && errno == ESPIPE);
    CHECK(pwritev2(fd, wv, 1, 200, RWF_DSYNC) == 3);
    printf("preadv, pwritev, preadv2, pwritev2\n");
    close(fd);

    CHECK(renameat2(AT_FDCWD, at("reg"), AT_FDCWD, at("c"), RENAME_NOREPLACE) == -1 && errno == EEXIST);
    CHECK_ERRNO(renameat2(AT_FDCWD, at("reg"), AT_FDCWD, at("c"), RENAME_EXCHANGE) == 0);
    CHECK_ERRNO(stat(at("reg"), &sb) == 0 && sb.st_size > 5);
    CHECK_ERRNO(renameat2(AT_FDCWD, at("reg"), AT_FDCWD, at("moved"), RENAME_NOREPLACE) == 0);
    CHECK(renameat2(AT_FDCWD, at("c"), AT_FDCWD, at("x"), RENAME_NOREPLACE | RENAME_EXCHANGE) == -1 && errno == EINVAL);
    printf("renameat2: NOREPLACE, EXCHANGE\n");

    int m = memfd_create("scratch", MFD_CLOEXEC);
    CHECK_ERRNO(m >= 0);
    CHECK(fcntl(m, F_GETFD) == FD_CLOEXEC);
    CHECK(ftruncate(m, 4096) == 0 && write(m, "memfd", 5) == 5);
    char *map = mmap(NULL, 4096, PROT_READ, MAP_SHARED, m, 0);
    CHECK(map != MAP_FAILED && memcmp(map, "memfd", 5) == 0);
    munmap(map, 4096);
    CHECK(memfd_create("x", 0x100) == -1 && errno == EINVAL);
    printf("memfd_create\n");

    int d1 = dup(m), d2 = dup(m);
    CHECK_ERRNO(close_range(d1, d2, CLOSE_RANGE_CLOEXEC) == 0);
    CHECK(fcntl(d1, F_GETFD) == FD_CLOEXEC && fcntl(d2, F_GETFD) == FD_CLOEXEC);
    CHECK_ERRNO(close_range(d1, ~0U, 0) == 0);
    CHECK(fcntl(d1, F_GETFD) == -1 && errno == EBADF && fcntl(m, F_GETFD) == FD_CLOEXEC);
    CHECK(close_range(5, 4, 0) == -1 && errno == EINVAL);
    close(m);
    printf("close_range\n");

    CHECK_ERRNO(unlink(at("c")) == 0 && unlink(at("moved")) == 0 && unlink(at("fifo")) == 0);
    close(p[0]);
    close(p[1]);
}

static void process(void)
{
    uid_t r, e, s;
    gid_t gr, ge, gs;
    CHECK_ERRNO(getresuid(&r, &e, &s) == 0 && r == getuid() && e == geteuid());
    CHECK_ERRNO(getresgid(&gr, &ge, &gs) == 0 && gr == getgid() && ge == getegid());
    CHECK_ERRNO(setuid(getuid()) == 0 && setgid(getgid()) == 0);
    CHECK_ERRNO(setresuid(-1, -1, -1) == 0 && setreuid(-1, geteuid()) == 0);
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    CHECK_ERRNO(syscall(SYS_capget, &h, d) == 0);
    CHECK_ERRNO(syscall(SYS_capset, &h, d) == 0); /* the sets it has */
    h.version = 0x1234;
    CHECK(syscall(SYS_capget, &h, d) == -1 && errno == EINVAL);
    CHECK(h.version == _LINUX_CAPABILITY_VERSION_3);
    h.version = 0x1234;
    CHECK(syscall(SYS_capget, &h, NULL) == 0 && h.version == _LINUX_CAPABILITY_VERSION_3);
    h.pid = 999999;
    CHECK(syscall(SYS_capget, &h, d) == -1 && errno == ESRCH);
    printf("getresuid, getresgid; set*id to the ids a process has; capget, capset\n");

    errno = 0;
    CHECK(getpriority(PRIO_PROCESS, 0) == 0 && errno == 0);
    CHECK_ERRNO(setpriority(PRIO_PROCESS, 0, 5) == 0);
    CHECK(getpriority(PRIO_PROCESS, getpid()) == 5);
    CHECK_ERRNO(setpriority(PRIO_PROCESS, 0, 100) == 0);
    CHECK(getpriority(PRIO_PROCESS, 0) == 19);
    CHECK(getpriority(7, 0) == -1 && errno == EINVAL);
    CHECK(getpriority(PRIO_PROCESS, 999999) == -1 && errno == ESRCH);
    CHECK(sched_get_priority_max(SCHED_FIFO) == 99 && sched_get_priority_min(SCHED_RR) == 1);
    CHECK(sched_get_priority_max(SCHED_OTHER) == 0 && sched_get_priority_min(SCHED_BATCH) == 0);
    CHECK(sched_get_priority_max(42) == -1 && errno == EINVAL);
    printf("nice values and priority ranges\n");

    int old = personality(0xffffffff);
    CHECK(old == PER_LINUX);
    CHECK(personality(ADDR_NO_RANDOMIZE) == PER_LINUX);
    CHECK(personality(0xffffffff) == ADDR_NO_RANDOMIZE);
    CHECK(personality(PER_LINUX) == ADDR_NO_RANDOMIZE);
    unsigned cpu = 99, node = 99;
    CHECK_ERRNO(getcpu(&cpu, &node) == 0 && cpu < 64 && node == 0);
    void *head;
    size_t len;
    CHECK_ERRNO(syscall(SYS_get_robust_list, 0, &head, &len) == 0 && len == 24 && head != NULL);
    CHECK(syscall(SYS_get_robust_list, 999999, &head, &len) == -1 && errno == ESRCH);
    long q = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
    CHECK(q > 0 && (q & MEMBARRIER_CMD_PRIVATE_EXPEDITED));
    CHECK(syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == -1 && errno == EPERM);
    CHECK_ERRNO(syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0);
    CHECK_ERRNO(syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0);
    CHECK(syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 1, 0) == -1 && errno == EINVAL);
    printf("personality, getcpu, get_robust_list, membarrier\n");

    char *pg = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(pg != MAP_FAILED);
    pg[0] = 1;
    CHECK_ERRNO(mlock(pg, 4096) == 0 && munlock(pg, 4096) == 0);
    CHECK_ERRNO(mlockall(MCL_CURRENT) == 0 && munlockall() == 0);
    CHECK(mlockall(0) == -1 && errno == EINVAL);
    CHECK_ERRNO(msync(pg, 4096, MS_SYNC) == 0);
    CHECK(msync(pg + 1, 4096, MS_SYNC) == -1 && errno == EINVAL);
    CHECK(msync(pg, 4096, MS_SYNC | MS_ASYNC) == -1 && errno == EINVAL);
    unsigned char vec[3];
    CHECK_ERRNO(mincore(pg, 4096, vec) == 0 && (vec[0] & 1));
    munmap(pg + 4096, 4096);
    CHECK(msync(pg, 3 * 4096, MS_ASYNC) == -1 && errno == ENOMEM);
    CHECK(mincore(pg, 3 * 4096, vec) == -1 && errno == ENOMEM);
    CHECK(mlock(pg, 3 * 4096) == -1 && errno == ENOMEM);
    printf("mlock, mlockall, msync, mincore\n");
}

int main(int argc, char **argv)
{
    CHECK(argc == 2);
    snprintf(base, sizeof base, "%s/uemu_table_calls", argv[1]);
    CHECK_ERRNO(mkdir(base, 0755) == 0);
    files();
    process();
    printf("OK\n");
    rmdir(base);
    return 0;
}
