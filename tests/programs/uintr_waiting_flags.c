/*
 * uintr_waiting_flags.c -- uintr-next only: the register_handler flags WAITING_RECEIVER
 * (0x1000) and WAITING_SENDER (0x2000) let a user interrupt end any interruptible blocking
 * syscall of the receiver, which returns -1 / EINTR after the handler has run.
 *
 * usage: uintr_waiting_flags receiver|sender|none KIND...
 *
 * The main thread registers its handler with the chosen flag (none: 0) and, for each KIND,
 * blocks in one syscall; a sender thread posts one user interrupt 0.5 ms later, waits 5 ms
 * more, then ends the blocking call in the ordinary way (writes the pipe, wakes the futex...):
 *
 *   nanosleep  nanosleep(10 s)  (none: 5 ms)     pipe     read(2) of an empty pipe
 *   usleep     usleep(10 s)     (none: 5 ms)     poll     poll(POLLIN) of an empty pipe
 *   futex      FUTEX_WAIT on a private word      eventfd  read(2) of an eventfd at 0
 *   wait4      waitpid of a child that sleeps    socket   read(2) of an AF_UNIX socket
 *
 * With a flag every call must return -1 / EINTR with the handler already run (it saw the
 * "in the call" phase); without one none is interrupted (the sleeps last their 5 ms and return
 * 0, the reads return their data) and the interrupt is delivered when the call returns.
 * One line per KIND, then OK.
 */
#include "uintr.h"

#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>

#define VECTOR 6

static volatile unsigned long handled;
static volatile int phase, phase_in_handler = -1;
static volatile int go, done;
static volatile const char *kind;
static int vfd, index_;
static int rd, wr;             /* the object the kind blocks on (pipe, eventfd, socket) */
static volatile int futex_word;
static long long t_returned; /* when the blocking call returned */
static int failures;

static void __attribute__((interrupt)) ui_handler(struct __uintr_frame *frame,
                                                  unsigned long long vector)
{
    (void)frame;
    if (vector == VECTOR)
        handled++;
    phase_in_handler = phase;
}

static int is(const char *k) { return strcmp((const char *)kind, k) == 0; }

/* End the blocking call the ordinary way (for a call the interrupt did not end). */
static void unblock(void)
{
    if (is("pipe") || is("poll") || is("socket")) {
        if (write(wr, "x", 1) != 1)
            uintr_fail_errno("write");
    } else if (is("eventfd")) {
        unsigned long long one = 1;
        if (write(wr, &one, sizeof one) != sizeof one)
            uintr_fail_errno("eventfd write");
    } else if (is("futex")) {
        futex_word = 1;
        syscall(SYS_futex, &futex_word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    }
    /* nanosleep, usleep: their time runs out; wait4: the child exits after 20 ms */
}

static void *sender(void *arg)
{
    int rounds = (int)(long)arg;
    for (int r = 1; r <= rounds; r++) {
        while (go < r)
            usleep(1);
        usleep(500);
        _senduipi((unsigned long long)index_);
        usleep(5000);
        unblock();
        done = r;
    }
    return NULL;
}

static void setup(void)
{
    int p[2];
    if (is("pipe") || is("poll")) {
        if (pipe(p) < 0)
            uintr_fail_errno("pipe");
        rd = p[0], wr = p[1];
    } else if (is("socket")) {
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, p) < 0)
            uintr_fail_errno("socketpair");
        rd = p[0], wr = p[1];
    } else if (is("eventfd")) {
        rd = wr = eventfd(0, 0);
        if (rd < 0)
            uintr_fail_errno("eventfd");
    } else if (is("futex")) {
        futex_word = 0;
    }
}

static void teardown(void)
{
    if (rd > 0)
        close(rd);
    if (wr > 0 && wr != rd)
        close(wr);
    rd = wr = -1;
}

/* The blocking call; returns its result (errno set on -1). */
static long block(int with_flag)
{
    if (is("nanosleep")) {
        struct timespec ts = {with_flag ? 10 : 0, with_flag ? 0 : 5000000};
        return nanosleep(&ts, NULL);
    }
    if (is("usleep"))
        return usleep(with_flag ? 10000000 : 5000);
    if (is("futex"))
        return syscall(SYS_futex, &futex_word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
    if (is("pipe") || is("socket")) {
        char c;
        return read(rd, &c, 1);
    }
    if (is("eventfd")) {
        unsigned long long v;
        return read(rd, &v, sizeof v);
    }
    if (is("poll")) {
        struct pollfd pfd = {.fd = rd, .events = POLLIN};
        return poll(&pfd, 1, -1);
    }
    if (is("wait4")) {
        pid_t pid = fork();
        if (pid < 0)
            uintr_fail_errno("fork");
        if (pid == 0) {
            usleep(20000);
            _exit(0);
        }
        int status;
        long r = waitpid(pid, &status, 0);
        int e = errno;
        t_returned = uintr_now_ns();
        if (r != pid && waitpid(pid, &status, 0) != pid) /* reap it in any case */
            uintr_fail_errno("waitpid");
        errno = e;
        return r == pid ? 0 : r;
    }
    uintr_fail("unknown kind %s", kind);
}

/* What a call that was not interrupted returns. */
static long normal_result(void)
{
    if (is("pipe") || is("socket") || is("poll"))
        return 1;
    if (is("eventfd"))
        return 8;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3)
        uintr_fail("usage: uintr_waiting_flags receiver|sender|none KIND...");
    unsigned int flags;
    if (!strcmp(argv[1], "receiver"))
        flags = UINTR_HANDLER_FLAG_WAITING_RECEIVER;
    else if (!strcmp(argv[1], "sender"))
        flags = UINTR_HANDLER_FLAG_WAITING_SENDER;
    else if (!strcmp(argv[1], "none"))
        flags = 0;
    else
        uintr_fail("unknown flag %s", argv[1]);

    if (uintr_register_handler(ui_handler, flags) < 0)
        uintr_fail_errno("register_handler");
    vfd = uintr_vec_fd(VECTOR);
    if (vfd < 0)
        uintr_fail_errno("vector fd");
    index_ = uintr_sender_register(vfd); /* uintr-next: the process's UITT, for every thread */
    if (index_ < 0)
        uintr_fail_errno("register_sender");
    _stui();
    uintr_printf("flags: 0x%x\n", flags);

    int rounds = argc - 2;
    pthread_t th;
    if (pthread_create(&th, NULL, sender, (void *)(long)rounds) != 0)
        uintr_fail("pthread_create");

    for (int r = 1; r <= rounds; r++) {
        kind = argv[r + 1];
        rd = wr = -1;
        setup();
        unsigned long before = handled;
        phase_in_handler = -1;
        phase = r;
        go = r;
        t_returned = 0;
        long long t0 = uintr_now_ns();
        long ret = block(flags != 0);
        int e = errno;
        unsigned long n = handled - before;
        phase = 0;
        long long dt = (t_returned ? t_returned : uintr_now_ns()) - t0;
        while (done < r)
            usleep(100);
        teardown();

        int interrupted = ret == -1 && e == EINTR;
        uintr_printf("%s: ret %ld errno %s, handler ran %lu time(s) before it returned, "
                     "%s\n",
                     kind, ret, ret == -1 ? uintr_errno_name(e) : "-", n,
                     interrupted ? "interrupted" : "not interrupted");
        int ok = n == 1 && phase_in_handler == r;
        if (flags)
            ok &= interrupted && dt < 5000000; /* ended by the interrupt, not the unblock */
        else
            ok &= ret == normal_result() && dt >= 5000000;
        if (!ok) {
            uintr_printf("FAIL %s: ret %ld, handler phase %d, took %lld ns\n", kind, ret,
                         phase_in_handler, dt);
            failures++;
        }
    }
    pthread_join(th, NULL);

    _clui();
    uintr_sender_unregister(vfd, index_);
    close(vfd);
    if (failures) {
        uintr_printf("FAILED: %d check(s)\n", failures);
        return 1;
    }
    uintr_printf("OK\n");
    return 0;
}
