/* The "real programs" section's tightest loop (benchmarks/real.py):
 *
 *     volatile_loop [N]
 *
 * increments a volatile counter N times (default 10^8) and prints it. The volatile keeps the
 * counter in memory, so each iteration is a load, an add and a store on the stack: what a
 * store-heavy guest loop costs an emulator, in a program anyone can read. */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 100000000L;
    volatile long v = 0;

    for (long i = 0; i < n; i++)
        v++;
    printf("%ld\n", (long)v);
    return 0;
}
