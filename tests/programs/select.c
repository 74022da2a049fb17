/*
 * select.c -- select and pselect on pipes: a writable end is ready at once; an empty read
 * end times out with every set cleared; a thread's later write wakes a blocked select with
 * just that fd set; a closed writer makes the reader ready (EOF); a set fd that is not open is
 * EBADF, a negative nfds or a bad timeout EINVAL.  Then OK.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/select.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

static int p[2];

static void *writer(void *arg)
{
    (void)arg;
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    CHECK(write(p[1], "x", 1) == 1);
    return NULL;
}

int main(void)
{
    CHECK_ERRNO(pipe(p) == 0);
    fd_set r, w;
    FD_ZERO(&r);
    FD_ZERO(&w);
    FD_SET(p[0], &r);
    FD_SET(p[1], &w);
    struct timeval tv = {0, 0};
    CHECK(select(p[1] + 1, &r, &w, NULL, &tv) == 1);
    CHECK(!FD_ISSET(p[0], &r) && FD_ISSET(p[1], &w));
    printf("writable end: ready at once\n");

    FD_ZERO(&r);
    FD_SET(p[0], &r);
    tv.tv_usec = 10000;
    CHECK(select(p[0] + 1, &r, NULL, NULL, &tv) == 0);
    CHECK(!FD_ISSET(p[0], &r));
    printf("empty pipe: timed out, set cleared\n");

    pthread_t th;
    CHECK(pthread_create(&th, NULL, writer, NULL) == 0);
    FD_ZERO(&r);
    FD_SET(p[0], &r);
    CHECK(select(p[0] + 1, &r, NULL, NULL, NULL) == 1 && FD_ISSET(p[0], &r));
    CHECK(pthread_join(th, NULL) == 0);
    char c;
    CHECK(read(p[0], &c, 1) == 1);
    printf("blocked select: woken by the write\n");

    CHECK(close(p[1]) == 0);
    FD_ZERO(&r);
    FD_SET(p[0], &r);
    struct timespec ts = {1, 0};
    CHECK(pselect(p[0] + 1, &r, NULL, NULL, &ts, NULL) == 1 && FD_ISSET(p[0], &r));
    CHECK(read(p[0], &c, 1) == 0);
    printf("closed writer: reader ready, EOF\n");

    FD_ZERO(&r);
    FD_SET(p[1], &r); /* closed */
    tv.tv_usec = 0;
    CHECK(select(p[1] + 1, &r, NULL, NULL, &tv) == -1 && errno == EBADF);
    CHECK(select(-1, NULL, NULL, NULL, &tv) == -1 && errno == EINVAL);
    tv.tv_usec = -1; /* the select system call itself (glibc's select uses pselect6) */
    FD_ZERO(&r);
    CHECK(syscall(SYS_select, 1, &r, NULL, NULL, &tv) == -1 && errno == EINVAL);
    tv.tv_usec = 1000001; /* carried into seconds: a sleep of 1.000001 s */
    CHECK(syscall(SYS_select, 0, NULL, NULL, NULL, &tv) == 0);
    ts.tv_nsec = -1;
    CHECK(pselect(1, &r, NULL, NULL, &ts, NULL) == -1 && errno == EINVAL);
    tv.tv_sec = 0;
    tv.tv_usec = 5000;
    CHECK(select(0, NULL, NULL, NULL, &tv) == 0); /* a sleep */
    printf("errors: ok\n");
    printf("OK\n");
    return 0;
}
