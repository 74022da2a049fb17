/* Compute workload for benchmarks/compute.py: qsort, a sieve, FNV-1a hashing and snprintf,
 * sized by argv[1] (a scale factor). Prints checksums so every runner's result can be compared.
 * With four threads (argv[2] = 4) each thread does the same work on its own data. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int scale = 1;

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static void *work(void *arg)
{
    uint64_t seed = 88172645463325252ull + (uintptr_t)arg;
    size_t n = 50000u * (size_t)scale;
    uint32_t *v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++) {
        seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
        v[i] = (uint32_t)seed;
    }
    qsort(v, n, sizeof *v, cmp_u32);
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i += 97)
        sum += v[i];

    size_t m = 200000u * (size_t)scale;
    unsigned char *sieve = calloc(m, 1);
    size_t primes = 0;
    for (size_t i = 2; i < m; i++) {
        if (sieve[i])
            continue;
        primes++;
        for (size_t j = i * 2; j < m; j += i)
            sieve[j] = 1;
    }

    uint32_t h = 2166136261u;
    char buf[64];
    for (int i = 0; i < 20000 * scale; i++) {
        int len = snprintf(buf, sizeof buf, "%d:%x:%s", i, i * 7, "uintr");
        for (int j = 0; j < len; j++)
            h = (h ^ (unsigned char)buf[j]) * 16777619u;
    }
    free(v);
    free(sieve);
    uint64_t *out = malloc(sizeof *out);
    *out = sum ^ primes ^ h;
    return out;
}

int main(int argc, char **argv)
{
    scale = argc > 1 ? atoi(argv[1]) : 1;
    int threads = argc > 2 ? atoi(argv[2]) : 1;
    pthread_t t[16];
    uint64_t total = 0;
    if (threads <= 1) {
        uint64_t *r = work(0);
        total = *r;
    } else {
        for (long i = 0; i < threads && i < 16; i++)
            pthread_create(&t[i], NULL, work, (void *)i);
        for (int i = 0; i < threads && i < 16; i++) {
            void *r;
            pthread_join(t[i], &r);
            total ^= *(uint64_t *)r;
        }
    }
    printf("checksum %016llx\n", (unsigned long long)total);
    return 0;
}
