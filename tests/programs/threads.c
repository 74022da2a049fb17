/*
 * threads.c -- pthreads on a static glibc: mutexes, atomics, a condition-variable
 * producer/consumer queue, barriers, pthread_once, __thread TLS and join values.
 *
 * Output is deterministic whatever the interleaving: only totals are printed.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

#define NTHREADS 6
#define ITERS 10000

/* ---- shared counters ---- */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static long counter;          /* protected by lock */
static long atomic_counter;   /* lock xadd */
static long cas_counter;      /* lock cmpxchg loop */
static pthread_barrier_t barrier;

/* ---- TLS: initialised (.tdata), zeroed (.tbss) and over-aligned ---- */
static __thread int tls_init = 42;
static __thread long tls_zero[16];
static __thread _Alignas(64) char tls_aligned[64];
static uintptr_t tls_addr[NTHREADS];

/* ---- pthread_once ---- */
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int once_runs;
static void once_init(void) { once_runs++; }

static void *counter_worker(void *arg)
{
    int id = (int)(intptr_t)arg;

    /* A new thread sees the TLS initialisation image, not another thread's values. */
    CHECK(tls_init == 42);
    for (int i = 0; i < 16; i++)
        CHECK(tls_zero[i] == 0);
    CHECK(((uintptr_t)tls_aligned & 63) == 0);
    for (int i = 0; i < 64; i++)
        CHECK(tls_aligned[i] == 0);
    tls_init = 1000 + id;
    tls_addr[id] = (uintptr_t)&tls_init;
    memset(tls_aligned, id + 1, sizeof tls_aligned);

    pthread_once(&once, once_init);
    pthread_barrier_wait(&barrier); /* everyone starts together */

    for (int i = 0; i < ITERS; i++) {
        pthread_mutex_lock(&lock);
        counter++;
        pthread_mutex_unlock(&lock);
        tls_zero[id % 16]++;

        __atomic_fetch_add(&atomic_counter, 1, __ATOMIC_SEQ_CST);

        long old = __atomic_load_n(&cas_counter, __ATOMIC_RELAXED);
        while (!__atomic_compare_exchange_n(&cas_counter, &old, old + 2, 0,
                                            __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
            ;
    }

    pthread_barrier_wait(&barrier);

    /* Nobody else touched this thread's TLS. */
    CHECK(tls_init == 1000 + id);
    CHECK(tls_zero[id % 16] == ITERS);
    for (int i = 0; i < 64; i++)
        CHECK(tls_aligned[i] == id + 1);
    return (void *)(intptr_t)(id * 7 + 1);
}

/* ---- bounded producer/consumer queue ---- */
#define QCAP 8
#define NITEMS 5000
#define NCONSUMERS 2
static pthread_mutex_t qlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t not_empty = PTHREAD_COND_INITIALIZER;
static pthread_cond_t not_full = PTHREAD_COND_INITIALIZER;
static long queue[QCAP];
static int qhead, qcount;

static void qput(long v)
{
    pthread_mutex_lock(&qlock);
    while (qcount == QCAP)
        pthread_cond_wait(&not_full, &qlock);
    queue[(qhead + qcount) % QCAP] = v;
    qcount++;
    pthread_cond_signal(&not_empty);
    pthread_mutex_unlock(&qlock);
}

static long qget(void)
{
    pthread_mutex_lock(&qlock);
    while (qcount == 0)
        pthread_cond_wait(&not_empty, &qlock);
    long v = queue[qhead];
    qhead = (qhead + 1) % QCAP;
    qcount--;
    pthread_cond_signal(&not_full);
    pthread_mutex_unlock(&qlock);
    return v;
}

static void *producer(void *arg)
{
    (void)arg;
    for (long v = 1; v <= NITEMS; v++)
        qput(v);
    for (int i = 0; i < NCONSUMERS; i++)
        qput(0); /* one end marker per consumer */
    return NULL;
}

struct consumer_result {
    long sum;
    long count;
};

static void *consumer(void *arg)
{
    struct consumer_result *r = arg;
    /* A big local array: the thread's stack (from the attr below) must be usable. */
    volatile char scratch[32 * 1024];
    scratch[0] = 1;
    scratch[sizeof scratch - 1] = 2;
    long last = 0;
    for (;;) {
        long v = qget();
        if (v == 0)
            break;
        CHECK(v > last); /* single producer + FIFO queue: increasing per consumer */
        last = v;
        r->sum += v;
        r->count++;
    }
    CHECK(scratch[0] == 1 && scratch[sizeof scratch - 1] == 2);
    return r;
}

int main(void)
{
    pthread_t th[NTHREADS];

    CHECK(tls_init == 42); /* main thread's TLS is set up by the static start-up code */
    tls_init = 7;

    CHECK(pthread_barrier_init(&barrier, NULL, NTHREADS) == 0);
    for (int i = 0; i < NTHREADS; i++)
        CHECK(pthread_create(&th[i], NULL, counter_worker, (void *)(intptr_t)i) == 0);
    int joins_ok = 1;
    for (int i = 0; i < NTHREADS; i++) {
        void *ret;
        CHECK(pthread_join(th[i], &ret) == 0);
        if ((intptr_t)ret != i * 7 + 1)
            joins_ok = 0;
        CHECK(!pthread_equal(th[i], pthread_self()));
    }
    pthread_barrier_destroy(&barrier);

    int distinct = 1;
    for (int i = 0; i < NTHREADS; i++)
        for (int j = i + 1; j < NTHREADS; j++)
            if (tls_addr[i] == tls_addr[j])
                distinct = 0;
    CHECK(tls_init == 7);

    printf("threads=%d iterations=%d\n", NTHREADS, ITERS);
    printf("mutex counter=%ld\n", counter);
    printf("atomic counter=%ld\n", atomic_counter);
    printf("cas counter=%ld\n", cas_counter);
    printf("once runs=%d\n", once_runs);
    printf("tls distinct=%s\n", distinct ? "yes" : "no");
    printf("join values=%s\n", joins_ok ? "ok" : "bad");
    CHECK(counter == (long)NTHREADS * ITERS);
    CHECK(atomic_counter == (long)NTHREADS * ITERS);
    CHECK(cas_counter == 2L * NTHREADS * ITERS);
    CHECK(once_runs == 1);
    CHECK(distinct && joins_ok);

    /* Producer/consumer through the condvar queue; consumers get a 128 KiB stack. */
    pthread_t prod, cons[NCONSUMERS];
    struct consumer_result res[NCONSUMERS];
    memset(res, 0, sizeof res);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    CHECK(pthread_attr_setstacksize(&attr, 128 * 1024) == 0);
    for (int i = 0; i < NCONSUMERS; i++)
        CHECK(pthread_create(&cons[i], &attr, consumer, &res[i]) == 0);
    pthread_attr_destroy(&attr);
    CHECK(pthread_create(&prod, NULL, producer, NULL) == 0);
    CHECK(pthread_join(prod, NULL) == 0);
    long sum = 0, count = 0;
    for (int i = 0; i < NCONSUMERS; i++) {
        void *ret;
        CHECK(pthread_join(cons[i], &ret) == 0);
        CHECK(ret == &res[i]);
        sum += res[i].sum;
        count += res[i].count;
    }
    printf("queue items=%ld sum=%ld\n", count, sum);
    CHECK(count == NITEMS);
    CHECK(sum == (long)NITEMS * (NITEMS + 1) / 2);
    CHECK(qcount == 0);

    printf("OK\n");
    return 0;
}
