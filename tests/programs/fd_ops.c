/*
 * fd_ops.c -- calls on descriptors that real programs make: creat(2); close_range(2) closing
 * a range and, with CLOSE_RANGE_CLOEXEC, marking it (EINVAL for first > last or unknown
 * flags; Python's subprocess); ioctl FIONBIO/FIOCLEX/FIONCLEX on a pipe (node's libuv);
 * /dev/fd/N of a pipe opened anew (bash's <(...)), stat'ed as a FIFO, and /dev/stdout
 * following a redirected fd 1; renameat2 with RENAME_NOREPLACE (EEXIST) and EINVAL for
 * conflicting flags.
 *
 * argv[1] is an existing, writable directory; everything is made under it and removed.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/close_range.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "check.h"
#include "workdir.h"

static void descriptors(void) {
    int fd = creat(at("c"), 0640);
    CHECK_ERRNO(fd >= 0);
    CHECK((fcntl(fd, F_GETFL) & O_ACCMODE) == O_WRONLY);
    CHECK(write(fd, "x", 1) == 1);
    close(fd);

    int p[2];
    CHECK_ERRNO(pipe(p) == 0);
    int on = 1, off = 0;
    CHECK_ERRNO(ioctl(p[0], FIONBIO, &on) == 0);
    char c;
    CHECK(read(p[0], &c, 1) == -1);
    printf("FIONBIO on: read errno %d, O_NONBLOCK %d\n", errno,
           !!(fcntl(p[0], F_GETFL) & O_NONBLOCK));
    CHECK_ERRNO(ioctl(p[0], FIONBIO, &off) == 0);
    printf("FIONBIO off: O_NONBLOCK %d\n", !!(fcntl(p[0], F_GETFL) & O_NONBLOCK));
    CHECK_ERRNO(ioctl(p[1], FIOCLEX) == 0);
    printf("FIOCLEX: %d\n", fcntl(p[1], F_GETFD));
    CHECK_ERRNO(ioctl(p[1], FIONCLEX) == 0);
    printf("FIONCLEX: %d\n", fcntl(p[1], F_GETFD));

    /* /dev/fd/N of a pipe: a new end of the same pipe */
    char path[64];
    snprintf(path, sizeof path, "/dev/fd/%d", p[0]);
    struct stat st;
    CHECK_ERRNO(stat(path, &st) == 0);
    printf("stat %s: FIFO %d\n", "/dev/fd/<pipe>", S_ISFIFO(st.st_mode));
    int again = open(path, O_RDONLY);
    CHECK_ERRNO(again >= 0);
    CHECK(write(p[1], "hello", 5) == 5);
    char buf[8] = {0};
    CHECK(read(again, buf, sizeof buf) == 5);
    printf("read through /dev/fd: %s\n", buf);
    printf("/dev/fd/99: %d\n", open("/dev/fd/99", O_RDONLY) == -1 ? errno : 0);

    /* /dev/stdout is fd 1, wherever it goes */
    fflush(stdout);
    int saved = dup(1);
    int file = open(at("redirected"), O_CREAT | O_WRONLY | O_TRUNC, 0644);
    CHECK_ERRNO(file >= 0 && dup2(file, 1) == 1);
    int out = open("/dev/stdout", O_WRONLY);
    CHECK_ERRNO(out >= 0);
    CHECK(write(out, "via /dev/stdout\n", 16) == 16);
    close(out), close(file);
    CHECK_ERRNO(dup2(saved, 1) == 1);
    close(saved);
    int rd = open(at("redirected"), O_RDONLY);
    memset(buf, 0, sizeof buf);
    CHECK(read(rd, buf, 7) == 7);
    printf("the redirected file got: %s\n", buf);
    close(rd);

    /* close_range */
    int lo = dup(p[0]), hi = dup(p[0]);
    CHECK(lo >= 0 && hi > lo);
    CHECK_ERRNO(close_range(lo, hi, CLOSE_RANGE_CLOEXEC) == 0);
    printf("CLOEXEC range: %d %d\n", fcntl(lo, F_GETFD), fcntl(hi, F_GETFD));
    CHECK_ERRNO(close_range(lo, ~0U, 0) == 0);
    printf("closed: %d %d\n", fcntl(lo, F_GETFD) == -1 && errno == EBADF,
           fcntl(hi, F_GETFD) == -1 && errno == EBADF);
    printf("first > last: %d\n", close_range(5, 4, 0) == -1 ? errno : 0);
    printf("unknown flag: %d\n", close_range(3, 4, 1 << 5) == -1 ? errno : 0);
    printf("p[0] still open: %d\n", fcntl(p[0], F_GETFD) >= 0);
}

static void renames(void) {
    int fd = open(at("r1"), O_CREAT | O_WRONLY, 0644);
    CHECK_ERRNO(fd >= 0);
    close(fd);
    fd = open(at("r2"), O_CREAT | O_WRONLY, 0644);
    CHECK_ERRNO(fd >= 0);
    close(fd);
    printf("NOREPLACE onto a file: %d\n",
           renameat2(AT_FDCWD, at("r1"), AT_FDCWD, at("r2"), RENAME_NOREPLACE) == -1 ? errno : 0);
    printf("NOREPLACE|EXCHANGE: %d\n",
           renameat2(AT_FDCWD, at("r1"), AT_FDCWD, at("r2"), RENAME_NOREPLACE | RENAME_EXCHANGE)
                   == -1 ? errno : 0);
    CHECK_ERRNO(renameat2(AT_FDCWD, at("r1"), AT_FDCWD, at("r3"), RENAME_NOREPLACE) == 0);
    CHECK_ERRNO(renameat2(AT_FDCWD, at("r2"), AT_FDCWD, at("r3"), 0) == 0);
    printf("r1 %d r2 %d r3 %d\n", access(at("r1"), F_OK) == 0, access(at("r2"), F_OK) == 0,
           access(at("r3"), F_OK) == 0);
    CHECK_ERRNO(unlink(at("r3")) == 0 && unlink(at("c")) == 0 && unlink(at("redirected")) == 0);
}

int main(int argc, char **argv) {
    CHECK(argc == 2);
    snprintf(base, sizeof base, "%s", argv[1]);
    descriptors();
    renames();
    printf("OK\n");
    return 0;
}
