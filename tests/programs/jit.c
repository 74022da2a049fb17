/*
 * jit.c -- code written at run time, then executed: what a JIT or a trampoline does.
 *
 * 1. W^X: a page is written while PROT_READ|PROT_WRITE, mprotect'ed PROT_READ|PROT_EXEC and
 *    called; again with new code, 200 times (the emulator must drop its translation of the
 *    old code although the page was not executable while it was rewritten).
 * 2. An RWX page rewritten and called, 200 times (a store to translated code).
 * 3. Self-modifying code: a function that stores into its own next instruction before it
 *    runs it (the store hits the block being executed).
 * 4. A JIT page split by mprotect into an executable and a writable half; calling into the
 *    writable half is SIGSEGV/SEGV_ACCERR at that address, and after mprotect'ing it back the
 *    call works (permission changes take effect at once, also on code that has run).
 * With the argument "dual", instead:
 * 5. Two mappings of one file at different addresses, one writable, one executable: code
 *    written through one is run through the other (a known limit of the emulator:
 *    tests/test_programs.py).
 * Prints one line per part; exits 0.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"

typedef int (*fn_t)(void);

/* mov eax, imm32; ret */
static void emit_return(unsigned char *p, int value)
{
    p[0] = 0xb8;
    memcpy(p + 1, &value, 4);
    p[5] = 0xc3;
}

static sigjmp_buf env;
static void *volatile got_addr;
static volatile int got_code;

static void handler(int sig, siginfo_t *si, void *uctx)
{
    (void)sig;
    (void)uctx;
    got_addr = si->si_addr;
    got_code = si->si_code;
    siglongjmp(env, 1);
}

static int dual(long page);

int main(int argc, char **argv)
{
    long page = sysconf(_SC_PAGESIZE);
    if (argc > 1 && !strcmp(argv[1], "dual"))
        return dual(page);

    /* 1. W^X */
    unsigned char *wx = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK_ERRNO(wx != MAP_FAILED);
    long sum = 0;
    for (int i = 0; i < 200; i++) {
        CHECK_ERRNO(mprotect(wx, page, PROT_READ | PROT_WRITE) == 0);
        emit_return(wx + (i % 3) * 16, i * 7);
        CHECK_ERRNO(mprotect(wx, page, PROT_READ | PROT_EXEC) == 0);
        int got = ((fn_t)(wx + (i % 3) * 16))();
        CHECK(got == i * 7);
        sum += got;
    }
    printf("W^X: 200 rewrites, sum %ld OK\n", sum);

    /* 2. RWX */
    unsigned char *rwx = mmap(NULL, page, PROT_READ | PROT_WRITE | PROT_EXEC,
                              MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK_ERRNO(rwx != MAP_FAILED);
    sum = 0;
    for (int i = 0; i < 200; i++) {
        emit_return(rwx, 1000 + i);
        int got = ((fn_t)rwx)();
        CHECK(got == 1000 + i);
        sum += got;
    }
    printf("RWX: 200 rewrites, sum %ld OK\n", sum);

    /* 3. self-modifying: xor eax, eax; mov byte [rip+1], 42; mov al, 0; ret -- the store
     * writes the immediate of the "mov al" that follows it. */
    static const unsigned char smc[] = {0x31, 0xc0, 0xc6, 0x05, 0x01, 0x00, 0x00, 0x00, 0x2a,
                                        0xb0, 0x00, 0xc3};
    for (int i = 0; i < 3; i++) {
        memcpy(rwx, smc, sizeof smc);
        CHECK(((fn_t)rwx)() == 42);
    }
    printf("self-modifying: 42 OK\n");

    /* 4. a split page pair */
    unsigned char *two = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                              -1, 0);
    CHECK_ERRNO(two != MAP_FAILED);
    emit_return(two, 1);
    emit_return(two + page, 2);
    CHECK_ERRNO(mprotect(two, 2 * page, PROT_READ | PROT_EXEC) == 0);
    CHECK(((fn_t)two)() == 1 && ((fn_t)(two + page))() == 2);
    CHECK_ERRNO(mprotect(two + page, page, PROT_READ | PROT_WRITE) == 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = handler;
    sa.sa_flags = SA_SIGINFO;
    CHECK_ERRNO(sigaction(SIGSEGV, &sa, NULL) == 0);
    int faulted = 0;
    if (sigsetjmp(env, 1) == 0)
        ((fn_t)(two + page))();
    else
        faulted = 1;
    CHECK(faulted && got_addr == two + page && got_code == SEGV_ACCERR);
    CHECK(((fn_t)two)() == 1);
    CHECK_ERRNO(mprotect(two + page, page, PROT_READ | PROT_EXEC) == 0);
    CHECK(((fn_t)(two + page))() == 2);
    printf("split: call into the writable half is SEGV_ACCERR at it, then runs OK\n");
    return 0;
}

static int dual(long page)
{
    /* 5. one file, two views */
    char path[] = "/tmp/jit-XXXXXX";
    int fd = mkstemp(path);
    CHECK_ERRNO(fd >= 0);
    CHECK_ERRNO(unlink(path) == 0);
    CHECK_ERRNO(ftruncate(fd, page) == 0);
    unsigned char *w = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    unsigned char *x = mmap(NULL, page, PROT_READ | PROT_EXEC, MAP_SHARED, fd, 0);
    CHECK_ERRNO(w != MAP_FAILED && x != MAP_FAILED && w != x);
    long sum = 0;
    for (int i = 0; i < 50; i++) {
        emit_return(w, 77 + i);
        int got = ((fn_t)x)();
        CHECK(got == 77 + i);
        sum += got;
    }
    printf("dual mapping: 50 rewrites, sum %ld OK\n", sum);
    return 0;
}
