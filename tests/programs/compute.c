/*
 * compute.c -- plain user-mode computation: qsort (indirect calls, recursion),
 * FNV-1a hashing, 64- and 128-bit integer arithmetic, a prime sieve, SSE2 double
 * arithmetic through libm (sqrt, fabs, floor, log, exp) and x87 long double.
 * Deterministic: a fixed-seed LCG, results printed as checksums; floating-point
 * sums are printed with %.6f.  About 27 M instructions (valgrind, native ifuncs).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

#define NSORT 30000
#define HASH_BYTES (256 * 1024)
#define SIEVE_N 200000

static uint64_t lcg_state = 0x853c49e6748fea9bULL;
static uint32_t lcg(void)
{
    lcg_state = lcg_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(lcg_state >> 33);
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static uint64_t fnv1a64(const unsigned char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static int vals[NSORT];
static unsigned char hbuf[HASH_BYTES];
static unsigned char composite[SIEVE_N + 1];

int main(void)
{
    /* qsort */
    for (int i = 0; i < NSORT; i++)
        vals[i] = (int)(lcg() % 2000001) - 1000000;
    qsort(vals, NSORT, sizeof vals[0], cmp_int);
    uint64_t sorted_sum = 0;
    for (int i = 0; i < NSORT; i++) {
        if (i)
            CHECK(vals[i - 1] <= vals[i]);
        sorted_sum = sorted_sum * 31 + (uint32_t)vals[i];
    }
    printf("qsort n=%d min=%d max=%d median=%d checksum=%016llx\n", NSORT, vals[0],
           vals[NSORT - 1], vals[NSORT / 2], (unsigned long long)sorted_sum);
    int key = vals[12345];
    int *found = bsearch(&key, vals, NSORT, sizeof vals[0], cmp_int);
    CHECK(found && *found == key);

    /* FNV-1a */
    for (int i = 0; i < HASH_BYTES; i++)
        hbuf[i] = (unsigned char)(lcg() >> 7);
    printf("fnv1a64=%016llx\n", (unsigned long long)fnv1a64(hbuf, HASH_BYTES));
    CHECK(fnv1a64((const unsigned char *)"", 0) == 0xcbf29ce484222325ULL);
    CHECK(fnv1a64((const unsigned char *)"a", 1) == 0xaf63dc4c8601ec8cULL);

    /* integer arithmetic: division, 128-bit multiply, bit tricks */
    uint64_t acc = 1;
    unsigned __int128 wide = 1;
    int64_t sdiv = 0;
    unsigned pop = 0, clz = 0, ctz = 0;
    for (int i = 1; i <= 20000; i++) {
        uint64_t x = ((uint64_t)lcg() << 32) | lcg();
        acc = acc * 0x9e3779b97f4a7c15ULL + x / (uint64_t)i + x % 1000003u;
        wide = wide * (x | 1) + (wide >> 64);
        sdiv += (int64_t)x / -(int64_t)(i * 3 + 1);
        pop += (unsigned)__builtin_popcountll(x);
        clz += (unsigned)__builtin_clzll(x | 1);
        ctz += (unsigned)__builtin_ctzll(x | (1ULL << 63));
        acc ^= __builtin_bswap64(x);
    }
    printf("int acc=%016llx wide=%016llx%016llx sdiv=%lld pop=%u clz=%u ctz=%u\n",
           (unsigned long long)acc, (unsigned long long)(wide >> 64),
           (unsigned long long)wide, (long long)sdiv, pop, clz, ctz);

    /* sieve of Eratosthenes */
    int primes = 0;
    long long psum = 0;
    for (int i = 2; (long)i * i <= SIEVE_N; i++)
        if (!composite[i])
            for (int j = i * i; j <= SIEVE_N; j += i)
                composite[j] = 1;
    for (int i = 2; i <= SIEVE_N; i++)
        if (!composite[i]) {
            primes++;
            psum += i;
        }
    printf("primes below %d: %d (sum %lld)\n", SIEVE_N, primes, psum);
    CHECK(primes == 17984);

    /* double-precision math */
    double sq = 0, ab = 0, fl = 0, lg = 0, ex = 0;
    for (int i = 1; i <= 20000; i++) {
        sq += sqrt((double)i);
        ab += fabs(sin(i * 0.001) - 0.5);
        fl += floor(i / 7.0);
        lg += log((double)i);
        ex += exp(-i / 5000.0);
    }
    printf("sqrt sum=%.6f\n", sq);
    printf("fabs(sin) sum=%.6f\n", ab);
    printf("floor sum=%.6f\n", fl);
    printf("log sum=%.6f\n", lg);
    printf("exp sum=%.6f\n", ex);
    printf("pi=%.12f e=%.12f hypot=%.6f\n", 4 * atan(1.0), exp(1.0), hypot(3.0, 4.0));
    printf("doubles: %.17g %g %e\n", 0.1, 1e300 * 10, -1.5e-7);
    CHECK(sqrt(2.0) * sqrt(2.0) - 2.0 < 1e-15);
    CHECK(isnan(sqrt(-1.0)) && isinf(1.0 / (volatile double){0.0}));

    /* x87 long double */
    long double third = 1.0L / 3.0L, ld = 0;
    for (int i = 1; i <= 1000; i++)
        ld += third * (long double)i;
    printf("long double sum=%.10Lf sqrtl(2)=%.18Lf\n", ld, sqrtl(2.0L));
    CHECK(sizeof(long double) == 16);

    printf("OK\n");
    return 0;
}
