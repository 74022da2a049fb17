/*
 * unix_stream.c DIR -- AF_UNIX stream sockets on a path and in the abstract namespace:
 * bind makes a socket file (mode 0777 & ~umask; a second bind to it is EADDRINUSE);
 * getsockname/getpeername give the path and its length (strlen + 3: family, path, NUL) or an
 * unnamed address (2); a listener is readable in poll once a connection is pending; accept4
 * with SOCK_NONBLOCK|SOCK_CLOEXEC; a thread blocked in accept is woken by a connect, a
 * thread blocked in recv by a send; a client in a fork'd child, whose connect wakes an
 * epoll_wait on the listener; SO_PEERCRED names each side's process; EOF after the peer
 * closes, then EPIPE (and SIGPIPE unless MSG_NOSIGNAL); shutdown(SHUT_WR) is EOF for the
 * peer; a connect to a full backlog waits (EAGAIN if nonblocking); and the errors: ECONNREFUSED
 * (no listener, a stale socket file, an unknown abstract name), ENOENT, EPROTOTYPE, EINVAL
 * (listen unbound, a second bind, a bad family), EOPNOTSUPP (listen on a datagram socket),
 * EISCONN, ENOTCONN, ENOTSOCK, EAFNOSUPPORT.  Then OK.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "workdir.h"

static volatile sig_atomic_t sigpipes;
static void on_sigpipe(int sig) { (void)sig; sigpipes++; }

static socklen_t path_addr(struct sockaddr_un *a, const char *path)
{
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    strcpy(a->sun_path, path);
    return offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1;
}

static socklen_t abstract_addr(struct sockaddr_un *a, const char *name)
{
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    memcpy(a->sun_path + 1, name, strlen(name));
    return offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name);
}

static int listener(const struct sockaddr_un *a, socklen_t len, int backlog)
{
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    CHECK_ERRNO(s >= 0);
    CHECK_ERRNO(bind(s, (const struct sockaddr *)a, len) == 0);
    CHECK_ERRNO(listen(s, backlog) == 0);
    return s;
}

static int client(const struct sockaddr_un *a, socklen_t len)
{
    int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK_ERRNO(c >= 0);
    CHECK_ERRNO(connect(c, (const struct sockaddr *)a, len) == 0);
    return c;
}

static struct sockaddr_un srv_addr;
static socklen_t srv_len;

static void *connect_later(void *arg)
{
    (void)arg;
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    int c = client(&srv_addr, srv_len);
    nanosleep(&ts, NULL);
    CHECK(send(c, "from thread", 11, 0) == 11);
    char buf[16];
    CHECK(recv(c, buf, sizeof buf, 0) == 5 && memcmp(buf, "reply", 5) == 0);
    close(c);
    return NULL;
}

static void names_and_modes(void)
{
    int l = listener(&srv_addr, srv_len, 4);
    struct stat sb;
    CHECK_ERRNO(stat(srv_addr.sun_path, &sb) == 0);
    CHECK(S_ISSOCK(sb.st_mode));
    printf("socket file: mode %o\n", sb.st_mode & 07777);

    struct sockaddr_un got;
    socklen_t len = sizeof got;
    CHECK_ERRNO(getsockname(l, (struct sockaddr *)&got, &len) == 0);
    CHECK(len == srv_len && strcmp(got.sun_path, srv_addr.sun_path) == 0);
    len = 4; /* truncated: the full length comes back */
    CHECK_ERRNO(getsockname(l, (struct sockaddr *)&got, &len) == 0);
    CHECK(len == srv_len);
    int again = socket(AF_UNIX, SOCK_STREAM, 0);
    CHECK(bind(again, (struct sockaddr *)&srv_addr, srv_len) == -1 && errno == EADDRINUSE);
    close(again);
    CHECK(bind(l, (struct sockaddr *)&srv_addr, srv_len) == -1 && errno == EADDRINUSE);
    printf("getsockname: path, length strlen+3; second bind EADDRINUSE\n");

    struct pollfd pfd = {.fd = l, .events = POLLIN | POLLOUT};
    CHECK(poll(&pfd, 1, 0) == 0);
    int c = client(&srv_addr, srv_len);
    CHECK(poll(&pfd, 1, 0) == 1 && pfd.revents == POLLIN);
    printf("listener: readable once a connection is pending\n");

    len = sizeof got;
    int s = accept4(l, (struct sockaddr *)&got, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    CHECK_ERRNO(s >= 0);
    CHECK(len == offsetof(struct sockaddr_un, sun_path)); /* the client is unnamed */
    CHECK((fcntl(s, F_GETFL) & O_NONBLOCK) && (fcntl(s, F_GETFD) & FD_CLOEXEC));
    len = sizeof got;
    CHECK_ERRNO(getsockname(s, (struct sockaddr *)&got, &len) == 0);
    CHECK(len == srv_len && strcmp(got.sun_path, srv_addr.sun_path) == 0);
    len = sizeof got;
    CHECK_ERRNO(getpeername(c, (struct sockaddr *)&got, &len) == 0);
    CHECK(len == srv_len && strcmp(got.sun_path, srv_addr.sun_path) == 0);
    len = sizeof got;
    CHECK_ERRNO(getpeername(s, (struct sockaddr *)&got, &len) == 0 && len == 2);
    printf("accept4: unnamed client, nonblocking, cloexec; names on both ends\n");

    char buf[64];
    CHECK(recv(s, buf, sizeof buf, 0) == -1 && errno == EAGAIN);
    CHECK(send(c, "ab", 2, 0) == 2 && send(c, "cd", 2, 0) == 2);
    CHECK(recv(s, buf, sizeof buf, 0) == 4 && memcmp(buf, "abcd", 4) == 0);
    CHECK(recv(s, buf, 1, MSG_DONTWAIT) == -1 && errno == EAGAIN);
    CHECK(send(c, "xyz", 3, 0) == 3);
    CHECK(recv(s, buf, 2, MSG_PEEK) == 2 && memcmp(buf, "xy", 2) == 0);
    CHECK(recv(s, buf, sizeof buf, 0) == 3 && memcmp(buf, "xyz", 3) == 0);
    printf("stream: writes join, MSG_PEEK leaves the data\n");

    struct ucred cr;
    len = sizeof cr;
    CHECK_ERRNO(getsockopt(s, SOL_SOCKET, SO_PEERCRED, &cr, &len) == 0);
    CHECK(len == sizeof cr && cr.pid == getpid() && cr.uid == getuid() && cr.gid == getgid());
    int type, err = 1, acc;
    len = sizeof type;
    CHECK_ERRNO(getsockopt(s, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM);
    CHECK_ERRNO(getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0);
    CHECK_ERRNO(getsockopt(l, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) == 0 && acc == 1);
    CHECK_ERRNO(getsockopt(s, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) == 0 && acc == 0);
    printf("getsockopt: SO_PEERCRED, SO_TYPE, SO_ERROR, SO_ACCEPTCONN\n");

    CHECK_ERRNO(shutdown(c, SHUT_WR) == 0);
    CHECK(recv(s, buf, sizeof buf, 0) == 0);
    CHECK(send(s, "back", 4, 0) == 4);
    CHECK(recv(c, buf, sizeof buf, 0) == 4);
    CHECK(send(c, "x", 1, MSG_NOSIGNAL) == -1 && errno == EPIPE);
    printf("shutdown(SHUT_WR): EOF for the peer, which can still answer\n");

    close(s);
    CHECK(recv(c, buf, sizeof buf, 0) == 0);
    pfd.fd = c;
    pfd.events = POLLIN;
    CHECK(poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLIN | POLLHUP)) == (POLLIN | POLLHUP));
    CHECK(sigpipes == 0);
    CHECK(send(c, "x", 1, 0) == -1 && errno == EPIPE);
    CHECK(sigpipes == 1);
    printf("peer closed: EOF, POLLHUP, EPIPE and SIGPIPE\n");
    close(c);
    close(l);

    /* the socket file outlives the socket: nobody listens there now */
    c = socket(AF_UNIX, SOCK_STREAM, 0);
    CHECK(connect(c, (struct sockaddr *)&srv_addr, srv_len) == -1 && errno == ECONNREFUSED);
    close(c);
    CHECK_ERRNO(unlink(srv_addr.sun_path) == 0);
    c = socket(AF_UNIX, SOCK_STREAM, 0);
    CHECK(connect(c, (struct sockaddr *)&srv_addr, srv_len) == -1 && errno == ENOENT);
    close(c);
    printf("stale socket file: ECONNREFUSED; no file: ENOENT\n");
}

static void threads_and_processes(void)
{
    int l = listener(&srv_addr, srv_len, 4);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, connect_later, NULL) == 0);
    int s = accept(l, NULL, NULL); /* blocks until the thread connects */
    CHECK_ERRNO(s >= 0);
    char buf[32];
    CHECK(recv(s, buf, sizeof buf, 0) == 11 && memcmp(buf, "from thread", 11) == 0);
    CHECK(send(s, "reply", 5, 0) == 5);
    CHECK(recv(s, buf, sizeof buf, 0) == 0);
    CHECK(pthread_join(th, NULL) == 0);
    close(s);
    printf("threads: accept and recv woken by the other thread\n");

    pid_t child = fork();
    CHECK_ERRNO(child >= 0);
    if (child == 0) {
        close(l);
        int c = client(&srv_addr, srv_len);
        struct ucred cr;
        socklen_t len = sizeof cr;
        CHECK_ERRNO(getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cr, &len) == 0);
        CHECK(cr.pid == getppid());
        CHECK(send(c, "child", 5, 0) == 5);
        CHECK(recv(c, buf, sizeof buf, 0) == 2);
        _exit(0);
    }
    int ep = epoll_create1(0); /* the listener becomes readable when the child connects */
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = l};
    CHECK_ERRNO(epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev) == 0);
    CHECK(epoll_wait(ep, &ev, 1, 5000) == 1 && ev.data.fd == l && ev.events == EPOLLIN);
    close(ep);
    s = accept(l, NULL, NULL);
    CHECK_ERRNO(s >= 0);
    struct ucred cr;
    socklen_t len = sizeof cr;
    CHECK_ERRNO(getsockopt(s, SOL_SOCKET, SO_PEERCRED, &cr, &len) == 0);
    CHECK(cr.pid == child);
    CHECK(recv(s, buf, sizeof buf, 0) == 5 && memcmp(buf, "child", 5) == 0);
    CHECK(send(s, "ok", 2, 0) == 2);
    int status;
    CHECK(waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(recv(s, buf, sizeof buf, 0) == 0);
    close(s);
    close(l);
    CHECK_ERRNO(unlink(srv_addr.sun_path) == 0);
    printf("fork: the child connects (epoll sees it); SO_PEERCRED names each process\n");
}

static void abstract_and_backlog(void)
{
    struct sockaddr_un a;
    socklen_t alen = abstract_addr(&a, "uemu-unix-stream-test");
    int l = listener(&a, alen, 0);
    struct sockaddr_un got;
    socklen_t len = sizeof got;
    CHECK_ERRNO(getsockname(l, (struct sockaddr *)&got, &len) == 0);
    CHECK(len == alen && got.sun_path[0] == 0 && memcmp(got.sun_path, a.sun_path, alen - 2) == 0);
    int dup = socket(AF_UNIX, SOCK_STREAM, 0);
    CHECK(bind(dup, (struct sockaddr *)&a, alen) == -1 && errno == EADDRINUSE);
    close(dup);
    int d = socket(AF_UNIX, SOCK_DGRAM, 0); /* another type may hold the same name */
    CHECK_ERRNO(bind(d, (struct sockaddr *)&a, alen) == 0);
    close(d);
    printf("abstract: name and length as bound; EADDRINUSE per type\n");

    /* backlog 0 holds one pending connection: a nonblocking connect past it is EAGAIN */
    int c1 = client(&a, alen);
    int c2 = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
    CHECK(connect(c2, (struct sockaddr *)&a, alen) == -1 && errno == EAGAIN);
    int s = accept(l, NULL, NULL);
    CHECK_ERRNO(s >= 0);
    CHECK_ERRNO(connect(c2, (struct sockaddr *)&a, alen) == 0);
    CHECK(connect(c2, (struct sockaddr *)&a, alen) == -1 && errno == EAGAIN);
    close(s);
    s = accept(l, NULL, NULL);
    CHECK(connect(c2, (struct sockaddr *)&a, alen) == -1 && errno == EISCONN);
    close(l);
    char buf[4];
    CHECK(recv(c1, buf, sizeof buf, 0) == 0);
    close(s);
    close(c1);
    close(c2);
    printf("backlog: nonblocking connect past it EAGAIN, then EISCONN\n");

    /* a blocking connect past the backlog waits for an accept */
    l = listener(&a, alen, 0);
    c1 = client(&a, alen);
    srv_addr = a;
    srv_len = alen;
    pthread_t th;
    CHECK(pthread_create(&th, NULL, connect_later, NULL) == 0);
    struct timespec ts = {0, 60 * 1000 * 1000};
    nanosleep(&ts, NULL); /* the thread is blocked in connect by now (natively: likely) */
    s = accept(l, NULL, NULL);
    CHECK_ERRNO(s >= 0);
    close(s);
    s = accept(l, NULL, NULL); /* the thread's connection */
    CHECK_ERRNO(s >= 0);
    CHECK(recv(s, buf, sizeof buf, MSG_WAITALL) == sizeof buf && memcmp(buf, "from", 4) == 0);
    char rest[16];
    CHECK(recv(s, rest, sizeof rest, 0) == 7 && memcmp(rest, " thread", 7) == 0);
    CHECK(send(s, "reply", 5, 0) == 5);
    CHECK(pthread_join(th, NULL) == 0);
    close(s);
    close(c1);
    close(l);
    printf("backlog: a blocking connect waits for accept\n");

    l = listener(&a, alen, 4);
    c1 = client(&a, alen);
    close(l); /* the unaccepted connection is reset */
    CHECK(recv(c1, buf, sizeof buf, 0) == -1 && errno == ECONNRESET);
    CHECK(recv(c1, buf, sizeof buf, 0) == 0);
    close(c1);
    c1 = socket(AF_UNIX, SOCK_STREAM, 0);
    CHECK(connect(c1, (struct sockaddr *)&a, alen) == -1 && errno == ECONNREFUSED);
    close(c1);
    printf("listener closed: pending client ECONNRESET; then ECONNREFUSED\n");
}

static void errors(void)
{
    char buf[4];
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    CHECK(listen(s, 1) == -1 && errno == EINVAL);
    CHECK(accept(s, NULL, NULL) == -1 && errno == EINVAL);
    CHECK(send(s, "x", 1, 0) == -1 && errno == ENOTCONN);
    CHECK(recv(s, buf, 1, 0) == -1 && errno == EINVAL);
    struct sockaddr_un got;
    socklen_t len = sizeof got;
    CHECK(getpeername(s, (struct sockaddr *)&got, &len) == -1 && errno == ENOTCONN);
    CHECK_ERRNO(getsockname(s, (struct sockaddr *)&got, &len) == 0 && len == 2);
    struct pollfd pfd = {.fd = s, .events = POLLIN | POLLOUT};
    CHECK(poll(&pfd, 1, 0) == 1 && pfd.revents == (POLLOUT | POLLHUP));
    struct sockaddr_un a;
    socklen_t alen = path_addr(&a, at("bound"));
    CHECK_ERRNO(bind(s, (struct sockaddr *)&a, alen) == 0);
    socklen_t blen = path_addr(&a, at("other"));
    CHECK(bind(s, (struct sockaddr *)&a, blen) == -1 && errno == EINVAL);
    CHECK(access(at("other"), F_OK) == -1 && errno == ENOENT); /* removed again */
    a.sun_family = AF_INET;
    CHECK(bind(socket(AF_UNIX, SOCK_STREAM, 0), (struct sockaddr *)&a, blen) == -1 && errno == EINVAL);
    path_addr(&a, at("bound"));
    int d = socket(AF_UNIX, SOCK_DGRAM, 0);
    CHECK(connect(d, (struct sockaddr *)&a, alen) == -1 && errno == EPROTOTYPE);
    CHECK(listen(d, 1) == -1 && errno == EOPNOTSUPP);
    CHECK(accept(d, NULL, NULL) == -1 && errno == EOPNOTSUPP);
    close(d);
    int c = socket(AF_UNIX, SOCK_STREAM, 0);
    CHECK(connect(c, (struct sockaddr *)&a, alen) == -1 && errno == ECONNREFUSED); /* bound, not listening */
    close(c);
    close(s);
    CHECK_ERRNO(unlink(at("bound")) == 0);
    alen = abstract_addr(&a, "uemu-nobody-here");
    c = socket(AF_UNIX, SOCK_STREAM, 0);
    CHECK(connect(c, (struct sockaddr *)&a, alen) == -1 && errno == ECONNREFUSED);
    close(c);
    CHECK(getsockname(0 + 100, (struct sockaddr *)&got, &len) == -1 && errno == EBADF);
    int p[2];
    CHECK_ERRNO(pipe(p) == 0);
    CHECK(listen(p[0], 1) == -1 && errno == ENOTSOCK);
    CHECK(socket(AF_UNIX, SOCK_STREAM, 7) == -1 && errno == EPROTONOSUPPORT);
    CHECK(socket(AF_UNIX, 0, 0) == -1 && errno == ESOCKTNOSUPPORT);
    CHECK(socket(AF_UNIX, SOCK_STREAM | 0x100, 0) == -1 && errno == EINVAL);
    CHECK(socket(1000, SOCK_STREAM, 0) == -1 && errno == EAFNOSUPPORT);
    CHECK(accept4(p[0], NULL, NULL, 1) == -1 && errno == EINVAL);
    close(p[0]);
    close(p[1]);
    printf("errors: EINVAL, ENOTCONN, EPROTOTYPE, EOPNOTSUPP, ECONNREFUSED, ENOTSOCK\n");
}

int main(int argc, char **argv)
{
    CHECK(argc == 2);
    snprintf(base, sizeof base, "%s/uemu_unix_stream", argv[1]);
    CHECK_ERRNO(mkdir(base, 0755) == 0);
    umask(022);
    signal(SIGPIPE, on_sigpipe);
    srv_len = path_addr(&srv_addr, at("srv.sock"));
    names_and_modes();
    threads_and_processes();
    abstract_and_backlog();
    errors();
    CHECK_ERRNO(rmdir(base) == 0);
    printf("OK\n");
    return 0;
}
