/*
 * ipc_bench.c -- round-trip latency of user interrupts against classic thread IPC.
 *
 * Two threads ping-pong N times (default 2000, or argv[1]) with each mechanism in turn:
 *
 *   uintr    SENDUIPI; the receiver's handler bumps a counter that the other side spins on
 *   eventfd  write(2) an eventfd, the other side blocks in read(2) on it
 *   pipe     one byte through a pair of pipes, blocking read(2)
 *   signal   pthread_kill(SIGUSR1/SIGUSR2); the signal handler bumps a counter, spin as uintr
 *
 * Time is CLOCK_MONOTONIC around the N round trips.  The output lists the average round trip
 * in nanoseconds and the cost relative to uintr.  On hardware these numbers vary from run to
 * run; under uintr-emu's virtual clock (one instruction = 1 ns) they are reproducible.  The
 * program is built with -mgeneral-regs-only, so all arithmetic is integer.
 *
 * Output shape (numbers depend on the machine):
 *     ipc_bench: 2000 round trips per mechanism
 *     uintr: <ns> ns per round trip
 *     eventfd: <ns> ns per round trip
 *     pipe: <ns> ns per round trip
 *     signal: <ns> ns per round trip
 *     uintr 1.0 : eventfd <x.y> : pipe <x.y> : signal <x.y>
 *     Success
 */
#include "uintr.h"

#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>

enum { M_UINTR, M_EVENTFD, M_PIPE, M_SIGNAL, NMECH };
static const char *const names[NMECH] = {"uintr", "eventfd", "pipe", "signal"};

#define PONG_VECTOR 1 /* user interrupt to the main thread */
#define PING_VECTOR 2 /* user interrupt to the peer thread */

static unsigned long rounds = 2000;
static pthread_barrier_t barrier;
static pthread_t main_thread, peer_thread;

/* uintr */
static volatile unsigned long ui_pongs, ui_pings, ui_strays;
static int main_fd, peer_fd;
static int to_main, to_peer; /* UITT indexes */
/* eventfd and pipe */
static int ev_ping, ev_pong;
static int pipe_ping[2], pipe_pong[2];
/* signal */
static volatile unsigned long sig_pings, sig_pongs;

static void __attribute__((interrupt)) ui_handler(struct __uintr_frame *frame,
                                                  unsigned long long vector)
{
    (void)frame;
    if (vector == PONG_VECTOR)
        ui_pongs++;
    else if (vector == PING_VECTOR)
        ui_pings++;
    else
        ui_strays++;
}

static void on_sigusr1(int sig)
{
    (void)sig;
    sig_pings++;
}

static void on_sigusr2(int sig)
{
    (void)sig;
    sig_pongs++;
}

static void wait_counter(const volatile unsigned long *counter, unsigned long target,
                         const char *what)
{
    if (uintr_spin_until(counter, target) < 0)
        uintr_fail("%s %lu never arrived", what, target);
}

static void put_event(int fd)
{
    unsigned long long one = 1;
    if (write(fd, &one, sizeof one) != sizeof one)
        uintr_fail_errno("eventfd write");
}

static void get_event(int fd)
{
    unsigned long long value;
    if (read(fd, &value, sizeof value) != sizeof value || value != 1)
        uintr_fail("eventfd read");
}

static void put_byte(int fd)
{
    char c = 'x';
    if (write(fd, &c, 1) != 1)
        uintr_fail_errno("pipe write");
}

static void get_byte(int fd)
{
    char c;
    if (read(fd, &c, 1) != 1 || c != 'x')
        uintr_fail("pipe read");
}

/* One round trip, client side (main thread): round `i` counts from 1. */
static void client_round(int m, unsigned long i)
{
    switch (m) {
    case M_UINTR:
        _senduipi((unsigned long long)to_peer);
        wait_counter(&ui_pongs, i, "uintr pong");
        break;
    case M_EVENTFD:
        put_event(ev_ping);
        get_event(ev_pong);
        break;
    case M_PIPE:
        put_byte(pipe_ping[1]);
        get_byte(pipe_pong[0]);
        break;
    case M_SIGNAL:
        if (pthread_kill(peer_thread, SIGUSR1) != 0)
            uintr_fail("pthread_kill");
        wait_counter(&sig_pongs, i, "SIGUSR2");
        break;
    }
}

/* One round trip, server side (peer thread). */
static void server_round(int m, unsigned long i)
{
    switch (m) {
    case M_UINTR:
        wait_counter(&ui_pings, i, "uintr ping");
        _senduipi((unsigned long long)to_main);
        break;
    case M_EVENTFD:
        get_event(ev_ping);
        put_event(ev_pong);
        break;
    case M_PIPE:
        get_byte(pipe_ping[0]);
        put_byte(pipe_pong[1]);
        break;
    case M_SIGNAL:
        wait_counter(&sig_pings, i, "SIGUSR1");
        if (pthread_kill(main_thread, SIGUSR2) != 0)
            uintr_fail("pthread_kill");
        break;
    }
}

static void *peer(void *arg)
{
    int m = (int)(long)arg;

    if (m == M_UINTR) {
        if (uintr_handler_register(ui_handler, 0) < 0)
            uintr_fail_errno("peer: uintr_register_handler");
        peer_fd = uintr_vec_fd(PING_VECTOR);
        if (peer_fd < 0)
            uintr_fail_errno("peer: uintr_vector_fd");
        _stui();
    }
    pthread_barrier_wait(&barrier); /* 1: receivers ready */
    if (m == M_UINTR) {
        to_main = uintr_sender_register(main_fd);
        if (to_main < 0)
            uintr_fail_errno("peer: uintr_register_sender");
    }
    pthread_barrier_wait(&barrier); /* 2: senders connected */

    for (unsigned long i = 1; i <= rounds; i++)
        server_round(m, i);

    pthread_barrier_wait(&barrier); /* 3: the client has its last answer */
    if (m == M_UINTR) {
        if (uintr_sender_unregister(main_fd, to_main) < 0)
            uintr_fail_errno("peer: uintr_unregister_sender");
        _clui();
        if (uintr_handler_unregister() < 0)
            uintr_fail_errno("peer: uintr_unregister_handler");
    }
    return NULL;
}

/* Run one mechanism; returns the nanoseconds taken by all round trips. */
static long long run(int m)
{
    if (pthread_create(&peer_thread, NULL, peer, (void *)(long)m) != 0)
        uintr_fail("pthread_create");
    pthread_barrier_wait(&barrier); /* 1 */
    if (m == M_UINTR) {
        to_peer = uintr_sender_register(peer_fd);
        if (to_peer < 0)
            uintr_fail_errno("uintr_register_sender");
    }
    pthread_barrier_wait(&barrier); /* 2 */

    long long t0 = uintr_now_ns();
    for (unsigned long i = 1; i <= rounds; i++)
        client_round(m, i);
    long long t1 = uintr_now_ns();

    pthread_barrier_wait(&barrier); /* 3 */
    pthread_join(peer_thread, NULL);
    if (m == M_UINTR) {
        if (uintr_sender_unregister(peer_fd, to_peer) < 0)
            uintr_fail_errno("uintr_unregister_sender");
        close(peer_fd);
    }
    return t1 > t0 ? t1 - t0 : 1;
}

/* a / b to one decimal, rounded, as "x.y" */
static void ratio(char *buf, size_t size, long long a, long long b)
{
    long long r10 = (a * 10 + b / 2) / b;
    snprintf(buf, size, "%lld.%lld", r10 / 10, r10 % 10);
}

int main(int argc, char **argv)
{
    long long total[NMECH];
    char line[256], r[32];

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

    ev_ping = eventfd(0, 0);
    ev_pong = eventfd(0, 0);
    if (ev_ping < 0 || ev_pong < 0)
        uintr_fail_errno("eventfd");
    if (pipe(pipe_ping) < 0 || pipe(pipe_pong) < 0)
        uintr_fail_errno("pipe");
    struct sigaction sa = {0};
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_sigusr1;
    if (sigaction(SIGUSR1, &sa, NULL) < 0)
        uintr_fail_errno("sigaction");
    sa.sa_handler = on_sigusr2;
    if (sigaction(SIGUSR2, &sa, NULL) < 0)
        uintr_fail_errno("sigaction");
    main_thread = pthread_self();
    pthread_barrier_init(&barrier, NULL, 2);

    uintr_printf("ipc_bench: %lu round trips per mechanism\n", rounds);
    for (int m = 0; m < NMECH; m++) {
        total[m] = run(m);
        uintr_printf("%s: %lld ns per round trip\n", names[m], total[m] / (long long)rounds);
    }

    int len = snprintf(line, sizeof line, "%s 1.0", names[M_UINTR]);
    for (int m = 1; m < NMECH; m++) {
        ratio(r, sizeof r, total[m], total[M_UINTR]);
        len += snprintf(line + len, sizeof line - (size_t)len, " : %s %s", names[m], r);
    }
    uintr_printf("%s\n", line);

    if (ui_pongs != rounds || ui_pings != rounds || ui_strays != 0 || sig_pings != rounds ||
        sig_pongs != rounds)
        uintr_fail("lost or extra notifications: uintr %lu/%lu (+%lu), signal %lu/%lu", ui_pings,
                   ui_pongs, ui_strays, sig_pings, sig_pongs);
    _clui();
    close(main_fd);
    if (uintr_handler_unregister() < 0)
        uintr_fail_errno("uintr_unregister_handler");
    uintr_printf("Success\n");
    return 0;
}
