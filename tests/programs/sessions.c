/*
 * sessions.c -- process groups and sessions (setpgid, getpgid, getpgrp, getsid, setsid), the
 * supplementary groups' count, and getsockname/getpeername on what is not a socket.  Prints
 * only relations between ids (the ids themselves differ natively), then OK.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

static int child_in_own_group(void)
{
    CHECK(setpgid(0, 0) == 0);
    CHECK(getpgrp() == getpid());
    CHECK(setsid() == -1 && errno == EPERM); /* a group leader cannot start a session */
    return 0;
}

static int child_new_session(pid_t parent_group)
{
    pid_t sid = setsid();
    CHECK_ERRNO(sid == getpid());
    CHECK(getsid(0) == sid && getpgrp() == sid && getpgid(0) == sid);
    CHECK(setsid() == -1 && errno == EPERM);
    /* the old group is in another session now */
    CHECK(setpgid(0, parent_group) == -1 && errno == EPERM);
    /* a session leader cannot change its group */
    CHECK(setpgid(0, 0) == -1 && errno == EPERM);
    return 0;
}

static void run(const char *what, int (*fn)(pid_t), pid_t arg)
{
    fflush(stdout);
    pid_t pid = fork();
    CHECK_ERRNO(pid >= 0);
    if (pid == 0)
        _exit(fn(arg));
    int status;
    CHECK_ERRNO(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    printf("%s: ok\n", what);
}

static int in_own_group(pid_t unused)
{
    (void)unused;
    return child_in_own_group();
}

int main(void)
{
    pid_t pgrp = getpgrp(), sid = getsid(0);
    CHECK(getpgid(0) == pgrp && getpgid(getpid()) == pgrp && getsid(getpid()) == sid);
    CHECK(getpgid(999999) == -1 && errno == ESRCH);
    CHECK(getsid(999999) == -1 && errno == ESRCH);
    CHECK(setpgid(0, -1) == -1 && errno == EINVAL);
    CHECK(setpgid(999999, 0) == -1 && errno == ESRCH);
    printf("started in a group and session it does not lead: %s\n",
           pgrp != getpid() && sid != getpid() ? "yes" : "no");

    /* a child inherits both; its parent may move it to a group of its own */
    fflush(stdout);
    int ready[2], checked[2];
    char c;
    CHECK_ERRNO(pipe(ready) == 0 && pipe(checked) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        CHECK(getpgrp() == pgrp && getsid(0) == sid);
        CHECK(write(checked[1], "x", 1) == 1);
        CHECK(read(ready[0], &c, 1) == 1);
        CHECK(getpgrp() == getpid());
        _exit(0);
    }
    CHECK(read(checked[0], &c, 1) == 1);
    CHECK_ERRNO(setpgid(pid, pid) == 0);
    CHECK(getpgid(pid) == pid && getsid(pid) == sid);
    CHECK(write(ready[1], "x", 1) == 1);
    int status;
    CHECK_ERRNO(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    printf("parent moved its child to a new group: ok\n");

    run("child made its own group", in_own_group, 0);
    run("child started a session", child_new_session, pgrp);

    int n = getgroups(0, NULL);
    CHECK_ERRNO(n >= 0);
    gid_t groups[256];
    CHECK(n <= 256 && getgroups(256, groups) == n);
    if (n > 0)
        CHECK(getgroups(n - 1, groups) == -1 && errno == EINVAL);
    printf("getgroups: consistent\n");

    struct sockaddr_storage sa;
    socklen_t len = sizeof sa;
    int fd = open("/dev/null", O_RDONLY);
    CHECK(getsockname(fd, (struct sockaddr *)&sa, &len) == -1 && errno == ENOTSOCK);
    CHECK(getpeername(fd, (struct sockaddr *)&sa, &len) == -1 && errno == ENOTSOCK);
    CHECK(getsockname(-1, (struct sockaddr *)&sa, &len) == -1 && errno == EBADF);
    int sv[2];
    CHECK_ERRNO(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    len = sizeof sa;
    CHECK_ERRNO(getsockname(sv[0], (struct sockaddr *)&sa, &len) == 0);
    CHECK(len == sizeof(sa_family_t) && sa.ss_family == AF_UNIX);
    len = sizeof sa;
    CHECK_ERRNO(getpeername(sv[1], (struct sockaddr *)&sa, &len) == 0);
    CHECK(len == sizeof(sa_family_t) && sa.ss_family == AF_UNIX);
    printf("getsockname and getpeername: ok\n");
    printf("OK\n");
    return 0;
}
