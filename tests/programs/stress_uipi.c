/*
 * stress_uipi.c -- many senders, acknowledged user IPIs, no loss, no duplicates.
 *
 *     stress_uipi [SENDERS [SENDS [RECEIVERS]]]      (defaults 8, 10000, 1; at most 16 each)
 *
 * RECEIVERS receiver threads each register a handler; sender thread i sends SENDS user
 * interrupts with vector i to receiver i % RECEIVERS.  After each SENDUIPI the sender waits
 * until the receiver's count for vector i has gone up (its acknowledgement), so two sends of
 * one vector never coalesce into one pending bit: every send must be delivered exactly once.
 * The handler counts per vector (one writer per counter: each vector has one receiver).
 *
 * Waiting is spin-then-yield on both sides: a sender polls its ack counter and calls
 * sched_yield() between bursts of polls; a receiver spins (taking interrupts while it runs)
 * and yields between bursts too, so interrupts also arrive while it is descheduled
 * (UPID.SN = 1) and are delivered when it is switched back in.  There are more threads than
 * virtual CPUs at the defaults, so both paths occur under every schedule.
 *
 * Output: one line per sender, a total line, then OK (exit 0); a send that is never
 * acknowledged ("lost"), an extra delivery ("duplicated") or a stray vector prints FAIL on
 * stderr and exits 1.
 */
#include "uintr.h"

#include <pthread.h>
#include <sched.h>

#define MAX_THREADS 16
#ifndef POLL_BURST
#define POLL_BURST 256 /* polls between two sched_yield() calls */
#endif
#define MAX_YIELDS (1UL << 16)  /* a sender gives up on an ack after this many yields */

static unsigned senders = 8, receivers = 1;
static unsigned long sends = 10000;

static volatile unsigned long count[UINTR_MAX_VECTORS]; /* deliveries per vector */
static volatile unsigned long duplicated[MAX_THREADS];  /* count beyond the send number */
static volatile int ready;                              /* receivers with their fds made */
static int fds[MAX_THREADS];                            /* vector fd of sender i's vector */
static pthread_barrier_t barrier;

static void __attribute__((interrupt)) ui_handler(struct __uintr_frame *frame,
                                                  unsigned long long vector)
{
    (void)frame;
    count[vector & (UINTR_MAX_VECTORS - 1)]++;
}

static unsigned long received_by(unsigned r)
{
    unsigned long n = 0;
    for (unsigned v = r; v < senders; v += receivers)
        n += count[v];
    return n;
}

static void *receiver(void *arg)
{
    unsigned r = (unsigned)(long)arg;
    unsigned long expected = 0;

    if (uintr_handler_register(ui_handler, 0) < 0)
        uintr_fail_errno("uintr_register_handler");
    for (unsigned v = r; v < senders; v += receivers) {
        fds[v] = uintr_vec_fd(v);
        if (fds[v] < 0)
            uintr_fail_errno("uintr_vector_fd");
        expected += sends;
    }
    _stui();
    pthread_barrier_wait(&barrier); /* every receiver is ready */
    for (unsigned long polls = 1; received_by(r) < expected; polls++) {
        uintr_cpu_relax();
        if (polls % POLL_BURST == 0)
            sched_yield();
    }
    pthread_barrier_wait(&barrier); /* every interrupt has arrived: nothing more may come */
    _clui();
    return NULL;
}

static void *sender(void *arg)
{
    unsigned v = (unsigned)(long)arg;
    int index = uintr_sender_register(fds[v]);
    if (index < 0)
        uintr_fail_errno("uintr_register_sender");
    for (unsigned long k = 1; k <= sends; k++) {
        _senduipi((unsigned long long)index);
        unsigned long yields = 0;
        for (unsigned long polls = 1; count[v] < k; polls++) {
            uintr_cpu_relax();
            if (polls % POLL_BURST == 0 && ++yields > MAX_YIELDS)
                uintr_fail("sender %u: interrupt %lu lost (%lu delivered)", v, k, count[v]);
            if (polls % POLL_BURST == 0)
                sched_yield();
        }
        if (count[v] != k)
            duplicated[v] += count[v] - k;
    }
    if (uintr_sender_unregister(fds[v], index) < 0)
        uintr_fail_errno("uintr_unregister_sender");
    return NULL;
}

static unsigned long arg(int argc, char **argv, int i, unsigned long dflt, unsigned long max)
{
    if (argc <= i)
        return dflt;
    char *end;
    unsigned long v = strtoul(argv[i], &end, 10);
    if (*end != '\0' || v == 0 || v > max) {
        uintr_printf("usage: %s [senders 1..16 [sends [receivers 1..senders]]]\n", argv[0]);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    pthread_t rthreads[MAX_THREADS], sthreads[MAX_THREADS];

    senders = (unsigned)arg(argc, argv, 1, senders, MAX_THREADS);
    sends = arg(argc, argv, 2, sends, 100000000UL);
    receivers = (unsigned)arg(argc, argv, 3, receivers, senders);
    uintr_printf("stress: %u senders x %lu acknowledged UIPIs to %u receiver%s\n", senders,
                 sends, receivers, receivers == 1 ? "" : "s");

    pthread_barrier_init(&barrier, NULL, receivers + 1);
    for (unsigned r = 0; r < receivers; r++)
        if (pthread_create(&rthreads[r], NULL, receiver, (void *)(long)r) != 0)
            uintr_fail("pthread_create");
    pthread_barrier_wait(&barrier);
    for (unsigned v = 0; v < senders; v++)
        if (pthread_create(&sthreads[v], NULL, sender, (void *)(long)v) != 0)
            uintr_fail("pthread_create");
    for (unsigned v = 0; v < senders; v++)
        pthread_join(sthreads[v], NULL);
    pthread_barrier_wait(&barrier);
    for (unsigned r = 0; r < receivers; r++)
        pthread_join(rthreads[r], NULL);

    unsigned long total = 0, dups = 0;
    int ok = 1;
    for (unsigned v = 0; v < UINTR_MAX_VECTORS; v++) {
        if (v < senders) {
            uintr_printf("sender %u: %lu sent, %lu received\n", v, sends, count[v]);
            ok &= count[v] == sends && duplicated[v] == 0;
            dups += duplicated[v];
        } else if (count[v] != 0) {
            uintr_printf("vector %u: %lu unexpected interrupts\n", v, count[v]);
            ok = 0;
        }
        total += count[v];
    }
    uintr_printf("total: %lu sent, %lu received, %lu duplicated\n", senders * sends, total, dups);
    if (!ok)
        uintr_fail("interrupts were lost, duplicated or stray");
    uintr_printf("OK\n");
    return 0;
}
