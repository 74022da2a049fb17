/*
 * sigwait.c -- rt_sigtimedwait (sigwaitinfo, sigtimedwait, sigwait): a pending blocked
 * signal is taken with its siginfo, the lowest-numbered first; a zero or short timeout with
 * nothing pending is EAGAIN; a thread's pthread_kill wakes the waiter; a signal sent to the
 * process goes to the thread waiting for it, though every thread blocks it; an unblocked
 * signal outside the set ends the wait with EINTR after its handler; a bad sigsetsize is
 * EINVAL.  Then OK.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

static pthread_t main_thread;
static volatile sig_atomic_t alarms;
static void on_alarm(int sig) { (void)sig; alarms++; }

static void pause_ms(long ms)
{
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
}

static void *kick_main(void *arg)
{
    (void)arg;
    pause_ms(20);
    CHECK(pthread_kill(main_thread, SIGUSR2) == 0);
    return NULL;
}

static void *waiter(void *arg)
{
    sigset_t *set = arg;
    int sig = 0;
    CHECK(sigwait(set, &sig) == 0 && sig == SIGUSR1);
    return NULL;
}

int main(void)
{
    main_thread = pthread_self();
    sigset_t both, usr1, usr2;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigemptyset(&usr2);
    sigaddset(&usr2, SIGUSR2);
    sigemptyset(&both);
    sigaddset(&both, SIGUSR1);
    sigaddset(&both, SIGUSR2);
    CHECK_ERRNO(sigprocmask(SIG_BLOCK, &both, NULL) == 0);

    siginfo_t info;
    CHECK(raise(SIGUSR2) == 0 && raise(SIGUSR1) == 0);
    CHECK(sigwaitinfo(&both, &info) == SIGUSR1);
    CHECK(info.si_signo == SIGUSR1 && info.si_pid == getpid());
    CHECK(sigwaitinfo(&both, &info) == SIGUSR2);
    printf("pending signals taken, the lowest first, with their siginfo\n");

    struct timespec zero = {0, 0}, short_wait = {0, 10 * 1000 * 1000};
    CHECK(sigtimedwait(&both, &info, &zero) == -1 && errno == EAGAIN);
    CHECK(sigtimedwait(&both, &info, &short_wait) == -1 && errno == EAGAIN);
    printf("nothing pending: EAGAIN at the timeout\n");

    pthread_t th;
    CHECK(pthread_create(&th, NULL, kick_main, NULL) == 0);
    int sig = 0;
    CHECK(sigwait(&usr2, &sig) == 0 && sig == SIGUSR2);
    CHECK(pthread_join(th, NULL) == 0);
    printf("a thread's pthread_kill wakes the waiter\n");

    CHECK(pthread_create(&th, NULL, waiter, &usr1) == 0);
    pause_ms(20);
    CHECK(kill(getpid(), SIGUSR1) == 0);
    CHECK(pthread_join(th, NULL) == 0);
    sigset_t pending;
    CHECK(sigpending(&pending) == 0 && !sigismember(&pending, SIGUSR1));
    printf("a process signal goes to the thread waiting for it\n");

    struct sigaction sa = {.sa_handler = on_alarm};
    CHECK_ERRNO(sigaction(SIGALRM, &sa, NULL) == 0);
    alarm(1);
    CHECK(sigwaitinfo(&both, &info) == -1 && errno == EINTR && alarms == 1);
    printf("another signal: EINTR after its handler\n");

    CHECK(syscall(SYS_rt_sigtimedwait, &both, NULL, &zero, 4) == -1 && errno == EINVAL);
    printf("OK\n");
    return 0;
}
