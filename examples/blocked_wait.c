/*
 * blocked_wait.c -- a receiver sleeps in the kernel until a user interrupt wakes it.
 *
 * The main thread registers its handler and a vector fd, enables interrupts and blocks in
 * uintr_wait (uintr-next: uintr_wait(1000000 us, 0), which returns 0 if the second passes;
 * RFC v1: uintr_wait(0), no timeout).  A sender thread waits until the receiver is about to
 * block, sleeps 1 ms, then sends.  The kernel wakes the receiver, delivers the interrupt on the
 * way back to user mode, and uintr_wait returns -1 with errno EINTR: the handler has already
 * run when the call returns.
 *
 * Expected output (both ABIs):
 *     Receiver blocking in uintr_wait
 *     Sender: sending IPI after 1 ms
 *     woken by user interrupt: EINTR
 *     handler ran before uintr_wait returned
 *     Success
 */
#include "uintr.h"

#include <pthread.h>

#define VECTOR 3

static volatile unsigned long handled;
static volatile unsigned long long handled_vector = ~0ULL;
static volatile unsigned long receiver_waiting;
static int uvec_fd;

static void __attribute__((interrupt)) ui_handler(struct __uintr_frame *frame,
                                                  unsigned long long vector)
{
    (void)frame;
    handled_vector = vector;
    handled++;
}

static void *sender(void *arg)
{
    (void)arg;
    int index = uintr_sender_register(uvec_fd);
    if (index < 0)
        uintr_fail_errno("uintr_register_sender");
    if (uintr_sleep_until(&receiver_waiting, 1, 10) < 0)
        uintr_fail("the receiver never got ready");
    usleep(1000); /* the receiver is asleep in uintr_wait by now */
    uintr_printf("Sender: sending IPI after 1 ms\n");
    _senduipi((unsigned long long)index);
    if (uintr_sender_unregister(uvec_fd, index) < 0)
        uintr_fail_errno("uintr_unregister_sender");
    return NULL;
}

int main(void)
{
    pthread_t thread;

    uintr_require_handler(ui_handler, 0);
    uvec_fd = uintr_vec_fd(VECTOR);
    if (uvec_fd < 0)
        uintr_fail_errno("uintr_vector_fd");
    _stui();
    if (pthread_create(&thread, NULL, sender, NULL) != 0)
        uintr_fail("pthread_create");

    uintr_printf("Receiver blocking in uintr_wait\n");
    receiver_waiting = 1;
    int ret = uintr_block(1000000);
    int err = errno;
    unsigned long handled_at_return = handled;

    pthread_join(thread, NULL);
    if (ret == 0)
        uintr_fail("uintr_wait returned 0: timed out after 1 s without an interrupt");
    if (ret != -1 || err != EINTR)
        uintr_fail("uintr_wait returned %d, errno %s; expected -1, EINTR", ret,
                   uintr_errno_name(err));
    uintr_printf("woken by user interrupt: %s\n", uintr_errno_name(err));
    if (handled_at_return != 1)
        uintr_fail("handler had run %lu times when uintr_wait returned", handled_at_return);
    if (handled_vector != VECTOR)
        uintr_fail("handler saw vector %llu, expected %d", handled_vector, VECTOR);
    uintr_printf("handler ran before uintr_wait returned\n");

    _clui();
    close(uvec_fd);
    if (uintr_handler_unregister() < 0)
        uintr_fail_errno("uintr_unregister_handler");
    uintr_printf("Success\n");
    return 0;
}
