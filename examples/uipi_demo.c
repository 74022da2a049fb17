/*
 * uipi_demo.c -- the basic user IPI: one thread interrupts another without the kernel.
 *
 * The main thread becomes a receiver (handler + an fd for vector 0) and enables user
 * interrupts with STUI.  A second thread connects to that fd as a sender and executes SENDUIPI;
 * the main thread, polling a flag with usleep(1), is interrupted and runs the handler, which
 * writes one line with write(2) and sets the flag.
 *
 * Expected output (both ABIs):
 *     Receiver enabled interrupts
 *     Sending IPI from sender thread
 *     <TAB>-- User Interrupt handler --
 *     Success
 */
#include "uintr.h"

#include <pthread.h>

#define VECTOR 0

static volatile unsigned long handled;
static volatile unsigned long long handled_vector = ~0ULL;
static int uvec_fd;

static void __attribute__((interrupt)) ui_handler(struct __uintr_frame *frame,
                                                  unsigned long long vector)
{
    static const char msg[] = "\t-- User Interrupt handler --\n";
    (void)frame;
    uintr_raw_write(1, msg, sizeof msg - 1);
    handled_vector = vector;
    handled = 1;
}

static void *sender(void *arg)
{
    (void)arg;
    int index = uintr_sender_register(uvec_fd);
    if (index < 0)
        uintr_fail_errno("uintr_register_sender");
    uintr_printf("Sending IPI from sender thread\n");
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
    uintr_printf("Receiver enabled interrupts\n");

    if (pthread_create(&thread, NULL, sender, NULL) != 0)
        uintr_fail("pthread_create");
    if (uintr_sleep_until(&handled, 1, 10) < 0)
        uintr_fail("no user interrupt within 10 s");
    pthread_join(thread, NULL);

    if (handled_vector != VECTOR)
        uintr_fail("handler saw vector %llu, expected %d", handled_vector, VECTOR);
    close(uvec_fd);
    if (uintr_handler_unregister() < 0)
        uintr_fail_errno("uintr_unregister_handler");
    uintr_printf("Success\n");
    return 0;
}
