/*
 * fd_ops.c -- what real programs do to descriptors: ioctl FIONBIO/FIOCLEX/FIONCLEX on a pipe
 * (node's libuv sets O_NONBLOCK so, fs/ioctl.c); /dev/fd/N of a pipe opened anew (bash's
 * <(...)), stat'ed as a FIFO, ENOENT for a closed N; /dev/stdout following a redirected fd 1.
 *
 * argv[1] is an existing, writable directory; everything is made under it and removed.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "workdir.h"

static void descriptors(void) {
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
    close(again), close(p[0]), close(p[1]);
    CHECK_ERRNO(unlink(at("redirected")) == 0);
}

int main(int argc, char **argv) {
    CHECK(argc == 2);
    snprintf(base, sizeof base, "%s", argv[1]);
    descriptors();
    printf("OK\n");
    return 0;
}
