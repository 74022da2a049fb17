/*
 * uintr_scm_rights.c -- a vector fd passed to another process with SCM_RIGHTS.
 *
 * The parent is a receiver on vector 9.  It forks; the child closes its inherited copy of the
 * vector fd and puts the read end of a pipe at that number (so the old number no longer
 * names the vector: register_sender on it gives EOPNOTSUPP).  The parent then sends the
 * vector fd and an eventfd in one SCM_RIGHTS message over a socketpair(AF_UNIX,
 * SOCK_STREAM).  The child receives two fds (numbers other than the closed one), registers
 * as a sender through the received vector fd, sends once, and writes 42 to the received
 * eventfd.  The parent waits for the child, then finds vector 9 delivered exactly once and
 * reads 42 from its own eventfd.  Child lines first, then the parent's, then OK.
 */
#include "uintr.h"

#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>

#define VECTOR 9

static volatile unsigned long handled[64];

static void __attribute__((interrupt)) ui_handler(struct __uintr_frame *frame,
                                                  unsigned long long vector)
{
    (void)frame;
    handled[vector & 63]++;
}

static void send_fds(int sock, int a, int b)
{
    char data = 'F';
    struct iovec iov = {&data, 1};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(2 * sizeof(int))];
    } u;
    memset(&u, 0, sizeof u);
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                         .msg_controllen = sizeof u.buf};
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(2 * sizeof(int));
    int fds[2] = {a, b};
    memcpy(CMSG_DATA(c), fds, sizeof fds);
    if (sendmsg(sock, &msg, 0) != 1)
        uintr_fail_errno("sendmsg");
}

/* 0 on success with the two fds in out[]. */
static int recv_fds(int sock, int out[2])
{
    char data;
    struct iovec iov = {&data, 1};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(2 * sizeof(int))];
    } u;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                         .msg_controllen = sizeof u.buf};
    if (recvmsg(sock, &msg, 0) != 1 || data != 'F')
        return -1;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
        c->cmsg_len != CMSG_LEN(2 * sizeof(int)))
        return -1;
    memcpy(out, CMSG_DATA(c), 2 * sizeof(int));
    return 0;
}

static int child(int sock, int old_vfd)
{
    int bad = 0;
    close(old_vfd);
    int p[2];
    if (pipe(p) < 0)
        return 10;
    if (p[0] != old_vfd && dup2(p[0], old_vfd) < 0)
        return 11;
    errno = 0;
    int r = uintr_sender_register(old_vfd);
    uintr_printf("child: register_sender on the old fd number: %s\n",
                 r < 0 ? uintr_errno_name(errno) : "succeeded");
    bad |= !(r == -1 && errno == EOPNOTSUPP);

    int fds[2];
    if (recv_fds(sock, fds) < 0) {
        uintr_printf("child: recvmsg failed\n");
        return 12;
    }
    uintr_printf("child: received 2 fds, numbers differ from the closed one: %s\n",
                 fds[0] != old_vfd && fds[1] != old_vfd && fds[0] != fds[1] ? "yes" : "no");
    bad |= fds[0] == old_vfd || fds[1] == old_vfd;

    int idx = uintr_sender_register(fds[0]);
    if (idx < 0) {
        uintr_printf("child: register_sender on the received fd: %s\n",
                     uintr_errno_name(errno));
        return 13;
    }
    uintr_printf("child: registered through the received fd, index %d\n", idx);
    _senduipi((unsigned long long)idx);
    bad |= uintr_sender_unregister(fds[0], idx) != 0;

    errno = 0;
    r = uintr_sender_register(fds[1]);
    uintr_printf("child: register_sender on the received eventfd: %s\n",
                 r < 0 ? uintr_errno_name(errno) : "succeeded");
    bad |= !(r == -1 && errno == EOPNOTSUPP);
    unsigned long long v = 42;
    bad |= write(fds[1], &v, sizeof v) != sizeof v;
    return bad;
}

int main(void)
{
    uintr_require_handler(ui_handler, 0);
    int vfd = uintr_vec_fd(VECTOR);
    if (vfd < 0)
        uintr_fail_errno("vector fd");
    int efd = eventfd(0, 0);
    if (efd < 0)
        uintr_fail_errno("eventfd");
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        uintr_fail_errno("socketpair");
    _stui();

    pid_t pid = fork();
    if (pid < 0)
        uintr_fail_errno("fork");
    if (pid == 0) {
        close(sv[0]);
        close(efd);
        _exit(child(sv[1], vfd));
    }
    close(sv[1]);
    send_fds(sv[0], vfd, efd);

    int status;
    if (waitpid(pid, &status, 0) != pid)
        uintr_fail_errno("waitpid");
    unsigned long n = handled[VECTOR];
    if (WIFEXITED(status))
        uintr_printf("parent: child exit status %d\n", WEXITSTATUS(status));
    else
        uintr_printf("parent: child killed by signal %d\n", WTERMSIG(status));
    uintr_printf("parent: vector %d delivered %lu\n", VECTOR, n);
    unsigned long long v = 0;
    if (read(efd, &v, sizeof v) != sizeof v)
        uintr_fail_errno("eventfd read");
    uintr_printf("parent: eventfd value %llu\n", v);

    _clui();
    close(vfd);
    close(efd);
    close(sv[0]);
    if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0 && n == 1 && v == 42)) {
        uintr_printf("FAILED\n");
        return 1;
    }
    uintr_printf("OK\n");
    return 0;
}
