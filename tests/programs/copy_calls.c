/*
 * copy_calls.c DIR -- sendfile from a file to a pipe (at the file position, which advances,
 * and at an offset, which is updated instead), copy_file_range between files, flock's
 * checks, sendmmsg/recvmmsg over a datagram socketpair, sched_getscheduler and
 * sched_getparam, each with its errors.  Then OK.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "workdir.h"

int main(int argc, char **argv)
{
    CHECK(argc == 2);
    snprintf(base, sizeof base, "%s/uemu_copy_calls", argv[1]);
    CHECK_ERRNO(mkdir(base, 0755) == 0);
    int f = open(at("src"), O_RDWR | O_CREAT, 0644);
    CHECK_ERRNO(f >= 0);
    CHECK(write(f, "0123456789", 10) == 10);
    CHECK(lseek(f, 2, SEEK_SET) == 2);
    int p[2];
    CHECK_ERRNO(pipe(p) == 0);
    char buf[16];
    CHECK(sendfile(p[1], f, NULL, 3) == 3);
    CHECK(lseek(f, 0, SEEK_CUR) == 5);
    CHECK(read(p[0], buf, sizeof buf) == 3 && memcmp(buf, "234", 3) == 0);
    off_t off = 7;
    CHECK(sendfile(p[1], f, &off, 100) == 3 && off == 10);
    CHECK(lseek(f, 0, SEEK_CUR) == 5);
    CHECK(read(p[0], buf, sizeof buf) == 3 && memcmp(buf, "789", 3) == 0);
    CHECK(sendfile(p[1], f, &off, 5) == 0); /* at the end */
    CHECK(sendfile(f, p[0], NULL, 5) == -1 && errno == EINVAL);
    CHECK(sendfile(p[1], 99, NULL, 5) == -1 && errno == EBADF);
    printf("sendfile: file position or offset\n");

    int g = open(at("dst"), O_RDWR | O_CREAT, 0644);
    CHECK_ERRNO(g >= 0);
    off_t in = 1, out = 0;
    CHECK(copy_file_range(f, &in, g, &out, 4, 0) == 4 && in == 5 && out == 4);
    CHECK(pread(g, buf, 8, 0) == 4 && memcmp(buf, "1234", 4) == 0);
    CHECK(copy_file_range(f, &in, g, &out, 4, 1) == -1 && errno == EINVAL);
    CHECK(copy_file_range(f, NULL, p[1], NULL, 4, 0) == -1 && errno == EINVAL);
    printf("copy_file_range\n");

    CHECK_ERRNO(flock(f, LOCK_EX) == 0);
    CHECK_ERRNO(flock(f, LOCK_UN) == 0);
    CHECK_ERRNO(flock(f, LOCK_SH | LOCK_NB) == 0);
    CHECK(flock(f, 0) == -1 && errno == EINVAL);
    CHECK(flock(99, LOCK_EX) == -1 && errno == EBADF);
    printf("flock\n");

    int sv[2];
    CHECK_ERRNO(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) == 0);
    struct iovec iov[3] = {{"a", 1}, {"bb", 2}, {"ccc", 3}};
    struct mmsghdr out_m[3] = {0};
    for (int i = 0; i < 3; i++) {
        out_m[i].msg_hdr.msg_iov = &iov[i];
        out_m[i].msg_hdr.msg_iovlen = 1;
    }
    CHECK(sendmmsg(sv[0], out_m, 3, 0) == 3);
    CHECK(out_m[0].msg_len == 1 && out_m[2].msg_len == 3);
    char r[4][8];
    struct iovec riov[4] = {{r[0], 8}, {r[1], 8}, {r[2], 8}, {r[3], 8}};
    struct mmsghdr in_m[4] = {0};
    for (int i = 0; i < 4; i++) {
        in_m[i].msg_hdr.msg_iov = &riov[i];
        in_m[i].msg_hdr.msg_iovlen = 1;
    }
    CHECK(recvmmsg(sv[1], in_m, 4, MSG_DONTWAIT, NULL) == 3);
    CHECK(in_m[1].msg_len == 2 && memcmp(r[2], "ccc", 3) == 0);
    CHECK(recvmmsg(sv[1], in_m, 4, MSG_DONTWAIT, NULL) == -1 && errno == EAGAIN);
    CHECK(sendmmsg(f, out_m, 1, 0) == -1 && errno == ENOTSOCK);
    printf("sendmmsg, recvmmsg\n");

    struct sched_param sp = {.sched_priority = 7};
    CHECK(sched_getscheduler(0) == SCHED_OTHER);
    CHECK_ERRNO(sched_getparam(0, &sp) == 0 && sp.sched_priority == 0);
    CHECK(sched_getscheduler(-1) == -1 && errno == EINVAL);
    CHECK(sched_getparam(999999, &sp) == -1 && errno == ESRCH);
    printf("sched_getscheduler, sched_getparam\n");

    CHECK_ERRNO(unlink(at("src")) == 0 && unlink(at("dst")) == 0 && rmdir(base) == 0);
    printf("OK\n");
    return 0;
}
