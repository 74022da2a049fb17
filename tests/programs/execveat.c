/*
 * execveat.c -- execveat: unknown flags are EINVAL, an empty path without AT_EMPTY_PATH
 * ENOENT, a bad fd EBADF; fexecve (execveat with AT_EMPTY_PATH on an fd of the program)
 * runs the program again, which prints its argument.  Then OK.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "check.h"

int main(int argc, char **argv)
{
    if (argc > 1) {
        printf("exec'd again: %s\n", argv[1]);
        printf("OK\n");
        return 0;
    }
    char *args[] = {argv[0], "through fexecve", NULL};
    char *env[] = {NULL};
    int fd = open("/proc/self/exe", O_RDONLY);
    CHECK_ERRNO(fd >= 0);
    CHECK(syscall(SYS_execveat, fd, "x", args, env, 0x8000) == -1 && errno == EINVAL);
    CHECK(syscall(SYS_execveat, fd, "", args, env, 0) == -1 && errno == ENOENT);
    CHECK(syscall(SYS_execveat, 99, "", args, env, AT_EMPTY_PATH) == -1 && errno == EBADF);
    printf("execveat: EINVAL, ENOENT, EBADF\n");
    fflush(stdout);
    fexecve(fd, args, env);
    printf("FAIL fexecve: errno %d\n", errno);
    return 1;
}
