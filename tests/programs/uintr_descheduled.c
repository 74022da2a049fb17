/*
 * uintr_descheduled.c -- user interrupts posted while the receiver thread is off its CPU
 * (run with --cpus 1 and 2; the output does not depend on the number of CPUs).
 *
 * A receiver thread R (vectors 1 and 2, no WAITING flag) and the main thread as sender:
 *
 *   sleep      R sleeps in nanosleep(2 ms); the sender posts vector 1 once meanwhile.  The
 *              sleep is not interrupted (returns 0, lasted 2 ms) and the interrupt is
 *              delivered exactly once, as R returns to user mode (before its next
 *              instruction: the count is 1 right after the syscall).
 *   coalesce   R sleeps again; the sender posts vector 1 ten times and vector 2 three times.
 *              The receiver is descheduled (UPID.SN = 1: posts set PIR bits, no IPI), so
 *              the ten posts coalesce: exactly one delivery of each vector on its return.
 *   busy       R spins without syscalls while a busy thread and the sender compete for the
 *              CPUs; one post is delivered exactly once, whenever R runs.
 *
 * Prints counts, then OK.
 */
#include "uintr.h"

#include <pthread.h>
#include <stdint.h>

static volatile unsigned long handled[64];
static volatile int phase;       /* R's progress, for the sender */
static volatile int phase_at[64]; /* R's phase when a vector was last delivered */
static volatile int fd1 = -1, fd2 = -1;
static volatile int stop_busy, busy_ack;

static void __attribute__((interrupt)) ui_handler(struct __uintr_frame *frame,
                                                  unsigned long long vector)
{
    (void)frame;
    handled[vector & 63]++;
    phase_at[vector & 63] = phase;
}

struct result {
    long ret;
    long long slept_ns;
    unsigned long after1, after2;     /* right after the syscall */
    unsigned long settled1, settled2; /* later */
};
static struct result r_sleep, r_coalesce;
static unsigned long busy_after, busy_settled;

static void sleep_ns(struct result *res, long ns)
{
    struct timespec ts = {0, ns};
    unsigned long b1 = handled[1], b2 = handled[2];
    long long t0 = uintr_now_ns();
    res->ret = nanosleep(&ts, NULL);
    res->after1 = handled[1] - b1;
    res->after2 = handled[2] - b2;
    res->slept_ns = uintr_now_ns() - t0;
    usleep(1000); /* anything else would arrive by now */
    res->settled1 = handled[1] - b1;
    res->settled2 = handled[2] - b2;
}

static void *receiver(void *arg)
{
    (void)arg;
    if (uintr_register_handler(ui_handler, 0) < 0)
        uintr_fail_errno("register_handler");
    int a = uintr_vec_fd(1), b = uintr_vec_fd(2);
    if (a < 0 || b < 0)
        uintr_fail_errno("vector fd");
    _stui();
    fd2 = b;
    fd1 = a;

    phase = 1;
    sleep_ns(&r_sleep, 2000000);
    phase = 2;
    sleep_ns(&r_coalesce, 2000000);

    /* busy: spin, no syscalls, until the post arrives (bounded) */
    unsigned long before = handled[1];
    phase = 3;
    for (unsigned long i = 0; i < 20000000UL && handled[1] == before; i++)
        uintr_cpu_relax();
    busy_after = handled[1] - before;
    busy_ack = 1;
    for (int i = 0; i < 200000; i++)
        uintr_cpu_relax();
    busy_settled = handled[1] - before;
    phase = 4;
    return NULL;
}

static void *busy(void *arg)
{
    (void)arg;
    while (!stop_busy)
        uintr_cpu_relax();
    return NULL;
}

static void wait_phase(int p)
{
    while (phase < p)
        usleep(50);
}

static int report(const char *name, const struct result *res, unsigned long want1,
                  unsigned long want2)
{
    uintr_printf("%s: nanosleep returned %ld, slept >= 2 ms: %s, vector 1 delivered %lu "
                 "(right after the syscall) %lu (later), vector 2 delivered %lu %lu\n",
                 name, res->ret, res->slept_ns >= 2000000 ? "yes" : "no", res->after1,
                 res->settled1, res->after2, res->settled2);
    return res->ret == 0 && res->slept_ns >= 2000000 && res->after1 == want1 &&
           res->settled1 == want1 && res->after2 == want2 && res->settled2 == want2;
}

int main(void)
{
    pthread_t r, b;
    if (pthread_create(&r, NULL, receiver, NULL) != 0)
        uintr_fail("pthread_create");
    while (fd1 < 0)
        usleep(1);
    int i1 = uintr_sender_register(fd1), i2 = uintr_sender_register(fd2);
    if (i1 < 0 || i2 < 0)
        uintr_fail_errno("register_sender");

    /* sleep: one post while R is in nanosleep */
    wait_phase(1);
    usleep(200);
    _senduipi((unsigned long long)i1);

    /* coalesce: many posts while R is in nanosleep */
    wait_phase(2);
    usleep(200);
    for (int i = 0; i < 10; i++) {
        _senduipi((unsigned long long)i1);
        usleep(20);
    }
    for (int i = 0; i < 3; i++)
        _senduipi((unsigned long long)i2);

    /* busy: three runnable threads */
    if (pthread_create(&b, NULL, busy, NULL) != 0)
        uintr_fail("pthread_create");
    wait_phase(3);
    for (int i = 0; i < 50000; i++) /* let R and the busy thread take turns first */
        uintr_cpu_relax();
    _senduipi((unsigned long long)i1);
    while (!busy_ack)
        uintr_cpu_relax();
    stop_busy = 1;
    pthread_join(b, NULL);
    pthread_join(r, NULL);

    int ok = report("sleep", &r_sleep, 1, 0);
    ok &= report("coalesce", &r_coalesce, 1, 1);
    uintr_printf("handler ran in phase: vector 1 %d, vector 2 %d\n", phase_at[1], phase_at[2]);
    uintr_printf("busy: vector 1 delivered %lu (when R ran) %lu (later)\n", busy_after,
                 busy_settled);
    ok &= busy_after == 1 && busy_settled == 1 && phase_at[1] == 3 && phase_at[2] == 2;
    uintr_printf("totals: vector 1 %lu, vector 2 %lu\n", handled[1], handled[2]);
    ok &= handled[1] == 3 && handled[2] == 1;

    uintr_sender_unregister(fd1, i1);
    uintr_sender_unregister(fd2, i2);
    if (!ok) {
        uintr_printf("FAILED\n");
        return 1;
    }
    uintr_printf("OK\n");
    return 0;
}
