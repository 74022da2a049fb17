/*
 * child_usage.c -- the children's CPU time and the supplementary groups: RUSAGE_CHILDREN is
 * zero before any child is reaped; a child that computes while its parent polls it with
 * WNOHANG has user time in wait4's rusage, and reaping it adds that time to RUSAGE_CHILDREN
 * (within a few microseconds of rounding) and to times()' tms_cutime; a grandchild's time
 * reaches the grandparent through its child; setgroups needs CAP_SETGID (EPERM without it),
 * keeps the list sorted for the process and its children, refuses more than NGROUPS_MAX
 * (EINVAL).  Then OK.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/times.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

static long usec(struct timeval tv) { return tv.tv_sec * 1000000L + tv.tv_usec; }

static void work(void)
{
    for (volatile long i = 0; i < 2000000; i++)
        ;
}

/* Fork a child running `body`, poll it with WNOHANG while it runs, return wait4's usage. */
static long reap_busy_child(void (*body)(void))
{
    pid_t pid = fork();
    CHECK_ERRNO(pid >= 0);
    if (pid == 0) {
        body();
        _exit(0);
    }
    struct rusage ru;
    int status;
    pid_t got;
    while ((got = wait4(pid, &status, WNOHANG, &ru)) == 0)
        ;
    CHECK(got == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    return usec(ru.ru_utime);
}

static void grandparent_body(void)
{
    long g = reap_busy_child(work);
    struct rusage ch;
    CHECK_ERRNO(getrusage(RUSAGE_CHILDREN, &ch) == 0);
    CHECK(g > 0 && usec(ch.ru_utime) >= g - 2 && usec(ch.ru_utime) <= g + 2);
}

int main(void)
{
    struct rusage before, after;
    CHECK_ERRNO(getrusage(RUSAGE_CHILDREN, &before) == 0);
    CHECK(usec(before.ru_utime) == 0 && usec(before.ru_stime) == 0);
    printf("no child reaped: no children's time\n");

    long child = reap_busy_child(work);
    CHECK(child > 0);
    CHECK_ERRNO(getrusage(RUSAGE_CHILDREN, &after) == 0);
    long added = usec(after.ru_utime) - usec(before.ru_utime);
    CHECK(added >= child - 2 && added <= child + 2);
    struct tms t;
    CHECK(times(&t) != (clock_t)-1);
    CHECK(t.tms_cutime >= (clock_t)(usec(after.ru_utime) / 10000) - 1);
    printf("wait4's rusage: the child's time, added to RUSAGE_CHILDREN and tms_cutime\n");

    long with_grandchild = reap_busy_child(grandparent_body);
    CHECK(with_grandchild > 0);
    struct rusage last;
    CHECK_ERRNO(getrusage(RUSAGE_CHILDREN, &last) == 0);
    added = usec(last.ru_utime) - usec(after.ru_utime);
    CHECK(added >= with_grandchild - 2 && added <= with_grandchild + 2);
    printf("a grandchild's time reaches its grandparent\n");

    gid_t mine[64];
    int n = getgroups(64, mine);
    CHECK_ERRNO(n >= 0);
    gid_t want[3] = {5, 3, 1};
    if (geteuid() != 0) {
        CHECK(setgroups(3, want) == -1 && errno == EPERM);
        CHECK(getgroups(64, mine) == n);
    } else {
        CHECK(syscall(SYS_setgroups, 65537, want) == -1 && errno == EINVAL);
        CHECK_ERRNO(setgroups(3, want) == 0);
        gid_t now[8];
        CHECK(getgroups(8, now) == 3 && now[0] == 1 && now[1] == 3 && now[2] == 5);
        CHECK(getgroups(2, now) == -1 && errno == EINVAL);
        pid_t pid = fork();
        if (pid == 0)
            _exit(getgroups(8, now) == 3 && now[2] == 5 ? 0 : 1);
        int status;
        CHECK(waitpid(pid, &status, 0) == pid && status == 0);
        CHECK_ERRNO(setgroups(0, NULL) == 0);
        CHECK(getgroups(0, NULL) == 0);
    }
    printf("setgroups: as the credentials allow\n");
    printf("OK\n");
    return 0;
}
