/*
 * kill_groups.c -- kill(2)'s targets (kernel/signal.c, kill_something_info): pid 0 is the
 * caller's process group only (coreutils' timeout puts itself in a group of its own and then
 * signals it: the shell that started it must not be hit), -pgid a group, a zombie still
 * counts (0, nothing delivered), an empty group or INT_MIN is ESRCH.
 */
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

static volatile sig_atomic_t got;
static void on_usr1(int sig) { got = sig; }

int main(void) {
    signal(SIGUSR1, on_usr1);
    pid_t leader = fork();
    CHECK_ERRNO(leader >= 0);
    if (leader == 0) {
        CHECK_ERRNO(setpgid(0, 0) == 0);
        pid_t member = fork();
        CHECK_ERRNO(member >= 0);
        if (member == 0) {
            while (!got) pause();
            _exit(40);
        }
        signal(SIGUSR1, SIG_IGN);
        /* the member is in our group: kill(0) reaches it, not our parent */
        CHECK_ERRNO(kill(0, SIGUSR1) == 0);
        int st;
        CHECK_ERRNO(waitpid(member, &st, 0) == member);
        _exit(WIFEXITED(st) ? WEXITSTATUS(st) + 1 : 99);
    }
    int st;
    CHECK_ERRNO(waitpid(leader, &st, 0) == leader);
    printf("leader exited %d; the parent got a signal: %d\n", WEXITSTATUS(st), got != 0);

    pid_t z = fork();
    CHECK_ERRNO(z >= 0);
    if (z == 0) {
        setpgid(0, 0);
        _exit(0);
    }
    usleep(100000); /* z is a zombie now, not yet reaped */
    printf("kill(zombie, 0): %d\n", kill(z, 0));
    printf("kill(zombie, SIGUSR1): %d\n", kill(z, SIGUSR1));
    CHECK_ERRNO(waitpid(z, &st, 0) == z);
    printf("kill(reaped, 0): %d\n", kill(z, 0) == -1 ? errno : 0);
    printf("kill(-99999, 0): %d\n", kill(-99999, 0) == -1 ? errno : 0);
    printf("kill(INT_MIN, 0): %d\n", kill(INT_MIN, 0) == -1 ? errno : 0);
    printf("kill(-own group, 0): %d\n", kill(-getpgrp(), 0));
    printf("OK\n");
    return 0;
}
