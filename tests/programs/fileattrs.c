/*
 * fileattrs.c -- file metadata and links: link/linkat, chown/fchown/lchown/fchownat to one's
 * own ids, utimensat/futimens (explicit times, UTIME_OMIT, UTIME_NOW, bad nanoseconds),
 * statfs/fstatfs (path and fd agree; a pipe is on pipefs), posix_fadvise, and the extended
 * attributes (whatever the file system answers, the calls agree with one another).
 *
 * argv[1] is an existing, writable directory; everything is made under it and removed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "check.h"
#include "workdir.h"

static void links(void)
{
    int fd = open(at("a"), O_CREAT | O_WRONLY, 0644);
    CHECK_ERRNO(fd >= 0);
    CHECK(write(fd, "hello", 5) == 5);
    CHECK_ERRNO(link(at("a"), at("b")) == 0);
    struct stat sa, sb;
    CHECK_ERRNO(stat(at("a"), &sa) == 0 && stat(at("b"), &sb) == 0);
    CHECK(sa.st_ino == sb.st_ino && sa.st_nlink == 2);
    CHECK(link(at("a"), at("b")) == -1 && errno == EEXIST);
    CHECK(link(at("missing"), at("c")) == -1 && errno == ENOENT);
    CHECK(linkat(AT_FDCWD, at("a"), AT_FDCWD, at("c"), 0x8) == -1 && errno == EINVAL);
    CHECK_ERRNO(symlink("a", at("s")) == 0);
    CHECK_ERRNO(linkat(AT_FDCWD, at("s"), AT_FDCWD, at("c"), AT_SYMLINK_FOLLOW) == 0);
    CHECK_ERRNO(lstat(at("c"), &sb) == 0 && sb.st_ino == sa.st_ino);
    CHECK_ERRNO(linkat(AT_FDCWD, at("s"), AT_FDCWD, at("d"), 0) == 0);
    CHECK_ERRNO(lstat(at("d"), &sb) == 0 && S_ISLNK(sb.st_mode));
    printf("link: ok\n");

    CHECK_ERRNO(chown(at("a"), getuid(), getgid()) == 0);
    CHECK_ERRNO(chown(at("a"), -1, -1) == 0);
    CHECK_ERRNO(fchown(fd, getuid(), -1) == 0);
    CHECK_ERRNO(lchown(at("s"), -1, getgid()) == 0);
    CHECK_ERRNO(fchownat(AT_FDCWD, at("s"), getuid(), getgid(), AT_SYMLINK_NOFOLLOW) == 0);
    CHECK(fchownat(AT_FDCWD, at("a"), -1, -1, 0x2) == -1 && errno == EINVAL);
    CHECK(chown(at("missing"), -1, -1) == -1 && errno == ENOENT);
    printf("chown: ok\n");

    struct timespec ts[2] = {{1000, 500}, {2000, 0}};
    CHECK_ERRNO(utimensat(AT_FDCWD, at("a"), ts, 0) == 0);
    CHECK_ERRNO(stat(at("a"), &sa) == 0);
    CHECK(sa.st_atim.tv_sec == 1000 && sa.st_atim.tv_nsec == 500 && sa.st_mtim.tv_sec == 2000);
    struct timespec omit[2] = {{0, UTIME_OMIT}, {3000, 7}};
    CHECK_ERRNO(futimens(fd, omit) == 0);
    CHECK_ERRNO(fstat(fd, &sa) == 0);
    CHECK(sa.st_atim.tv_sec == 1000 && sa.st_mtim.tv_sec == 3000 && sa.st_mtim.tv_nsec == 7);
    struct timespec now[2] = {{0, UTIME_NOW}, {0, UTIME_OMIT}};
    CHECK_ERRNO(utimensat(AT_FDCWD, at("a"), now, 0) == 0);
    CHECK_ERRNO(stat(at("a"), &sa) == 0 && sa.st_atim.tv_sec > 1000 && sa.st_mtim.tv_sec == 3000);
    struct timespec bad[2] = {{0, 1000000000}, {0, 0}};
    CHECK(utimensat(AT_FDCWD, at("a"), bad, 0) == -1 && errno == EINVAL);
    CHECK(utimensat(AT_FDCWD, at("missing"), NULL, 0) == -1 && errno == ENOENT);
    printf("utimensat: ok\n");

    struct statfs fa, fb;
    CHECK_ERRNO(statfs(base, &fa) == 0 && fstatfs(fd, &fb) == 0);
    CHECK(fa.f_type == fb.f_type && fa.f_bsize == fb.f_bsize && fa.f_bsize > 0);
    CHECK(statfs(at("missing"), &fa) == -1 && errno == ENOENT);
    int p[2];
    CHECK_ERRNO(pipe(p) == 0);
    CHECK_ERRNO(fstatfs(p[0], &fa) == 0 && fa.f_type == 0x50495045);
    CHECK(posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL) == 0);
    CHECK(posix_fadvise(fd, 0, 0, 99) == EINVAL);
    CHECK(posix_fadvise(p[0], 0, 0, POSIX_FADV_NORMAL) == ESPIPE);
    CHECK(posix_fadvise(-1, 0, 0, POSIX_FADV_NORMAL) == EBADF);
    close(p[0]);
    close(p[1]);
    printf("statfs and fadvise: ok\n");

    char buf[64];
    errno = 0;
    CHECK(getxattr(at("a"), "user.uemu_nope", buf, sizeof buf) == -1);
    CHECK(errno == ENODATA || errno == ENOTSUP);
    int support = errno == ENODATA;
    if (setxattr(at("a"), "user.uemu", "v1", 2, 0) == 0) {
        CHECK(fgetxattr(fd, "user.uemu", buf, sizeof buf) == 2 && memcmp(buf, "v1", 2) == 0);
        CHECK(getxattr(at("a"), "user.uemu", NULL, 0) == 2);
        CHECK(getxattr(at("a"), "user.uemu", buf, 1) == -1 && errno == ERANGE);
        CHECK(setxattr(at("a"), "user.uemu", "v2", 2, XATTR_CREATE) == -1 && errno == EEXIST);
        ssize_t n = listxattr(at("a"), buf, sizeof buf);
        CHECK(n > 0 && memmem(buf, (size_t)n, "user.uemu", 10) != NULL);
        CHECK_ERRNO(fremovexattr(fd, "user.uemu") == 0);
        CHECK(removexattr(at("a"), "user.uemu") == -1 && errno == ENODATA);
    } else {
        CHECK(errno == ENOTSUP || errno == EPERM);
    }
    CHECK(getxattr(at("missing"), "user.uemu", buf, sizeof buf) == -1 && errno == ENOENT);
    printf("xattrs: %s\n", support ? "supported, consistent" : "not supported, consistent");

    close(fd);
    CHECK_ERRNO(unlink(at("a")) == 0 && unlink(at("b")) == 0 && unlink(at("c")) == 0);
    CHECK_ERRNO(unlink(at("d")) == 0 && unlink(at("s")) == 0);
}

int main(int argc, char **argv)
{
    CHECK(argc == 2);
    snprintf(base, sizeof base, "%s/uemu_fileattrs", argv[1]);
    CHECK_ERRNO(mkdir(base, 0755) == 0);
    links();
    CHECK_ERRNO(rmdir(base) == 0);
    printf("OK\n");
    return 0;
}
