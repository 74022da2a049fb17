/*
 * signals.c -- asynchronous signals in one process.
 *
 *  1. raise(SIGUSR1) runs the handler before raise() returns.
 *  2. A blocked SIGUSR2 sent with kill(getpid()) stays pending (sigpending), and is
 *     delivered as soon as sigprocmask unblocks it.
 *  3. sa_mask: SIGUSR2 raised inside the SIGUSR1 handler waits until it returns.
 *  4. SIG_IGN: an ignored signal is discarded, even after unblocking.
 *  5. SA_RESETHAND: the disposition goes back to SIG_DFL after one delivery.
 *  6. pthread_kill to a thread waiting in sigsuspend: the handler runs on that thread.
 *  7. rt_sigreturn restores a context modified by the handler: a SIGSEGV handler
 *     skips the faulting 2-byte instruction and sets rax.
 *
 * With the argument "abort" the program instead prints a line and calls abort():
 * natively it dies of SIGABRT (6), under the emulator it exits with 134.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <ucontext.h>
#include <unistd.h>

#include "check.h"

static volatile sig_atomic_t usr1_count, usr2_count, nested;
static volatile int order[16];
static volatile int norder;

static void on_usr1(int sig)
{
    CHECK(sig == SIGUSR1);
    order[norder++] = 1;
    if (nested) {
        raise(SIGUSR2); /* blocked by sa_mask while this handler runs */
        order[norder++] = 11;
    }
    usr1_count++;
}

static void on_usr2(int sig)
{
    CHECK(sig == SIGUSR2);
    order[norder++] = 2;
    usr2_count++;
}

static void set_handler(int sig, void (*fn)(int), int flags, int masked)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fn;
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    if (masked)
        sigaddset(&sa.sa_mask, masked);
    CHECK(sigaction(sig, &sa, NULL) == 0);
}

/* ---- 6: a signal aimed at one thread ---- */
static sem_t ready;
static volatile pthread_t handler_thread;
static volatile int thread_handled;

static void on_usr1_thread(int sig)
{
    (void)sig;
    handler_thread = pthread_self();
    thread_handled++;
}

static void *waiter(void *arg)
{
    (void)arg;
    sigset_t block, wait_mask;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    CHECK(pthread_sigmask(SIG_BLOCK, &block, &wait_mask) == 0);
    sigdelset(&wait_mask, SIGUSR1);
    CHECK(sem_post(&ready) == 0);
    int r = sigsuspend(&wait_mask); /* returns after the handler ran */
    CHECK(r == -1 && errno == EINTR);
    CHECK(thread_handled == 1);
    return (void *)(intptr_t)42;
}

/* ---- 7: handler edits the interrupted context ---- */
static void on_segv_skip(int sig, siginfo_t *si, void *uctx)
{
    ucontext_t *uc = uctx;
    (void)sig;
    CHECK(si->si_addr == (void *)8);
    uc->uc_mcontext.gregs[REG_RIP] += 2;          /* skip "mov (%rax),%eax" (8b 00) */
    uc->uc_mcontext.gregs[REG_RAX] = 0x12345678;  /* the "loaded" value */
}

static int fault_and_skip(void)
{
    long rax = 8; /* an unmapped address */
    __asm__ volatile(".byte 0x8b, 0x00" /* mov (%rax),%eax */
                     : "+a"(rax)
                     :
                     : "memory");
    return (int)rax;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "abort") == 0) {
        printf("calling abort()\n");
        fflush(stdout);
        abort();
    }

    set_handler(SIGUSR1, on_usr1, 0, SIGUSR2);
    set_handler(SIGUSR2, on_usr2, 0, 0);

    /* 1 */
    CHECK(raise(SIGUSR1) == 0);
    printf("1. raise: handler ran %d time(s)\n", (int)usr1_count);
    CHECK(usr1_count == 1);

    /* 2 */
    sigset_t set, old, pending;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    CHECK(sigprocmask(SIG_BLOCK, &set, &old) == 0);
    CHECK(kill(getpid(), SIGUSR2) == 0);
    CHECK(kill(getpid(), SIGUSR2) == 0); /* a standard signal is pending at most once */
    CHECK(usr2_count == 0);
    CHECK(sigpending(&pending) == 0);
    printf("2. blocked SIGUSR2: pending=%s delivered=%d\n",
           sigismember(&pending, SIGUSR2) ? "yes" : "no", (int)usr2_count);
    CHECK(sigismember(&pending, SIGUSR2));
    CHECK(sigprocmask(SIG_SETMASK, &old, NULL) == 0);
    printf("   after unblocking: delivered=%d\n", (int)usr2_count);
    CHECK(usr2_count == 1);
    CHECK(sigpending(&pending) == 0 && !sigismember(&pending, SIGUSR2));

    /* 3 */
    norder = 0;
    nested = 1;
    CHECK(raise(SIGUSR1) == 0);
    nested = 0;
    printf("3. nested order:");
    for (int i = 0; i < norder; i++)
        printf(" %d", order[i]);
    printf("\n");
    CHECK(norder == 3 && order[0] == 1 && order[1] == 11 && order[2] == 2);

    /* 4 */
    set_handler(SIGUSR2, SIG_IGN, 0, 0);
    CHECK(raise(SIGUSR2) == 0);
    CHECK(sigprocmask(SIG_BLOCK, &set, &old) == 0);
    CHECK(kill(getpid(), SIGUSR2) == 0);
    CHECK(sigpending(&pending) == 0);
    int ign_pending = sigismember(&pending, SIGUSR2);
    CHECK(sigprocmask(SIG_SETMASK, &old, NULL) == 0);
    printf("4. ignored SIGUSR2: still alive, pending=%s, handler count %d\n",
           ign_pending ? "yes" : "no", (int)usr2_count);
    CHECK(usr2_count == 2); /* step 2 and step 3 */

    /* 5 */
    set_handler(SIGUSR2, on_usr2, SA_RESETHAND, 0);
    CHECK(raise(SIGUSR2) == 0);
    struct sigaction cur;
    CHECK(sigaction(SIGUSR2, NULL, &cur) == 0);
    printf("5. SA_RESETHAND: count %d, disposition now %s\n", (int)usr2_count,
           cur.sa_handler == SIG_DFL ? "SIG_DFL" : "other");
    CHECK(usr2_count == 3 && cur.sa_handler == SIG_DFL);

    /* 6 */
    set_handler(SIGUSR1, on_usr1_thread, 0, 0);
    CHECK(sem_init(&ready, 0, 0) == 0);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, waiter, NULL) == 0);
    CHECK(sem_wait(&ready) == 0);
    CHECK(pthread_kill(t, SIGUSR1) == 0);
    void *ret;
    CHECK(pthread_join(t, &ret) == 0);
    printf("6. pthread_kill: handled %d time(s) on the %s thread, join value %d\n",
           thread_handled, pthread_equal(handler_thread, t) ? "target" : "WRONG",
           (int)(intptr_t)ret);
    CHECK(thread_handled == 1 && pthread_equal(handler_thread, t) && ret == (void *)42);

    /* 7 */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv_skip;
    sa.sa_flags = SA_SIGINFO;
    CHECK(sigaction(SIGSEGV, &sa, NULL) == 0);
    int v = fault_and_skip();
    printf("7. context edited by the handler: eax=0x%x\n", v);
    CHECK(v == 0x12345678);

    printf("OK\n");
    return 0;
}
