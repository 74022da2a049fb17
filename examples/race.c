/*
 * race.c -- a planted data race between a user-interrupt handler and the thread it interrupts,
 * for `uintr-emu explore` (docs/explore.md).
 *
 * The main thread increments a shared counter ITERS times with a non-atomic read-modify-write:
 * it loads the counter, does a little work, and stores the loaded value plus one.  A sender
 * thread sends SENDS user interrupts to the main thread, waiting for each to be handled; the
 * handler increments the same counter.  If an interrupt is delivered between the main thread's
 * load and its store, the main thread's store overwrites the handler's increment: the update is
 * lost.  Whether that happens depends only on where in the main thread's loop the deliveries
 * land, i.e. on the schedule: with `--seed 0` (the plain schedule) every delivery misses the
 * window, and some seeds make one hit it.
 *
 * Output: `OK` (exit 0), or `count = N (expected M)` (exit 1) when an update was lost.
 * The fix would be a CLUI/STUI pair around the read-modify-write (or a LOCK-prefixed add).
 */
#include "uintr.h"

#include <pthread.h>

#define ITERS 1000  /* the main thread's increments */
#define SENDS 5     /* the handler's increments */
#define OUTSIDE 100 /* work between two read-modify-writes (loop turns of 3 instructions) */
#define GAP 10000   /* the sender's pause before each send (loop turns of 3 instructions) */
/* The work between the load and the store: 8 instructions. */
#define WINDOW_WORK() __asm__ volatile(".rept 8\n\tnop\n\t.endr" ::: "memory")

static volatile unsigned long counter; /* updated by the main thread and by the handler */
static volatile unsigned long handled; /* handler runs: the sender's acknowledgement */
static volatile int sender_done;
static int vec_fd;

static void __attribute__((interrupt)) ui_handler(struct __uintr_frame *frame,
                                                  unsigned long long vector)
{
    (void)frame;
    (void)vector;
    counter++;
    handled++;
}

static void work(unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        __asm__ volatile("nop" ::: "memory");
}

static void *sender(void *arg)
{
    (void)arg;
    int index = uintr_sender_register(vec_fd);
    if (index < 0)
        uintr_fail_errno("uintr_register_sender");
    for (unsigned long k = 1; k <= SENDS; k++) {
        work(GAP);
        _senduipi((unsigned long long)index);
        if (uintr_spin_until(&handled, k) < 0)
            uintr_fail("interrupt %lu was not handled", k);
    }
    if (uintr_sender_unregister(vec_fd, index) < 0)
        uintr_fail_errno("uintr_unregister_sender");
    sender_done = 1;
    return NULL;
}

int main(void)
{
    pthread_t thread;

    uintr_require_handler(ui_handler, 0);
    vec_fd = uintr_vec_fd(0);
    if (vec_fd < 0)
        uintr_fail_errno("uintr_vector_fd");
    _stui();
    if (pthread_create(&thread, NULL, sender, NULL) != 0)
        uintr_fail("pthread_create");

    for (unsigned long i = 0; i < ITERS; i++) {
        unsigned long v = counter; /* load ...                                  */
        WINDOW_WORK();             /* ... an interrupt delivered here is lost ... */
        counter = v + 1;           /* ... by this store                          */
        work(OUTSIDE);
    }
    while (!sender_done) /* the remaining interrupts arrive here, outside the window */
        uintr_cpu_relax();
    pthread_join(thread, NULL);
    _clui();
    close(vec_fd);

    unsigned long expected = ITERS + SENDS;
    if (counter != expected) {
        uintr_printf("count = %lu (expected %lu)\n", counter, expected);
        return 1;
    }
    uintr_printf("OK\n");
    return 0;
}
