/*
 * fault_noncanonical_threads.c -- non-canonical and NULL reads while another thread runs.
 *
 * A second thread spins, so the emulator slices and counts instructions (per block) while
 * the main thread takes 200 faults with a SA_SIGINFO handler and siglongjmp: even i reads
 * 0x10 (SIGSEGV/SEGV_MAPERR), odd i reads 0x8000000000000010 (#GP: SIGSEGV/SI_KERNEL) --
 * Unicorn reports both as an access at 0x10, and the emulator must tell them apart.
 * Prints "gp=100 pf=100 other=0".
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static sigjmp_buf env;
static volatile int got_sig, got_code, stop;

static void handler(int sig, siginfo_t *si, void *uctx)
{
    (void)uctx;
    got_sig = sig;
    got_code = si->si_code;
    siglongjmp(env, 1);
}

static void *spin(void *arg)
{
    while (!stop)
        __asm__ volatile("" ::: "memory");
    return arg;
}

__attribute__((noinline, noclone)) static long read_at(volatile long *p) { return *p; }

int main(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = handler;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
    pthread_t t;
    if (pthread_create(&t, NULL, spin, NULL) != 0)
        return 1;
    int gp = 0, pf = 0, other = 0;
    for (int i = 0; i < 200; i++) {
        uintptr_t addr = (i & 1) ? 0x8000000000000010ULL : 0x10;
        if (sigsetjmp(env, 1) == 0) {
            (void)read_at((volatile long *)addr);
            other++;
        } else if (got_sig == SIGSEGV && got_code == SI_KERNEL && (i & 1)) {
            gp++;
        } else if (got_sig == SIGSEGV && got_code == SEGV_MAPERR && !(i & 1)) {
            pf++;
        } else {
            other++;
        }
    }
    stop = 1;
    pthread_join(t, NULL);
    printf("gp=%d pf=%d other=%d\n", gp, pf, other);
    return 0;
}
