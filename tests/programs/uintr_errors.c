/*
 * uintr_errors.c -- every error path of the UINTR syscalls for the ABI this is built for
 * (uintr-next by default, RFC v1 with -DUINTR_ABI_RFC); see docs/uintr-linux.md "Errors".
 *
 * One line per check, "<check>: errno <NAME>" (or "<check>: ok <value>" for a call that must
 * succeed); then "OK".  A wrong result prints "FAIL ..." and exits 1.
 */
#include "uintr.h"

#include <pthread.h>
#include <sys/eventfd.h>

#define RECEIVER_THREADS 4
#define UITT_ENTRIES 256

static int failures;

static void __attribute__((interrupt)) ui_handler(struct __uintr_frame *frame,
                                                  unsigned long long vector)
{
    (void)frame;
    (void)vector;
}

/* A call that must fail with `want`. */
static void expect_err(const char *name, long ret, int want)
{
    int e = errno;
    if (ret != -1) {
        uintr_printf("FAIL %s: returned %ld, expected errno %s\n", name, ret,
                     uintr_errno_name(want));
        failures++;
        return;
    }
    if (e != want) {
        uintr_printf("FAIL %s: errno %s, expected %s\n", name, uintr_errno_name(e),
                     uintr_errno_name(want));
        failures++;
        return;
    }
    uintr_printf("%s: errno %s\n", name, uintr_errno_name(e));
}

/* A call that must succeed (and return `want` when want >= 0). */
static long expect_ok(const char *name, long ret, long want)
{
    if (ret < 0 || (want >= 0 && ret != want)) {
        uintr_printf("FAIL %s: returned %ld (errno %s), expected %ld\n", name, ret,
                     ret < 0 ? uintr_errno_name(errno) : "-", want);
        uintr_printf("FAILED\n");
        exit(1);
    }
    uintr_printf("%s: ok %ld\n", name, want >= 0 ? ret : 0L);
    return ret;
}

/* ABI-neutral raw calls with explicit flags. */
static long call_vector_fd(unsigned long long vector, unsigned int flags)
{
#ifdef UINTR_ABI_RFC
    return uintr_create_fd(vector, flags);
#else
    return uintr_vector_fd(vector, flags);
#endif
}

static long call_unregister_sender(int fd, int index, unsigned int flags)
{
#ifdef UINTR_ABI_RFC
    (void)index;
    return uintr_unregister_sender(fd, flags);
#else
    (void)fd;
    return uintr_unregister_sender(index, flags);
#endif
}

static long call_wait(unsigned int flags)
{
#ifdef UINTR_ABI_RFC
    return uintr_wait(flags);
#else
    return uintr_wait(1000, flags);
#endif
}

/* Nonzero flags: bits 0-3 and bit 31 (and, for uintr-next, bit 14 just above WAITING_SENDER)
 * must each give EINVAL.  `call` performs the syscall with the given flags. */
static const unsigned int bad_flags[] = {0x1, 0x2, 0x4, 0x8, 0x4000, 0x80000000u};

#define CHECK_FLAGS(name, expr)                                                                   \
    do {                                                                                          \
        int ok_ = 1;                                                                              \
        for (unsigned i_ = 0; i_ < sizeof bad_flags / sizeof bad_flags[0]; i_++) {                \
            unsigned int flags = bad_flags[i_];                                                   \
            errno = 0;                                                                            \
            long r_ = (expr);                                                                     \
            if (r_ != -1 || errno != EINVAL) {                                                    \
                uintr_printf("FAIL flags %s 0x%x: returned %ld errno %s\n", name, flags, r_,     \
                             uintr_errno_name(errno));                                            \
                failures++;                                                                       \
                ok_ = 0;                                                                          \
            }                                                                                     \
        }                                                                                         \
        if (ok_)                                                                                  \
            uintr_printf("flags %s: errno EINVAL\n", name);                                      \
    } while (0)

/* --- the UITT filler: 4 receiver threads with 64 vector fds each ----------------------- */

static int receiver_fds[RECEIVER_THREADS][UINTR_MAX_VECTORS];
static pthread_barrier_t ready, done;

static void *receiver_thread(void *arg)
{
    int n = (int)(long)arg;
    if (uintr_register_handler(ui_handler, 0) < 0)
        uintr_fail_errno("receiver thread: register_handler");
    for (int v = 0; v < UINTR_MAX_VECTORS; v++) {
        receiver_fds[n][v] = (int)call_vector_fd((unsigned long long)v, 0);
        if (receiver_fds[n][v] < 0)
            uintr_fail_errno("receiver thread: vector_fd");
    }
    pthread_barrier_wait(&ready);
    pthread_barrier_wait(&done); /* stay a live receiver until the filling is over */
    return NULL;
}

static int other_fd;
static long other_ret;
static int other_errno;

static void *other_sender(void *arg)
{
    (void)arg;
    errno = 0;
    other_ret = uintr_register_sender(other_fd, 0);
    other_errno = errno;
    return NULL;
}

static void fill_uitt(int own_fd)
{
    pthread_t th[RECEIVER_THREADS];
    pthread_barrier_init(&ready, NULL, RECEIVER_THREADS + 1);
    pthread_barrier_init(&done, NULL, RECEIVER_THREADS + 1);
    for (long i = 0; i < RECEIVER_THREADS; i++)
        if (pthread_create(&th[i], NULL, receiver_thread, (void *)i) != 0)
            uintr_fail("pthread_create");
    pthread_barrier_wait(&ready);

    int bad = 0;
    for (int i = 0; i < UITT_ENTRIES; i++) {
        int fd = receiver_fds[i / UINTR_MAX_VECTORS][i % UINTR_MAX_VECTORS];
        long idx = uintr_register_sender(fd, 0);
        if (idx != i) {
            uintr_printf("FAIL fill: registration %d returned %ld (errno %s)\n", i, idx,
                         uintr_errno_name(errno));
            bad = 1;
            break;
        }
    }
    if (!bad)
        uintr_printf("fill: %d registrations, indexes 0..%d\n", UITT_ENTRIES, UITT_ENTRIES - 1);
    else
        failures++;
    expect_err("register_sender 257th", uintr_register_sender(own_fd, 0), ENOSPC);

    /* A thread of its own: RFC v1 UITTs are per thread (it gets index 0), uintr-next's are
     * per process (the full table refuses it too). */
    other_fd = own_fd;
    pthread_t o;
    pthread_create(&o, NULL, other_sender, NULL);
    pthread_join(o, NULL);
#ifdef UINTR_ABI_RFC
    errno = other_errno;
    expect_ok("register_sender from another thread (per-thread UITT)", other_ret, 0);
#else
    errno = other_errno;
    expect_err("register_sender from another thread (per-process UITT)", other_ret, ENOSPC);
#endif

    /* Free one entry: the next registration takes exactly that index. */
    int fd17 = receiver_fds[0][17];
    expect_ok("unregister_sender index 17", call_unregister_sender(fd17, 17, 0), 0);
    expect_ok("register_sender reuses index 17", uintr_register_sender(fd17, 0), 17);

    for (int i = 0; i < UITT_ENTRIES; i++) {
        int fd = receiver_fds[i / UINTR_MAX_VECTORS][i % UINTR_MAX_VECTORS];
        if (call_unregister_sender(fd, i, 0) != 0) {
            uintr_printf("FAIL unregister %d: %s\n", i, uintr_errno_name(errno));
            failures++;
            break;
        }
    }
    expect_ok("register_sender after emptying the table", uintr_register_sender(own_fd, 0), 0);
    expect_ok("unregister_sender", call_unregister_sender(own_fd, 0, 0), 0);

    pthread_barrier_wait(&done);
    for (int i = 0; i < RECEIVER_THREADS; i++)
        pthread_join(th[i], NULL);
    expect_err("register_sender after the receiver thread exited",
               uintr_register_sender(receiver_fds[0][0], 0), ESHUTDOWN);
}

int main(void)
{
    int efd = eventfd(0, 0);
    if (efd < 0)
        uintr_fail_errno("eventfd");
    uintr_printf("abi: %s\n", UINTR_ABI_NAME);

    /* --- not a receiver yet ----------------------------------------------------------- */
    expect_err("unregister_handler without handler", uintr_unregister_handler(0), EINVAL);
    expect_err("vector_fd without handler", call_vector_fd(0, 0), EINVAL);
    expect_err("wait by a non-receiver", call_wait(0), EOPNOTSUPP);
    expect_err("register_sender fd -1", uintr_register_sender(-1, 0), EBADF);
    expect_err("register_sender eventfd", uintr_register_sender(efd, 0), EOPNOTSUPP);
#ifdef UINTR_ABI_RFC
    expect_err("unregister_sender eventfd", uintr_unregister_sender(efd, 0), EOPNOTSUPP);
    expect_err("unregister_sender fd -1", uintr_unregister_sender(-1, 0), EBADF);
#else
    expect_err("unregister_sender without a UITT", uintr_unregister_sender(0, 0), EINVAL);
#endif

    /* --- register_handler ------------------------------------------------------------- */
    CHECK_FLAGS("register_handler", uintr_register_handler(ui_handler, flags));
    expect_err("register_handler handler 0", uintr_register_handler(NULL, 0), EFAULT);
    expect_err("register_handler non-canonical handler",
               uintr_register_handler((uintr_handler_t)0x800000000000ULL, 0), EFAULT);
    expect_ok("register_handler", uintr_register_handler(ui_handler, 0), 0);
    expect_err("register_handler again", uintr_register_handler(ui_handler, 0), EBUSY);
#ifndef UINTR_ABI_RFC
    /* No address check (the kernel's wrmsrl_safe skips a non-canonical value): always 0. */
    static char alt_stack[4096];
    expect_ok("alt_stack", uintr_alt_stack(alt_stack, sizeof alt_stack, 0), 0);
    expect_ok("alt_stack sp + size past 2^64", uintr_alt_stack((void *)-16L, 64, 0), 0);
    expect_ok("alt_stack non-canonical top", uintr_alt_stack((void *)0x7ffffffff000, 1L << 36, 0),
              0);
    expect_ok("alt_stack NULL", uintr_alt_stack(NULL, 0, 0), 0);
#endif
    CHECK_FLAGS("unregister_handler", uintr_unregister_handler(flags));

    /* --- vector fds ------------------------------------------------------------------- */
    CHECK_FLAGS("vector_fd", call_vector_fd(0, flags));
    expect_err("vector_fd -1", call_vector_fd((unsigned long long)-1, 0), ENOSPC);
    expect_err("vector_fd 64", call_vector_fd(64, 0), ENOSPC);
    expect_err("vector_fd 100", call_vector_fd(100, 0), ENOSPC);
    int fd0 = (int)call_vector_fd(0, 0);
    if (fd0 < 0)
        uintr_fail_errno("vector_fd 0");
    uintr_printf("vector_fd 0: ok\n");
    expect_err("vector_fd 0 again", call_vector_fd(0, 0), EBUSY);
    int fd63 = (int)call_vector_fd(63, 0);
    if (fd63 < 0)
        uintr_fail_errno("vector_fd 63");
    uintr_printf("vector_fd 63: ok\n");

    /* --- senders ---------------------------------------------------------------------- */
    CHECK_FLAGS("register_sender", uintr_register_sender(fd0, flags));
#ifdef UINTR_ABI_RFC
    expect_err("unregister_sender not connected", uintr_unregister_sender(fd0, 0), EINVAL);
#endif
    expect_ok("register_sender", uintr_register_sender(fd0, 0), 0);
#ifdef UINTR_ABI_RFC
    expect_err("register_sender twice through one fd", uintr_register_sender(fd0, 0), EISCONN);
    expect_ok("register_sender other fd", uintr_register_sender(fd63, 0), 1);
#else
    expect_ok("register_sender twice through one fd", uintr_register_sender(fd0, 0), 1);
    expect_err("unregister_sender free index", uintr_unregister_sender(2, 0), EINVAL);
    expect_err("unregister_sender index 256", uintr_unregister_sender(256, 0), EINVAL);
    expect_err("unregister_sender index -1", uintr_unregister_sender(-1, 0), EINVAL);
#endif
    CHECK_FLAGS("unregister_sender", call_unregister_sender(fd0, 0, flags));
    expect_ok("unregister_sender first", call_unregister_sender(fd0, 0, 0), 0);
    expect_err("unregister_sender first again", call_unregister_sender(fd0, 0, 0), EINVAL);
    expect_ok("unregister_sender second", call_unregister_sender(fd63, 1, 0), 0);

    /* --- uintr_wait -------------------------------------------------------------------- */
    CHECK_FLAGS("wait", call_wait(flags));
#ifndef UINTR_ABI_RFC
    expect_err("wait usec 1000000001", uintr_wait(1000000001ULL, 0), EINVAL);
    expect_err("wait usec 2^63", uintr_wait(1ULL << 63, 0), EINVAL);
#endif

    /* --- a receiver that is gone ------------------------------------------------------ */
    expect_ok("unregister_handler", uintr_unregister_handler(0), 0);
    expect_err("register_sender after unregister_handler", uintr_register_sender(fd0, 0),
               ESHUTDOWN);
    expect_err("unregister_handler twice", uintr_unregister_handler(0), EINVAL);
    expect_err("vector_fd after unregister_handler", call_vector_fd(1, 0), EINVAL);
    close(fd0);
    close(fd63);

    /* --- a full UITT -------------------------------------------------------------------- */
    expect_ok("register_handler again", uintr_register_handler(ui_handler, 0), 0);
    int own = (int)call_vector_fd(5, 0);
    if (own < 0)
        uintr_fail_errno("vector_fd 5");
    fill_uitt(own);

    if (failures) {
        uintr_printf("FAILED: %d check(s)\n", failures);
        return 1;
    }
    uintr_printf("OK\n");
    return 0;
}
