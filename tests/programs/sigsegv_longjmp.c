/*
 * sigsegv_longjmp.c -- recoverable segmentation faults.
 *
 * A SIGSEGV handler (sigaction, SA_SIGINFO) records si_signo, si_code, si_addr and
 * the faulting rip from the ucontext, then siglongjmp()s back to a sigsetjmp() point
 * in main.  Faults: a read of (int *)16, a write to (int *)0x100, a read of a
 * PROT_NONE page and a write to a read-only page; each must report the exact
 * faulting address, and rip must lie inside the small function that faulted.
 * sigsetjmp(env, 1) restores the signal mask, so SIGSEGV is unblocked again for the
 * next fault.  A last fault is taken on an alternate signal stack (sigaltstack +
 * SA_ONSTACK).  The program then continues normally and exits 0.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>

#include "check.h"

static sigjmp_buf env;
static volatile sig_atomic_t handled;
static volatile int got_signo, got_code;
static void *volatile got_addr;
static volatile uintptr_t got_rip;
static volatile uintptr_t got_local; /* address of a handler local: which stack? */
static volatile int got_onstack;

__attribute__((noinline)) int read_at(volatile int *p) { return *p; }
__attribute__((noinline)) void write_at(volatile int *p) { *p = 1; }

static void handler(int sig, siginfo_t *si, void *uctx)
{
    volatile int local = 0;
    ucontext_t *uc = uctx;
    stack_t ss;
    got_signo = si->si_signo;
    got_code = si->si_code;
    got_addr = si->si_addr;
    got_rip = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
    got_local = (uintptr_t)&local;
    got_onstack = sigaltstack(NULL, &ss) == 0 && (ss.ss_flags & SS_ONSTACK);
    handled++;
    (void)sig;
    siglongjmp(env, 1);
}

static const char *code_name(int code)
{
    switch (code) {
    case SEGV_MAPERR: return "SEGV_MAPERR";
    case SEGV_ACCERR: return "SEGV_ACCERR";
    default: return "other";
    }
}

static int try_fault(int n, const char *what, void *addr, int is_write)
{
    got_signo = 0;
    got_addr = NULL;
    if (sigsetjmp(env, 1) == 0) {
        if (is_write)
            write_at(addr);
        else
            (void)read_at(addr);
        printf("fault %d (%s): no fault?!\n", n, what);
        return 0;
    }
    uintptr_t fn = is_write ? (uintptr_t)write_at : (uintptr_t)read_at;
    int rip_ok = got_rip >= fn && got_rip < fn + 32;
    printf("fault %d (%s): signo=%s addr %s code=%s rip %s\n", n, what,
           got_signo == SIGSEGV ? "SIGSEGV" : "other", got_addr == addr ? "ok" : "WRONG",
           code_name(got_code), rip_ok ? "ok" : "WRONG");
    return got_signo == SIGSEGV && got_addr == addr && rip_ok;
}

int main(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = handler;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(SIGSEGV, &sa, NULL) == 0);

    int ok = 1;
    ok &= try_fault(1, "read of (int *)16", (void *)16, 0);
    ok &= try_fault(2, "write to (int *)0x100", (void *)0x100, 1);
    ok &= try_fault(3, "read of (int *)16 again", (void *)16, 0);

    char *none = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(none != MAP_FAILED);
    ok &= try_fault(4, "read of a PROT_NONE page", none + 8, 0);

    char *ro = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(ro != MAP_FAILED);
    ro[4096 + 40] = 7;
    CHECK(mprotect(ro + 4096, 4096, PROT_READ) == 0);
    ok &= try_fault(5, "write to a read-only page", ro + 4096 + 40, 1);
    CHECK(ro[4096 + 40] == 7); /* the faulting store did not happen */
    ro[0] = 1;                  /* the first page is still writable */
    CHECK(handled == 5);

    /* The signal mask was restored by siglongjmp: SIGSEGV is not blocked. */
    sigset_t cur;
    CHECK(sigprocmask(SIG_BLOCK, NULL, &cur) == 0);
    CHECK(!sigismember(&cur, SIGSEGV));

    /* The same again on an alternate signal stack. */
    static char altstack[64 * 1024];
    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0};
    CHECK(sigaltstack(&ss, NULL) == 0);
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    CHECK(sigaction(SIGSEGV, &sa, NULL) == 0);
    ok &= try_fault(6, "read of (int *)16 on sigaltstack", (void *)16, 0);
    int on_alt = got_local >= (uintptr_t)altstack && got_local < (uintptr_t)altstack + sizeof altstack;
    printf("handler ran on the alternate stack: %s (SS_ONSTACK %s)\n", on_alt ? "yes" : "no",
           got_onstack ? "set" : "clear");
    CHECK(on_alt && got_onstack);
    stack_t now;
    CHECK(sigaltstack(NULL, &now) == 0 && !(now.ss_flags & SS_ONSTACK));

    printf("handled %d faults\n", (int)handled);
    CHECK(ok);
    printf("OK\n");
    return 0;
}
