/*
 * sigmask_wait.c -- ppoll, pselect and epoll_pwait apply their signal mask for the wait
 * only (set_user_sigmask): a blocked, pending signal the call's mask lets through ends the
 * wait with EINTR after its handler ran, and the old mask is back afterwards; with an fd
 * ready the call returns it and the signal stays pending; a signal sent by a thread during
 * the wait interrupts it; a signal the call's mask blocks does not, and is delivered as the
 * call returns (its handler has run by then); a timeout puts the old mask back too; a bad
 * sigsetsize is EINVAL.  Then OK.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

static volatile sig_atomic_t handled[NSIG];
static void on_signal(int sig) { handled[sig]++; }

static int p[2];
static pthread_t main_thread;

static int blocked(int sig)
{
    sigset_t now;
    CHECK_ERRNO(sigprocmask(SIG_BLOCK, NULL, &now) == 0);
    return sigismember(&now, sig);
}

static int pending(int sig)
{
    sigset_t set;
    CHECK_ERRNO(sigpending(&set) == 0);
    return sigismember(&set, sig);
}

enum { PPOLL, PSELECT, EPOLL };
static const char *names[] = {"ppoll", "pselect", "epoll_pwait"};

/* Wait for p[0] to be readable under `mask`, at most `ms` milliseconds. */
static int wait_with(int how, const sigset_t *mask, int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    if (how == PPOLL) {
        struct pollfd pfd = {.fd = p[0], .events = POLLIN};
        return ppoll(&pfd, 1, &ts, mask);
    }
    if (how == PSELECT) {
        fd_set r;
        FD_ZERO(&r);
        FD_SET(p[0], &r);
        return pselect(p[0] + 1, &r, NULL, NULL, &ts, mask);
    }
    static int ep = -1;
    if (ep < 0) {
        ep = epoll_create1(0);
        struct epoll_event ev = {.events = EPOLLIN};
        CHECK_ERRNO(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev) == 0);
    }
    struct epoll_event out;
    return epoll_pwait(ep, &out, 1, ms, mask);
}

static void *send_usr1_later(void *arg)
{
    (void)arg;
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    CHECK(pthread_kill(main_thread, SIGUSR1) == 0);
    return NULL;
}

static void *send_usr2_later(void *arg)
{
    (void)arg;
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
    CHECK(pthread_kill(main_thread, SIGUSR2) == 0);
    nanosleep(&ts, NULL);
    CHECK(write(p[1], "w", 1) == 1); /* then ends the wait */
    return NULL;
}

int main(void)
{
    CHECK_ERRNO(pipe(p) == 0);
    main_thread = pthread_self();
    struct sigaction sa = {.sa_handler = on_signal};
    CHECK_ERRNO(sigaction(SIGUSR1, &sa, NULL) == 0);
    CHECK_ERRNO(sigaction(SIGUSR2, &sa, NULL) == 0);
    sigset_t usr1, empty, usr2;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigemptyset(&empty);
    sigemptyset(&usr2);
    sigaddset(&usr2, SIGUSR2);
    CHECK_ERRNO(sigprocmask(SIG_BLOCK, &usr1, NULL) == 0);
    char c;

    for (int how = PPOLL; how <= EPOLL; how++) {
        /* pending and blocked; the call's empty mask lets it in: EINTR after the handler */
        int before = handled[SIGUSR1];
        CHECK(raise(SIGUSR1) == 0 && pending(SIGUSR1));
        CHECK(wait_with(how, &empty, 1000) == -1 && errno == EINTR);
        CHECK(handled[SIGUSR1] == before + 1 && blocked(SIGUSR1) && !pending(SIGUSR1));

        /* an fd is ready: it is returned, and the signal stays pending and blocked */
        CHECK(raise(SIGUSR1) == 0);
        CHECK(write(p[1], "x", 1) == 1);
        CHECK(wait_with(how, &empty, 1000) == 1);
        CHECK(handled[SIGUSR1] == before + 1 && blocked(SIGUSR1) && pending(SIGUSR1));
        CHECK(read(p[0], &c, 1) == 1);
        CHECK(wait_with(how, &empty, 1000) == -1 && errno == EINTR); /* now it goes in */
        CHECK(handled[SIGUSR1] == before + 2);

        /* sent by a thread while the call sleeps */
        pthread_t th;
        CHECK(pthread_create(&th, NULL, send_usr1_later, NULL) == 0);
        CHECK(wait_with(how, &empty, 5000) == -1 && errno == EINTR);
        CHECK(pthread_join(th, NULL) == 0);
        CHECK(handled[SIGUSR1] == before + 3 && blocked(SIGUSR1));

        /* the call's mask blocks SIGUSR2, which the thread's own does not: the signal does
           not end the wait (a write does), and is delivered as the call returns */
        int before2 = handled[SIGUSR2];
        sigset_t both = usr1;
        sigaddset(&both, SIGUSR2);
        CHECK(pthread_create(&th, NULL, send_usr2_later, NULL) == 0);
        CHECK(wait_with(how, &both, 5000) == 1);
        CHECK(handled[SIGUSR2] == before2 + 1 && !blocked(SIGUSR2));
        CHECK(pthread_join(th, NULL) == 0);
        CHECK(read(p[0], &c, 1) == 1);
        /* a timeout puts the mask back too */
        CHECK(wait_with(how, &both, 10) == 0 && !blocked(SIGUSR2) && blocked(SIGUSR1));
        printf("%s: the mask holds for the wait only\n", names[how]);
    }

    struct pollfd pfd = {.fd = p[0], .events = POLLIN};
    struct timespec zero = {0, 0};
    CHECK(syscall(SYS_ppoll, &pfd, 1, &zero, &empty, 4) == -1 && errno == EINVAL);
    CHECK(syscall(SYS_epoll_pwait, epoll_create1(0), &pfd, 1, 0, &empty, 16) == -1 && errno == EINVAL);
    CHECK(blocked(SIGUSR1) && !blocked(SIGUSR2));
    printf("sigsetsize other than 8: EINVAL\n");
    (void)usr2;
    printf("OK\n");
    return 0;
}
