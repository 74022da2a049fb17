/*
 * fault_syscalls.c -- system calls whose arguments faulted the emulator (found by
 * tests/test_fuzz.py), made by a real program: Linux answers each with a result or an
 * errno, so the program's output is the same natively and under a correct emulator.
 *
 *   fault_syscalls MODE        prints one line "MODE: result", then exits 0
 *
 *   fstat-pipe      fstat() of a pipe's ends           0, mode 10600, one inode, times set
 *   fstat-socket    fstat() of a socketpair's ends     0, mode 140777, an inode each
 *   fstat-eventfd   fstat() of two eventfds            0, mode 600 (anon inode: no file type,
 *                                                     root's, shared by both)
 *                   (each prints only what every Linux prints: no dev, ino or times)
 *   lseek-whence    lseek(fd, 0, INT_MIN)              EINVAL
 *   lseek-pipe      lseek(pipe, 0, 5): whence first    EINVAL
 *   lseek-eventfd   lseek(eventfd, 5, SEEK_SET)        0 (noop_llseek)
 *   ftruncate-neg   ftruncate(fd, -1)                  EINVAL
 *   truncate-neg    truncate(NULL, -1): length first   EINVAL
 *   pread-huge      pread(fd, buf, SSIZE_MAX / 2, 0)   "ok": 12 bytes, EFAULT or EINVAL
 *   pread-neg       pread(pipe, buf, 1, -1): pos first EINVAL
 *   pwrite-end      pwrite(fd, buf, 100, LLONG_MAX-10) EINVAL (pos + count beyond loff_t)
 *   readv-huge      readv() of the file, iov_len 2^62  "ok": 12 bytes, EFAULT or EINVAL
 *   readv-neg       readv(), iov_len 4 and 2^63        EINVAL (a negative ssize_t)
 *   readv-iovcnt    readv(), 1025 segments             EINVAL (UIO_MAXIOV)
 *   sendmsg-iovlen  sendmsg(), msg_iovlen 1025         EMSGSIZE
 *   access-mode     access("/", 0x80000000)            EINVAL
 *   access-flags    faccessat2(AT_FDCWD, "/", R_OK, 1) EINVAL (an unknown flag)
 *   access-empty    faccessat2(pipe, "", W_OK and X_OK, AT_EMPTY_PATH): 0 and EACCES (0600)
 *   open-flags      open(file, O_RDONLY | 0x80000000)  ok (unknown flags are ignored)
 *   open-flags-high open("/", O_WRONLY | 1 << 32)      EISDIR (flags is an int)
 *   dupfd-negative  fcntl(1, F_DUPFD, -5)              EINVAL
 *   dupfd-limit     fcntl(1, F_DUPFD, n) for n = RLIMIT_NOFILE: EINVAL; n - 1: n - 1, then
 *                   EMFILE
 *   mmap-huge       mmap 1 TiB of private memory       returns (ENOMEM or a mapping)
 *   clone-bad-ptid  clone(CLONE_PARENT_SETTID|SIGCHLD) with parent_tid = (int *)8:
 *                   the child is created anyway, exits 0, the parent reaps it
 *   clone-bad-ctid  the same with CLONE_CHILD_SETTID and child_tid = (int *)8
 *   sleep-forever   nanosleep({LONG_MAX, 0}) (only under the emulator, where the virtual clock
 *                   jumps to the deadline), then clock_gettime: 0, 0
 *   execve-e2big    execve(self) with 100 arguments of 96 KiB: E2BIG, and the process is
 *                   intact (an O_CLOEXEC fd is still open)
 *   execve-efault   execve(self) with argv[1] = (char *)8: EFAULT, likewise intact
 *   execve-empty-argv  execve(self, NULL, env): the new image has argc 1 and argv[0] ""
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_faccessat2
#define SYS_faccessat2 439
#endif

static const char *err_name(int e)
{
    switch (e) {
    case EINVAL: return "EINVAL";
    case EFAULT: return "EFAULT";
    case ENOMEM: return "ENOMEM";
    case EIO: return "EIO";
    case EBADF: return "EBADF";
    case EOVERFLOW: return "EOVERFLOW";
    case ESPIPE: return "ESPIPE";
    case E2BIG: return "E2BIG";
    case EMSGSIZE: return "EMSGSIZE";
    case EISDIR: return "EISDIR";
    case EACCES: return "EACCES";
    case EMFILE: return "EMFILE";
    default: return "other errno";
    }
}

/* "MODE: r" for r >= 0, "MODE: -1 ENAME" otherwise. */
static void report(const char *mode, long r)
{
    if (r >= 0)
        printf("%s: %ld\n", mode, r);
    else
        printf("%s: -1 %s\n", mode, err_name(errno));
}

/* "MODE: r mode M nlink N size S blksize B blocks K own O", O: owned by the caller. */
static void report_stat(const char *mode, long r, const struct stat *st)
{
    printf("%s: %ld mode %o nlink %ld size %ld blksize %ld blocks %ld own %d", mode, r,
           (unsigned)st->st_mode, (long)st->st_nlink, (long)st->st_size, (long)st->st_blksize,
           (long)st->st_blocks, st->st_uid == getuid() && st->st_gid == getgid());
}

static int same_inode(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

/* Reads of 12 bytes from a 12-byte file with a huge count: Linux returns 12 or refuses the
 * count (EFAULT, EINVAL), depending on the call and the version; either is "ok". */
static void report_huge_read(const char *mode, long r)
{
    int ok = r == 12 || (r < 0 && (errno == EFAULT || errno == EINVAL));
    printf("%s: %s\n", mode, ok ? "ok" : "unexpected");
}

/* A 12-byte temporary file, already unlinked. */
static int temp_file(void)
{
    char path[] = "/tmp/fault_syscalls-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) {
        perror("mkstemp");
        exit(1);
    }
    unlink(path);
    if (write(fd, "hello world\n", 12) != 12) {
        perror("write");
        exit(1);
    }
    return fd;
}

/* execve(self) with `args`; on failure print the errno and whether a CLOEXEC fd survived. */
static void failed_execve(const char *mode, char **args)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        exit(1);
    long r = execve("/proc/self/exe", args, NULL);
    printf("%s: %ld %s, cloexec fd open %d\n", mode, r, err_name(errno),
           fcntl(p[0], F_GETFD) == FD_CLOEXEC);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    struct stat st;
    static char buf[64];

    if (getenv("FAULT_SYSCALLS_SHOW_ARGS")) { /* the image execve-empty-argv starts */
        printf("execve-empty-argv: argc %d, argv[0] \"%s\"\n", argc, argc ? argv[0] : "-");
        return 0;
    }

    if (!strcmp(mode, "fstat-pipe")) {
        int p[2];
        struct stat w;
        if (pipe(p) != 0 || fstat(p[1], &w) != 0)
            return 1;
        report_stat(mode, fstat(p[0], &st), &st);
        printf(" one-inode %d times %d\n", same_inode(&st, &w),
               st.st_mtime != 0 && st.st_atime == st.st_mtime && st.st_ctime == st.st_mtime);
    } else if (!strcmp(mode, "fstat-socket")) {
        int sv[2];
        struct stat other;
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0 || fstat(sv[1], &other) != 0)
            return 1;
        report_stat(mode, fstat(sv[0], &st), &st);
        printf(" one-inode %d\n", same_inode(&st, &other));
    } else if (!strcmp(mode, "fstat-eventfd")) {
        int fd = eventfd(0, 0), fd2 = eventfd(1, 0);
        struct stat other;
        if (fd < 0 || fd2 < 0 || fstat(fd2, &other) != 0)
            return 1;
        report_stat(mode, fstat(fd, &st), &st);
        printf(" root %d one-inode %d\n", st.st_uid == 0 && st.st_gid == 0,
               same_inode(&st, &other));
    } else if (!strcmp(mode, "lseek-whence")) {
        report(mode, lseek(temp_file(), 0, INT_MIN));
    } else if (!strcmp(mode, "lseek-pipe")) {
        int p[2];
        if (pipe(p) != 0)
            return 1;
        report(mode, lseek(p[0], 0, 5));
    } else if (!strcmp(mode, "lseek-eventfd")) {
        report(mode, lseek(eventfd(0, 0), 5, SEEK_SET));
    } else if (!strcmp(mode, "ftruncate-neg")) {
        report(mode, ftruncate(temp_file(), -1));
    } else if (!strcmp(mode, "truncate-neg")) {
        report(mode, syscall(SYS_truncate, NULL, -1L));
    } else if (!strcmp(mode, "pread-huge")) {
        size_t count = SSIZE_MAX / 2;
        __asm__("" : "+r"(count)); /* hide the size from -Wstringop-overflow */
        report_huge_read(mode, pread(temp_file(), buf, count, 0));
    } else if (!strcmp(mode, "pread-neg")) {
        int p[2];
        if (pipe(p) != 0)
            return 1;
        report(mode, syscall(SYS_pread64, p[0], buf, 1L, -1L));
    } else if (!strcmp(mode, "pwrite-end")) {
        report(mode, pwrite(temp_file(), buf, 100, LLONG_MAX - 10));
    } else if (!strcmp(mode, "readv-huge")) {
        struct iovec iov = {buf, (size_t)1 << 62};
        int fd = temp_file();
        lseek(fd, 0, SEEK_SET);
        report_huge_read(mode, readv(fd, &iov, 1));
    } else if (!strcmp(mode, "readv-neg")) {
        struct iovec iov[2] = {{buf, 4}, {buf, (size_t)1 << 63}};
        report(mode, readv(temp_file(), iov, 2));
    } else if (!strcmp(mode, "readv-iovcnt")) {
        static struct iovec iov[1025];
        for (int i = 0; i < 1025; i++)
            iov[i] = (struct iovec){buf, 1};
        report(mode, readv(temp_file(), iov, 1025));
    } else if (!strcmp(mode, "sendmsg-iovlen")) {
        int sv[2];
        struct iovec iov = {buf, 1};
        struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1025};
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
            return 1;
        report(mode, sendmsg(sv[0], &msg, 0));
    } else if (!strcmp(mode, "access-mode")) {
        report(mode, syscall(SYS_access, "/", 0x80000000L));
    } else if (!strcmp(mode, "access-flags")) {
        report(mode, syscall(SYS_faccessat2, AT_FDCWD, "/", R_OK, 1));
    } else if (!strcmp(mode, "access-empty")) {
        int p[2];
        if (pipe(p) != 0)
            return 1;
        long w = syscall(SYS_faccessat2, p[0], "", W_OK, AT_EMPTY_PATH);
        printf("%s: W_OK %ld", mode, w);
        long x = syscall(SYS_faccessat2, p[0], "", X_OK, AT_EMPTY_PATH);
        printf(", X_OK %ld %s\n", x, x < 0 ? err_name(errno) : "");
    } else if (!strcmp(mode, "open-flags")) {
        long r = syscall(SYS_open, "/", O_RDONLY | 0x80000000L);
        printf("%s: %s\n", mode, r >= 0 ? "ok" : err_name(errno));
    } else if (!strcmp(mode, "open-flags-high")) {
        report(mode, syscall(SYS_open, "/", O_WRONLY | (1L << 32)));
    } else if (!strcmp(mode, "dupfd-negative")) {
        report(mode, fcntl(1, F_DUPFD, -5));
    } else if (!strcmp(mode, "dupfd-limit")) {
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
            return 1;
        int n = (int)rl.rlim_cur;
        long r = fcntl(1, F_DUPFD, n);
        printf("%s: limit %s", mode, r < 0 ? err_name(errno) : "ok");
        r = fcntl(1, F_DUPFD, n - 1);
        printf(", below it %s", r == n - 1 ? "ok" : "wrong");
        r = fcntl(1, F_DUPFD, n - 1);
        printf(", again %s\n", r < 0 ? err_name(errno) : "ok");
    } else if (!strcmp(mode, "mmap-huge")) {
        void *p = mmap(NULL, (size_t)1 << 40, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        printf("%s: returned%s\n", mode,
               p != MAP_FAILED || errno == ENOMEM ? "" : " an unexpected errno");
    } else if (!strcmp(mode, "clone-bad-ptid") || !strcmp(mode, "clone-bad-ctid")) {
        fflush(stdout);
        long pid = !strcmp(mode, "clone-bad-ptid")
                       ? syscall(SYS_clone, CLONE_PARENT_SETTID | SIGCHLD, 0L, (int *)8, 0L, 0L)
                       : syscall(SYS_clone, CLONE_CHILD_SETTID | SIGCHLD, 0L, 0L, (int *)8, 0L);
        if (pid == 0)
            _exit(0);
        if (pid < 0) {
            printf("%s: -1 %s\n", mode, err_name(errno));
        } else {
            int status;
            long w = waitpid((pid_t)pid, &status, 0);
            printf("%s: child exited %d\n", mode,
                   w == pid && WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        }
    } else if (!strcmp(mode, "sleep-forever")) {
        struct timespec ts = {LONG_MAX, 0}, now;
        long r = nanosleep(&ts, NULL);
        printf("%s: nanosleep %ld", mode, r);
        fflush(stdout);
        r = clock_gettime(CLOCK_REALTIME, &now);
        printf(", clock_gettime %ld\n", r);
    } else if (!strcmp(mode, "execve-e2big")) {
        static char *args[101];
        char *big = malloc(96 * 1024);
        memset(big, 'A', 96 * 1024 - 1);
        big[96 * 1024 - 1] = 0;
        for (int i = 0; i < 100; i++)
            args[i] = big;
        failed_execve(mode, args);
    } else if (!strcmp(mode, "execve-efault")) {
        char *args[] = {"fault_syscalls", (char *)8, NULL};
        failed_execve(mode, args);
    } else if (!strcmp(mode, "execve-empty-argv")) {
        char *env[] = {"FAULT_SYSCALLS_SHOW_ARGS=1", NULL};
        fflush(stdout);
        execve("/proc/self/exe", NULL, env);
        printf("%s: -1 %s\n", mode, err_name(errno));
    } else {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }
    return 0;
}
