/*
 * cputime.c -- the CPU time a program has used (getrusage, times) and pause(): user time
 * never goes back; an unknown `who` is EINVAL; times() counts clock ticks
 * since some fixed point; pause() returns -1/EINTR after a SIGALRM handler has run.  Then OK.
 */
#define _GNU_SOURCE /* RUSAGE_THREAD */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/times.h>
#include <unistd.h>

#include "check.h"

static volatile sig_atomic_t alarms;

static void on_alarm(int sig)
{
    (void)sig;
    alarms++;
}

static long usec(struct timeval tv) { return tv.tv_sec * 1000000L + tv.tv_usec; }

static void work(void)
{
    for (volatile long i = 0; i < 3000000; i++)
        ;
}

int main(void)
{
    struct rusage a, b, th;
    CHECK_ERRNO(getrusage(RUSAGE_SELF, &a) == 0);
    work();
    CHECK_ERRNO(getrusage(RUSAGE_SELF, &b) == 0);
    CHECK(usec(b.ru_utime) >= usec(a.ru_utime)); /* a lone thread runs uncounted (docs/linux.md) */
    CHECK(b.ru_utime.tv_usec >= 0 && b.ru_utime.tv_usec < 1000000);
    CHECK_ERRNO(getrusage(RUSAGE_THREAD, &th) == 0);
    CHECK(usec(th.ru_utime) <= usec(b.ru_utime) + usec(b.ru_stime) + 10000);
    CHECK_ERRNO(getrusage(RUSAGE_CHILDREN, &a) == 0);
    CHECK(getrusage(42, &a) == -1 && errno == EINVAL);
    printf("getrusage: user time never goes back\n");

    struct tms t0, t1;
    clock_t c0 = times(&t0);
    CHECK(c0 != (clock_t)-1);
    usleep(30000);
    work();
    clock_t c1 = times(&t1);
    CHECK(c1 - c0 >= 2); /* at least 20 ms at 100 ticks per second */
    CHECK(t1.tms_utime >= t0.tms_utime);
    CHECK(times(NULL) >= c1);
    printf("times: ticks advance\n");

    struct sigaction sa = {.sa_handler = on_alarm};
    CHECK_ERRNO(sigaction(SIGALRM, &sa, NULL) == 0);
    struct itimerval it = {.it_value = {.tv_usec = 10000}};
    CHECK_ERRNO(setitimer(ITIMER_REAL, &it, NULL) == 0);
    int r = pause();
    CHECK(r == -1 && errno == EINTR && alarms == 1);
    printf("pause: EINTR after the handler\n");
    printf("OK\n");
    return 0;
}
