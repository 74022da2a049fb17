/*
 * uintr_wait.c -- blocking in uintr_wait.
 *
 * The main thread is the receiver (vector 4).  A sender thread sleeps 1 ms, then sends:
 *   woken       uintr_wait returns -1 / EINTR; the handler ran while the receiver was still
 *               in the call (it saw phase 1) and before the call returned (the count is 1
 *               right after it); the wait lasted at least the sender's 1 ms.
 *   uintr-next only:
 *   timeout     uintr_wait(1000 usec) with nothing sent returns 0 after >= 1 ms, no handler.
 *   timed woken uintr_wait(100000 usec) ended by a send after 1 ms: -1 / EINTR, long before
 *               the 100 ms.
 * Prints one line per case, then OK.
 */
#include "uintr.h"

#include <pthread.h>

#define VECTOR 4

static volatile unsigned long handled;
static volatile int phase, phase_in_handler = -1;
static volatile int go; /* the sender's next round */
static int fd, failures;

static void __attribute__((interrupt)) ui_handler(struct __uintr_frame *frame,
                                                  unsigned long long vector)
{
    (void)frame;
    if (vector == VECTOR)
        handled++;
    phase_in_handler = phase;
}

static void *sender(void *arg)
{
    int rounds = (int)(long)arg;
    int idx = uintr_sender_register(fd);
    if (idx < 0)
        uintr_fail_errno("register_sender");
    for (int r = 1; r <= rounds; r++) {
        while (go < r)
            usleep(1);
        usleep(1000);
        _senduipi((unsigned long long)idx);
    }
    uintr_sender_unregister(fd, idx);
    return NULL;
}

static void woken(const char *name, int round, unsigned long long usec)
{
    unsigned long before = handled;
    phase_in_handler = -1;
    phase = round;
    go = round;
    long long t0 = uintr_now_ns();
    int ret = uintr_block(usec);
    int e = errno;
    unsigned long after = handled - before;
    phase = 0;
    long long dt = uintr_now_ns() - t0;
    uintr_printf("%s: ret %d errno %s, handler ran %lu time(s), in the call: %s, "
                 "waited >= 1 ms: %s, < 100 ms: %s\n",
                 name, ret, ret ? uintr_errno_name(e) : "-", after,
                 phase_in_handler == round ? "yes" : "no", dt >= 1000000 ? "yes" : "no",
                 dt < 100000000 ? "yes" : "no");
    if (ret != -1 || e != EINTR || after != 1 || phase_in_handler != round || dt < 1000000 ||
        dt >= 100000000)
        failures++;
}

int main(void)
{
    uintr_require_handler(ui_handler, 0);
    fd = uintr_vec_fd(VECTOR);
    if (fd < 0)
        uintr_fail_errno("vector fd");
    _stui();

#ifdef UINTR_ABI_RFC
    const int rounds = 1;
#else
    const int rounds = 2;
#endif
    pthread_t th;
    if (pthread_create(&th, NULL, sender, (void *)(long)rounds) != 0)
        uintr_fail("pthread_create");

    woken("woken", 1, 1000000000ULL);

#ifndef UINTR_ABI_RFC
    unsigned long before = handled;
    long long t0 = uintr_now_ns();
    int ret = uintr_wait(1000, 0);
    int e = errno;
    long long dt = uintr_now_ns() - t0;
    uintr_printf("timeout: ret %d errno %s, waited >= 1 ms: %s, handler ran %lu time(s)\n", ret,
                 ret ? uintr_errno_name(e) : "-", dt >= 1000000 ? "yes" : "no",
                 handled - before);
    if (ret != 0 || dt < 1000000 || handled != before)
        failures++;

    woken("timed woken", 2, 100000);
#endif
    pthread_join(th, NULL);

    _clui();
    close(fd);
    uintr_handler_unregister();
    if (failures) {
        uintr_printf("FAILED: %d check(s)\n", failures);
        return 1;
    }
    uintr_printf("OK\n");
    return 0;
}
