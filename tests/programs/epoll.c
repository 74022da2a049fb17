/*
 * epoll.c -- epoll over a pipe and an eventfd: nothing ready times out; a written pipe is
 * reported with its data word (level-triggered: again while unread); EPOLLONESHOT reports once
 * until EPOLL_CTL_MOD; EPOLLET reports again only after the fd was drained; a thread's write
 * wakes a blocked epoll_wait; a closed writer is EPOLLHUP; the errors of epoll_ctl and
 * epoll_wait (EEXIST, ENOENT, EPERM for a regular file, EINVAL, EBADF).  Then OK.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

static int p[2], efd;

static void *writer(void *arg)
{
    (void)arg;
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    uint64_t one = 1;
    CHECK(write(efd, &one, 8) == 8);
    return NULL;
}

static int wait1(int ep, int timeout, struct epoll_event *ev)
{
    return epoll_wait(ep, ev, 1, timeout);
}

int main(int argc, char **argv)
{
    (void)argc;
    CHECK_ERRNO(pipe(p) == 0);
    efd = eventfd(0, EFD_NONBLOCK);
    CHECK_ERRNO(efd >= 0);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    CHECK_ERRNO(ep >= 0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 0x1234567890ULL};
    CHECK_ERRNO(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev) == 0);
    ev.data.u64 = 42;
    CHECK_ERRNO(epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev) == 0);
    struct epoll_event out[4];
    CHECK(epoll_wait(ep, out, 4, 10) == 0);
    printf("nothing ready: timed out\n");

    CHECK(write(p[1], "ab", 2) == 2);
    CHECK(epoll_wait(ep, out, 4, 0) == 1 && out[0].events == EPOLLIN && out[0].data.u64 == 0x1234567890ULL);
    CHECK(epoll_wait(ep, out, 4, 0) == 1); /* level-triggered: still unread */
    char buf[8];
    CHECK(read(p[0], buf, 2) == 2);
    CHECK(epoll_wait(ep, out, 4, 0) == 0);
    printf("level-triggered pipe: ok\n");

    ev.events = EPOLLIN | EPOLLONESHOT;
    ev.data.u64 = 7;
    CHECK_ERRNO(epoll_ctl(ep, EPOLL_CTL_MOD, p[0], &ev) == 0);
    CHECK(write(p[1], "c", 1) == 1);
    CHECK(wait1(ep, 0, out) == 1 && out[0].data.u64 == 7);
    CHECK(wait1(ep, 0, out) == 0);
    CHECK_ERRNO(epoll_ctl(ep, EPOLL_CTL_MOD, p[0], &ev) == 0);
    CHECK(wait1(ep, 0, out) == 1);
    CHECK(read(p[0], buf, 1) == 1);
    printf("oneshot: ok\n");

    ev.events = EPOLLIN | EPOLLET;
    CHECK_ERRNO(epoll_ctl(ep, EPOLL_CTL_MOD, p[0], &ev) == 0);
    CHECK(write(p[1], "d", 1) == 1);
    CHECK(wait1(ep, 0, out) == 1);
    CHECK(wait1(ep, 0, out) == 0); /* edge-triggered: no new edge */
    CHECK(read(p[0], buf, 1) == 1);
    CHECK(write(p[1], "e", 1) == 1);
    CHECK(wait1(ep, 0, out) == 1);
    CHECK(read(p[0], buf, 1) == 1);
    printf("edge-triggered after draining: ok\n");

    pthread_t th;
    CHECK(pthread_create(&th, NULL, writer, NULL) == 0);
    CHECK(epoll_wait(ep, out, 4, -1) == 1 && out[0].data.u64 == 42);
    CHECK(pthread_join(th, NULL) == 0);
    uint64_t v;
    CHECK(read(efd, &v, 8) == 8 && v == 1);
    printf("blocked wait: woken by an eventfd write\n");

    CHECK(close(p[1]) == 0);
    ev.events = EPOLLIN;
    CHECK_ERRNO(epoll_ctl(ep, EPOLL_CTL_MOD, p[0], &ev) == 0);
    CHECK(epoll_wait(ep, out, 4, 0) == 1 && out[0].events == EPOLLHUP);
    printf("closed writer: EPOLLHUP\n");

    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev) == -1 && errno == EEXIST);
    CHECK_ERRNO(epoll_ctl(ep, EPOLL_CTL_DEL, p[0], NULL) == 0);
    CHECK(epoll_ctl(ep, EPOLL_CTL_DEL, p[0], NULL) == -1 && errno == ENOENT);
    CHECK(epoll_ctl(ep, EPOLL_CTL_MOD, p[0], &ev) == -1 && errno == ENOENT);
    int file = open(argv[0], O_RDONLY);
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, file, &ev) == -1 && errno == EPERM);
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, ep, &ev) == -1 && errno == EINVAL);
    CHECK(epoll_ctl(efd, EPOLL_CTL_ADD, p[0], &ev) == -1 && errno == EINVAL);
    CHECK(epoll_ctl(ep, 9, p[0], &ev) == -1 && errno == EINVAL);
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, 999, &ev) == -1 && errno == EBADF);
    CHECK(epoll_wait(ep, out, 0, 0) == -1 && errno == EINVAL);
    CHECK(epoll_wait(efd, out, 1, 0) == -1 && errno == EINVAL);
    CHECK(epoll_wait(999, out, 1, 0) == -1 && errno == EBADF);
    CHECK(epoll_create(0) == -1 && errno == EINVAL);
    CHECK(epoll_create1(1) == -1 && errno == EINVAL);
    printf("errors: ok\n");
    printf("OK\n");
    return 0;
}
