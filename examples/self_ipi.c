/*
 * self_ipi.c -- a thread sends user interrupts to itself.
 *
 * uintr-next: uintr_register_self(vector) returns a UITT index that targets the calling
 * thread's own receiver, no fd needed.  RFC v1 has no such call: the thread creates an fd per
 * vector and registers as a sender of its own fd.  The thread sends vectors 0, 5 and 63, one at
 * a time, and after each SENDUIPI waits until the handler has run (a self-IPI is taken at the
 * next instruction boundary in uintr-emu; on hardware it may take a little longer, so the wait
 * spins for a while and then polls with usleep(1)).  The handler records each vector; the
 * program checks that it ran exactly once per send, with the vector that was sent.
 *
 * Expected output (both ABIs):
 *     Self IPI: sending vectors 0, 5, 63 to this thread
 *     received vector 0
 *     received vector 5
 *     received vector 63
 *     handler ran 3 times for 3 sends
 *     Success
 */
#include "uintr.h"

#define NSENDS 3
#define MAXREC 16

static const unsigned long long vectors[NSENDS] = {0, 5, 63};

static volatile unsigned long nreceived;
static volatile unsigned long long received[MAXREC];

static void __attribute__((interrupt)) ui_handler(struct __uintr_frame *frame,
                                                  unsigned long long vector)
{
    unsigned long n = nreceived;
    (void)frame;
    if (n < MAXREC)
        received[n] = vector;
    nreceived = n + 1;
}

/* Wait for the handler to have run `target` times: spin first, then poll with usleep(1). */
static int wait_received(unsigned long target)
{
    for (int spins = 0; spins < 100000; spins++) {
        if (nreceived >= target)
            return 0;
        uintr_cpu_relax();
    }
    return uintr_sleep_until(&nreceived, target, 10);
}

int main(void)
{
    int index[NSENDS];
#ifdef UINTR_ABI_RFC
    int fd[NSENDS];
#endif

    uintr_require_handler(ui_handler, 0);
    for (int i = 0; i < NSENDS; i++) {
#ifdef UINTR_ABI_RFC
        fd[i] = uintr_vec_fd(vectors[i]);
        if (fd[i] < 0)
            uintr_fail_errno("uintr_create_fd");
        index[i] = uintr_sender_register(fd[i]);
        if (index[i] < 0)
            uintr_fail_errno("uintr_register_sender");
#else
        index[i] = uintr_register_self(vectors[i], 0);
        if (index[i] < 0)
            uintr_fail_errno("uintr_register_self");
#endif
    }
    _stui();
    uintr_printf("Self IPI: sending vectors %llu, %llu, %llu to this thread\n", vectors[0],
                 vectors[1], vectors[2]);

    for (int i = 0; i < NSENDS; i++) {
        _senduipi((unsigned long long)index[i]);
        if (wait_received((unsigned long)i + 1) < 0)
            uintr_fail("self IPI %d (vector %llu) was not delivered", i, vectors[i]);
        if (nreceived != (unsigned long)i + 1)
            uintr_fail("handler ran %lu times after %d sends", nreceived, i + 1);
    }
    /* Nothing more may arrive. */
    usleep(1000);
    unsigned long n = nreceived;

    _clui();
    for (unsigned long i = 0; i < n && i < MAXREC; i++)
        uintr_printf("received vector %llu\n", received[i]);
    uintr_printf("handler ran %lu times for %d sends\n", n, NSENDS);
    if (n != NSENDS)
        uintr_fail("expected exactly %d interrupts", NSENDS);
    for (int i = 0; i < NSENDS; i++)
        if (received[i] != vectors[i])
            uintr_fail("interrupt %d carried vector %llu, expected %llu", i, received[i],
                       vectors[i]);

    for (int i = 0; i < NSENDS; i++) {
#ifdef UINTR_ABI_RFC
        if (uintr_sender_unregister(fd[i], index[i]) < 0)
            uintr_fail_errno("uintr_unregister_sender");
        close(fd[i]);
#else
        if (uintr_sender_unregister(-1, index[i]) < 0)
            uintr_fail_errno("uintr_unregister_sender");
#endif
    }
    if (uintr_handler_unregister() < 0)
        uintr_fail_errno("uintr_unregister_handler");
    uintr_printf("Success\n");
    return 0;
}
