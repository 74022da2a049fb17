/*
 * pingpong.c -- two threads interrupt each other N times (default 10000, or argv[1]).
 *
 * Each thread is both a receiver (its own handler registration and vector fd) and a sender to
 * the other.  The main thread receives vector 1 ("pong"), the peer thread vector 2 ("ping");
 * one handler serves both and counts per vector.  Round trip i: main sends ping i and spins
 * until it has received pong i; the peer spins until it has received ping i and answers.  The
 * waiting loops only read a volatile counter: no system call between the sends.
 *
 * Expected output (both ABIs, default N):
 *     pingpong: 10000 round trips between two threads
 *     main thread received 10000 pongs (vector 1)
 *     peer thread received 10000 pings (vector 2)
 *     Success
 */
#include "uintr.h"

#include <pthread.h>

#define PONG_VECTOR 1 /* received by the main thread */
#define PING_VECTOR 2 /* received by the peer thread */

static volatile unsigned long pongs, pings, strays;
static unsigned long rounds = 10000;
static int main_fd, peer_fd; /* vector fds of the two receivers */
static pthread_barrier_t barrier;

static void __attribute__((interrupt)) ui_handler(struct __uintr_frame *frame,
                                                  unsigned long long vector)
{
    (void)frame;
    if (vector == PONG_VECTOR)
        pongs++;
    else if (vector == PING_VECTOR)
        pings++;
    else
        strays++;
}

static void *peer(void *arg)
{
    (void)arg;
    if (uintr_handler_register(ui_handler, 0) < 0)
        uintr_fail_errno("peer: uintr_register_handler");
    peer_fd = uintr_vec_fd(PING_VECTOR);
    if (peer_fd < 0)
        uintr_fail_errno("peer: uintr_vector_fd");
    _stui();
    pthread_barrier_wait(&barrier); /* 1: both receivers are ready */

    int to_main = uintr_sender_register(main_fd);
    if (to_main < 0)
        uintr_fail_errno("peer: uintr_register_sender");
    pthread_barrier_wait(&barrier); /* 2: both senders are connected */

    for (unsigned long i = 1; i <= rounds; i++) {
        if (uintr_spin_until(&pings, i) < 0)
            uintr_fail("peer: ping %lu never arrived", i);
        _senduipi((unsigned long long)to_main);
    }

    if (uintr_sender_unregister(main_fd, to_main) < 0)
        uintr_fail_errno("peer: uintr_unregister_sender");
    pthread_barrier_wait(&barrier); /* 3: main has seen the last pong */
    _clui();
    if (uintr_handler_unregister() < 0)
        uintr_fail_errno("peer: uintr_unregister_handler");
    return NULL;
}

int main(int argc, char **argv)
{
    pthread_t thread;

    if (argc > 1) {
        char *end;
        rounds = strtoul(argv[1], &end, 10);
        if (*end != '\0' || rounds == 0 || rounds > 100000000UL) {
            uintr_printf("usage: %s [round trips, 1..100000000]\n", argv[0]);
            return 2;
        }
    }

    uintr_require_handler(ui_handler, 0);
    main_fd = uintr_vec_fd(PONG_VECTOR);
    if (main_fd < 0)
        uintr_fail_errno("uintr_vector_fd");
    _stui();
    uintr_printf("pingpong: %lu round trips between two threads\n", rounds);

    pthread_barrier_init(&barrier, NULL, 2);
    if (pthread_create(&thread, NULL, peer, NULL) != 0)
        uintr_fail("pthread_create");
    pthread_barrier_wait(&barrier); /* 1 */
    int to_peer = uintr_sender_register(peer_fd);
    if (to_peer < 0)
        uintr_fail_errno("uintr_register_sender");
    pthread_barrier_wait(&barrier); /* 2 */

    for (unsigned long i = 1; i <= rounds; i++) {
        _senduipi((unsigned long long)to_peer);
        if (uintr_spin_until(&pongs, i) < 0)
            uintr_fail("pong %lu never arrived", i);
    }

    pthread_barrier_wait(&barrier); /* 3 */
    pthread_join(thread, NULL);
    if (uintr_sender_unregister(peer_fd, to_peer) < 0)
        uintr_fail_errno("uintr_unregister_sender");
    _clui();
    close(peer_fd);
    close(main_fd);
    if (uintr_handler_unregister() < 0)
        uintr_fail_errno("uintr_unregister_handler");

    uintr_printf("main thread received %lu pongs (vector %d)\n", pongs, PONG_VECTOR);
    uintr_printf("peer thread received %lu pings (vector %d)\n", pings, PING_VECTOR);
    if (pongs != rounds || pings != rounds || strays != 0)
        uintr_fail("expected %lu of each and no other vector (%lu others)", rounds, strays);
    uintr_printf("Success\n");
    return 0;
}
