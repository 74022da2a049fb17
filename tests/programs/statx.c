/*
 * statx.c -- statx agrees with fstatat field by field (a directory, a device, a symlink
 * looked at with and without following, the program itself by fd with AT_EMPTY_PATH, a pipe),
 * reports the basic-stats mask, and fails as Linux does: EINVAL for unknown flags, both sync
 * types at once or the reserved mask bit; ENOENT for a missing or empty path.  Then OK.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "check.h"

/* The system call itself: glibc's statx falls back to fstatat where it is ENOSYS. */
static int sys_statx(int dirfd, const char *path, int flags, unsigned mask, struct statx *sx)
{
    return (int)syscall(SYS_statx, dirfd, path, flags, mask, sx);
}

static void same(int dirfd, const char *path, int flags)
{
    struct stat st;
    struct statx sx;
    CHECK_ERRNO(fstatat(dirfd, path, &st, flags) == 0);
    CHECK_ERRNO(sys_statx(dirfd, path, flags, STATX_BASIC_STATS, &sx) == 0);
    CHECK((sx.stx_mask & STATX_BASIC_STATS) == STATX_BASIC_STATS);
    CHECK(sx.stx_mode == st.st_mode && sx.stx_ino == st.st_ino && sx.stx_nlink == st.st_nlink);
    CHECK(sx.stx_uid == st.st_uid && sx.stx_gid == st.st_gid && sx.stx_size == (__u64)st.st_size);
    CHECK(sx.stx_blocks == (__u64)st.st_blocks && sx.stx_blksize == (__u32)st.st_blksize);
    CHECK(makedev(sx.stx_dev_major, sx.stx_dev_minor) == st.st_dev);
    CHECK(makedev(sx.stx_rdev_major, sx.stx_rdev_minor) == st.st_rdev);
    CHECK(sx.stx_mtime.tv_sec == st.st_mtim.tv_sec && sx.stx_mtime.tv_nsec == st.st_mtim.tv_nsec);
    CHECK(sx.stx_atime.tv_sec == st.st_atim.tv_sec && sx.stx_ctime.tv_sec == st.st_ctim.tv_sec);
}

int main(int argc, char **argv)
{
    (void)argc;
    same(AT_FDCWD, "/", 0);
    same(AT_FDCWD, "/dev/null", 0);
    same(AT_FDCWD, "/bin", 0);
    same(AT_FDCWD, "/bin", AT_SYMLINK_NOFOLLOW);
    int fd = open(argv[0], O_RDONLY);
    CHECK_ERRNO(fd >= 0);
    same(fd, "", AT_EMPTY_PATH);
    int p[2];
    CHECK_ERRNO(pipe(p) == 0);
    same(p[0], "", AT_EMPTY_PATH);
    printf("statx agrees with fstatat\n");

    struct statx sx;
    CHECK(sys_statx(AT_FDCWD, "/", 0x80000, STATX_BASIC_STATS, &sx) == -1 && errno == EINVAL);
    CHECK(sys_statx(AT_FDCWD, "/", 0x6000, STATX_BASIC_STATS, &sx) == -1 && errno == EINVAL);
    CHECK(sys_statx(AT_FDCWD, "/", 0, 0x80000000u, &sx) == -1 && errno == EINVAL);
    CHECK(sys_statx(AT_FDCWD, "/nonexistent/x", 0, STATX_BASIC_STATS, &sx) == -1 && errno == ENOENT);
    CHECK(sys_statx(fd, "", 0, STATX_BASIC_STATS, &sx) == -1 && errno == ENOENT);
    CHECK(sys_statx(-1, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &sx) == -1 && errno == EBADF);
    printf("errors: ok\n");
    printf("OK\n");
    return 0;
}
