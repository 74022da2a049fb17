/*
 * pipe_eof.c -- the last close of one end of a pipe or socket pair wakes who waits on the
 * other: a reader blocked in read() sees EOF, a poller sees POLLHUP, a writer blocked on a full
 * pipe gets EPIPE (and SIGPIPE, ignored here).  Each case with a thread and with a forked
 * child on the other side; run with --cpus 1 too, where a missing wake-up is a deadlock.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

static int fds[2];

static void *writer_then_close(void *arg)
{
    (void)arg;
    usleep(1000); /* let the reader block first */
    CHECK(write(fds[1], "hello", 5) == 5);
    usleep(1000);
    CHECK(close(fds[1]) == 0);
    return NULL;
}

static void *reader_closes(void *arg)
{
    (void)arg;
    usleep(1000); /* the writer fills the pipe and blocks */
    CHECK(close(fds[0]) == 0);
    return NULL;
}

static size_t read_all(int fd, char *buf, size_t size)
{
    size_t got = 0;
    for (;;) {
        ssize_t n = read(fd, buf + got, size - got);
        CHECK_ERRNO(n >= 0);
        if (n == 0)
            return got;
        got += (size_t)n;
    }
}

static void reader_sees_eof(const char *how, int sockets)
{
    char buf[64];
    if (sockets)
        CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
    else
        CHECK(pipe(fds) == 0);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, writer_then_close, NULL) == 0);
    size_t n = read_all(fds[0], buf, sizeof buf);
    CHECK(pthread_join(t, NULL) == 0);
    printf("%s, thread writer: read %zu bytes (%.*s), then EOF\n", how, n, (int)n, buf);
    CHECK(close(fds[0]) == 0);

    if (sockets)
        CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
    else
        CHECK(pipe(fds) == 0);
    fflush(stdout);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        usleep(1000);
        CHECK(write(fds[1], "child", 5) == 5);
        _exit(0); /* the exit closes the write end */
    }
    CHECK(close(fds[1]) == 0);
    n = read_all(fds[0], buf, sizeof buf);
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    printf("%s, child writer: read %zu bytes (%.*s), then EOF\n", how, n, (int)n, buf);
    CHECK(close(fds[0]) == 0);
}

static void poller_sees_hup(void)
{
    CHECK(pipe(fds) == 0);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, writer_then_close, NULL) == 0);
    char buf[16];
    int hup = 0;
    size_t got = 0;
    while (!hup) {
        struct pollfd p = {.fd = fds[0], .events = POLLIN};
        CHECK(poll(&p, 1, -1) == 1);
        if (p.revents & POLLIN) {
            ssize_t n = read(fds[0], buf, sizeof buf);
            CHECK(n >= 0);
            got += (size_t)n;
            if (n == 0)
                hup = 1;
        }
        if (p.revents & POLLHUP && !(p.revents & POLLIN))
            hup = 1;
    }
    CHECK(pthread_join(t, NULL) == 0);
    printf("poll: %zu bytes, then POLLHUP\n", got);
    CHECK(close(fds[0]) == 0);
}

static void writer_gets_epipe(void)
{
    static char block[4096];
    CHECK(pipe(fds) == 0);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, reader_closes, NULL) == 0);
    ssize_t n;
    size_t total = 0;
    while ((n = write(fds[1], block, sizeof block)) > 0)
        total += (size_t)n;
    int err = errno;
    CHECK(pthread_join(t, NULL) == 0);
    printf("writer: %s after %zu bytes (the pipe holds 65536)\n", err == EPIPE ? "EPIPE" : strerror(err),
           total);
    CHECK(close(fds[1]) == 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    reader_sees_eof("pipe", 0);
    reader_sees_eof("socketpair", 1);
    poller_sees_hup();
    writer_gets_epipe();
    printf("OK\n");
    return 0;
}
