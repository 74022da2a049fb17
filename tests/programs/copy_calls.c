/*
 * copy_calls.c -- copying inside the kernel: sendfile(2) from a file to a file and to a pipe,
 * with and without an offset pointer (the position moves only without one), its errors
 * (EBADF for an fd not open for it, EINVAL for a pipe as input, EFAULT for a bad offset
 * pointer); copy_file_range(2) between files with offsets (updated) and its EINVAL for flags
 * or a pipe.  busybox (cat, cp, tar) and coreutils' cp use them.
 *
 * argv[1] is an existing, writable directory; everything is made under it and removed.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/sendfile.h>
#include <unistd.h>

#include "check.h"
#include "workdir.h"

int main(int argc, char **argv) {
    CHECK(argc == 2);
    snprintf(base, sizeof base, "%s", argv[1]);
    int in = open(at("in"), O_CREAT | O_RDWR | O_TRUNC, 0644);
    CHECK_ERRNO(in >= 0);
    char text[1000];
    for (int i = 0; i < 1000; i++) text[i] = 'a' + i % 26;
    CHECK(write(in, text, sizeof text) == (ssize_t)sizeof text);
    CHECK_ERRNO(lseek(in, 10, SEEK_SET) == 10);
    int out = open(at("out"), O_CREAT | O_RDWR | O_TRUNC, 0644);
    CHECK_ERRNO(out >= 0);

    printf("sendfile at the position: %zd", sendfile(out, in, NULL, 100));
    printf(", position now %ld\n", (long)lseek(in, 0, SEEK_CUR));
    off_t off = 900;
    printf("sendfile at an offset: %zd", sendfile(out, in, &off, 500));
    printf(", offset now %ld, position %ld\n", (long)off, (long)lseek(in, 0, SEEK_CUR));
    printf("at the end: %zd\n", sendfile(out, in, &off, 10));
    char back[200];
    CHECK(pread(out, back, sizeof back, 0) == 200);
    CHECK(memcmp(back, text + 10, 100) == 0 && memcmp(back + 100, text + 900, 100) == 0);

    int p[2];
    CHECK_ERRNO(pipe(p) == 0);
    off = 0;
    printf("sendfile to a pipe: %zd\n", sendfile(p[1], in, &off, 26));
    CHECK(read(p[0], back, 26) == 26 && memcmp(back, text, 26) == 0);
    CHECK(sendfile(out, p[0], NULL, 1) == -1);
    printf("a pipe as input: errno %d\n", errno);
    CHECK(sendfile(in, p[1], NULL, 1) == -1);
    printf("input not readable: errno %d\n", errno);
    CHECK(sendfile(p[0], in, NULL, 1) == -1);
    printf("output not writable: errno %d\n", errno);
    CHECK(sendfile(out, in, (off_t *)8, 1) == -1);
    printf("bad offset pointer: errno %d\n", errno);

    int copy = open(at("copy"), O_CREAT | O_RDWR | O_TRUNC, 0644);
    CHECK_ERRNO(copy >= 0);
    loff_t from = 26, to = 0;
    printf("copy_file_range: %zd", copy_file_range(in, &from, copy, &to, 52, 0));
    printf(", offsets now %ld %ld\n", (long)from, (long)to);
    CHECK(pread(copy, back, 52, 0) == 52 && memcmp(back, text + 26, 52) == 0);
    CHECK(lseek(in, 0, SEEK_SET) == 0 && lseek(copy, 52, SEEK_SET) == 52);
    ssize_t n = copy_file_range(in, NULL, copy, NULL, 3, 0);
    printf("at the positions: %zd, positions now %ld %ld\n", n, (long)lseek(in, 0, SEEK_CUR),
           (long)lseek(copy, 0, SEEK_CUR));
    CHECK(copy_file_range(in, NULL, copy, NULL, 3, 1) == -1);
    printf("flags: errno %d\n", errno);
    CHECK(copy_file_range(p[0], NULL, copy, NULL, 3, 0) == -1);
    printf("a pipe: errno %d\n", errno);

    close(in), close(out), close(copy), close(p[0]), close(p[1]);
    CHECK_ERRNO(unlink(at("in")) == 0 && unlink(at("out")) == 0 && unlink(at("copy")) == 0);
    printf("OK\n");
    return 0;
}
