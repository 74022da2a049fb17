/*
 * many_senders.c -- four sender threads, one receiver, one vector per sender.
 *
 * The main thread is the receiver: it creates one vector fd for each of the vectors 0..3 and
 * polls with usleep(1) until all interrupts have arrived.  Sender thread i connects to the fd of
 * vector i and sends 100 times; after each SENDUIPI it spins until the receiver's count for
 * vector i has gone up (its acknowledgement), so two sends of one vector never coalesce into a
 * single pending bit.  Senders run concurrently, so the arrival order varies; the counts do not.
 *
 * Expected output (both ABIs):
 *     Receiver ready: vectors 0-3, 4 sender threads x 100 interrupts
 *     vector 0: 100 interrupts
 *     vector 1: 100 interrupts
 *     vector 2: 100 interrupts
 *     vector 3: 100 interrupts
 *     total: 400 interrupts
 *     Success
 */
#include "uintr.h"

#include <pthread.h>

#define NSENDERS 4
#define SENDS 100

static volatile unsigned long count[UINTR_MAX_VECTORS]; /* per vector, written by the handler */
static volatile unsigned long total;
static int fds[NSENDERS];

static void __attribute__((interrupt)) ui_handler(struct __uintr_frame *frame,
                                                  unsigned long long vector)
{
    (void)frame;
    count[vector & (UINTR_MAX_VECTORS - 1)]++;
    total++;
}

static void *sender(void *arg)
{
    int vector = (int)(long)arg;
    int index = uintr_sender_register(fds[vector]);
    if (index < 0)
        uintr_fail_errno("uintr_register_sender");
    for (unsigned long k = 1; k <= SENDS; k++) {
        _senduipi((unsigned long long)index);
        if (uintr_spin_until(&count[vector], k) < 0)
            uintr_fail("sender %d: interrupt %lu was not acknowledged", vector, k);
    }
    if (uintr_sender_unregister(fds[vector], index) < 0)
        uintr_fail_errno("uintr_unregister_sender");
    return NULL;
}

int main(void)
{
    pthread_t threads[NSENDERS];

    uintr_require_handler(ui_handler, 0);
    for (int v = 0; v < NSENDERS; v++) {
        fds[v] = uintr_vec_fd((unsigned long long)v);
        if (fds[v] < 0)
            uintr_fail_errno("uintr_vector_fd");
    }
    _stui();
    uintr_printf("Receiver ready: vectors 0-%d, %d sender threads x %d interrupts\n",
                 NSENDERS - 1, NSENDERS, SENDS);

    for (long v = 0; v < NSENDERS; v++)
        if (pthread_create(&threads[v], NULL, sender, (void *)v) != 0)
            uintr_fail("pthread_create");
    if (uintr_sleep_until(&total, NSENDERS * SENDS, 30) < 0)
        uintr_fail("only %lu of %d interrupts arrived", total, NSENDERS * SENDS);
    for (int v = 0; v < NSENDERS; v++)
        pthread_join(threads[v], NULL);
    _clui();

    int ok = total == NSENDERS * SENDS;
    for (int v = 0; v < UINTR_MAX_VECTORS; v++) {
        if (v < NSENDERS) {
            uintr_printf("vector %d: %lu interrupts\n", v, count[v]);
            ok &= count[v] == SENDS;
        } else if (count[v] != 0) {
            uintr_printf("vector %d: %lu unexpected interrupts\n", v, count[v]);
            ok = 0;
        }
    }
    uintr_printf("total: %lu interrupts\n", total);
    if (!ok)
        uintr_fail("expected %d interrupts on each of vectors 0-%d", SENDS, NSENDERS - 1);

    for (int v = 0; v < NSENDERS; v++)
        close(fds[v]);
    if (uintr_handler_unregister() < 0)
        uintr_fail_errno("uintr_unregister_handler");
    uintr_printf("Success\n");
    return 0;
}
