/*
 * threads_demo.c -- a small, friendly multi-threaded program for uintr-emu.
 *
 * Four worker threads each add up their quarter of 1..N.  They report their partial
 * sums in a fixed order (worker 0 first, then 1, ...): each waits on a condition
 * variable until it is its turn.  The main thread joins them, checks the total
 * against N(N+1)/2 and prints "Success".
 *
 *   make                                   # builds bin/threads_demo (static)
 *   uintr-emu run --cpus 4 bin/threads_demo
 */
#include <pthread.h>
#include <stdio.h>

#define NWORKERS 4
#define N 1000000L

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t turn_changed = PTHREAD_COND_INITIALIZER;
static int turn; /* the worker whose turn it is to print */

struct work {
    int id;
    long first, last; /* inclusive range */
    long sum;
};

static void *worker(void *arg)
{
    struct work *w = arg;
    long sum = 0;
    for (long i = w->first; i <= w->last; i++)
        sum += i;
    w->sum = sum;

    pthread_mutex_lock(&lock);
    while (turn != w->id)
        pthread_cond_wait(&turn_changed, &lock);
    printf("worker %d: sum of %ld..%ld = %ld\n", w->id, w->first, w->last, w->sum);
    turn++;
    pthread_cond_broadcast(&turn_changed);
    pthread_mutex_unlock(&lock);
    return NULL;
}

int main(void)
{
    pthread_t threads[NWORKERS];
    struct work work[NWORKERS];
    long chunk = N / NWORKERS;

    printf("threads_demo: %d workers add up 1..%ld\n", NWORKERS, N);
    for (int i = 0; i < NWORKERS; i++) {
        work[i].id = i;
        work[i].first = i * chunk + 1;
        work[i].last = i == NWORKERS - 1 ? N : (i + 1) * chunk;
        work[i].sum = 0;
        if (pthread_create(&threads[i], NULL, worker, &work[i]) != 0) {
            printf("pthread_create failed\n");
            return 1;
        }
    }

    long total = 0;
    for (int i = 0; i < NWORKERS; i++) {
        pthread_join(threads[i], NULL);
        total += work[i].sum;
    }

    long expected = N * (N + 1) / 2;
    printf("total = %ld (expected %ld)\n", total, expected);
    if (total != expected) {
        printf("Failure\n");
        return 1;
    }
    printf("Success\n");
    return 0;
}
