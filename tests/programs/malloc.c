/*
 * malloc.c -- glibc malloc on the emulated kernel: brk growth, mmap'd chunks,
 * mremap through realloc, calloc zeroing, aligned allocation and per-thread arenas.
 *
 * Memory is touched sparsely (one byte per page for the 64 MiB block) or with a
 * single memset, to keep the instruction count small.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static uint32_t rnd(uint32_t *state)
{
    *state = *state * 1103515245u + 12345u;
    return *state >> 8;
}

/* ---------------------------------------------------------------- small blocks */
#define NSLOTS 3000
static unsigned char *slot_ptr[NSLOTS];
static size_t slot_size[NSLOTS];

static unsigned char fill_byte(size_t slot, size_t size) { return (unsigned char)(slot * 31 + size); }

static void check_slot(size_t i)
{
    unsigned char b = fill_byte(i, slot_size[i]);
    for (size_t k = 0; k < slot_size[i]; k++)
        CHECK(slot_ptr[i][k] == b);
}

static void small_blocks(void)
{
    uint32_t seed = 12345;
    long allocs = 0;
    for (int round = 0; round < 4; round++) {
        for (size_t i = 0; i < NSLOTS; i++) {
            if (slot_ptr[i]) {
                check_slot(i);
                if (rnd(&seed) % 2 == 0)
                    continue; /* keep about half of them alive */
                free(slot_ptr[i]);
            }
            size_t size = 1 + rnd(&seed) % 300;
            slot_ptr[i] = malloc(size);
            CHECK(slot_ptr[i] != NULL);
            CHECK(((uintptr_t)slot_ptr[i] & 15) == 0);
            slot_size[i] = size;
            memset(slot_ptr[i], fill_byte(i, size), size);
            allocs++;
        }
    }
    for (size_t i = 0; i < NSLOTS; i++) {
        check_slot(i);
        free(slot_ptr[i]);
        slot_ptr[i] = NULL;
    }
    printf("small blocks: %ld allocations checked\n", allocs);
}

/* ---------------------------------------------------------------- 64 MiB block */
static void big_block(void)
{
    const size_t size = 64u << 20;
    unsigned char *p = malloc(size);
    CHECK(p != NULL);
    CHECK(((uintptr_t)p & 15) == 0);
    for (size_t off = 0; off < size; off += 4096)
        p[off] = (unsigned char)((off >> 12) * 7 + 1);
    p[size - 1] = 0x5a;
    for (size_t off = 0; off < size; off += 4096)
        CHECK(p[off] == (unsigned char)((off >> 12) * 7 + 1));
    CHECK(p[size - 1] == 0x5a);
    CHECK(p[4095] == 0); /* untouched bytes of a fresh mapping read as zero */
    free(p);
    printf("64 MiB block: %zu pages touched\n", size / 4096);
}

/* ---------------------------------------------------------------- realloc growth */
/* Region k of the buffer, [16 << (k-1), 16 << k) (region 0 = [0, 16)), holds byte k+1. */
static void check_region(const unsigned char *p, size_t lo, size_t hi, unsigned char b)
{
    uint64_t word;
    memset(&word, b, sizeof word);
    for (size_t off = lo; off < hi; off += 8) {
        uint64_t w;
        memcpy(&w, p + off, 8);
        CHECK(w == word);
    }
}

static void realloc_growth(void)
{
    size_t size = 16;
    unsigned char *p = malloc(size);
    CHECK(p != NULL);
    memset(p, 1, size);
    int steps = 0;
    while (size < (6u << 20)) {
        size_t nsize = size * 2 > (6u << 20) ? (6u << 20) : size * 2;
        unsigned char *q = realloc(p, nsize);
        CHECK(q != NULL);
        p = q;
        steps++;
        /* the old content moved along: check its two ends */
        CHECK(p[0] == 1);
        CHECK(p[size - 1] == (unsigned char)steps);
        memset(p + size, steps + 1, nsize - size);
        size = nsize;
    }
    /* full check, one word at a time */
    check_region(p, 0, 16, 1);
    size_t lo = 16;
    for (int k = 1; lo < size; k++) {
        size_t hi = lo * 2 > size ? size : lo * 2;
        check_region(p, lo, hi, (unsigned char)(k + 1));
        lo = hi;
    }
    /* shrink back: the prefix is preserved */
    p = realloc(p, 100);
    CHECK(p != NULL);
    check_region(p, 0, 16, 1);
    CHECK(p[16] == 2 && p[31] == 2 && p[32] == 3 && p[63] == 3 && p[64] == 4 && p[99] == 4);
    free(p);
    printf("realloc: %d growth steps to %zu bytes preserved\n", steps, size);
}

/* ---------------------------------------------------------------- calloc */
static void calloc_zeroing(void)
{
    /* A reused (dirty) chunk must still come back zeroed. */
    unsigned char *a = malloc(200000);
    CHECK(a != NULL);
    memset(a, 0xAA, 200000);
    free(a);
    unsigned char *b = calloc(200000, 1);
    CHECK(b != NULL);
    check_region(b, 0, 200000, 0);
    unsigned char *c = calloc(1u << 20, 4); /* 4 MiB */
    CHECK(c != NULL);
    check_region(c, 0, 4u << 20, 0);
    unsigned char *d = calloc(37, 3);
    CHECK(d != NULL);
    for (int i = 0; i < 111; i++)
        CHECK(d[i] == 0);
    free(b);
    free(c);
    free(d);

    /* Overflowing and impossible requests fail with ENOMEM instead of crashing. */
    volatile size_t huge = SIZE_MAX / 2; /* volatile: keep gcc from warning at build time */
    errno = 0;
    CHECK(calloc(huge, 4) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(malloc(huge * 2 - 4096) == NULL && errno == ENOMEM);
    printf("calloc: zeroed\n");
}

/* ---------------------------------------------------------------- alignment */
static void aligned(void)
{
    void *p = NULL;
    CHECK(posix_memalign(&p, 4096, 10000) == 0);
    CHECK(((uintptr_t)p & 4095) == 0);
    memset(p, 1, 10000);
    void *q = aligned_alloc(256, 512);
    CHECK(q != NULL && ((uintptr_t)q & 255) == 0);
    free(p);
    free(q);
    printf("aligned: ok\n");
}

/* ---------------------------------------------------------------- threads / arenas */
#define NWORKERS 4
#define WORKER_ITERS 3000
#define WINDOW 64
#define HANDOFF 100
static unsigned char *handoff[NWORKERS][HANDOFF];

static void *worker(void *arg)
{
    int id = (int)(intptr_t)arg;
    uint32_t seed = 1000u + (uint32_t)id;
    unsigned char *live[WINDOW] = {0};
    size_t live_size[WINDOW] = {0};
    for (int it = 0; it < WORKER_ITERS; it++) {
        int w = it % WINDOW;
        if (live[w]) {
            unsigned char b = (unsigned char)(id * 16 + live_size[w]);
            CHECK(live[w][0] == b);
            CHECK(live[w][live_size[w] / 2] == b);
            CHECK(live[w][live_size[w] - 1] == b);
            free(live[w]);
        }
        size_t size = 16 + rnd(&seed) % 2048;
        live[w] = malloc(size);
        CHECK(live[w] != NULL);
        live_size[w] = size;
        memset(live[w], id * 16 + (int)size, size);
    }
    for (int w = 0; w < WINDOW; w++)
        free(live[w]);
    /* Blocks that main frees after the join: frees into another thread's arena. */
    for (int i = 0; i < HANDOFF; i++) {
        handoff[id][i] = malloc(64 + i);
        CHECK(handoff[id][i] != NULL);
        memset(handoff[id][i], id + i, 64 + i);
    }
    return NULL;
}

static void threaded(void)
{
    pthread_t th[NWORKERS];
    for (int i = 0; i < NWORKERS; i++)
        CHECK(pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i) == 0);
    for (int i = 0; i < NWORKERS; i++)
        CHECK(pthread_join(th[i], NULL) == 0);
    for (int id = 0; id < NWORKERS; id++)
        for (int i = 0; i < HANDOFF; i++) {
            CHECK(handoff[id][i][0] == (unsigned char)(id + i));
            CHECK(handoff[id][i][63 + i] == (unsigned char)(id + i));
            free(handoff[id][i]);
        }
    printf("threads: %d x %d allocations, %d cross-thread frees\n", NWORKERS, WORKER_ITERS,
           NWORKERS * HANDOFF);
}

int main(void)
{
    small_blocks();
    big_block();
    realloc_growth();
    calloc_zeroing();
    aligned();
    threaded();
    printf("OK\n");
    return 0;
}
