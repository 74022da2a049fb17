/*
 * unix_dgram.c DIR -- AF_UNIX datagram and seqpacket sockets: sendto a path and an abstract
 * name; recvfrom gives the sender's name (length 0 for an unnamed sender); a datagram is one
 * read, the rest of a longer one lost (MSG_TRUNC in msg_flags, and its full length with
 * MSG_TRUNC); bind with just the family autobinds an abstract name ("\0" and 5 hex digits);
 * connect sets the default destination (ENOTCONN without one), AF_UNSPEC forgets it, a
 * socket connected elsewhere refuses others (EPERM); a closed destination is ECONNREFUSED,
 * then ENOTCONN; a thread blocked in recvfrom is woken by a datagram; a nonblocking read is
 * EAGAIN; EISCONN for an address on a connected stream socket; seqpacket keeps message
 * boundaries and reads 0 at EOF; SCM_RIGHTS passes an fd over a path socket between
 * processes.  Then OK.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "workdir.h"

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

static int bound(int type, const struct sockaddr_un *a, socklen_t len)
{
    int s = socket(AF_UNIX, type, 0);
    CHECK_ERRNO(s >= 0);
    CHECK_ERRNO(bind(s, (const struct sockaddr *)a, len) == 0);
    return s;
}

static int rx;
static struct sockaddr_un rx_addr;
static socklen_t rx_len;

static void *send_later(void *arg)
{
    (void)arg;
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    int s = socket(AF_UNIX, SOCK_DGRAM, 0);
    CHECK(sendto(s, "late", 4, 0, (struct sockaddr *)&rx_addr, rx_len) == 4);
    close(s);
    return NULL;
}

static void datagrams(void)
{
    rx_len = path_addr(&rx_addr, at("rx.sock"));
    rx = bound(SOCK_DGRAM, &rx_addr, rx_len);
    struct sockaddr_un txa, from;
    socklen_t txlen = abstract_addr(&txa, "uemu-dgram-tx"), flen;
    int tx = bound(SOCK_DGRAM, &txa, txlen);
    CHECK(send(tx, "x", 1, 0) == -1 && errno == ENOTCONN);
    CHECK(sendto(tx, "hello", 5, 0, (struct sockaddr *)&rx_addr, rx_len) == 5);
    CHECK(sendto(tx, "world!", 6, 0, (struct sockaddr *)&rx_addr, rx_len) == 6);
    char buf[64];
    flen = sizeof from;
    CHECK(recvfrom(rx, buf, 3, 0, (struct sockaddr *)&from, &flen) == 3 && memcmp(buf, "hel", 3) == 0);
    CHECK(flen == txlen && memcmp(from.sun_path, txa.sun_path, txlen - 2) == 0);
    CHECK(recv(rx, buf, 2, MSG_TRUNC) == 6); /* the full length of the next datagram */
    CHECK(recv(rx, buf, sizeof buf, MSG_DONTWAIT) == -1 && errno == EAGAIN);
    printf("datagrams: one per read, the sender's abstract name, MSG_TRUNC\n");

    int anon = socket(AF_UNIX, SOCK_DGRAM, 0);
    CHECK(sendto(anon, "anon", 4, 0, (struct sockaddr *)&rx_addr, rx_len) == 4);
    flen = sizeof from;
    CHECK(recvfrom(rx, buf, sizeof buf, 0, (struct sockaddr *)&from, &flen) == 4 && flen == 0);
    struct sockaddr_un none = {.sun_family = AF_UNIX};
    CHECK_ERRNO(bind(anon, (struct sockaddr *)&none, offsetof(struct sockaddr_un, sun_path)) == 0);
    flen = sizeof from;
    CHECK_ERRNO(getsockname(anon, (struct sockaddr *)&from, &flen) == 0);
    CHECK(flen == offsetof(struct sockaddr_un, sun_path) + 6 && from.sun_path[0] == 0);
    for (int i = 1; i < 6; i++)
        CHECK(strchr("0123456789abcdef", from.sun_path[i]) != NULL);
    CHECK(sendto(anon, "auto", 4, 0, (struct sockaddr *)&rx_addr, rx_len) == 4);
    struct sockaddr_un got;
    socklen_t glen = sizeof got;
    CHECK(recvfrom(rx, buf, sizeof buf, 0, (struct sockaddr *)&got, &glen) == 4);
    CHECK(glen == flen && memcmp(got.sun_path, from.sun_path, 6) == 0);
    printf("unnamed sender: length 0; autobind: \\0 and 5 hex digits\n");

    struct msghdr mh = {0};
    struct iovec iov = {buf, 2};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_name = &got;
    mh.msg_namelen = sizeof got;
    CHECK(sendto(tx, "long one", 8, 0, (struct sockaddr *)&rx_addr, rx_len) == 8);
    CHECK(recvmsg(rx, &mh, 0) == 2 && (mh.msg_flags & MSG_TRUNC) && mh.msg_namelen == txlen);
    printf("recvmsg: MSG_TRUNC in msg_flags, msg_namelen\n");

    pthread_t th;
    CHECK(pthread_create(&th, NULL, send_later, NULL) == 0);
    CHECK(recv(rx, buf, sizeof buf, 0) == 4 && memcmp(buf, "late", 4) == 0);
    CHECK(pthread_join(th, NULL) == 0);
    printf("thread: a blocked recv is woken by a datagram\n");

    CHECK_ERRNO(connect(tx, (struct sockaddr *)&rx_addr, rx_len) == 0);
    CHECK(send(tx, "conn", 4, 0) == 4);
    CHECK(recv(rx, buf, sizeof buf, 0) == 4);
    struct sockaddr_un unspec = {.sun_family = AF_UNSPEC};
    CHECK_ERRNO(connect(tx, (struct sockaddr *)&unspec, sizeof unspec) == 0);
    CHECK(send(tx, "x", 1, 0) == -1 && errno == ENOTCONN);
    CHECK_ERRNO(connect(rx, (struct sockaddr *)&txa, txlen) == 0); /* rx takes only tx's */
    CHECK(sendto(anon, "no", 2, 0, (struct sockaddr *)&rx_addr, rx_len) == -1 && errno == EPERM);
    CHECK(sendto(tx, "yes", 3, 0, (struct sockaddr *)&rx_addr, rx_len) == 3);
    CHECK(recv(rx, buf, sizeof buf, 0) == 3);
    printf("connect: default destination, AF_UNSPEC, EPERM from others\n");

    CHECK_ERRNO(connect(anon, (struct sockaddr *)&txa, txlen) == 0);
    close(tx);
    CHECK(send(anon, "x", 1, 0) == -1 && errno == ECONNREFUSED);
    CHECK(send(anon, "x", 1, 0) == -1 && errno == ENOTCONN);
    CHECK(sendto(anon, "x", 1, 0, (struct sockaddr *)&txa, txlen) == -1 && errno == ECONNREFUSED);
    printf("closed destination: ECONNREFUSED, then ENOTCONN\n");
    close(anon);
    close(rx);
    CHECK_ERRNO(unlink(at("rx.sock")) == 0);
}

static void seqpacket(void)
{
    struct sockaddr_un a;
    socklen_t alen = path_addr(&a, at("seq.sock"));
    int l = bound(SOCK_SEQPACKET, &a, alen);
    CHECK_ERRNO(listen(l, 2) == 0);
    int c = socket(AF_UNIX, SOCK_SEQPACKET, 0);
    char buf[16];
    CHECK(send(c, "x", 1, 0) == -1 && errno == ENOTCONN);
    CHECK(recv(c, buf, 1, 0) == -1 && errno == ENOTCONN);
    CHECK_ERRNO(connect(c, (struct sockaddr *)&a, alen) == 0);
    int s = accept(l, NULL, NULL);
    CHECK_ERRNO(s >= 0);
    CHECK(send(c, "one", 3, 0) == 3 && send(c, "two!", 4, 0) == 4);
    CHECK(recv(s, buf, sizeof buf, 0) == 3);
    CHECK(recv(s, buf, 2, 0) == 2); /* the rest of "two!" is lost */
    CHECK(recv(s, buf, sizeof buf, MSG_DONTWAIT) == -1 && errno == EAGAIN);
    close(c);
    CHECK(recv(s, buf, sizeof buf, 0) == 0);
    close(s);
    close(l);
    CHECK_ERRNO(unlink(at("seq.sock")) == 0);
    printf("seqpacket: message boundaries, ENOTCONN, EOF\n");

    int sv[2];
    CHECK_ERRNO(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    CHECK(sendto(sv[0], "x", 1, 0, (struct sockaddr *)&a, alen) == -1 && errno == EISCONN);
    close(sv[0]);
    close(sv[1]);
    printf("stream: an address on a connected socket is EISCONN\n");
}

static void pass_fd(void)
{
    struct sockaddr_un a;
    socklen_t alen = path_addr(&a, at("fd.sock"));
    int srv = bound(SOCK_DGRAM, &a, alen);
    int p[2];
    CHECK_ERRNO(pipe(p) == 0);
    pid_t child = fork();
    CHECK_ERRNO(child >= 0);
    if (child == 0) {
        close(p[0]);
        int s = socket(AF_UNIX, SOCK_DGRAM, 0);
        char cbuf[CMSG_SPACE(sizeof(int))] = {0};
        struct iovec iov = {"fd", 2};
        struct msghdr mh = {.msg_name = &a, .msg_namelen = alen, .msg_iov = &iov,
                            .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &p[1], sizeof(int));
        CHECK_ERRNO(sendmsg(s, &mh, 0) == 2);
        _exit(0);
    }
    close(p[1]);
    char buf[4], cbuf[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {buf, sizeof buf};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                        .msg_controllen = sizeof cbuf};
    CHECK(recvmsg(srv, &mh, 0) == 2);
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    CHECK(cm && cm->cmsg_type == SCM_RIGHTS);
    int w;
    memcpy(&w, CMSG_DATA(cm), sizeof w);
    int status;
    CHECK(waitpid(child, &status, 0) == child && status == 0);
    CHECK(write(w, "via", 3) == 3);
    CHECK(read(p[0], buf, sizeof buf) == 3 && memcmp(buf, "via", 3) == 0);
    close(w);
    CHECK(read(p[0], buf, sizeof buf) == 0);
    close(p[0]);
    close(srv);
    CHECK_ERRNO(unlink(at("fd.sock")) == 0);
    printf("SCM_RIGHTS: a pipe's write end from a child, over a path socket\n");
}

int main(int argc, char **argv)
{
    CHECK(argc == 2);
    snprintf(base, sizeof base, "%s/uemu_unix_dgram", argv[1]);
    CHECK_ERRNO(mkdir(base, 0755) == 0);
    datagrams();
    seqpacket();
    pass_fd();
    CHECK_ERRNO(rmdir(base) == 0);
    printf("OK\n");
    return 0;
}
