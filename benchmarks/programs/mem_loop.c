/* Register-only versus memory loops with a known instruction count, for benchmarks/run.py.
 *
 *     mem_loop MODE MILLIONS [THREADS]
 *
 * MODE is reg, load, store or rmw. Each thread runs MILLIONS x 10^6 iterations of a six-
 * instruction loop over its own 64 KiB buffer (8192 quadwords):
 *
 *     reg:   mov rax, rdx          load:  mov rax, [rdi+rdx*8]
 *     store: mov [rdi+rdx*8], rbx  rmw:   add [rdi+rdx*8], rbx
 *     then:  add rbx, rax; inc rdx; and rdx, 8191; dec rcx; jnz loop
 *
 * so the loops differ only in their first instruction, and the loop body is 6 x iterations
 * guest instructions per thread. THREADS (default 1) > 1 runs that many threads, each the same
 * loop; the main thread only creates and joins them. Prints one checksum line. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WORDS 8192

static int mode;
static unsigned long iterations;

static void *work(void *arg)
{
    uint64_t *buf = calloc(WORDS, sizeof *buf);
    uint64_t acc = (uintptr_t)arg, idx = 0;
    unsigned long n = iterations;
    if (n == 0)
        goto done;
    switch (mode) {
    case 0:
        __asm__ volatile("1: mov %%rdx, %%rax\n\tadd %%rax, %%rbx\n\tinc %%rdx\n\t"
                         "and $8191, %%rdx\n\tdec %%rcx\n\tjnz 1b"
                         : "+b"(acc), "+d"(idx), "+c"(n) : "D"(buf) : "rax", "memory", "cc");
        break;
    case 1:
        __asm__ volatile("1: mov (%%rdi,%%rdx,8), %%rax\n\tadd %%rax, %%rbx\n\tinc %%rdx\n\t"
                         "and $8191, %%rdx\n\tdec %%rcx\n\tjnz 1b"
                         : "+b"(acc), "+d"(idx), "+c"(n) : "D"(buf) : "rax", "memory", "cc");
        break;
    case 2:
        __asm__ volatile("1: mov %%rbx, (%%rdi,%%rdx,8)\n\tadd %%rax, %%rbx\n\tinc %%rdx\n\t"
                         "and $8191, %%rdx\n\tdec %%rcx\n\tjnz 1b"
                         : "+b"(acc), "+d"(idx), "+c"(n) : "D"(buf), "a"(1UL) : "memory", "cc");
        break;
    default:
        __asm__ volatile("1: add %%rbx, (%%rdi,%%rdx,8)\n\tadd %%rax, %%rbx\n\tinc %%rdx\n\t"
                         "and $8191, %%rdx\n\tdec %%rcx\n\tjnz 1b"
                         : "+b"(acc), "+d"(idx), "+c"(n) : "D"(buf), "a"(1UL) : "memory", "cc");
        break;
    }
done:
    for (int i = 0; i < WORDS; i++)
        acc ^= buf[i];
    free(buf);
    return (void *)(uintptr_t)acc;
}

int main(int argc, char **argv)
{
    static const char *modes[] = {"reg", "load", "store", "rmw"};
    if (argc < 3) {
        fprintf(stderr, "usage: %s reg|load|store|rmw MILLIONS [THREADS]\n", argv[0]);
        return 2;
    }
    mode = -1;
    for (int i = 0; i < 4; i++)
        if (strcmp(argv[1], modes[i]) == 0)
            mode = i;
    if (mode < 0)
        return 2;
    iterations = strtoul(argv[2], NULL, 10) * 1000000UL;
    int threads = argc > 3 ? atoi(argv[3]) : 1;
    uint64_t sum = 0;
    if (threads <= 1) {
        sum = (uintptr_t)work(0);
    } else {
        pthread_t t[64];
        if (threads > 64)
            threads = 64;
        for (long i = 0; i < threads; i++)
            pthread_create(&t[i], NULL, work, (void *)i);
        for (int i = 0; i < threads; i++) {
            void *r;
            pthread_join(t[i], &r);
            sum ^= (uintptr_t)r;
        }
    }
    printf("%s checksum %016llx\n", argv[1], (unsigned long long)sum);
    return 0;
}
