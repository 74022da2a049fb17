/* Four senders to one receiver, scaled, for benchmarks/run.py (examples/many_senders.c with
 * the number of interrupts per sender taken from argv[1] instead of a fixed 100).
 *
 *     many_senders_bench SENDS
 *
 * The main thread receives vectors 0-3 (one vector fd each) and polls with usleep(1) until
 * all 4 x SENDS interrupts have arrived; sender thread i sends vector i SENDS times and, after
 * each SENDUIPI, spins until the receiver's count for vector i went up, so sends never
 * coalesce. Build with -muintr -mgeneral-regs-only -pthread -I examples (uintr-next ABI).
 * Prints "total: <4 x SENDS> interrupts" and exits 0 when every count is right. */
#include "uintr.h"

#include <pthread.h>

#define NSENDERS 4

static volatile unsigned long count[UINTR_MAX_VECTORS];
static volatile unsigned long total;
static unsigned long sends = 100;
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
    for (unsigned long k = 1; k <= sends; k++) {
        _senduipi((unsigned long long)index);
        if (uintr_spin_until(&count[vector], k) < 0)
            uintr_fail("sender %d: interrupt %lu was not acknowledged", vector, k);
    }
    if (uintr_sender_unregister(fds[vector], index) < 0)
        uintr_fail_errno("uintr_unregister_sender");
    return NULL;
}

int main(int argc, char **argv)
{
    pthread_t threads[NSENDERS];
    if (argc > 1)
        sends = strtoul(argv[1], NULL, 10);

    uintr_require_handler(ui_handler, 0);
    for (int v = 0; v < NSENDERS; v++) {
        fds[v] = uintr_vec_fd((unsigned long long)v);
        if (fds[v] < 0)
            uintr_fail_errno("uintr_vector_fd");
    }
    _stui();
    for (long v = 0; v < NSENDERS; v++)
        if (pthread_create(&threads[v], NULL, sender, (void *)v) != 0)
            uintr_fail("pthread_create");
    if (uintr_sleep_until(&total, NSENDERS * sends, 3600) < 0)
        uintr_fail("only %lu of %lu interrupts arrived", total, NSENDERS * sends);
    for (int v = 0; v < NSENDERS; v++)
        pthread_join(threads[v], NULL);
    _clui();

    int ok = total == NSENDERS * sends;
    for (int v = 0; v < NSENDERS; v++)
        ok &= count[v] == sends;
    uintr_printf("total: %lu interrupts\n", total);
    if (!ok)
        uintr_fail("expected %lu interrupts on each of vectors 0-%d", sends, NSENDERS - 1);
    for (int v = 0; v < NSENDERS; v++)
        close(fds[v]);
    if (uintr_handler_unregister() < 0)
        uintr_fail_errno("uintr_unregister_handler");
    return 0;
}
