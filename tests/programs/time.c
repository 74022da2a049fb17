/*
 * time.c -- clocks, sleeps and a timer signal.  Prints only facts that do not depend
 * on the actual time: monotonic clock non-decreasing, realtime clock sane and
 * consistent with gettimeofday()/time(), sleeps that last at least as long as asked
 * (and not absurdly longer), an ITIMER_REAL SIGALRM delivered, and gmtime/strftime
 * of a fixed instant.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

static int64_t ns(clockid_t clk)
{
    struct timespec ts;
    CHECK(clock_gettime(clk, &ts) == 0);
    CHECK(ts.tv_nsec >= 0 && ts.tv_nsec < 1000000000);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static volatile sig_atomic_t alarms;
static void on_alarm(int sig)
{
    (void)sig;
    alarms++;
}

int main(void)
{
    /* monotonic never goes back */
    int64_t prev = ns(CLOCK_MONOTONIC);
    CHECK(prev > 0);
    for (int i = 0; i < 1000; i++) {
        int64_t now = ns(CLOCK_MONOTONIC);
        CHECK(now >= prev);
        prev = now;
    }
    printf("monotonic: 1000 reads non-decreasing\n");

    struct timespec res;
    CHECK(clock_getres(CLOCK_MONOTONIC, &res) == 0);
    CHECK(res.tv_sec == 0 && res.tv_nsec > 0 && res.tv_nsec <= 10000000);
    printf("clock_getres(CLOCK_MONOTONIC): at most 10 ms\n");

    /* realtime: after 2020-01-01 and consistent with the other interfaces */
    int64_t rt = ns(CLOCK_REALTIME);
    struct timeval tv;
    CHECK(gettimeofday(&tv, NULL) == 0);
    CHECK(tv.tv_usec >= 0 && tv.tv_usec < 1000000);
    time_t t = time(NULL);
    CHECK(rt / 1000000000 > 1577836800);
    CHECK(llabs((int64_t)tv.tv_sec - rt / 1000000000) <= 2);
    CHECK(llabs((int64_t)t - rt / 1000000000) <= 2);
    printf("realtime: after 2020, gettimeofday and time agree\n");

    /* sleeps last at least as long as requested */
    int64_t t0 = ns(CLOCK_MONOTONIC);
    struct timespec req = {0, 1000000}, rem;
    CHECK(nanosleep(&req, &rem) == 0);
    int64_t t1 = ns(CLOCK_MONOTONIC);
    CHECK(t1 - t0 >= 1000000 && t1 - t0 < 10000000000LL);
    printf("nanosleep 1 ms: returned 0 after >= 1 ms\n");

    CHECK(usleep(2000) == 0);
    int64_t t2 = ns(CLOCK_MONOTONIC);
    CHECK(t2 - t1 >= 2000000 && t2 - t1 < 10000000000LL);
    printf("usleep 2 ms: ok\n");

    struct timespec target;
    CHECK(clock_gettime(CLOCK_MONOTONIC, &target) == 0);
    target.tv_nsec += 1500000;
    if (target.tv_nsec >= 1000000000) {
        target.tv_sec++;
        target.tv_nsec -= 1000000000;
    }
    CHECK(clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &target, NULL) == 0);
    int64_t t3 = ns(CLOCK_MONOTONIC);
    CHECK(t3 >= (int64_t)target.tv_sec * 1000000000 + target.tv_nsec);
    printf("clock_nanosleep TIMER_ABSTIME: woke after the deadline\n");

    /* process CPU time is readable and does not go back */
    int64_t c0 = ns(CLOCK_PROCESS_CPUTIME_ID);
    volatile unsigned long spin = 0;
    for (int i = 0; i < 100000; i++)
        spin += (unsigned long)i;
    int64_t c1 = ns(CLOCK_PROCESS_CPUTIME_ID);
    CHECK(c0 >= 0 && c1 >= c0);
    printf("process cputime: non-decreasing\n");

    /* an interval timer delivers SIGALRM; wait for it for at most ~2 s */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(SIGALRM, &sa, NULL) == 0);
    struct itimerval it = {{0, 0}, {0, 5000}}; /* one shot, 5 ms */
    CHECK(setitimer(ITIMER_REAL, &it, NULL) == 0);
    for (int i = 0; i < 2000 && !alarms; i++) {
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL); /* may return early with EINTR: that is the point */
    }
    printf("setitimer: SIGALRM delivered %d time(s)\n", (int)alarms);
    CHECK(alarms == 1);

    /* calendar conversion of a fixed instant (no time zone files involved) */
    time_t fixed = 1700000000;
    struct tm tm;
    CHECK(gmtime_r(&fixed, &tm) != NULL);
    char buf[64];
    CHECK(strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S %a day %j", &tm) > 0);
    printf("gmtime(1700000000) = %s\n", buf);
    CHECK(timegm(&tm) == fixed);

    printf("OK\n");
    return 0;
}
